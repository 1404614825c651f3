"""Fast stable sorting of large integer keys.

NumPy's stable sort is a radix sort for 16-bit integers and a comparison sort above that; a
least-significant-digit radix sort over 16-bit digits therefore sorts 20 M int64 keys in a
few linear passes instead of an O(n log n) sort.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SAMPLE = 100_000


def radix_argsort(keys: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Permutation that stably sorts ``keys`` (non-negative int64).

    If ``order`` is given, the sort starts from that permutation, so rows with equal keys keep
    their relative order in ``order``: sorting by time first and then by key this way gives
    the order (key, time, original position).
    """
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    perm = np.arange(len(keys), dtype=np.int64) if order is None else np.asarray(order, dtype=np.int64)
    if len(keys) == 0:
        return perm
    if int(keys.min()) < 0:
        raise ValueError("radix_argsort needs non-negative keys")
    top = int(keys.max())
    # each 16-bit digit read in place (a strided view of the keys), not computed into temporaries
    digits = keys.view(np.uint16).reshape(-1, 4)
    shift = 0
    while True:
        digit = digits[:, shift // 16 if np.little_endian else 3 - shift // 16]
        perm = perm[np.argsort(digit[perm], kind="stable")]
        shift += 16
        if top >> shift == 0:
            return perm


def dense_codes(values: np.ndarray) -> np.ndarray:
    """Non-negative int64 codes that order like ``values``, as small as cheaply possible.

    Few distinct values (weekly snapshot times): their rank. A small range: an offset.
    Otherwise: the rank among all distinct values.
    """
    values = np.asarray(values, dtype=np.int64)
    if len(values) == 0:
        return values
    if len(pd.unique(values[:SAMPLE])) <= 1024:
        distinct = np.sort(pd.unique(values))
        if len(distinct) <= 1 << 16:
            return np.searchsorted(distinct, values).astype(np.int64)
    low, high = int(values.min()), int(values.max())
    if high - low < 1 << 40:
        return values - low
    return rank_codes(values)


def rank_codes(values: np.ndarray) -> np.ndarray:
    """Each value's rank among the distinct values (0 .. distinct - 1), as int64."""
    _, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64).reshape(-1)


def byte_order_codes(column: pa.Array) -> tuple[np.ndarray, int]:
    """Per value of a string, binary or dictionary array, the rank of its bytes among the
    distinct values (SQLite's BINARY collation; for text the same as code point order), equal
    values getting equal codes, and the number of distinct values. A NULL gets code 0: callers
    that keep NULLs mask them."""
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    words = [w if isinstance(w, bytes) else w.encode("utf-8") for w in encoded.dictionary.to_pylist()]
    position = {word: rank for rank, word in enumerate(sorted(set(words)))}
    rank = np.array([position[word] for word in words] or [0], dtype=np.int64)
    return rank[encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)], len(position)
