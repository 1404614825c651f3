"""Reading an input file as numbered lines, in large chunks, as Arrow binary arrays.

The files are big (the item properties are ~900 MB), so they are read in blocks of
``chunk_bytes`` cut at line boundaries. Each chunk becomes one ``large_binary``
Arrow array whose elements are the lines *including* their ``\\n`` terminator, built
without copying the bytes; the terminator is kept so that a run of accepted lines
can be handed to Arrow's CSV reader as the contiguous buffer it already is.

The reading rules (docs/decisions.md): lines end at ``\\n``; a ``\\r`` before it is
not part of the line; a byte-order mark at the start of the file is ignored; a last
line without ``\\n`` is still a line; line 1 is the header.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np
import pyarrow as pa

from .errors import InputError

BOM = b"\xef\xbb\xbf"
DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class LineChunk:
    """Consecutive lines of a file: ``lines[k]`` is line ``first_line + k``."""

    first_line: int
    lines: pa.LargeBinaryArray


def open_input(path: str | os.PathLike) -> BinaryIO:
    """Open a plain or gzip-compressed (``.gz``) input for binary reading."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, expected a file")
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from exc


def strip_line_end(line: bytes) -> bytes:
    """The line's text without its ``\\n`` and one preceding ``\\r``."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line


def _lines_array(block: bytes) -> pa.LargeBinaryArray:
    """Split a block that ends with ``\\n`` into an array of ``\\n``-terminated lines."""
    return _lines_array_from(pa.py_buffer(block), np.frombuffer(block, dtype=np.uint8))


def _read_blocks(stream: BinaryIO, path: str, chunk_bytes: int) -> Iterator[bytes]:
    try:
        while True:
            block = stream.read(chunk_bytes)
            if not block:
                return
            yield block
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc


def read_header_and_chunks(
    path: str | os.PathLike, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> tuple[bytes, Iterator[LineChunk]]:
    """Return the header line's text (no BOM, no line end) and an iterator of data-line chunks.

    A plain file is memory-mapped and its chunks are zero-copy views of the mapping; a gzip
    file is decompressed block by block. Raises ``InputError`` naming the file when it cannot
    be opened or read, or holds no header line at all.
    """
    path = os.fspath(path)
    if path.endswith(".gz"):
        return _stream_header_and_chunks(path, chunk_bytes)
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, expected a file")
    try:
        size = os.path.getsize(path)
        mapped = pa.memory_map(path, "r").read_buffer() if size else pa.py_buffer(b"")
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    data = np.frombuffer(mapped, dtype=np.uint8)
    if size == 0:
        raise InputError(f"{path}: file is empty, expected a header line")
    newline = _find_newline(data, 0)
    header_end = size if newline < 0 else newline + 1
    header = bytes(data[:header_end])
    if header.startswith(BOM):
        header = header[len(BOM):]
    return strip_line_end(header), _mapped_chunks(mapped, data, header_end, chunk_bytes)


def _find_newline(data: np.ndarray, start: int, step: int = 1 << 20) -> int:
    """Index of the first ``\n`` at or after ``start``, or -1."""
    while start < len(data):
        hits = np.flatnonzero(data[start: start + step] == 10)
        if len(hits):
            return start + int(hits[0])
        start += step
    return -1


def _mapped_chunks(mapped: pa.Buffer, data: np.ndarray, start: int, chunk_bytes: int) -> Iterator[LineChunk]:
    next_line = 2
    size = len(data)
    while start < size:
        end = min(start + chunk_bytes, size)
        if end < size:
            last = np.flatnonzero(data[start:end] == 10)
            end = start + int(last[-1]) + 1 if len(last) else _find_newline(data, end) + 1 or size
        if data[end - 1] == 10:
            lines = _lines_array_from(mapped.slice(start, end - start), data[start:end])
        else:  # the file's last line has no newline: give it one (a small copy)
            lines = _lines_array(bytes(data[start:end]) + b"\n")
        yield LineChunk(next_line, lines)
        next_line += len(lines)
        start = end


def _lines_array_from(buffer: pa.Buffer, data: np.ndarray) -> pa.LargeBinaryArray:
    """Lines of a buffer that ends with ``\n``, as an array viewing that buffer."""
    ends = np.flatnonzero(data == 10) + 1
    offsets = np.empty(len(ends) + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(ends), [None, pa.py_buffer(offsets), buffer])


def _stream_header_and_chunks(path: str, chunk_bytes: int) -> tuple[bytes, Iterator[LineChunk]]:
    stream = open_input(path)
    blocks = _read_blocks(stream, path, chunk_bytes)
    pending = b""
    for block in blocks:
        pending += block
        if b"\n" in pending:
            break
    if not pending:
        stream.close()
        raise InputError(f"{path}: file is empty, expected a header line")
    header, sep, rest = pending.partition(b"\n")
    if header.startswith(BOM):
        header = header[len(BOM):]
    header = strip_line_end(header + sep)
    return header, _chunks(stream, blocks, rest, chunk_bytes)


def _chunks(stream: BinaryIO, blocks: Iterator[bytes], pending: bytes, chunk_bytes: int) -> Iterator[LineChunk]:
    next_line = 2
    try:
        while True:
            if len(pending) < chunk_bytes:
                block = next(blocks, None)
                if block is not None:
                    pending += block
                    continue
                if pending and not pending.endswith(b"\n"):
                    pending += b"\n"
                if pending:
                    lines = _lines_array(pending)
                    yield LineChunk(next_line, lines)
                return
            cut = pending.rfind(b"\n") + 1
            if cut == 0:  # one line longer than a chunk: keep reading until it ends
                block = next(blocks, None)
                if block is None:
                    pending += b"\n"
                    continue
                pending += block
                continue
            lines = _lines_array(pending[:cut])
            pending = pending[cut:]
            yield LineChunk(next_line, lines)
            next_line += len(lines)
    finally:
        stream.close()
