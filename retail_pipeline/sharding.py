"""Splitting work into independent parts: events by visitor, item properties by item range.

Every per-visitor column (previous event, gap, session, view_to_purchase) depends only on
that visitor's events, so shards keyed on a hash of ``visitorid`` can be enriched side by side
and their results simply concatenated. The hash is fixed (SplitMix64's finaliser), so the
split is the same on every machine and run.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa


def mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a well-spread uint64 hash of int64 values."""
    x = np.asarray(values, dtype=np.int64).view(np.uint64).copy()
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def shard_of(visitorid: np.ndarray, shards: int) -> np.ndarray:
    """The shard (0 .. shards-1) of each visitor."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    return (mix64(visitorid) % np.uint64(shards)).astype(np.int64)




def range_boundaries(sample: np.ndarray, parts: int) -> list[int]:
    """``parts - 1`` increasing cut points that split values like ``sample`` into near-equal parts.

    Any cut points give correct results (each part is a range of values, the parts in order);
    a representative sample only balances them.
    """
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    sample = np.sort(np.asarray(sample, dtype=np.int64))
    if len(sample) == 0:
        return [0] * (parts - 1)
    return [int(sample[len(sample) * k // parts]) for k in range(1, parts)]


def sorted_tables_by_range(tables, column: str, parts: int, samples: int = 4096) -> Iterator[list[pa.Table]]:
    """For each of ``parts`` ranges of the integer ``column``, in order, the slice of each table
    in it (the tables sorted by ``column``).

    ``tables`` is a list, or a function giving it (opening memory-mapped files, say), which is
    called once to place the cuts and again for each range: the pages a range reads are let go
    (unmapped) before the next range is read, so a task holds one range at a time. The cuts are
    at quantiles of at most ``samples`` values read at evenly spread positions (each table's
    share by its size), each found by a binary search per chunk. Any cut gives the same rows
    in the end; the sample only balances the ranges."""
    open_tables = tables if callable(tables) else (lambda: tables)
    opened = open_tables()
    total = sum(t.num_rows for t in opened)
    sample = [np.zeros(0, np.int64)]
    for table in opened:
        if table.num_rows:
            share = max(1, min(table.num_rows, samples * table.num_rows // max(total, 1)))
            positions = np.linspace(0, table.num_rows - 1, share).astype(np.int64)
            sample.append(table.column(column).take(pa.array(positions)).to_numpy().astype(np.int64))
    del opened
    boundaries = np.asarray(range_boundaries(np.concatenate(sample), parts), dtype=np.int64)
    for k in range(parts):
        low = boundaries[k - 1] if k else None
        high = boundaries[k] if k < parts - 1 else None
        yield [table.slice(start, stop - start) for table in open_tables()
               for start, stop in [(_position(table, column, low, 0), _position(table, column, high, table.num_rows))]]


def _position(table: pa.Table, column: str, value, default: int) -> int:
    """How many rows of ``table`` (sorted by ``column``) have a value below ``value`` (``default`` if None)."""
    if value is None:
        return default
    # the column is sorted, so are its chunks: a binary search in each reads a few pages
    return int(sum(np.searchsorted(chunk.to_numpy(), value, side="left") for chunk in table.column(column).chunks))
