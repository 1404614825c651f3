"""The column helpers the table computations share: events_enriched's columns read as numpy
arrays (event types as int8 codes, nullable integers as values and a validity mask, ids as
hashed dense codes), counts and distinct counts per group code, and Arrow result columns (rates
NULL where the divisor is 0, nullable integers)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from .records import EVENT_CODES, EVENT_TYPES

VIEW, ADDTOCART, TRANSACTION = (EVENT_CODES[name] for name in EVENT_TYPES)


def event_codes(enriched: pa.Table) -> np.ndarray:
    """The ``event`` column as int8 codes (0 view, 1 addtocart, 2 transaction)."""
    column = enriched.column("event").combine_chunks()
    if pa.types.is_dictionary(column.type):
        remap = np.array([EVENT_CODES[name] for name in column.dictionary.to_pylist()], dtype=np.int8)
        return remap[column.indices.to_numpy(zero_copy_only=False)] if len(remap) else np.zeros(0, np.int8)
    if pa.types.is_integer(column.type):
        return column.to_numpy().astype(np.int8)
    return np.array([EVENT_CODES[name] for name in column.to_pylist()], dtype=np.int8)


def int_column(enriched: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values with NULL as 0, validity mask) of an integer column."""
    column = enriched.column(name).combine_chunks()
    valid = np.asarray(column.is_valid()) if column.null_count else np.ones(len(column), dtype=bool)
    values = column.fill_null(0).to_numpy(zero_copy_only=False) if column.null_count else column.to_numpy()
    return values.astype(np.int64), valid


def hashed_codes(values: np.ndarray) -> np.ndarray:
    """Dense codes 0..k-1 in no particular order: enough to count distinct values (no sort)."""
    return pd.factorize(values, sort=False)[0].astype(np.int64)


def count(groups: np.ndarray, size: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Rows (or the sum of ``weights``) per group code 0..size-1."""
    counts = np.bincount(groups, weights=weights, minlength=size)
    return np.rint(counts).astype(np.int64) if weights is not None else counts.astype(np.int64)


def distinct_count(groups: np.ndarray, members: np.ndarray, size: int) -> np.ndarray:
    """For each group code 0..size-1, the number of distinct member codes paired with it.

    Both arrays hold dense non-negative codes, so ``group * (max member + 1) + member`` is
    one exact int64 key per pair (codes are at most the number of rows).
    """
    if len(groups) == 0:
        return np.zeros(size, dtype=np.int64)
    width = int(members.max()) + 1
    pairs = unique(groups.astype(np.int64) * width + members.astype(np.int64))
    return np.bincount(pairs // width, minlength=size).astype(np.int64)


def unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, in no particular order (hashed: several times faster than ``np.unique``)."""
    return pd.unique(np.asarray(values, dtype=np.int64))


T = TypeVar("T")


def reduce_in_batches(parts: Iterable[T], reduce: Callable[[list[T]], T], size: Callable[[T], int]) -> T | None:
    """``reduce(list(parts))`` (None without parts), for a ``reduce`` that may be applied to any
    split of the parts and again to its results (a union, a de-duplication, a top-k): the parts
    wait until they hold as many rows (``size``) as the result so far, and are then reduced with
    it. Reducing the result with each part in turn costs O(parts x result); this, about twice the
    rows of all parts, with at most about twice the result plus one part in memory."""
    result, waiting, waiting_rows = None, [], 0
    for part in parts:
        waiting.append(part)
        waiting_rows += size(part)
        if result is None or waiting_rows >= size(result):
            result = reduce(waiting if result is None else [result, *waiting])
            waiting, waiting_rows = [], 0
    if waiting:
        result = reduce([result, *waiting])
    return result


def _dense(low: int, high: int, n: int) -> bool:
    """Whether values from ``low`` to ``high`` are few enough for a table indexed by value, for
    ``n`` of them (Retail Rocket's ids are: they count up from 0 with few gaps)."""
    return high - low < 4 * n + (1 << 20)


def distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (as ``np.unique``): marked in a table indexed by value when
    they span a small range, else hashed and the distinct ones sorted; several times faster
    than ``np.unique``'s sort of every value."""
    values = np.asarray(values, dtype=np.int64)
    if len(values) == 0:
        return values
    low, high = int(values.min()), int(values.max())
    if _dense(low, high, len(values)):
        present = np.zeros(high - low + 1, dtype=bool)
        present[values - low] = True
        return np.flatnonzero(present) + low
    return np.sort(unique(values))


def union(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """The distinct values of all ``arrays``, sorted, one array at a time (``reduce_in_batches``)."""
    result = reduce_in_batches(arrays, lambda parts: distinct(np.concatenate(parts)), len)
    return np.zeros(0, np.int64) if result is None else result


def position_lookup(keys: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving the positions of values in the sorted distinct ``keys``, each of which
    must be there: a table indexed by value, made once, when the keys span a small range, else
    a binary search (several times slower on millions of values in no order)."""
    keys = np.asarray(keys, dtype=np.int64)
    if len(keys) and _dense(int(keys[0]), int(keys[-1]), len(keys)):
        low = int(keys[0])
        table = np.zeros(int(keys[-1]) - low + 1, dtype=np.int64)
        table[keys - low] = np.arange(len(keys))
        return lambda values: table[np.asarray(values, dtype=np.int64) - low]
    return lambda values: np.searchsorted(keys, values)


def rate(numerator: np.ndarray, denominator: np.ndarray) -> pa.Array:
    """numerator / denominator, NULL where the denominator is 0."""
    zero = np.asarray(denominator) == 0
    return pa.array(np.asarray(numerator) / np.where(zero, 1, denominator), pa.float64(), mask=zero)


def nullable(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """An int64 column of ``values``, NULL where ``valid`` is False."""
    return pa.array(np.where(valid, values, 0).astype(np.int64), pa.int64(), mask=~valid)


def sum_by(parts: Sequence[pa.Table], keys: list[str]) -> pa.Table:
    """The rows of ``parts`` (tables of one schema: the ``keys`` columns, then int64 counts), one
    per distinct key, each count summed over the rows of that key; sorted by the keys (ascending,
    NULL first, as SQLite orders). How per-shard counts of a table are added up."""
    table = pa.concat_tables(list(parts))
    values = [name for name in table.column_names if name not in keys]
    grouped = table.group_by(keys, use_threads=False).aggregate([(name, "sum") for name in values])
    if grouped.num_rows == 0:
        return table.slice(0, 0)
    order = []  # lexsort: the last key sorts first; a NULL sorts before every value
    for key in reversed(keys):
        column = grouped.column(key).combine_chunks()
        valid = np.asarray(column.is_valid()) if column.null_count else np.ones(len(column), dtype=bool)
        order += [column.fill_null(0).to_numpy(zero_copy_only=False) if column.null_count else column.to_numpy(), valid]
    rows = pa.array(np.lexsort(order), pa.int64())
    return pa.table({name: grouped.column(name if name in keys else f"{name}_sum").take(rows)
                     for name in table.column_names})
