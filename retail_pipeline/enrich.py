"""``events_enriched``: clean events with time columns, per-visitor columns, point-in-time
item attributes and their category's place in the tree. Rows come out in visitor order
(visitorid, timestamp, input line)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .events import NO_EVENT, per_visitor_columns, view_to_purchase, visitor_order
from .point_in_time import SnapshotKeys, snapshot_in_effect
from .properties import POINT_IN_TIME_PROPERTIES
from .records import EVENT_TYPES
from .timefmt import day_index, format_days, format_event_time, format_hours, format_repeated, hour_index

EVENT_DICTIONARY = pa.array(EVENT_TYPES, pa.string())


def _event_names(codes: np.ndarray) -> pa.DictionaryArray:
    """Event codes as a dictionary array of their names; NO_EVENT becomes NULL."""
    mask = codes == NO_EVENT
    indices = pa.array(np.where(mask, 0, codes).astype(np.int8), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, EVENT_DICTIONARY)


def _nullable(values: np.ndarray, missing: np.ndarray, type_=pa.int64()) -> pa.Array:
    return pa.array(np.where(missing, 0, values).astype(type_.to_pandas_dtype()), type=type_, mask=missing)


def property_snapshots(snapshots: pa.Table, prop: str) -> pa.Table:
    """The snapshots of property ``prop``. The snapshots table is stored sorted by property, so
    they are one slice of it, found from the column's runs of equal values without comparing
    every row to ``prop`` and copying the matches; in any other order they are filtered."""
    column = snapshots.column("property").combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    runs = pc.run_end_encode(column)
    values, ends = runs.values.to_pylist(), runs.run_ends.to_pylist()
    if prop in values and len(set(values)) == len(values):  # one run per property: sorted
        k = values.index(prop)
        start = ends[k - 1] if k else 0
        return snapshots.slice(start, ends[k] - start)
    return snapshots.filter(pc.equal(snapshots.column("property"), prop))


def attribute_lookup(snapshots: pa.Table, prop: str) -> pa.Table:
    """Property ``prop``'s snapshots as :func:`attribute_in_effect` searches them: their
    :class:`SnapshotKeys` (column ``key``, the rest in the schema's metadata) and ``value_int``
    in key order; or, when the keys would not fit, ``itemid``, ``timestamp_ms`` and
    ``value_int``. Made once from the snapshots table and stored, it saves every shard of events
    a pass over all snapshots."""
    snaps = property_snapshots(snapshots, prop)
    built = SnapshotKeys.build(snaps.column("itemid").to_numpy(), snaps.column("timestamp_ms").to_numpy())
    if built is None:
        return snaps.select(["itemid", "timestamp_ms", "value_int"])
    keys, order = built
    values = snaps.column("value_int")
    table = pa.table({"key": pa.array(keys.keys, pa.int64()),
                      "value_int": values if order is None else values.take(pa.array(order))})
    return table.replace_schema_metadata({"item_low": str(keys.item_low), "time_low": str(keys.time_low),
                                          "span": str(keys.span)})


def attribute_lookups(snapshots: pa.Table) -> dict[str, pa.Table]:
    """The :func:`attribute_lookup` of each of ``POINT_IN_TIME_PROPERTIES``, for :func:`enrich_events`."""
    return {prop: attribute_lookup(snapshots, prop) for prop in POINT_IN_TIME_PROPERTIES}


def attribute_in_effect(lookup: pa.Table, itemid: np.ndarray, timestamp: np.ndarray) -> pa.Array:
    """The integer value in effect at each event (NULL if none or not an integer), from one
    property's :func:`attribute_lookup`."""
    if "key" in lookup.column_names:
        meta = lookup.schema.metadata
        keys = SnapshotKeys(lookup.column("key").to_numpy(), int(meta[b"item_low"]), int(meta[b"time_low"]),
                            int(meta[b"span"]))
        chosen = keys.in_effect(itemid, timestamp)
    else:
        chosen = snapshot_in_effect(itemid, timestamp, lookup.column("itemid").to_numpy(),
                                    lookup.column("timestamp_ms").to_numpy())
    has = chosen >= 0
    picked = lookup.column("value_int").take(pa.array(chosen[has]))
    values, valid = np.zeros(len(chosen), dtype=np.int64), np.zeros(len(chosen), dtype=bool)
    if len(picked):
        valid[has] = picked.is_valid().to_numpy(zero_copy_only=False)
        values[has] = picked.fill_null(0).to_numpy(zero_copy_only=False)
    return _nullable(values, ~valid)


def category_lookup(tree: pa.Table, categoryid: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(parent_categoryid, root_categoryid) of each category; NULL when not in the tree."""
    index = pd.Index(tree.column("categoryid").to_numpy())
    cats = categoryid.to_numpy(zero_copy_only=False)
    known = categoryid.is_valid().to_numpy(zero_copy_only=False)
    where = np.full(len(cats), -1, dtype=np.int64)
    if len(index):
        where[known] = index.get_indexer(cats[known].astype(np.int64))
    found = where >= 0

    def take(column: str) -> pa.Array:
        source = tree.column(column).combine_chunks()
        values = source.to_numpy(zero_copy_only=False)
        valid = source.is_valid().to_numpy(zero_copy_only=False) if len(source) else np.zeros(0, dtype=bool)
        ok = found.copy()
        ok[found] = valid[where[found]]
        out = np.zeros(len(cats), dtype=np.int64)
        out[ok] = values[where[ok]].astype(np.int64)
        return _nullable(out, ~ok)

    return take("parentid"), take("root_categoryid")


def enrich_events(events: pa.Table, lookups: dict[str, pa.Table], tree: pa.Table) -> pa.Table:
    """Build ``events_enriched`` from de-duplicated events (the loader's schema), with the
    point-in-time attributes from the snapshots' ``lookups`` (:func:`attribute_lookups`)."""
    order = visitor_order(
        events.column("visitorid").to_numpy(), events.column("timestamp").to_numpy(), events.column("line").to_numpy()
    )
    events = events.take(pa.array(order))
    visitorid = events.column("visitorid").to_numpy()
    timestamp = events.column("timestamp").to_numpy()
    itemid = events.column("itemid").to_numpy()
    event = events.column("event").to_numpy()

    per_visitor = per_visitor_columns(visitorid, timestamp, event)
    v2p = view_to_purchase(visitorid, itemid, timestamp, event)
    categoryid = attribute_in_effect(lookups["categoryid"], itemid, timestamp)
    available = attribute_in_effect(lookups["available"], itemid, timestamp)
    parent, root = category_lookup(tree, categoryid)
    hours = hour_index(timestamp)
    seconds = per_visitor["seconds_since_prev_event"]

    return pa.table(
        {
            "timestamp_ms": events.column("timestamp"),
            "visitorid": events.column("visitorid"),
            "event": _event_names(event),
            "itemid": events.column("itemid"),
            "transactionid": events.column("transactionid"),
            "event_time": format_event_time(timestamp),
            "event_date": format_repeated(day_index(timestamp), format_days),
            "event_hour": format_repeated(hours, format_hours),
            "hour_of_day": pa.array((hours % 24).astype(np.int8)),
            "prev_event": _event_names(per_visitor["prev_event"]),
            "seconds_since_prev_event": pa.array(seconds, mask=np.isnan(seconds)),
            "session_id": pa.array(per_visitor["session_id"]),
            "view_to_purchase": _nullable(v2p, v2p < 0, pa.int8()),
            "categoryid": categoryid,
            "available": available,
            "parent_categoryid": parent,
            "root_categoryid": root,
            "source_line": events.column("line"),
        }
    )
