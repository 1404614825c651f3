"""Putting the entries of more rows than memory holds in key order: each run of rows (one
shard's) is sorted on its own and spilled to a file, then the runs' files are merged block by
block. Memory holds one run while spilling, and one block per run while merging.

Keys are compared as tuples of unsigned 64-bit words, packed so that their order is SQLite's
order of an index on the key's columns (then the rowid, which makes every entry distinct):
NULL first, integers and reals by value, text by its bytes (the BINARY collation), shorter
first on a common prefix. How the columns pack (:class:`KeyPlan`) follows from the value
ranges of all the runs, found first: a key of a few small integers and the rowid usually
fits in one word, which NumPy sorts and merges fastest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

WORD_BITS = 64


@dataclass(frozen=True)
class Component:
    """One unsigned field of a packed key: ``bits`` wide; its values come from ``encode``."""
    kind: str  # "null" (1 if the value is not NULL), "int", "real", "text" (8 bytes of it), "length", "rowid"
    bits: int
    column: int = -1  # which key column (-1: the rowid)
    low: int = 0  # subtracted from an int/rowid value (the smallest there is)
    word: int = 0  # for "text": which 8 bytes of the value


@dataclass(frozen=True)
class KeyPlan:
    """How the key columns of an index, then the rowid, pack into words: each component in
    the first word with room for it (most significant bits first), in key order."""
    components: tuple[Component, ...]
    placement: tuple[tuple[int, int], ...]  # (word, shift) of each component
    words: int
    rowid_mask: int  # the bits of the last word that hold the rowid

    @staticmethod
    def of(components: list[Component]) -> "KeyPlan":
        placement, word, used = [], 0, 0
        for component in components:
            if used + component.bits > WORD_BITS:
                word, used = word + 1, 0
            used += component.bits
            placement.append((word, WORD_BITS - used))
        rowid_mask = ((1 << components[-1].bits) - 1) << placement[-1][1]
        return KeyPlan(tuple(components), tuple(placement), word + 1, rowid_mask)


@dataclass
class ColumnFacts:
    """What the plan needs to know of a key column over all runs."""
    declared: str
    nulls: bool = False
    low: int | None = None  # INTEGER: smallest value; TEXT: shortest length
    high: int | None = None  # INTEGER: largest value; TEXT: longest length

    def add(self, column: pa.ChunkedArray | pa.Array) -> None:
        """Take in one run's values of the column."""
        self.nulls |= column.null_count > 0
        if self.declared == "INTEGER":
            values = pc.min_max(column)
        elif self.declared == "TEXT":
            values = pc.min_max(pc.binary_length(column))
        else:
            return
        low, high = values["min"].as_py(), values["max"].as_py()
        if low is not None:
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)


def key_plan(facts: list[ColumnFacts], rowids: tuple[int, int]) -> KeyPlan:
    """The packing of keys whose columns are as ``facts`` say, rowids from ``rowids[0]`` to ``rowids[1]``."""
    components = []
    for k, fact in enumerate(facts):
        if fact.nulls:
            components.append(Component("null", 1, k))
        if fact.declared == "INTEGER":
            span = 0 if fact.low is None else fact.high - fact.low
            components.append(Component("int", max(1, span.bit_length()), k, low=fact.low or 0))
        elif fact.declared == "REAL":
            components.append(Component("real", 64, k))
        else:
            longest, shortest = fact.high or 0, fact.low or 0
            components += [Component("text", 64, k, word=w) for w in range(-(-longest // 8))]
            if shortest != longest:
                components.append(Component("length", max(1, longest.bit_length()), k))
    components.append(Component("rowid", max(1, (rowids[1] - rowids[0]).bit_length()), low=rowids[0]))
    return KeyPlan.of(components)


def _text_words(column: pa.Array, words: int) -> np.ndarray:
    """Each value's first ``8 * words`` bytes (zero-padded) as big-endian words: (n, words)."""
    column = column.cast(pa.binary()) if not pa.types.is_binary(column.type) else column
    column = column.fill_null(b"")
    n = len(column)
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset: column.offset + n + 1].astype(np.int64)
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8) if n and column.buffers()[2] is not None \
        else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    matrix = np.zeros((n, 8 * words), dtype=np.uint8)
    row = np.repeat(np.arange(n), lengths)
    position = np.arange(int(lengths.sum())) - np.repeat(offsets[:-1] - offsets[0], lengths)
    matrix[row, position] = data[offsets[0]: offsets[-1]]
    return matrix.view(">u8").astype(np.uint64)


def _plain(column) -> pa.Array:
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def pack_keys(plan: KeyPlan, columns: list[pa.Array], rowids: np.ndarray) -> list[np.ndarray]:
    """The packed key words (``plan.words`` uint64 arrays) of each row's index entry."""
    n = len(rowids)
    words = [np.zeros(n, np.uint64) for _ in range(plan.words)]
    text: dict[int, np.ndarray] = {}
    for component, (word, shift) in zip(plan.components, plan.placement):
        if component.kind == "rowid":
            value = (rowids - component.low).astype(np.uint64)
        else:
            column = _plain(columns[component.column])
            valid = column.is_valid().to_numpy(zero_copy_only=False)
            if component.kind == "null":
                value = valid.astype(np.uint64)
            elif component.kind == "int":
                raw = column.fill_null(component.low).to_numpy(zero_copy_only=False).astype(np.int64)
                value = np.where(valid, raw - component.low, 0).astype(np.uint64)
            elif component.kind == "real":
                raw = column.fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float64) + 0.0  # -0.0 is 0.0
                bits = raw.view(np.uint64)
                value = np.where(raw < 0, ~bits, bits | np.uint64(1 << 63))
                value = np.where(valid, value, np.uint64(0))
            elif component.kind == "text":
                if component.column not in text:
                    count = sum(1 for c in plan.components if c.kind == "text" and c.column == component.column)
                    text[component.column] = _text_words(column, count)
                value = text[component.column][:, component.word]
            else:  # "length"
                value = pc.binary_length(column.cast(pa.binary())).fill_null(0).to_numpy(
                    zero_copy_only=False).astype(np.uint64)
        words[word] |= value << np.uint64(shift) if shift else value
    return words


def key_order(words: list[np.ndarray]) -> np.ndarray:
    """The permutation sorting rows by their word tuples."""
    if len(words) == 1:
        return np.argsort(words[0], kind="stable")
    return np.lexsort(words[::-1])


def word_names(plan: KeyPlan) -> list[str]:
    return [f"w{k}" for k in range(plan.words)]


def write_run(path: str | os.PathLike, plan: KeyPlan, words: list[np.ndarray], payload: dict[str, pa.Array],
              block_rows: int) -> None:
    """Spill one run's entries, already in key order, as the Arrow IPC file ``path``: their key
    words and ``payload`` columns (the cells, ...), in blocks of ``block_rows``."""
    table = pa.table({**dict(zip(word_names(plan), words)), **payload})
    with pa.OSFile(os.fspath(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=block_rows)


def _count_at_most(words: list[np.ndarray], cutoff: tuple[int, ...]) -> int:
    """How many of the sorted rows have a word tuple <= ``cutoff``."""
    if len(words) == 1:
        return int(np.searchsorted(words[0], np.uint64(cutoff[0]), side="right"))
    less = np.zeros(len(words[0]), dtype=bool)
    equal = np.ones(len(words[0]), dtype=bool)
    for column, value in zip(words, cutoff):
        less |= equal & (column < np.uint64(value))
        equal &= column == np.uint64(value)
    return int((less | equal).sum())


class _Run:
    """A spilled run being read block by block, each block read into memory of its own (a
    mapping would keep every page read resident until the whole run is done)."""

    def __init__(self, path: str | os.PathLike, names: list[str]):
        self.reader = pa.ipc.open_file(pa.OSFile(os.fspath(path)))
        self.names, self.next_block, self.block, self.position = names, 0, None, 0
        self._load()

    def _load(self) -> None:
        self.block, self.position = None, 0
        while self.next_block < self.reader.num_record_batches:
            batch = self.reader.get_batch(self.next_block)
            self.next_block += 1
            if batch.num_rows:
                self.block = batch
                self.words = [batch.column(name).to_numpy() for name in self.names]
                return

    def last(self) -> tuple[int, ...]:
        return tuple(int(w[-1]) for w in self.words)

    def take(self, cutoff: tuple[int, ...]) -> tuple[list[np.ndarray], pa.RecordBatch]:
        """The rows of the current block from the position on whose key is <= ``cutoff``."""
        words = [w[self.position:] for w in self.words]
        count = _count_at_most(words, cutoff)
        taken = ([w[:count] for w in words], self.block.slice(self.position, count))
        self.position += count
        if self.position >= self.block.num_rows:
            self._load()
        return taken


def merge_runs(paths: list[str | os.PathLike], plan: KeyPlan) -> Iterator[tuple[list[np.ndarray], pa.Table]]:
    """The entries of the spilled runs ``paths`` in key order, as (key words, payload) blocks.

    Each step takes, from every run's current block, the entries up to the smallest of the
    blocks' last keys (so at least one block is used up), and sorts just those: in memory at
    once, one block per run."""
    names = word_names(plan)
    runs = [run for run in (_Run(path, names) for path in paths) if run.block is not None]
    while runs:
        if len(runs) == 1:
            run = runs[0]
            while run.block is not None:
                words, batch = run.take(run.last())
                yield words, pa.Table.from_batches([batch]).drop_columns(names)
            return
        cutoff = min(run.last() for run in runs)
        taken = [run.take(cutoff) for run in runs]
        words = [np.concatenate([t[0][k] for t in taken]) for k in range(plan.words)]
        order = key_order(words)
        table = pa.Table.from_batches([t[1] for t in taken]).drop_columns(names).combine_chunks()
        yield [w[order] for w in words], table.take(pa.array(order))
        runs = [run for run in runs if run.block is not None]


def same_key_as_previous(words: list[np.ndarray], plan: KeyPlan, previous: tuple[int, ...] | None) -> np.ndarray:
    """For entries in key order: whether each has the same key columns as the entry before it
    (the rowid, in the low bits of the last word, left out); the first is compared with
    ``previous`` (the last entry's words of the block before, or None)."""
    mask = np.uint64(((1 << WORD_BITS) - 1) ^ plan.rowid_mask)
    keys = words[:-1] + [words[-1] & mask]
    n = len(words[0])
    same = np.ones(n, dtype=bool)
    for k, column in enumerate(keys):
        before = np.empty(n, np.uint64)
        if n:
            before[1:] = column[:-1]
            before[0] = (previous[k] & int(mask) if k == len(keys) - 1 else previous[k]) if previous is not None else 0
        same &= column == before
    if n and previous is None:
        same[0] = False
    return same
