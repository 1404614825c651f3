"""The aggregate tables, computed from ``events_enriched``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from .columns import distinct_count, event_codes, hashed_codes, rate, sum_by
from .quality import in_expected_range
from .records import EVENT_CODES, EVENT_TYPES
from .timefmt import day_index, format_days, format_event_time, format_hours, hour_index

ROLLING_WINDOWS = {"rolling_avg_24h": 24, "rolling_avg_168h": 168}


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
    codes = event_codes(enriched)[in_range]
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
    """One row per (visitor, session) with its span, event counts and what became of its cart.

    Reads ``visitorid``, ``session_id``, ``timestamp_ms``, ``event``, ``itemid``, ``source_line``;
    every event of a visitor must be in ``enriched`` (``recovered`` looks at their later sessions).
    ``cart_items``: distinct items added to the cart in the session; ``abandoned_cart``: NULL
    without an addtocart, else 1 without a transaction in the session, 0 with one;
    ``recovered``: NULL unless ``abandoned_cart`` is 1, then 1 if the visitor buys an item of
    this cart in a later session (a larger ``session_id``), else 0.
    """
    enriched = _in_visitor_order(enriched)
    visitor = enriched.column("visitorid").to_numpy()
    session = enriched.column("session_id").to_numpy()
    time = enriched.column("timestamp_ms").to_numpy()
    codes = event_codes(enriched)
    n = len(visitor)
    new = np.ones(n, dtype=bool)
    new[1:] = (visitor[1:] != visitor[:-1]) | (session[1:] != session[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)[: len(starts)] - 1

    def count(code: int) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        return np.add.reduceat((codes == code).astype(np.int64), starts)

    addtocarts = count(EVENT_CODES["addtocart"])
    transactions = count(EVENT_CODES["transaction"])
    cart_items, abandoned, recovered = _cart_outcomes(
        visitor, session, enriched.column("itemid").to_numpy(), codes, np.cumsum(new) - 1, addtocarts, transactions
    )
    has_cart = addtocarts > 0
    return pa.table(
        {
            "visitorid": pa.array(visitor[starts]),
            "session_id": pa.array(session[starts]),
            "start_time": format_event_time(time[starts]),
            "end_time": format_event_time(time[ends]),
            "duration_s": pa.array((time[ends] - time[starts]) / 1000.0),
            "events": pa.array((ends - starts + 1).astype(np.int64)),
            "views": pa.array(count(EVENT_CODES["view"])),
            "addtocarts": pa.array(addtocarts),
            "transactions": pa.array(transactions),
            "converted": pa.array((transactions > 0).astype(np.int64)),
            "cart_items": pa.array(cart_items),
            "abandoned_cart": pa.array(abandoned.astype(np.int64), pa.int64(), mask=~has_cart),
            "recovered": pa.array(recovered.astype(np.int64), pa.int64(), mask=~abandoned),
        }
    )


def _cart_outcomes(
    visitor: np.ndarray, session: np.ndarray, itemid: np.ndarray, codes: np.ndarray, session_index: np.ndarray,
    addtocarts: np.ndarray, transactions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cart_items, abandoned, recovered) per session; ``session_index`` numbers each row's session.

    Only the addtocart rows of abandoned sessions and the transaction rows take part in the
    recovery look-up: per (visitor, item), the largest ``session_id`` with a transaction of the
    item; an abandoned cart row is recovered when that is larger than its own session's.
    """
    n_sessions = len(addtocarts)
    is_cart = codes == EVENT_CODES["addtocart"]
    is_buy = codes == EVENT_CODES["transaction"]
    cart_items = distinct_count(session_index[is_cart], hashed_codes(itemid[is_cart]), n_sessions)
    abandoned = (addtocarts > 0) & (transactions == 0)
    recovered = np.zeros(n_sessions, dtype=bool)
    lost = is_cart & abandoned[session_index] if n_sessions else is_cart
    if lost.any() and is_buy.any():
        rows = np.flatnonzero(lost | is_buy)
        items = hashed_codes(itemid[rows])
        key = hashed_codes(visitor[rows]) * (int(items.max()) + 1) + items
        buy = is_buy[rows]
        last_purchase = pd.Series(session[rows][buy]).groupby(key[buy]).max()
        at = last_purchase.index.get_indexer(key[~buy])
        later = (at >= 0) & (last_purchase.to_numpy()[np.maximum(at, 0)] > session[rows][~buy])
        recovered[session_index[rows[~buy][later]]] = True
    return cart_items, abandoned, recovered


def funnel_columns(group: np.ndarray, visitor: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, dict[str, pa.Array]]:
    """The funnel of each group: (the distinct ``group`` values, sorted; the columns ``visitors``,
    ``viewers``, ``carters``, ``buyers`` (distinct visitors with any event / a view / an addtocart /
    a transaction in the group) and the rates ``view_to_cart_rate``, ``cart_to_purchase_rate``,
    ``view_to_purchase_rate``, one value per group). ``event`` holds the int8 event codes."""
    # dense codes, the groups' in sorted order; then one int64 key per (group, visitor, type)
    group_code, groups = pd.factorize(np.asarray(group), sort=True)
    visitor_code = hashed_codes(np.asarray(visitor))
    types, k = len(EVENT_TYPES), len(groups)
    width = int(visitor_code.max()) + 1 if len(visitor_code) else 1
    triples = pd.unique((group_code.astype(np.int64) * width + visitor_code) * types + np.asarray(event, np.int64))
    pairs, type_of = np.divmod(triples, types)
    viewers, carters, buyers = (np.bincount(pairs[type_of == EVENT_CODES[name]] // width, minlength=k).astype(np.int64)
                                for name in EVENT_TYPES)
    visitors = np.bincount(pd.unique(pairs) // width, minlength=k).astype(np.int64)
    return np.asarray(groups), funnel_from_counts(visitors, viewers, carters, buyers)


FUNNEL_COUNTS = ("visitors", "viewers", "carters", "buyers")


def funnel_from_counts(visitors: np.ndarray, viewers: np.ndarray, carters: np.ndarray,
                       buyers: np.ndarray) -> dict[str, pa.Array]:
    """The funnel columns (``funnel_columns``) from the four distinct-visitor counts of each group."""
    return {
        "visitors": pa.array(visitors),
        "viewers": pa.array(viewers),
        "carters": pa.array(carters),
        "buyers": pa.array(buyers),
        "view_to_cart_rate": rate(carters, viewers),
        "cart_to_purchase_rate": rate(buyers, carters),
        "view_to_purchase_rate": rate(buyers, viewers),
    }


def daily_funnel(enriched: pa.Table) -> pa.Table:
    """Per date: distinct visitors, and distinct visitors with a view / addtocart / transaction."""
    days, columns = funnel_columns(day_index(enriched.column("timestamp_ms").to_numpy()),
                                   enriched.column("visitorid").to_numpy(), event_codes(enriched))
    return pa.table({"date": format_days(days), **columns})


# ------------------------------------------------------------------ from per-shard partial results
#
# A visitor's events are all in one visitor shard, so distinct-visitor counts of any group add up
# over the shards; each table is combined from one partial result per shard, computed from that
# shard's events alone (any order of rows, any split of the visitors).


def event_type_counts_partial(enriched: pa.Table) -> pa.Table:
    """``event_type_counts`` of some visitors: per hour (index since the epoch) with events in
    the expected range, the events of each type; no gap filling."""
    timestamp_ms = enriched.column("timestamp_ms").to_numpy()
    in_range = in_expected_range(timestamp_ms)
    hours, at = np.unique(hour_index(timestamp_ms[in_range]), return_inverse=True)
    codes = event_codes(enriched)[in_range]
    columns = {"hour": pa.array(hours.astype(np.int64), pa.int64())}
    for code, name in enumerate(EVENT_TYPES):
        columns[name] = pa.array(np.bincount(at[codes == code], minlength=len(hours)).astype(np.int64), pa.int64())
    return pa.table(columns)


def event_type_counts_combine(partials: Sequence[pa.Table]) -> pa.Table:
    """``event_type_counts`` from the partials of all shards (``event_type_counts_partial``)."""
    counts = sum_by(partials, ["hour"])
    if counts.num_rows == 0:
        empty = {"hour": pa.array([], pa.string())}
        empty.update({name: pa.array([], pa.int64()) for name in (*EVENT_TYPES, "total_events")})
        return pa.table(empty)
    hours = counts.column("hour").to_numpy()
    first = int(hours[0])
    span = int(hours[-1]) - first + 1
    columns = {"hour": format_hours(np.arange(first, first + span, dtype=np.int64))}
    total = np.zeros(span, dtype=np.int64)
    for name in EVENT_TYPES:
        filled = np.zeros(span, dtype=np.int64)
        filled[hours - first] = counts.column(name).to_numpy()
        columns[name] = pa.array(filled)
        total += filled
    columns["total_events"] = pa.array(total)
    return pa.table(columns)


def daily_funnel_partial(enriched: pa.Table) -> pa.Table:
    """``daily_funnel``'s distinct-visitor counts of some visitors, per day index with events."""
    days, columns = funnel_columns(day_index(enriched.column("timestamp_ms").to_numpy()),
                                   enriched.column("visitorid").to_numpy(), event_codes(enriched))
    return pa.table({"day": pa.array(np.asarray(days, dtype=np.int64), pa.int64()),
                     **{name: columns[name] for name in FUNNEL_COUNTS}})


def daily_funnel_combine(partials: Sequence[pa.Table]) -> pa.Table:
    """``daily_funnel`` from the partials of all shards (``daily_funnel_partial``): counts
    summed per day, rates computed from the sums."""
    counts = sum_by(partials, ["day"])
    return pa.table({"date": format_days(counts.column("day").to_numpy()),
                     **funnel_from_counts(*(counts.column(name).to_numpy() for name in FUNNEL_COUNTS))})
