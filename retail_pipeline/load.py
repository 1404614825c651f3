"""Loading one input file: header check, then every data line loaded or rejected."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa

from .errors import InputError
from .lines import DEFAULT_CHUNK_BYTES, read_header_and_chunks
from .records import RowFormat, parse_chunk

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string()),
        pa.field("line_number", pa.int64()),
        pa.field("reason", pa.string()),
        pa.field("raw", pa.string()),
    ]
)


@dataclass
class LoadedFile:
    source_file: str  # base name, as in rejected_rows.source_file
    rows: pa.Table  # fmt.arrow_schema, in line order
    rejected: pa.Table  # REJECTED_SCHEMA
    data_lines: int  # lines after the header, rejected ones included


HEADER_SHOWN = 200  # characters of a wrong header quoted in the error


def check_header(fmt: RowFormat, path: str, header: bytes) -> None:
    """Stop the run unless line 1 is exactly the format's header; the error quotes what was found."""
    found = header.decode("utf-8", "replace")
    if found != fmt.header:
        shown = repr(found[:HEADER_SHOWN])
        if len(found) > HEADER_SHOWN:
            shown += f" (its first {HEADER_SHOWN} characters)"
        hint = ""
        if "," not in found and any(sep in found for sep in (";", "\t", "|")):
            hint = " (fields must be separated by commas)"
        raise InputError(f"{path}: wrong header: expected {fmt.header!r}, found {shown}{hint}")


def load_file(
    fmt: RowFormat,
    path: str | os.PathLike,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    threads: int = 2,
    progress: Callable[[str, int], None] | None = None,
) -> LoadedFile:
    """Read a whole input file of format ``fmt``.

    Chunks are parsed on ``threads`` threads (Arrow releases the GIL), with at most a few
    chunks in flight so memory stays bounded by the chunk size, not the file size.
    ``progress(file_name, lines_so_far)`` is called after each chunk.
    """
    path = os.fspath(path)
    header, chunks = read_header_and_chunks(path, chunk_bytes=chunk_bytes)
    check_header(fmt, path, header)
    name = os.path.basename(path)

    tables: list[pa.Table] = []
    rejected: list[tuple[int, str, str]] = []
    data_lines = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        in_flight: deque = deque()

        def collect_one() -> None:
            parsed = in_flight.popleft().result()
            tables.append(parsed.rows)
            rejected.extend(parsed.rejected)

        for chunk in chunks:
            data_lines += chunk.count
            if progress is not None:
                progress(os.path.basename(path), data_lines)
            in_flight.append(pool.submit(parse_chunk, fmt, chunk))
            while len(in_flight) > threads:
                collect_one()
        while in_flight:
            collect_one()

    rows = pa.concat_tables(tables) if tables else fmt.arrow_schema.empty_table()
    rejected_table = pa.Table.from_arrays(
        [
            pa.array([name] * len(rejected), pa.string()),
            pa.array([r[0] for r in rejected], pa.int64()),
            pa.array([r[1] for r in rejected], pa.string()),
            pa.array([r[2] for r in rejected], pa.string()),
        ],
        schema=REJECTED_SCHEMA,
    )
    return LoadedFile(name, rows, rejected_table, data_lines)
