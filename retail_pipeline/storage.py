"""Reading and writing intermediate files (Parquet tables, small JSON documents).

Formats are passed explicitly: Luigi's temporary paths do not end in the real suffix.
"""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq


def write_table(table: pa.Table, path: str | os.PathLike) -> None:
    pq.write_table(table, os.fspath(path), compression="lz4", row_group_size=1 << 20)


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(os.fspath(path), columns=columns, memory_map=True)


def write_json(document: dict, path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, sort_keys=True)


def read_json(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def row_count(path: str | os.PathLike) -> int:
    """The number of rows of a Parquet file, from its footer."""
    return pq.ParquetFile(os.fspath(path)).metadata.num_rows
