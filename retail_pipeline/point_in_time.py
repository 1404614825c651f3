"""Which snapshot of an item property is in effect at an event's time (SPEC: point-in-time attributes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def snapshot_in_effect(
    event_item: np.ndarray, event_time: np.ndarray, snap_item: np.ndarray, snap_time: np.ndarray
) -> np.ndarray:
    """For each event, the index of the snapshot in effect, or -1 if the item has none.

    In effect: the latest snapshot of the item with time <= the event's time; if every
    snapshot is later, the earliest one. Snapshots must be unique per (item, time) (the
    caller resolves same-time ties).

    One binary search per event over the snapshots' packed keys (:class:`SnapshotKeys`); when
    the keys would overflow (times spread over millennia), an as-of join.
    """
    event_item, event_time = np.asarray(event_item, np.int64), np.asarray(event_time, np.int64)
    snap_item, snap_time = np.asarray(snap_item, np.int64), np.asarray(snap_time, np.int64)
    if len(snap_item) == 0 or len(event_item) == 0:
        return np.full(len(event_item), -1, dtype=np.int64)
    built = SnapshotKeys.build(snap_item, snap_time)
    if built is None:
        return _snapshot_in_effect_asof(event_item, event_time, snap_item, snap_time)
    keys, order = built
    found = keys.in_effect(event_item, event_time)
    return found if order is None else np.where(found >= 0, order[np.maximum(found, 0)], -1)


@dataclass(frozen=True)
class SnapshotKeys:
    """Snapshots as one sorted int64 key each, ``(item - item_low) * span + (time - time_low)``:
    the latest snapshot of an item at or before a time is then one binary search away. Made
    once from the snapshots (:meth:`build`), they are stored beside them (``PropertySnapshots``,
    ``enrich.attribute_lookup``), so each shard of events searches them without a pass over all
    snapshots."""

    keys: np.ndarray  # sorted, distinct
    item_low: int
    time_low: int
    span: int  # time_high - time_low + 1

    @classmethod
    def build(cls, snap_item: np.ndarray, snap_time: np.ndarray) -> tuple[SnapshotKeys, np.ndarray | None] | None:
        """(the keys, the permutation putting the snapshots in key order, or None when they are in
        (item, time) order already, as the snapshots table is stored), or None when the keys
        would not fit in 62 bits. Snapshots must be unique per (item, time)."""
        snap_item, snap_time = np.asarray(snap_item, np.int64), np.asarray(snap_time, np.int64)
        if len(snap_item) == 0:
            return cls(np.zeros(0, np.int64), 0, 0, 1), None
        item_low, time_low = int(snap_item.min()), int(snap_time.min())
        span = int(snap_time.max()) - time_low + 1
        if (int(snap_item.max()) - item_low + 1) * span >= 1 << 62:
            return None
        keys = (snap_item - item_low) * span + (snap_time - time_low)
        if bool(np.all(keys[1:] > keys[:-1])):
            return cls(keys, item_low, time_low, span), None
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], item_low, time_low, span), order

    def in_effect(self, event_item: np.ndarray, event_time: np.ndarray) -> np.ndarray:
        """For each event, the position (in key order) of the snapshot in effect, or -1."""
        event_item, event_time = np.asarray(event_item, np.int64), np.asarray(event_time, np.int64)
        result = np.full(len(event_item), -1, dtype=np.int64)
        n = len(self.keys)
        if n == 0 or len(event_item) == 0:
            return result
        item_high = self.item_low + (int(self.keys[-1]) // self.span)
        inside = (event_item >= self.item_low) & (event_item <= item_high)
        item_start = (event_item[inside] - self.item_low) * self.span
        # a time before every snapshot finds the same as the first snapshot time, one after them
        # all the same as the last: the earliest snapshot of the item, or its latest
        time = np.clip(event_time[inside], self.time_low, self.time_low + self.span - 1) - self.time_low
        needles = item_start + time
        # searched in key order: binary searches for ascending needles each start where the
        # previous one ended, several times faster than in random order
        by_key = np.argsort(needles)
        latest = np.empty(len(needles), dtype=np.int64)
        latest[by_key] = np.searchsorted(self.keys, needles[by_key], side="right") - 1
        found = (latest >= 0) & (self.keys[np.maximum(latest, 0)] >= item_start)
        # else the item's earliest, if it has any: the next key, if it is the item's
        following = np.minimum(latest + 1, n - 1)
        earliest = ~found & (latest + 1 < n) & (self.keys[following] < item_start + self.span)
        result[inside] = np.where(found, latest, np.where(earliest, latest + 1, -1))
        return result


def _snapshot_in_effect_asof(
    event_item: np.ndarray, event_time: np.ndarray, snap_item: np.ndarray, snap_time: np.ndarray
) -> np.ndarray:
    """For each event, the index of the snapshot in effect, or -1 if the item has none.

    In effect: the latest snapshot of the item with time <= the event's time; if every
    snapshot is later, the earliest one. Snapshots must be unique per (item, time) (the
    caller resolves same-time ties).
    """
    result = np.full(len(event_item), -1, dtype=np.int64)
    if len(snap_item) == 0 or len(event_item) == 0:
        return result
    snaps = pd.DataFrame({"item": snap_item, "time": snap_time, "snap": np.arange(len(snap_item), dtype=np.float64)})
    snaps = snaps.sort_values("time", kind="stable")
    events = pd.DataFrame({"item": event_item, "time": event_time, "position": np.arange(len(event_item))})
    events = events.sort_values("time", kind="stable")
    joined = pd.merge_asof(events, snaps, on="time", by="item", direction="backward", allow_exact_matches=True)
    snap = joined["snap"].to_numpy()
    positions = joined["position"].to_numpy()
    matched = ~np.isnan(snap)
    result[positions[matched]] = snap[matched].astype(np.int64)

    # Every snapshot is later than the event: the item's earliest snapshot.
    earliest = snaps.drop_duplicates("item", keep="first").set_index("item")["snap"]
    unmatched = positions[~matched]
    where = earliest.index.get_indexer(event_item[unmatched])
    has = where >= 0
    result[unmatched[has]] = earliest.to_numpy()[where[has]].astype(np.int64)
    return result
