"""Writing big tables and their indexes straight into SQLite's file format.

Inserting the big tables through SQLite (even binding Arrow arrays in C, through ADBC) cost
most of the pipeline's CPU at full scale: ~10 s for the 11.7 M item_properties rows, ~13 s for
the 2.76 M events with their four indexes and the sessions. Almost all of it is SQLite's
per-row work: running the INSERT program, finding the leaf, balancing pages, and for an index
sorting its entries one comparison of records at a time. Here the rows are already in Arrow arrays, so the same b-trees are built
with array operations and their pages written out as they are
(https://sqlite.org/fileformat2.html):

- SQLite itself creates the tables and indexes, empty, so the schema pages are its own and
  each b-tree has its root page;
- each row becomes a record (a header of serial types, then the values) in a cell. A table
  (rowid) b-tree keeps every cell in its leaves, in rowid order; an index b-tree (an index,
  or a ``WITHOUT ROWID`` table) holds each key once, in key order: after each leaf, the next
  cell moves up to the level above. Levels are packed until one page is left: the root;
- pages are appended after the last page of the file (skipping the page that holds the byte at
  1 GiB, which SQLite keeps for locking), and the header's page count is set;
- rows whose records do not fit in one page (they would need overflow pages) are left out
  and inserted afterwards by SQLite itself, which also indexes them.

The result is a database that SQLite reads, checks (``PRAGMA integrity_check``) and writes like
any other: ``tests/test_sqlite_btree.py`` compares it with the same rows inserted by SQLite.

What it does not handle it refuses (:class:`NotWritable`, naming the table and the reason)
before writing anything: a file in WAL mode, with auto-vacuum (pointer-map pages), a UTF-16
encoding, reserved bytes at the end of each page, free pages, an unexpected page size or schema
format, a hot journal; a column type other than INTEGER, REAL and TEXT, a generated column, a
STRICT table, a CHECK constraint, and an index it would write that is partial, on an expression,
DESC or not in the BINARY collation. The schema is judged as SQLite itself sees it: it is first
created in an in-memory database and read back through SQLite's pragmas. ``[retail]
sqlite_writer = sqlite`` builds every table through SQLite instead (:mod:`sqlite_out`).
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlite_utils

from .external_sort import ColumnFacts, key_order, key_plan, merge_runs, pack_keys, same_key_as_previous, write_run
from .schema import TableSchema, create_table
from .sorting import byte_order_codes, dense_codes
from .storage import read_arrow_file

TABLE_LEAF, TABLE_INTERIOR, INDEX_LEAF, INDEX_INTERIOR = 0x0D, 0x05, 0x0A, 0x02
LOCK_BYTE_OFFSET = 1 << 30  # the page holding this byte of the file is never used (SQLite's PENDING_BYTE)
PAGE_SIZE = 16384  # for new files; measured ~8% faster to fill and index than SQLite's 4096 here
SLICE_ROWS = 1 << 16  # rows made into cells at a time: small temporaries, reused (64 K: a shard touches 140 MB of fresh memory for its cells, 256 K: 297 MB)
TYPES = ("INTEGER", "REAL", "TEXT")  # the declared column types records are built for
MIN_SQLITE = (3, 37, 0)  # PRAGMA table_list (with its strict flag), read to judge a schema
JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")  # the start of a hot rollback journal


class NotWritable(ValueError):
    """A table, or a file, with a property the page writer does not handle: refused before
    anything is written."""

    def __init__(self, table: str, reason: str):
        super().__init__(f"{table}: the SQLite page writer cannot write this table: {reason} "
                         f"(set [retail] sqlite_writer = sqlite to have SQLite itself build it)")
        self.table, self.reason = table, reason


def valid_page_size(size: int) -> bool:
    """A page size SQLite's format allows (a power of two from 512 to 65536): the writer handles all."""
    return 512 <= size <= 65536 and size & (size - 1) == 0


def header_problems(header: bytes, file_size: int | None = None) -> list[str]:
    """What, in the 100-byte header of an SQLite file (and its size, if given), the writer does
    not handle (https://sqlite.org/fileformat2.html#the_database_header); empty if nothing."""
    if len(header) < 100 or header[:16] != b"SQLite format 3\x00":
        return ["not an SQLite database"]
    number = lambda start: int.from_bytes(header[start: start + 4], "big")  # noqa: E731
    raw_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if raw_size == 1 else raw_size
    problems = []
    if not valid_page_size(page_size):
        problems.append(f"page size {raw_size} is not a power of two from 512 to 65536")
    if header[18] == 2 or header[19] == 2:
        problems.append("the file is in WAL mode: pages written to it would be hidden behind the write-ahead log")
    elif header[18] != 1 or header[19] != 1:
        problems.append(f"file format versions {header[18]}/{header[19]} (only 1, rollback journal)")
    if header[20]:
        problems.append(f"{header[20]} reserved bytes at the end of each page (an extension's, e.g. checksums "
                        f"or encryption): the writer fills pages to their end")
    if tuple(header[21:24]) != (64, 32, 32):
        problems.append(f"payload fractions {tuple(header[21:24])}, not (64, 32, 32)")
    empty_schema = number(40) == 0  # (a new file's header, written by a pragma, says format 0, encoding 0)
    if number(24) != number(92) or number(28) == 0:
        problems.append("the header's page count is not valid (its change counter and version-valid-for differ)")
    elif file_size is not None and valid_page_size(page_size) and number(28) * page_size != file_size:
        problems.append(f"the header says {number(28)} pages of {page_size} bytes, the file holds {file_size} bytes")
    if number(32) or number(36):
        problems.append(f"{number(36)} free pages (the writer appends its pages at the end of the file, "
                        f"and would have to use those first)")
    if number(44) != 4 and not (empty_schema and number(44) == 0):
        problems.append(f"schema format {number(44)} (only 4)")
    if number(52) or number(64):
        problems.append("auto-vacuum (pointer-map pages, which would have to list every page written)")
    encoding = number(56)
    if encoding in (2, 3):
        problems.append(f"text encoding UTF-16{'le' if encoding == 2 else 'be'}: the records it writes hold UTF-8")
    elif encoding != 1 and not (empty_schema and encoding == 0):
        problems.append(f"text encoding {encoding} (only 1, UTF-8)")
    return problems


def max_local_payload(page_size: int, table_leaf: bool) -> int:
    """The largest payload a cell holds without overflow pages (SQLite's maxLeaf and maxLocal)."""
    return page_size - 35 if table_leaf else (page_size - 12) * 64 // 255 - 23


# --- records -------------------------------------------------------------------------------

def _varint(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SQLite varints of 64-bit integers (a negative one as its two's complement, in 9 bytes):
    their bytes (left-aligned, as many columns as the longest needs) and lengths."""
    values = np.asarray(values, dtype=np.int64)
    if len(values) and (values.min() < 0 or values.max() >= 1 << 56):  # rowids of a key column can be
        return _long_varints(values)
    top = int(values.max()) if len(values) else 0
    if top < 128:  # one byte each: the common case
        return values.astype(np.uint8).reshape(-1, 1), np.ones(len(values), dtype=np.int64)
    length = np.ones(len(values), dtype=np.int64)
    for bits in range(7, max(top.bit_length(), 1), 7):
        length += values >= (1 << bits)
    width = int(length.max(initial=1))
    out = np.zeros((len(values), width), dtype=np.uint8)
    for position in range(width):  # groups of 7 bits, most significant first, high bit on all but the last
        group = (values >> np.maximum(7 * (length - 1 - position), 0)) & 0x7F
        out[:, position] = np.where(position < length - 1, 0x80 | group, group)
    return out, length


def _long_varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_varint` where some values are negative or at least 2**56: those take SQLite's
    9-byte form (eight 7-bit groups of the value's top 56 bits, each with the high bit set,
    then its low 8 bits)."""
    long = (values < 0) | (values >= 1 << 56)
    short_bytes, short_lengths = _varint(np.where(long, 0, values))
    out = np.zeros((len(values), 9), dtype=np.uint8)
    out[:, : short_bytes.shape[1]] = short_bytes
    unsigned = values[long].astype(np.uint64)
    for position in range(8):
        out[long, position] = 0x80 | ((unsigned >> np.uint64(8 + 7 * (7 - position))) & np.uint64(0x7F))
    out[long, 8] = unsigned & np.uint64(0xFF)
    return out, np.where(long, 9, short_lengths)


def _binary_rows(matrix: np.ndarray, mask: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """Row i of ``matrix`` where ``mask`` is set (``lengths[i]`` bytes), as element i of a binary array."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(matrix[mask])])


def _right_aligned(values: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """The last ``lengths[i]`` big-endian bytes of each 8-byte value, as a binary array."""
    matrix = values.astype(">i8").view(np.uint8).reshape(-1, 8)
    return _binary_rows(matrix, np.arange(8) >= 8 - lengths[:, None], lengths)


class _Row:
    """Rows of bytes built piece by piece, each piece up to 3 bytes per row, at each row's own position."""

    def __init__(self, rows: int, width: int):
        self.matrix = np.zeros((rows, width), dtype=np.uint8)
        self.flat = self.matrix.reshape(-1)
        self.length = np.zeros(rows, dtype=np.int64)
        self.position = np.arange(rows, dtype=np.int64) * width  # where each row's next byte goes

    def add(self, piece: np.ndarray, lengths: np.ndarray) -> None:
        self.flat[self.position] = piece[:, 0]
        for k in range(1, piece.shape[1]):
            at = np.flatnonzero(lengths > k)
            self.flat[self.position[at] + k] = piece[at, k]
        self.length += lengths
        self.position += lengths

    def binary(self) -> pa.Array:
        return _binary_rows(self.matrix, np.arange(self.matrix.shape[1]) < self.length[:, None], self.length)


# The smallest integer serial type (1-6) holding each magnitude, and its body length.
_INT_LIMITS = np.array([127, 32767, 8388607, 2147483647, 140737488355327], dtype=np.int64)
_INT_TYPES = np.array([1, 2, 3, 4, 5, 6], dtype=np.int64)
_BODY_LENGTH = np.array([0, 1, 2, 3, 4, 6, 8, 8, 0, 0], dtype=np.int64)  # by serial type 0-9


def _column_serial(column: pa.Array, declared: str, bodies: bool = True):
    """Per value: serial type, body length, and (if ``bodies``) the bodies: a binary array, or an
    (n, width) byte matrix when every body has the same width.

    A column without NULLs stores all its integers with the one width its largest magnitude
    needs (0 and 1 as SQLite does, in the type alone): a fixed width is copied column-wise,
    where per-value widths would be gathered byte by byte. Any width that holds a value reads
    back as the same value.
    """
    n = len(column)
    if declared == "TEXT":
        valid = ~column.is_null().to_numpy(zero_copy_only=False) if column.null_count else np.ones(n, bool)
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset: column.offset + n + 1]
        length = np.where(valid, np.diff(offsets), 0).astype(np.int64)
        body = (column.fill_null(b"") if column.null_count else column) if bodies else None
        return np.where(valid, 13 + 2 * length, 0), length, body
    if column.null_count:
        valid = ~column.is_null().to_numpy(zero_copy_only=False)
        values = column.fill_null(0).to_numpy()
        if declared == "REAL":
            kind = np.where(valid, 7, 0)
            bits = values.astype(">f8").view(">i8")
        else:
            kind = np.where(valid, _integer_types(values), 0)
            kind = np.where(valid & ((values == 0) | (values == 1)), 8 + values, kind)
            bits = values
        length = _BODY_LENGTH[kind]
        return kind, length, (_right_aligned(bits, length) if bodies else None)
    values = column.to_numpy()
    if declared == "REAL":
        kind = np.full(n, 7, dtype=np.int64)
        width, bits = 8, values.astype(">f8").view(np.uint8).reshape(-1, 8) if bodies else None
    elif n and int(values.min()) >= 0 and int(values.max()) <= 1:
        kind, width, bits = 8 + values.astype(np.int64), 0, np.zeros((n, 0), np.uint8)
    else:
        kind = np.full(n, int(_integer_types(np.array([values.min(initial=0), values.max(initial=0)])).max()))
        width = int(_BODY_LENGTH[kind[0]]) if n else 0
        bits = values.astype(">i8").view(np.uint8).reshape(-1, 8)[:, 8 - width:] if bodies else None
    return kind, np.full(n, width, dtype=np.int64), bits


def _integer_types(values: np.ndarray) -> np.ndarray:
    magnitude = np.where(values < 0, ~values, values)
    return _INT_TYPES[np.searchsorted(_INT_LIMITS, magnitude)]


def _plain(column, declared: str) -> pa.Array:
    """A column as the array type its declared SQLite type is built from."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if declared == "TEXT":
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_large_string(column.type) or pa.types.is_large_binary(column.type):
            column = column.cast(pa.binary())
        if not (pa.types.is_string(column.type) or pa.types.is_binary(column.type)):
            raise TypeError(f"TEXT column given as {column.type}")
        return column.cast(pa.binary())
    if declared == "INTEGER":
        if not (pa.types.is_integer(column.type) or pa.types.is_boolean(column.type)):
            raise TypeError(f"INTEGER column given as {column.type}")
        return column.cast(pa.int64())
    if declared == "REAL":
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            raise TypeError(f"REAL column given as {column.type}")
        column = pc.add(column.cast(pa.float64()), 0.0)  # -0.0 + 0.0 is 0.0: SQLite stores -0.0 as 0.0 too
        nan = pc.is_nan(column).to_numpy(zero_copy_only=False)
        if nan.any():  # SQLite stores a NaN as NULL
            column = pc.if_else(pa.array(nan), pa.scalar(None, pa.float64()), column)
        return column
    raise TypeError(f"{declared} columns are not supported")


def _header_size(type_lengths: list[np.ndarray]) -> np.ndarray:
    """Each record's header size, from the lengths of its serial types' varints (and its own)."""
    header = 1 + sum(type_lengths)
    return header + (header >= 128)  # a header of 128 bytes or more has a 2-byte size (< 2**14 here)


def _record_sizes(columns: list[pa.Array], declared: list[str]) -> np.ndarray:
    """Each row's record size (header and values), without building the records."""
    kinds, lengths, _ = zip(*(_column_serial(c, d, bodies=False) for c, d in zip(columns, declared)))
    return _header_size([_varint(kind)[1] for kind in kinds]) + sum(lengths)


def cells(columns: list[pa.Array], declared: list[str], rowid: np.ndarray | None, max_payload: int,
          ) -> tuple[pa.Array, np.ndarray]:
    """The leaf cell of each row (payload size, the rowid if given, the record), as a binary
    array, and whether each row's payload fits in ``max_payload`` bytes: rows that do not are
    left out of the array."""
    kinds, body_lengths, bodies = zip(*(_column_serial(c, d) for c, d in zip(columns, declared)))
    type_varints = [_varint(kind) for kind in kinds]
    header = _header_size([lengths for _, lengths in type_varints])
    payload = header + sum(body_lengths)
    fits = payload <= max_payload
    if not fits.all():
        keep = np.flatnonzero(fits)
        type_varints = [(piece[keep], lengths[keep]) for piece, lengths in type_varints]
        header, payload = header[keep], payload[keep]
        bodies = [body[keep] if isinstance(body, np.ndarray) else body.take(pa.array(keep)) for body in bodies]
        rowid = None if rowid is None else rowid[keep]
    pieces = [_varint(payload), *([_varint(rowid)] if rowid is not None else []), _varint(header), *type_varints]
    prefix = _Row(len(payload), sum(piece.shape[1] for piece, _ in pieces))
    for piece, lengths in pieces:
        prefix.add(piece, lengths)
    return pc.binary_join_element_wise(prefix.binary(), *_joined_matrices(bodies), b""), fits


def _joined_matrices(bodies: list) -> list[pa.Array]:
    """The bodies as binary arrays, runs of fixed-width matrices joined side by side into one."""
    out, run = [], []
    for body in [*bodies, None]:
        if isinstance(body, np.ndarray):
            run.append(body)
            continue
        if run:
            matrix = np.hstack(run) if len(run) > 1 else np.ascontiguousarray(run[0])
            if matrix.shape[1]:
                offsets = np.arange(0, matrix.size + 1, matrix.shape[1], dtype=np.int32)
                out.append(pa.Array.from_buffers(pa.binary(), matrix.shape[0],
                                                 [None, pa.py_buffer(offsets), pa.py_buffer(matrix)]))
            run = []
        if body is not None:
            out.append(body)
    return out


# --- pages ---------------------------------------------------------------------------------

def _offsets(cells: pa.Array) -> np.ndarray:
    return np.frombuffer(cells.buffers()[1], dtype=np.int32)[cells.offset: cells.offset + len(cells) + 1].astype(np.int64)


def _data(cells: pa.Array) -> np.ndarray:
    return np.frombuffer(cells.buffers()[2], dtype=np.uint8) if len(cells) else np.zeros(0, np.uint8)


class BTreeFile:
    """An SQLite file whose tables and indexes exist (created by SQLite, empty) and whose b-trees
    are filled here: each b-tree's pages are appended after the last page of the file, its
    root written in place. :meth:`close` sets the header's page count."""

    BUFFERED_PAGES = 256  # consecutive pages written at once

    def __init__(self, path: str | os.PathLike, table: str | None = None):
        self.file = open(path, "r+b")
        header = self.file.read(100)
        problems = header_problems(header, os.fstat(self.file.fileno()).st_size)
        if problems:
            self.file.close()
            raise NotWritable(table or os.fspath(path), "; ".join(problems))
        size = int.from_bytes(header[16:18], "big")
        self.page_size = 65536 if size == 1 else size
        self.pages = int.from_bytes(header[28:32], "big")
        self.lock_byte_page = LOCK_BYTE_OFFSET // self.page_size + 1
        self.buffer = np.zeros((self.BUFFERED_PAGES, self.page_size), dtype=np.uint8)
        self.buffered = 0

    def close(self) -> None:
        try:
            self._flush()
            self.file.seek(28)
            self.file.write(self.pages.to_bytes(4, "big"))
        finally:
            self.file.close()

    def __enter__(self) -> "BTreeFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def index_tree(self, root: int) -> "_IndexTree":
        """A writer of the index b-tree rooted at page ``root`` (an index or a WITHOUT ROWID table)."""
        return _IndexTree(self, root)

    def table_tree(self, root: int) -> "_TableTree":
        """A writer of the table b-tree rooted at page ``root`` (a rowid table)."""
        return _TableTree(self, root)

    def _new_page(self) -> int:
        while True:
            if self.buffered == self.BUFFERED_PAGES:
                self._flush()
            self.buffered += 1
            self.pages += 1
            if self.pages != self.lock_byte_page:
                return self.pages
            self.buffer[self.buffered - 1] = 0  # never used: it holds the bytes SQLite locks

    def _flush(self) -> None:
        if self.buffered:
            self.file.seek((self.pages - self.buffered) * self.page_size)
            self.file.write(self.buffer[: self.buffered].data)
            self.buffered = 0

    def write_page(self, page: int, kind: int, data: np.ndarray, offsets: np.ndarray, start: int, stop: int,
                   right_child: int | None = None) -> None:
        """Page ``page`` (a new one, or a root): cells ``start`` to ``stop`` (back to back at the
        page's end, their pointers in order), no free blocks or fragments."""
        is_new = self.pages - self.buffered < page <= self.pages
        buffer = self.buffer[page - (self.pages - self.buffered) - 1] if is_new else np.zeros(self.page_size, np.uint8)
        buffer[:] = 0
        header_size = 8 if kind in (TABLE_LEAF, INDEX_LEAF) else 12
        content = data[offsets[start]: offsets[stop]]
        content_start = self.page_size - len(content)
        if page == 1 or header_size + 2 * (stop - start) > content_start:
            raise ValueError(f"page {page}: cells do not fit")
        buffer[0] = kind
        buffer[3:5] = np.frombuffer((stop - start).to_bytes(2, "big"), np.uint8)
        buffer[5:7] = np.frombuffer((content_start % 65536).to_bytes(2, "big"), np.uint8)
        if right_child is not None:
            buffer[8:12] = np.frombuffer(right_child.to_bytes(4, "big"), np.uint8)
        pointers = (content_start + offsets[start:stop] - offsets[start]).astype(">u2")
        buffer[header_size: header_size + 2 * (stop - start)] = pointers.view(np.uint8)
        buffer[content_start:] = content
        if not is_new:
            self.file.seek((page - 1) * self.page_size)
            self.file.write(buffer.data)


def _fit(space: np.ndarray, start: int, capacity: int) -> int:
    """How many cells from ``start`` fit in ``capacity`` bytes (``space``: running total of cell + pointer sizes)."""
    used = space[start - 1] if start else 0
    return int(np.searchsorted(space, used + capacity, side="right")) - start


class _IndexTree:
    """An index b-tree, its cells given in key order: every key stored once."""

    def __init__(self, file: BTreeFile, root: int):
        self.file, self.root = file, root
        self.pending = pa.array([], pa.binary())  # leaf cells not in a page yet
        self.children: list[int] = []  # the leaves written, in order
        self.dividers: list[bytes] = []  # the cell moved up after each leaf but the last

    def add(self, cells: pa.Array) -> None:
        cells = pa.concat_arrays([self.pending, cells]) if len(self.pending) else cells
        used = self._pack(cells, INDEX_LEAF, None, self.children, self.dividers, final=False)
        self.pending = cells.slice(used)

    def finish(self) -> None:
        if len(self.pending) == 0 and not self.children:
            return  # no rows: the empty root SQLite made stays
        self._pack(self.pending, INDEX_LEAF, None, self.children, self.dividers, final=True)
        children, dividers = self.children, self.dividers
        while len(children) > 1:
            entries = pa.array([child.to_bytes(4, "big") + cell for child, cell in zip(children, dividers)], pa.binary())
            right_children, children, dividers = children, [], []
            self._pack(entries, INDEX_INTERIOR, right_children, children, dividers, final=True)

    def _pack(self, cells: pa.Array, kind: int, right_children: list[int] | None, pages: list[int],
              moved_up: list[bytes], final: bool) -> int:
        """Write pages of ``cells`` (appended to ``pages``, the cell after each to ``moved_up``);
        return how many cells were used: all if ``final``, else the rest wait for more cells.
        A level that fits in one page is the root."""
        offsets, data = _offsets(cells), _data(cells)
        space = np.cumsum(np.diff(offsets) + 2)
        capacity = self.file.page_size - (8 if kind == INDEX_LEAF else 12)
        n, start = len(cells), 0
        while start < n:
            fit = _fit(space, start, capacity)
            rest = n - start - fit
            if not final and rest < 2:
                break  # this page may take more cells, or needs one to move up and one after it
            if final and rest == 1:
                fit -= 1  # one cell to move up and one for the last page
            last = start + fit >= n
            page = self.root if last and not pages else self.file._new_page()
            right = None if kind == INDEX_LEAF else right_children[start + fit]
            self.file.write_page(page, kind, data, offsets, start, start + fit, right)
            pages.append(page)
            if last:
                return n
            skip = 0 if kind == INDEX_LEAF else 4  # a divider moves up without its child pointer
            moved_up.append(bytes(data[offsets[start + fit] + skip: offsets[start + fit + 1]]))
            start += fit + 1
        return start


class _TableTree:
    """A table b-tree, its cells given in rowid order: all cells in the leaves, each interior
    cell a child and the largest rowid under it."""

    def __init__(self, file: BTreeFile, root: int):
        self.file, self.root = file, root
        self.pending = pa.array([], pa.binary())
        self.pending_rowids = np.zeros(0, np.int64)
        self.children: list[int] = []
        self.keys: list[int] = []  # the largest rowid in each leaf

    def add(self, cells: pa.Array, rowids: np.ndarray) -> None:
        if len(self.pending):
            cells = pa.concat_arrays([self.pending, cells])
            rowids = np.concatenate([self.pending_rowids, rowids])
        used = self._pack(cells, rowids, TABLE_LEAF, None, self.children, self.keys, final=False)
        self.pending, self.pending_rowids = cells.slice(used), rowids[used:]

    def finish(self) -> None:
        if len(self.pending) == 0 and not self.children:
            return
        self._pack(self.pending, self.pending_rowids, TABLE_LEAF, None, self.children, self.keys, final=True)
        children, keys = self.children, self.keys
        while len(children) > 1:
            key_bytes, key_lengths = _varint(np.array(keys, dtype=np.int64))
            entries = pa.array([child.to_bytes(4, "big") + bytes(key_bytes[i, :key_lengths[i]])
                                for i, child in enumerate(children)], pa.binary())
            right_children, children, next_keys = children, [], []
            self._pack(entries, np.array(keys, dtype=np.int64), TABLE_INTERIOR, right_children, children, next_keys,
                       final=True)
            keys = next_keys

    def _pack(self, cells: pa.Array, rowids: np.ndarray, kind: int, right_children: list[int] | None,
              pages: list[int], keys: list[int], final: bool) -> int:
        """Write pages of ``cells`` (appended to ``pages``, the largest rowid under each to
        ``keys``); an interior page's last entry is its right child. Return how many cells
        were used: all if ``final``."""
        offsets, data = _offsets(cells), _data(cells)
        space = np.cumsum(np.diff(offsets) + 2)
        leaf = kind == TABLE_LEAF
        capacity = self.file.page_size - (8 if leaf else 12)
        n, start = len(cells), 0
        while start < n:
            # an interior page holds its entries as cells but for the last (the right child)
            fit = _fit(space, start, capacity) + (0 if leaf else 1)
            fit = min(fit, n - start)
            rest = n - start - fit
            if not final and rest < 1:
                break
            if not leaf and rest == 1:
                fit -= 1  # an interior page needs two children
            last = start + fit >= n
            page = self.root if last and not pages else self.file._new_page()
            stop = start + fit if leaf else start + fit - 1
            right = None if leaf else right_children[start + fit - 1]
            self.file.write_page(page, kind, data, offsets, start, stop, right)
            pages.append(page)
            keys.append(int(rowids[start + fit - 1]))
            start += fit
        return start


# --- tables --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Facts:
    """What SQLite made of a table's schema, as far as the writer needs it."""
    not_null: tuple[str, ...]  # the columns SQLite refuses NULL in
    indexes: tuple[tuple[str, tuple[str, ...], bool], ...]  # (name, key columns, unique) of the indexes the writer fills


def _inspect(conn: sqlite3.Connection, schema: TableSchema) -> _Facts:
    """The facts of table ``schema`` as SQLite made it in ``conn``; :class:`NotWritable` if it
    has a property the writer does not handle (see the module's docstring)."""
    name = schema.name

    def refuse(reason: str) -> NotWritable:
        return NotWritable(name, reason)

    listed = {row[1]: row for row in conn.execute("PRAGMA main.table_list")}
    if name not in listed:
        raise refuse("SQLite made no table of that name")
    _, _, kind, _, without_rowid, strict = listed[name][:6]
    if kind != "table":
        raise refuse(f"it is a {kind}, not an ordinary table")
    if strict:
        raise refuse("it is a STRICT table")
    if bool(without_rowid) != schema.without_rowid:
        raise refuse(f"SQLite made it {'a WITHOUT ROWID' if without_rowid else 'a rowid'} table, the schema says otherwise")
    columns = conn.execute(f"PRAGMA main.table_xinfo([{name}])").fetchall()  # cid, name, type, notnull, default, pk, hidden
    hidden = [column[1] for column in columns if column[6]]
    if hidden:
        raise refuse(f"generated (or hidden) columns: {', '.join(hidden)}")
    types = [(column[1], (column[2] or "").upper()) for column in columns]
    odd = [f"{column} {kind or '(no type)'}" for column, kind in types if kind not in TYPES]
    if odd:
        raise refuse(f"column types other than INTEGER, REAL and TEXT: {', '.join(odd)}")
    if types != [(column, kind.upper()) for column, kind in schema.columns]:
        raise refuse(f"SQLite's table has the columns {types}, the schema {list(schema.columns)}")
    (sql,) = conn.execute("SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    if re.search(r"\bCHECK\s*\(", sql, flags=re.IGNORECASE):
        raise refuse("a CHECK constraint (the writer does not evaluate it)")
    primary = [column[1] for column in sorted((c for c in columns if c[5]), key=lambda c: c[5])]
    if primary != list(schema.primary_key):
        raise refuse(f"SQLite's primary key is {primary}, the schema's {list(schema.primary_key)}")
    listed_indexes = conn.execute(f"PRAGMA main.index_list([{name}])").fetchall()[::-1]  # seq, name, unique, origin, partial
    if not without_rowid:  # is its key the rowid? (INTEGER PRIMARY KEY DESC, for one, is not)
        alias = primary[0] if (len(primary) == 1 and dict(types)[primary[0]] == "INTEGER"
                               and not any(row[3] == "pk" for row in listed_indexes)) else None
        if alias != schema.rowid_alias:
            raise refuse(f"its key {primary} {'is' if alias else 'is not'} the rowid for SQLite, the schema says otherwise")
    written = []
    for _, index, unique, origin, partial in listed_indexes:
        if without_rowid and origin != "pk":
            continue  # SQLite itself builds a WITHOUT ROWID table's other indexes
        what = "its primary key" if without_rowid else f"index {index}"
        if partial:
            raise refuse(f"{what} is a partial index (WHERE ...)")
        key = [row for row in conn.execute(f"PRAGMA main.index_xinfo([{index}])") if row[5]]  # seqno, cid, name, desc, coll, key
        for _, cid, column, desc, collation, _ in key:
            if cid == -2:
                raise refuse(f"{what} is on an expression")
            if cid < 0:
                raise refuse(f"{what} has the rowid in its key")
            if desc:
                raise refuse(f"{what} orders {column} DESC")
            if (collation or "BINARY").upper() != "BINARY":
                raise refuse(f"{what} compares {column} in the {collation} collation (only BINARY: bytes)")
        if not without_rowid:
            written.append((index, tuple(row[2] for row in key), bool(unique)))
    not_null = tuple(column[1] for column in columns if column[3] or (without_rowid and column[5]))
    return _Facts(not_null, tuple(written))


def check_writable(path: str | os.PathLike, schema: TableSchema, *, page_size: int = PAGE_SIZE) -> tuple[_Facts, bool]:
    """Whether :func:`write_pages` can add table ``schema`` to the SQLite file ``path`` (new or
    not), judged before anything is written: :class:`NotWritable`, naming the table and the
    reason, if not. Returns the table's facts and whether ``path`` is a new (missing or empty) file."""
    name = schema.name
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise NotWritable(name, f"SQLite {sqlite3.sqlite_version} is older than "
                                f"{'.'.join(map(str, MIN_SQLITE))}, whose pragmas it reads the schema with")
    odd = [f"{column} {kind}" for column, kind in schema.columns if kind not in TYPES]
    if odd:
        raise NotWritable(name, f"column types other than INTEGER, REAL and TEXT: {', '.join(odd)}")
    if schema.without_rowid and list(schema.column_names[: len(schema.primary_key)]) != list(schema.primary_key):
        raise NotWritable(name, "a WITHOUT ROWID table must be keyed on its leading columns")
    size = os.path.getsize(path) if os.path.exists(path) else 0
    if size == 0:
        if not valid_page_size(page_size):
            raise NotWritable(name, f"page size {page_size} is not a power of two from 512 to 65536")
    else:
        with open(path, "rb") as f:
            problems = header_problems(f.read(100), size)
        journal = f"{os.fspath(path)}-journal"
        if os.path.exists(journal):
            with open(journal, "rb") as f:
                if f.read(8) == JOURNAL_MAGIC:
                    problems.append(f"{journal} is a hot journal (an interrupted transaction SQLite would roll back)")
        if problems:
            raise NotWritable(name, f"{os.fspath(path)}: " + "; ".join(problems))
    conn = sqlite3.connect(":memory:")  # the schema as SQLite makes it, where nothing is at stake
    try:
        create_table(conn, schema, indexes=True)
        return _inspect(conn, schema), size == 0
    finally:
        conn.close()


def _create(path: str | os.PathLike, schema: TableSchema, page_size: int, new: bool,
            indexes: bool = True) -> list[tuple[str, int, list[str], bool]]:
    """Create ``schema``'s table and (if ``indexes``) its indexes, empty, in the SQLite file
    ``path`` (made with ``page_size``, UTF-8 and no auto-vacuum if ``new``: a build of SQLite
    with other defaults still makes a file the writer handles); return each b-tree as (name,
    root page, key columns, unique): the table's own first (key columns: ``[]`` for a rowid
    table), then its indexes."""
    conn = sqlite3.connect(os.fspath(path), isolation_level=None)
    try:
        if new:
            conn.execute(f"PRAGMA page_size={page_size}")
            conn.execute("PRAGMA auto_vacuum=NONE")
            conn.execute("PRAGMA encoding='UTF-8'")
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("BEGIN")
        create_table(conn, schema, indexes=indexes)  # (and, empty, the tables its foreign keys reference)
        conn.execute("COMMIT")
        if conn.execute("PRAGMA freelist_count").fetchone()[0]:
            raise NotWritable(schema.name, f"{os.fspath(path)} has free pages (the new b-trees would not be at its end)")
        facts = _inspect(conn, schema)  # (as in memory, but it is the file's that counts)
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (schema.name,)).fetchone()
        trees = [(schema.name, root, list(schema.primary_key) if schema.without_rowid else [], True)]
        for name, columns, unique in facts.indexes:
            (index_root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()
            trees.append((name, index_root, list(columns), unique))
        return trees
    finally:
        conn.close()


def _fitting(columns: list[pa.Array], declared: list[str], max_payload: int) -> np.ndarray:
    """Whether each row's record fits in ``max_payload`` bytes; sized exactly only when the
    longest values of every column together might not fit."""
    longest = sum(9 + (8 if kind != "TEXT" else int(np.diff(_offsets(column)).max(initial=0)) + 2)
                  for column, kind in zip(columns, declared))
    if longest + 9 <= max_payload:
        return np.ones(len(columns[0]) if columns else 0, dtype=bool)
    return _record_sizes(columns, declared) <= max_payload


def _sort_codes(column: pa.Array, declared: str) -> np.ndarray:
    """Non-negative int64 codes ordering ``column`` as SQLite orders an index on it: NULL
    first, numbers by value, text by its bytes (the BINARY collation)."""
    valid = ~column.is_null().to_numpy(zero_copy_only=False)
    if declared == "TEXT":
        codes, _ = byte_order_codes(column)
    elif declared == "INTEGER":
        codes = dense_codes(column.fill_null(0).to_numpy(zero_copy_only=False))
    else:
        values = column.fill_null(0.0).to_numpy(zero_copy_only=False)
        codes = np.unique(values, return_inverse=True)[1].astype(np.int64) if len(values) else np.zeros(0, np.int64)
    return np.where(valid, codes + 1, 0)


def _check_increasing(columns: list[pa.Array], declared: list[str], what: str) -> None:
    """Raise ValueError unless the rows are in strictly increasing order of these columns (a
    WITHOUT ROWID table's key, a rowid alias). (A UNIQUE index's entries are checked as they are
    merged, where NULLs count as distinct: ``_write_rowid_table``.)"""
    if not columns or len(columns[0]) < 2:
        return
    codes = [_sort_codes(c, d) for c, d in zip(columns, declared)]
    less = np.zeros(len(codes[0]) - 1, dtype=bool)
    equal = np.ones(len(codes[0]) - 1, dtype=bool)
    for code in codes:
        less |= equal & (code[:-1] < code[1:])
        equal &= code[:-1] == code[1:]
    if not less.all():
        row = int(np.flatnonzero(~less)[0]) + 1
        raise ValueError(f"{what}: row {row} is not after row {row - 1} in key order")


def write_pages(path: str | os.PathLike, schema: TableSchema, tables: Iterable, *,
                page_size: int = PAGE_SIZE, progress: Callable[[int], None] | None = None,
                cells: Iterable | None = None) -> int:
    """Add table ``schema`` and its indexes, holding the rows of ``tables``, to the SQLite file
    ``path`` (created if missing); return the row count.

    ``tables`` are runs of rows, each a table, an Arrow IPC file or a function reading one
    (:func:`open_run`), opened one at a time: memory holds one run (a rowid table's index
    entries are sorted run by run, spilled beside ``path`` and merged, :mod:`external_sort`).

    A rowid table's rows get rowids 1, 2, ... in the order given (or, if its key is an INTEGER
    PRIMARY KEY, the key's values, which must increase); its cells may be given already made
    (``cells``: the :func:`table_cells` of the same rows, in the same order). A ``WITHOUT
    ROWID`` table's rows must come in strictly increasing key order (``ValueError`` otherwise;
    its key must be its leading columns); its other indexes, whose entries end with the key,
    are built by SQLite itself once the table is written. INTEGER, REAL and TEXT columns;
    strings may be dictionary-encoded. NULL in a NOT NULL column, or two rows with the same
    key in a UNIQUE index (unless the key has a NULL: SQLite allows those) are ``ValueError``s.

    A table or file it does not handle (:func:`check_writable`) is :class:`NotWritable`, raised
    before anything is written (a new file made meanwhile is removed).
    """
    facts, new = check_writable(path, schema, page_size=page_size)
    declared = [kind for _, kind in schema.columns]
    try:
        if schema.without_rowid:
            trees = _create(path, schema, page_size, new, indexes=False)
            written = _write_without_rowid(path, schema, facts, declared, trees[0][1], tables, progress)
            if schema.all_indexes:
                conn = sqlite3.connect(os.fspath(path), isolation_level=None)
                try:
                    conn.execute("PRAGMA journal_mode=OFF")
                    schema.create_indexes(sqlite_utils.Database(conn))
                finally:
                    conn.close()
            return written
        trees = _create(path, schema, page_size, new)
        return _write_rowid_table(path, schema, facts, trees, list(tables), None if cells is None else list(cells),
                                  progress)
    except NotWritable:
        if new and os.path.exists(path):  # (found out once SQLite had made the file: by a build with other defaults)
            os.remove(path)
        raise


def _check_not_null(table: pa.Table, schema: TableSchema, not_null: tuple[str, ...], first_row: int = 0) -> None:
    """Raise ValueError if a NOT NULL column has a NULL (or a NaN, which SQLite stores as NULL)."""
    kinds = dict(schema.columns)
    for name in not_null:
        column = table.column(name)
        nan = kinds[name] == "REAL" and pa.types.is_floating(column.type)
        if column.null_count or (nan and pc.any(pc.is_nan(column)).as_py()):
            row = int(np.flatnonzero(pc.is_null(column, nan_is_null=nan).to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"{schema.name}.{name}: NULL in a NOT NULL column (row {first_row + row + 1})")


def table_cells(schema: TableSchema, table: pa.Table, first_rowid: int) -> pa.Table:
    """The table b-tree cells (``rowid``, ``cell``) of rows of the rowid table ``schema``, given
    rowids from ``first_rowid`` on, for :func:`write_pages`. Making the cells is most of the
    work of writing a wide table, and can be done where the rows are made, side by side."""
    declared = [kind for _, kind in schema.columns]
    rowids = np.arange(first_rowid, first_rowid + table.num_rows, dtype=np.int64)
    parts = [cells(_columns(table.slice(start, SLICE_ROWS), schema, declared), declared,
                   rowids[start: start + SLICE_ROWS], 1 << 62)[0] for start in range(0, table.num_rows, SLICE_ROWS)]
    return pa.table({"rowid": rowids, "cell": pa.chunked_array(parts, pa.binary())})


def _columns(table: pa.Table, schema: TableSchema, declared: list[str]) -> list[pa.Array]:
    return [_plain(table.column(name), kind) for name, kind in zip(schema.column_names, declared)]


def _write_without_rowid(path, schema, facts: _Facts, declared, root, tables, progress) -> int:
    keys = len(schema.primary_key)
    oversized, written, previous = [], 0, None
    with BTreeFile(path, schema.name) as file:
        tree = file.index_tree(root)
        max_payload = max_local_payload(file.page_size, table_leaf=False)
        for table in (t.slice(s, SLICE_ROWS) for t in map(open_run, tables) for s in range(0, t.num_rows, SLICE_ROWS)):
            _check_not_null(table, schema, facts.not_null, written)
            columns = _columns(table, schema, declared)
            key = columns[:keys] if previous is None else [pa.concat_arrays([p, c]) for p, c in zip(previous, columns[:keys])]
            _check_increasing(key, declared[:keys], schema.name)
            previous = [c.slice(len(c) - 1) for c in columns[:keys]]
            leaf_cells, fits = cells(columns, declared, None, max_payload)
            tree.add(leaf_cells)
            if not fits.all():
                oversized.append((None, [c.filter(pa.array(~fits)) for c in columns]))
            written += table.num_rows
            if progress is not None:
                progress(written)
        tree.finish()
    _insert_with_sqlite(path, schema, oversized)
    return written


def open_run(run) -> pa.Table:
    """A run of rows: a table, the Arrow IPC file holding it (memory-mapped while in use), or a
    function reading it (:func:`storage.arrow_file_batches`)."""
    if isinstance(run, (str, os.PathLike)):
        return read_arrow_file(run)
    return run() if callable(run) else run


def _write_rowid_table(path, schema: TableSchema, facts: _Facts, trees, tables: list, given: list | None,
                       progress) -> int:
    """A rowid table and its indexes from ``tables``, runs of rows (tables, or files opened one
    at a time): the table's cells are written run by run, each index's entries are sorted run
    by run and, with several runs, spilled beside ``path`` and merged
    (:mod:`external_sort`). Memory holds one run (and a block per run while merging)."""
    names = list(schema.column_names)
    kind_of = dict(schema.columns)
    alias = schema.rowid_alias
    indexes = trees[1:]
    runs = list(tables)
    given = None if given is None else list(given)
    if given is not None and alias is not None:
        raise ValueError(f"{schema.name}: cells cannot be given for a table whose rowid is {alias}")
    if given is not None and len(given) != len(runs):
        raise ValueError(f"{schema.name}: the cells given are not those of the rows, in order")
    # first, one run at a time: the row counts, the rowids' and the index keys' ranges
    key_facts = {name: [ColumnFacts(kind_of[c]) for c in key] for name, _, key, _ in indexes}
    counts, alias_range = [], [None, None]
    for run in runs:
        table = open_run(run)
        counts.append(table.num_rows)
        if not table.num_rows:
            continue
        for name, _, key, _ in indexes:
            for fact, column in zip(key_facts[name], key):
                fact.add(_plain(table.column(column), kind_of[column]))
        if alias is not None:
            column = table.column(alias)
            if column.null_count:
                raise ValueError(f"{schema.name}: NULL in its INTEGER PRIMARY KEY {alias}")
            low_high = pc.min_max(column)
            alias_range = [low_high["min"].as_py() if alias_range[0] is None else min(alias_range[0], low_high["min"].as_py()),
                           low_high["max"].as_py() if alias_range[1] is None else max(alias_range[1], low_high["max"].as_py())]
        del table
    total = sum(counts)
    if total == 0:
        return 0
    rowid_range = (1, total) if alias is None else tuple(alias_range)
    plans = {name: key_plan(key_facts[name], rowid_range) for name, _, _, _ in indexes}
    merge_table = alias is not None and len(runs) > 1  # the runs' rowids interleave: merged too
    table_plan = key_plan([], rowid_range)
    spilled: dict[str, list[str]] = {name: [] for name, _, _, _ in [*indexes, (schema.name, 0, [], False)]}
    in_memory: dict[str, list] = {}  # one run: its sorted entries, kept until the table is written
    oversized = []
    first_rowid = 1

    def spill(name: str, run: int, plan, words, payload) -> None:
        if len(runs) == 1:
            in_memory[name] = [(words, pa.table(payload))]
            return
        spill_path = f"{os.fspath(path)}-{name}-run-{run}"
        spilled[name].append(spill_path)
        write_run(spill_path, plan, words, payload, SLICE_ROWS)

    try:
        with BTreeFile(path, schema.name) as file:
            max_table, max_index = (max_local_payload(file.page_size, table_leaf=leaf) for leaf in (True, False))
            tree = file.table_tree(trees[0][1])
            for r, run in enumerate(runs):
                if not counts[r]:
                    continue
                table = open_run(run).select(names)
                _check_not_null(table, schema, facts.not_null, first_rowid - 1)
                if alias is None:
                    rowids = np.arange(first_rowid, first_rowid + table.num_rows, dtype=np.int64)
                else:  # the rowid is the key column's value, which the record then holds as NULL (as SQLite does)
                    rowids = table.column(alias).to_numpy().astype(np.int64)
                    _check_increasing([pa.array(rowids)], ["INTEGER"], f"{schema.name}.{alias}")
                first_rowid += table.num_rows
                # the columns to build from: all of them, or with the cells given only the indexed ones
                needed = names if given is None else sorted({c for _, _, key, _ in indexes for c in key})
                plain = {name: _plain(table.column(name), kind_of[name]) for name in needed}
                stored = plain if alias is None else {**plain, alias: pa.nulls(table.num_rows, pa.int64())}
                # rows too big for one page (table cell, or any index entry) are left to SQLite
                if given is None:
                    fits = _fitting([stored[c] for c in names], [kind_of[c] for c in names], max_table)
                else:
                    given_cells = open_run(given[r])
                    if not np.array_equal(given_cells.column("rowid").to_numpy(), rowids):
                        raise ValueError(f"{schema.name}: the cells given are not those of the rows, in order")
                    # (a cell is at least its payload: one no longer than a page takes fits)
                    fits = pc.binary_length(given_cells.column("cell")).to_numpy() <= max_table
                for _, _, key, _ in indexes:
                    fits &= _fitting([plain[c] for c in key] + [pa.array(rowids)],
                                     [kind_of[c] for c in key] + ["INTEGER"], max_index)
                kept = rowids
                if not fits.all():
                    oversized.append((rowids[~fits] if alias is None else None,
                                      _columns(table.filter(pa.array(~fits)), schema, [kind_of[c] for c in names])))
                    keep = pa.array(np.flatnonzero(fits))
                    plain = {name: column.take(keep) for name, column in plain.items()}
                    stored = {name: column.take(keep) for name, column in stored.items()}
                    kept = rowids[fits]
                # the table's cells
                if given is None:
                    columns = [stored[c] for c in names]
                    made = [cells([c.slice(start, SLICE_ROWS) for c in columns], [kind_of[c] for c in names],
                                  kept[start: start + SLICE_ROWS], 1 << 62)[0] for start in range(0, len(kept), SLICE_ROWS)]
                    if merge_table:
                        spill(schema.name, r, table_plan, pack_keys(table_plan, [], kept),
                              {"rowid": pa.array(kept), "cell": pa.chunked_array(made, pa.binary())})
                    else:
                        for start, chunk in zip(range(0, len(kept), SLICE_ROWS), made):
                            tree.add(chunk, kept[start: start + SLICE_ROWS])
                    del made, columns
                else:
                    start = 0
                    for chunk in given_cells.column("cell").chunks:
                        chunk_fits = fits[start: start + len(chunk)]
                        chunk_rowids = rowids[start: start + len(chunk)]
                        if not chunk_fits.all():
                            chunk, chunk_rowids = chunk.filter(pa.array(chunk_fits)), chunk_rowids[chunk_fits]
                        tree.add(chunk, chunk_rowids)
                        start += len(chunk_fits)
                    del given_cells
                # this run's entries of each index, in key order
                for name, _, key, unique in indexes:
                    entry = [plain[c] for c in key]
                    words = pack_keys(plans[name], entry, kept)
                    order = key_order(words)
                    entry = entry + [pa.array(kept)]
                    declared = [kind_of[c] for c in key] + ["INTEGER"]
                    made = [cells([c.take(pa.array(order[start: start + SLICE_ROWS])) for c in entry], declared, None,
                                  1 << 62)[0] for start in range(0, len(order), SLICE_ROWS)]
                    payload = {"cell": pa.chunked_array(made, pa.binary())}
                    if unique:  # SQLite takes NULLs as distinct in a UNIQUE index: keys with one may repeat
                        has_null = np.zeros(len(order), dtype=bool)
                        for column in entry[:-1]:
                            has_null |= column.is_null().to_numpy(zero_copy_only=False)[order]
                        payload["has_null"] = pa.array(has_null)
                    spill(name, r, plans[name], [w[order] for w in words], payload)
                    del made, payload, words, order
                del table, plain, stored
                if progress is not None:
                    progress(first_rowid - 1)
            if merge_table:
                previous = None
                for words, block in merge_runs(spilled[schema.name], table_plan):
                    rowids = block.column("rowid").to_numpy()
                    if previous is not None and len(rowids) and rowids[0] <= previous:
                        raise ValueError(f"{schema.name}.{alias}: a key is in two runs of rows")
                    _check_increasing([pa.array(rowids)], ["INTEGER"], f"{schema.name}.{alias}")
                    previous = int(rowids[-1]) if len(rowids) else previous
                    tree.add(block.column("cell").combine_chunks(), rowids)
            tree.finish()
            for name, root, key, unique in indexes:
                index_tree = file.index_tree(root)
                previous, done = None, 0
                blocks = in_memory.get(name) or merge_runs(spilled[name], plans[name])
                for words, block in blocks:
                    if unique:
                        clash = same_key_as_previous(words, plans[name], previous) \
                            & ~block.column("has_null").to_numpy(zero_copy_only=False)
                        if clash.any():
                            row = done + int(np.flatnonzero(clash)[0]) + 1
                            raise ValueError(f"{name}: row {row} is not after row {row - 1} in key order"
                                             f" (the same {', '.join(key)})")
                    done += len(words[0])
                    if len(words[0]):
                        previous = tuple(int(w[-1]) for w in words)
                    for chunk in block.column("cell").chunks:
                        index_tree.add(chunk)
                index_tree.finish()
                in_memory.pop(name, None)
    finally:
        for paths in spilled.values():
            for spill_path in paths:
                if os.path.exists(spill_path):
                    os.remove(spill_path)
    _insert_with_sqlite(path, schema, oversized)
    return total


def _insert_with_sqlite(path, schema: TableSchema, parts: list[tuple[np.ndarray | None, list[pa.Array]]]) -> None:
    """Insert rows (with their rowids, if given) through SQLite."""
    if not parts:
        return
    conn = sqlite3.connect(os.fspath(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        names = ", ".join(f"[{c}]" for c in schema.column_names)
        conn.execute("BEGIN")
        # TEXT bound as bytes and cast: the bytes stay exactly as read, even if not UTF-8
        slots = ", ".join("CAST(? AS TEXT)" if kind == "TEXT" else "?" for _, kind in schema.columns)
        for rowids, columns in parts:
            values = [c.to_pylist() for c in columns]
            if rowids is None:
                conn.executemany(f"INSERT INTO [{schema.name}] ({names}) VALUES ({slots})", zip(*values))
            else:
                conn.executemany(f"INSERT INTO [{schema.name}] (rowid, {names}) VALUES (?, {slots})",
                                 zip(rowids.tolist(), *values))
        conn.execute("COMMIT")
    finally:
        conn.close()
