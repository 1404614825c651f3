"""Reading an input file as numbered lines, in large chunks, as Arrow binary arrays.

The files are big (the item properties are ~900 MB), so they are read in blocks of
``chunk_bytes`` cut at line boundaries. Each chunk becomes one ``large_binary``
Arrow array whose elements are the lines *including* their ``\\n`` terminator, built
without copying the bytes; the terminator is kept so that a run of accepted lines
can be handed to Arrow's CSV reader as the contiguous buffer it already is.

The reading rules (docs/decisions.md): lines end at ``\\n``; a ``\\r`` before it is
not part of the line; a byte-order mark at the start of the file is ignored; a last
line without ``\\n`` is still a line; line 1 is the header.

Hostile files are refused before a byte is read: anything but a readable regular file
(a directory, a FIFO that would block, a device that never ends, a broken symbolic link)
stops the run with an ``InputError`` naming the file. A line longer than
``MAX_LINE_BYTES`` is still one line (it is rejected later as ``line too long``), but
only its first ``MAX_LINE_BYTES + 2`` bytes are ever held in memory where the reader
would otherwise have to copy it: memory stays bounded by the chunk size whatever the
lines look like.
"""

from __future__ import annotations

import gzip
import mmap
import os
import stat
import zlib
from typing import BinaryIO, Iterator

import numpy as np
import pyarrow as pa

from .errors import InputError

BOM = b"\xef\xbb\xbf"
DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024  # longest line read as data; longer ones are rejected as "line too long"
_KEEP_OF_LONG_LINE = MAX_LINE_BYTES + 2  # enough to know a cut line is too long, even after a "\r" is removed

_FILE_KINDS = [
    (stat.S_ISDIR, "is a directory, expected a file"),
    (stat.S_ISFIFO, "is a named pipe (FIFO), expected a regular file"),
    (stat.S_ISSOCK, "is a socket, expected a regular file"),
    (stat.S_ISCHR, "is a character device, expected a regular file"),
    (stat.S_ISBLK, "is a block device, expected a regular file"),
]


class LineChunk:
    """Consecutive lines of a file, line ``first_line`` first: their bytes back to back
    (``data``, each line ending with ``\\n``) and, split only when asked for, ``lines``
    (``lines[k]`` is line ``first_line + k``)."""

    def __init__(self, first_line: int, data: pa.Buffer, lines: pa.LargeBinaryArray | None = None):
        self.first_line = first_line
        self.data = data
        self._lines = lines
        self.count = len(lines) if lines is not None else count_byte(_bytes(data), 10)

    @classmethod
    def of_lines(cls, first_line: int, lines: pa.LargeBinaryArray) -> "LineChunk":
        return cls(first_line, lines_bytes(lines), lines)

    @property
    def lines(self) -> pa.LargeBinaryArray:
        if self._lines is None:
            self._lines = _lines_array_from(self.data, _bytes(self.data))
        return self._lines


def line_offsets(lines: pa.LargeBinaryArray) -> np.ndarray:
    """Where each line of ``lines`` starts, and where the last ends, in its data buffer."""
    return np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset: lines.offset + len(lines) + 1]


def lines_bytes(lines: pa.LargeBinaryArray) -> pa.Buffer:
    """The bytes of all the lines of ``lines``, which are stored back to back (no copy)."""
    if len(lines) == 0:
        return pa.py_buffer(b"")
    offsets = line_offsets(lines)
    return lines.buffers()[2][int(offsets[0]): int(offsets[-1])]


def _bytes(buffer: pa.Buffer) -> np.ndarray:
    return np.frombuffer(buffer, dtype=np.uint8)


def check_readable_file(path: str | os.PathLike) -> int:
    """Raise ``InputError`` unless ``path`` is a regular file this process can read; return its size.

    Checked with ``stat`` first, so that a FIFO (whose ``open`` would wait for a writer) or a
    device such as ``/dev/zero`` (which never ends) is refused without being opened; then the
    file is opened once, so a permission problem is reported here, with the system's words.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            raise InputError(f"{path}: broken symbolic link to {os.readlink(path)!r} ({exc.strerror})") from exc
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    for is_kind, message in _FILE_KINDS:
        if is_kind(st.st_mode):
            raise InputError(f"{path}: {message}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: is not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    return st.st_size


def open_input(path: str | os.PathLike) -> BinaryIO:
    """Open a plain or gzip-compressed (``.gz``) input for binary reading."""
    path = os.fspath(path)
    check_readable_file(path)
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

    A plain file is memory-mapped and its chunks are zero-copy views of the mapping; the pages
    of chunks read a few chunks ago are dropped from the process (``madvise``), so it holds a
    few chunks of the file, not all it has read. A gzip file is decompressed block by block. Raises ``InputError`` naming the file when it cannot
    be opened or read, or holds no header line at all. A header longer than
    ``MAX_LINE_BYTES`` is returned cut (it cannot be a right header anyway).
    """
    path = os.fspath(path)
    if path.endswith(".gz"):
        return _stream_header_and_chunks(path, chunk_bytes)
    size = check_readable_file(path)
    try:
        if size:
            with open(path, "rb") as f:
                mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            mapped = pa.py_buffer(mapping)
        else:
            mapping, mapped = None, pa.py_buffer(b"")
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot open: {getattr(exc, 'strerror', None) or exc}") from exc
    data = np.frombuffer(mapped, dtype=np.uint8)
    if size == 0 or bytes(data[: len(BOM) + 1]) == BOM:
        raise InputError(f"{path}: file is empty, expected a header line")
    newline = _find_newline(data, 0)
    header_end = size if newline < 0 else newline + 1
    header = bytes(data[: min(header_end, len(BOM) + _KEEP_OF_LONG_LINE)])
    if header.startswith(BOM):
        header = header[len(BOM):]
    return strip_line_end(header), _mapped_chunks(mapped, data, header_end, chunk_bytes, _releaser(mapping))


KEPT_CHUNKS = 4  # chunks whose pages stay mapped: those being parsed (one per thread) and the next


def _releaser(mapping: mmap.mmap | None):
    """A function dropping the pages of ``mapping`` before an offset from the process: they stay
    in the page cache, and a later read of them (a parsed value viewing the file) maps them again."""
    def release(offset: int) -> None:
        end = offset - offset % mmap.PAGESIZE
        if mapping is not None and end > 0 and hasattr(mapping, "madvise"):
            mapping.madvise(mmap.MADV_DONTNEED, 0, end)
    return release


_SCAN_STEP = 1 << 20  # bytes compared at a time when looking for newlines


def _newlines(data: np.ndarray) -> np.ndarray:
    """Positions of every ``\\n`` in ``data``, scanned a step at a time, so that no temporary is
    as big as a chunk made big by one enormous line."""
    if len(data) <= _SCAN_STEP:
        return np.flatnonzero(data == 10)
    return np.concatenate([np.flatnonzero(data[i: i + _SCAN_STEP] == 10) + i
                           for i in range(0, len(data), _SCAN_STEP)])


def count_byte(data: np.ndarray, byte: int) -> int:
    """How many times ``byte`` occurs in ``data``, counted a step at a time (no chunk-sized temporary)."""
    return sum(int(np.count_nonzero(data[i: i + _SCAN_STEP] == byte)) for i in range(0, len(data), _SCAN_STEP))


def _find_newline(data: np.ndarray, start: int, step: int = _SCAN_STEP) -> int:
    """Index of the first ``\\n`` at or after ``start``, or -1."""
    while start < len(data):
        hits = np.flatnonzero(data[start: start + step] == 10)
        if len(hits):
            return start + int(hits[0])
        start += step
    return -1


def _find_last_newline(data: np.ndarray, start: int, end: int, step: int = 1 << 16) -> int:
    """Index of the last ``\\n`` in ``data[start:end]``, or -1; scanned backwards a step at a time."""
    while end > start:
        low = max(start, end - step)
        hits = np.flatnonzero(data[low:end] == 10)
        if len(hits):
            return low + int(hits[-1])
        end = low
    return -1


def _mapped_chunks(mapped: pa.Buffer, data: np.ndarray, start: int, chunk_bytes: int,
                   release=lambda offset: None) -> Iterator[LineChunk]:
    next_line = 2
    size = len(data)
    starts: list[int] = []
    while start < size:
        starts.append(start)
        if len(starts) > KEPT_CHUNKS:
            release(starts[-1 - KEPT_CHUNKS])
        end = min(start + chunk_bytes, size)
        if end < size:
            last = _find_last_newline(data, start, end)
            end = last + 1 if last >= 0 else _find_newline(data, end) + 1 or size
        if data[end - 1] == 10:
            chunk = LineChunk(next_line, mapped.slice(start, end - start))
        else:  # the file's last line has no newline: give it one (a small copy; a long line is cut)
            ends = _newlines(data[start:end])
            tail = start + (int(ends[-1]) + 1 if len(ends) else 0)
            cut = min(end, tail + _KEEP_OF_LONG_LINE)
            chunk = LineChunk.of_lines(next_line, _lines_array(bytes(data[start:cut]) + b"\n"))
        yield chunk
        next_line += chunk.count
        start = end


def _lines_array_from(buffer: pa.Buffer, data: np.ndarray) -> pa.LargeBinaryArray:
    """Lines of a buffer that ends with ``\\n``, as an array viewing that buffer."""
    ends = _newlines(data) + 1
    offsets = np.empty(len(ends) + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(ends), [None, pa.py_buffer(offsets), buffer])


def _stream_header_and_chunks(path: str, chunk_bytes: int) -> tuple[bytes, Iterator[LineChunk]]:
    stream = open_input(path)
    chunks = _stream_chunks(stream, _read_blocks(stream, path, chunk_bytes), chunk_bytes)
    try:
        first = next(chunks, None)
        if first is None:
            raise InputError(f"{path}: file is empty, expected a header line")
    except BaseException:
        chunks.close()
        stream.close()
        raise
    header = strip_line_end(first.lines[0].as_py())
    rest = [LineChunk.of_lines(2, first.lines.slice(1))] if len(first.lines) > 1 else []
    return header, _chain(rest, chunks)


def _chain(first: list[LineChunk], rest: Iterator[LineChunk]) -> Iterator[LineChunk]:
    try:
        yield from first
        yield from rest
    finally:
        rest.close()


def _stream_chunks(stream: BinaryIO, blocks: Iterator[bytes], chunk_bytes: int) -> Iterator[LineChunk]:
    """Chunks of whole lines from decompressed blocks, line 1 (the header, BOM removed) first.

    At most about ``chunk_bytes`` are held, plus the first ``_KEEP_OF_LONG_LINE`` bytes of a
    line that has not ended yet: the rest of a longer line is skipped up to its newline (the
    line is rejected as too long anyway), so one endless line cannot exhaust memory.
    """
    next_line = 1
    pending = b""
    skipping = False  # inside a line already cut: drop bytes up to its newline
    at_start = True
    try:
        for block in blocks:
            if at_start:
                at_start = False
                if block.startswith(BOM):
                    block = block[len(BOM):]
            if skipping:
                newline = block.find(b"\n")
                if newline < 0:
                    continue
                block = block[newline:]
                skipping = False
            pending += block
            last = pending.rfind(b"\n")
            if len(pending) - (last + 1) > _KEEP_OF_LONG_LINE:
                pending = pending[: last + 1 + _KEEP_OF_LONG_LINE]
                skipping = True
            if last >= 0 and len(pending) >= chunk_bytes:
                chunk = LineChunk(next_line, pa.py_buffer(pending[: last + 1]))
                yield chunk
                next_line += chunk.count
                pending = pending[last + 1:]
        if pending:
            if not pending.endswith(b"\n"):
                pending += b"\n"
            yield LineChunk(next_line, pa.py_buffer(pending))
    finally:
        stream.close()
