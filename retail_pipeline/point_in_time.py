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
