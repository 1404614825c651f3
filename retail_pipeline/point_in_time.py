"""Which snapshot of an item property is in effect at an event's time (SPEC: point-in-time attributes)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def snapshot_in_effect(
    event_item: np.ndarray, event_time: np.ndarray, snap_item: np.ndarray, snap_time: np.ndarray
) -> np.ndarray:
    """For each event, the index of the snapshot in effect, or -1 if the item has none.

    In effect: the latest snapshot of the item with time <= the event's time; if every
    snapshot is later, the earliest one. Snapshots must be unique per (item, time) (the
    caller resolves same-time ties).

    One binary search per event over the snapshots sorted by an (item, time) key packed into
    an int64; when the packed key would overflow (times spread over millennia), an as-of join.
    """
    event_item, event_time = np.asarray(event_item, np.int64), np.asarray(event_time, np.int64)
    snap_item, snap_time = np.asarray(snap_item, np.int64), np.asarray(snap_time, np.int64)
    if len(snap_item) == 0 or len(event_item) == 0:
        return np.full(len(event_item), -1, dtype=np.int64)
    in_order = bool(np.all((snap_item[1:] > snap_item[:-1])
                           | ((snap_item[1:] == snap_item[:-1]) & (snap_time[1:] > snap_time[:-1]))))
    if in_order:  # as the snapshots table is stored: by (item, time); no sort or hashing needed
        firsts = np.flatnonzero(np.concatenate(([True], snap_item[1:] != snap_item[:-1])))
        items = snap_item[firsts]
    else:
        items = np.unique(snap_item)
    low = min(int(event_time.min()), int(snap_time.min()))
    span = max(int(event_time.max()), int(snap_time.max())) - low + 1
    if span * len(items) >= 1 << 62:
        return _snapshot_in_effect_asof(event_item, event_time, snap_item, snap_time)
    if in_order:
        snap_code = np.repeat(np.arange(len(items), dtype=np.int64), np.diff(np.append(firsts, len(snap_item))))
        order = np.arange(len(snap_item), dtype=np.int64)
    else:
        snap_code = np.searchsorted(items, snap_item)
    snap_key = snap_code * span + (snap_time - low)
    if not in_order:
        order = np.argsort(snap_key, kind="stable")
        snap_key = snap_key[order]
    first_of_item = np.searchsorted(snap_key, np.arange(len(items), dtype=np.int64) * span)
    # the events searched in (item, time) order: binary searches for ascending needles each start
    # where the previous one ended, several times faster than in random order
    by_item_time = _item_time_order(event_item, event_time)
    sorted_item, sorted_time = event_item[by_item_time], event_time[by_item_time]
    where = np.minimum(np.searchsorted(items, sorted_item), len(items) - 1)
    known = items[where] == sorted_item
    code = where[known]
    latest = np.searchsorted(snap_key, code * span + (sorted_time[known] - low), side="right") - 1
    # before the item's first snapshot, ``latest`` points into the previous item: take its first
    result = np.full(len(event_item), -1, dtype=np.int64)
    result[by_item_time[known]] = order[np.maximum(latest, first_of_item[code])]
    return result


def _item_time_order(item: np.ndarray, time: np.ndarray) -> np.ndarray:
    """A permutation that sorts rows by (item, time), ties in any order: one sort of an (item,
    time) key packed into an int64 (~3x faster than a two-key lexsort), when it fits."""
    low_item, low_time = int(item.min()), int(time.min())
    span = int(time.max()) - low_time + 1
    if (int(item.max()) - low_item + 1) * span >= 1 << 62:
        return np.lexsort((time, item))
    return np.argsort((item - low_item) * span + (time - low_time))


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
