"""Reading and writing intermediate files (Arrow IPC tables, small JSON documents).

Tables are Arrow IPC files, uncompressed: writing one is little more than a copy, and reading
one maps it into memory without decoding anything (Parquet's compression and encoding cost
seconds per 10 M rows at each of the many hand-overs between tasks). Formats are passed
explicitly: temporary paths do not end in the real suffix.

Every function takes the path first, then what goes into the file.
"""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.feather as feather

TABLE_SUFFIX = "arrow"


def write_arrow_file(path: str | os.PathLike, table: pa.Table, *, one_batch: bool = False) -> None:
    """Write ``table`` as the Arrow IPC file ``path``: in batches of 1 M rows, or ``one_batch``
    (its columns then read as numpy arrays without a copy)."""
    feather.write_feather(table, os.fspath(path), compression="uncompressed",
                          chunksize=max(1, table.num_rows) if one_batch else 1 << 20)


def write_arrow_batches(path: str | os.PathLike, schema: pa.Schema, tables) -> None:
    """Write ``tables`` (an iterable of tables of ``schema``, consumed one at a time) as the one
    Arrow IPC file ``path``."""
    with pa.OSFile(os.fspath(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for table in tables:
            writer.write_table(table, max_chunksize=1 << 20)


def read_arrow_file(path: str | os.PathLike, *, columns: list[str] | None = None) -> pa.Table:
    """The table of the Arrow IPC file ``path`` (only ``columns``, if given), memory-mapped."""
    return feather.read_table(os.fspath(path), columns=columns, memory_map=True)


def arrow_file_batches(path: str | os.PathLike) -> list:
    """The record batches of the Arrow IPC file ``path``, as functions each reading one (into
    memory of its own, freed with it: not mapped), for a writer that takes rows a part at a time."""
    path = os.fspath(path)
    with pa.OSFile(path) as source:
        count = pa.ipc.open_file(source).num_record_batches

    def batch(k: int) -> pa.Table:
        with pa.OSFile(path) as source:
            return pa.Table.from_batches([pa.ipc.open_file(source).get_batch(k)])
    return [lambda k=k: batch(k) for k in range(count)]


def write_json(path: str | os.PathLike, document: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, sort_keys=True)


def read_json(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)

