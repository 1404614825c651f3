"""Splitting work into independent parts: events by visitor, item properties by item range.

Every per-visitor column (previous event, gap, session, view_to_purchase) depends only on
that visitor's events, so shards keyed on a hash of ``visitorid`` can be enriched side by side
and their results simply concatenated. The hash is fixed (SplitMix64's finaliser), so the
split is the same on every machine and run.
"""

from __future__ import annotations

import numpy as np


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


def range_slices(sorted_values: np.ndarray, boundaries: list[int]) -> list[tuple[int, int]]:
    """(start, stop) of each part in ``sorted_values``: part k holds boundaries[k-1] <= v < boundaries[k]."""
    cuts = np.searchsorted(np.asarray(sorted_values), np.asarray(boundaries, dtype=np.int64), side="left")
    bounds = [0, *(int(c) for c in cuts), len(sorted_values)]
    return list(zip(bounds[:-1], bounds[1:]))
