"""Loading one input file: header check, then every data line loaded or rejected."""

from __future__ import annotations

import itertools
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

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
    return next(load_file_parts(fmt, path, parts=1, chunk_bytes=chunk_bytes, threads=threads, progress=progress))


def load_file_parts(
    fmt: RowFormat,
    path: str | os.PathLike,
    *,
    parts: int,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    threads: int = 2,
    progress: Callable[[str, int], None] | None = None,
) -> Iterator[LoadedFile]:
    """The file as ``parts`` consecutive runs of its lines, each loaded as :func:`load_file`
    loads a whole file, one after the other: the caller can reduce a part and let it go before
    the next is read, so memory holds one part, not the file. Parts are cut between chunks, by
    the file's size (a gzip file's by a guess of it); any cut gives the same rows in the end.
    Exactly ``parts`` are yielded (some may be empty); the header is checked before the first.
    """
    path = os.fspath(path)
    header, chunks = read_header_and_chunks(path, chunk_bytes=chunk_bytes)
    check_header(fmt, path, header)
    size = text_size(path)
    per_part = max(1, -(-size // chunk_bytes // parts)) if parts > 1 else None
    lines_before = 0
    for k in range(parts):
        part = _load_chunks(fmt, path, chunks if k == parts - 1 else itertools.islice(chunks, per_part),
                            threads, progress, lines_before)
        lines_before += part.data_lines
        yield part
        del part  # (the caller's reference is the only one while the next part is read)


GZIP_RATIO_GUESS = 5  # a CSV is about this many times its gzip size: only for cutting parts


def text_size(path: str | os.PathLike) -> int:
    """The size of a file's text in bytes (for a ``.gz``, a guess from its size); 0 if missing."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return 0
    return size * GZIP_RATIO_GUESS if os.fspath(path).endswith(".gz") else size


def parts_for(size: int, part_bytes: int, minimum: int = 1) -> int:
    """How many parts of about ``part_bytes`` a text of ``size`` bytes is cut into."""
    return max(minimum, -(-size // part_bytes))


def _load_chunks(fmt: RowFormat, path: str, chunks, threads: int, progress, lines_before: int) -> LoadedFile:
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
                progress(name, lines_before + data_lines)
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
