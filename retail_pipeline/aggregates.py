"""The aggregate tables, computed from ``events_enriched``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from .quality import in_expected_range
from .records import EVENT_CODES, EVENT_TYPES
from .timefmt import day_index, format_days, format_event_time, format_hours, hour_index

ROLLING_WINDOWS = {"rolling_avg_24h": 24, "rolling_avg_168h": 168}


def _event_codes(enriched: pa.Table) -> np.ndarray:
    column = enriched.column("event").combine_chunks()
    if pa.types.is_dictionary(column.type):
        names = column.dictionary.to_pylist()
        remap = np.array([EVENT_CODES[name] for name in names], dtype=np.int8)
        return remap[column.indices.to_numpy(zero_copy_only=False)]
    return np.array([EVENT_CODES[name] for name in column.to_pylist()], dtype=np.int8)


def event_type_counts(enriched: pa.Table) -> pa.Table:
    """One row per hour from the first event's hour to the last's, zeros where nothing happened.

    Only the events inside the expected range of times count (docs/decisions.md): one event in
    1970 or 9999 would otherwise add millions of empty hours.
    """
    timestamp_ms = enriched.column("timestamp_ms").to_numpy()
    in_range = in_expected_range(timestamp_ms)
    hours = hour_index(timestamp_ms[in_range])
    if len(hours) == 0:
        empty = {"hour": pa.array([], pa.string())}
        empty.update({name: pa.array([], pa.int64()) for name in (*EVENT_TYPES, "total_events")})
        return pa.table(empty)
    first = int(hours.min())
    span = int(hours.max()) - first + 1
    codes = _event_codes(enriched)[in_range]
    columns = {"hour": format_hours(np.arange(first, first + span, dtype=np.int64))}
    total = np.zeros(span, dtype=np.int64)
    for code, name in enumerate(EVENT_TYPES):
        counts = np.bincount(hours[codes == code] - first, minlength=span).astype(np.int64)
        columns[name] = pa.array(counts)
        total += counts
    columns["total_events"] = pa.array(total)
    return pa.table(columns)


def trailing_means(values: np.ndarray, window: int) -> np.ndarray:
    """Mean over the trailing ``window`` positions ending at each position (fewer at the start).

    Computed from integer prefix sums, so each mean is one exact sum divided once.
    """
    values = np.asarray(values, dtype=np.int64)
    prefix = np.concatenate([[0], np.cumsum(values)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    return (prefix[end] - prefix[start]) / (end - start)


def hourly_trend(counts: pa.Table) -> pa.Table:
    """Total events per hour with trailing 24 h and 168 h means; ``counts`` is gap-filled."""
    total = counts.column("total_events").to_numpy()
    columns = {"hour": counts.column("hour"), "total_events": counts.column("total_events")}
    for name, window in ROLLING_WINDOWS.items():
        columns[name] = pa.array(trailing_means(total, window), pa.float64())
    return pa.table(columns)


def _in_visitor_order(enriched: pa.Table) -> pa.Table:
    visitor = enriched.column("visitorid").to_numpy()
    session = enriched.column("session_id").to_numpy()
    time = enriched.column("timestamp_ms").to_numpy()
    if len(visitor) < 2:
        return enriched
    same_visitor = visitor[1:] == visitor[:-1]
    ordered = np.all(
        (visitor[1:] > visitor[:-1])
        | (same_visitor & ((session[1:] > session[:-1]) | ((session[1:] == session[:-1]) & (time[1:] >= time[:-1]))))
    )
    if ordered:
        return enriched
    order = np.lexsort((enriched.column("source_line").to_numpy(), time, session, visitor))
    return enriched.take(pa.array(order))


def sessions(enriched: pa.Table) -> pa.Table:
    """One row per (visitor, session) with its span and event counts."""
    enriched = _in_visitor_order(enriched)
    visitor = enriched.column("visitorid").to_numpy()
    session = enriched.column("session_id").to_numpy()
    time = enriched.column("timestamp_ms").to_numpy()
    codes = _event_codes(enriched)
    n = len(visitor)
    new = np.ones(n, dtype=bool)
    new[1:] = (visitor[1:] != visitor[:-1]) | (session[1:] != session[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)[: len(starts)] - 1

    def count(code: int) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        return np.add.reduceat((codes == code).astype(np.int64), starts)

    transactions = count(EVENT_CODES["transaction"])
    return pa.table(
        {
            "visitorid": pa.array(visitor[starts]),
            "session_id": pa.array(session[starts]),
            "start_time": format_event_time(time[starts]),
            "end_time": format_event_time(time[ends]),
            "duration_s": pa.array((time[ends] - time[starts]) / 1000.0),
            "events": pa.array((ends - starts + 1).astype(np.int64)),
            "views": pa.array(count(EVENT_CODES["view"])),
            "addtocarts": pa.array(count(EVENT_CODES["addtocart"])),
            "transactions": pa.array(transactions),
            "converted": pa.array((transactions > 0).astype(np.int64)),
        }
    )


def _rate(numerator: np.ndarray, denominator: np.ndarray) -> pa.Array:
    zero = denominator == 0
    return pa.array(numerator / np.where(zero, 1, denominator), pa.float64(), mask=zero)


def daily_funnel(enriched: pa.Table) -> pa.Table:
    """Per date: distinct visitors, and distinct visitors with a view / addtocart / transaction."""
    frame = pd.DataFrame(
        {
            "day": day_index(enriched.column("timestamp_ms").to_numpy()),
            "visitor": enriched.column("visitorid").to_numpy(),
            "event": _event_codes(enriched),
        }
    )
    per_type = frame.drop_duplicates().groupby(["day", "event"]).size().unstack(fill_value=0)
    per_type = per_type.reindex(columns=range(len(EVENT_TYPES)), fill_value=0)
    visitors = frame[["day", "visitor"]].drop_duplicates().groupby("day").size()
    days = visitors.index.to_numpy()
    per_type = per_type.reindex(days, fill_value=0)
    viewers, carters, buyers = (per_type[EVENT_CODES[name]].to_numpy().astype(np.int64) for name in EVENT_TYPES)
    return pa.table(
        {
            "date": format_days(days),
            "visitors": pa.array(visitors.to_numpy().astype(np.int64)),
            "viewers": pa.array(viewers),
            "carters": pa.array(carters),
            "buyers": pa.array(buyers),
            "view_to_cart_rate": _rate(carters, viewers),
            "cart_to_purchase_rate": _rate(buyers, carters),
            "view_to_purchase_rate": _rate(buyers, viewers),
        }
    )
