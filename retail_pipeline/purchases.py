"""How long buying takes: ``purchase_timing`` (one row per transaction: time since the item's
first view and first addtocart by the same visitor) and ``purchase_timing_summary`` (percentiles
of those durations, over all purchases and per root category).

Only the rows of the buyers' (visitor, item) pairs take part in the look-ups; the first view and
the first addtocart of each pair come from one sort of those rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from .columns import ADDTOCART, TRANSACTION, VIEW, event_codes
from .timefmt import format_event_time

PURCHASE_TIMING_SCHEMA = pa.schema(
    [("visitorid", pa.int64()), ("itemid", pa.int64()), ("transactionid", pa.int64()),
     ("purchase_time", pa.string()), ("first_view_time", pa.string()), ("first_cart_time", pa.string()),
     ("seconds_view_to_purchase", pa.float64()), ("seconds_cart_to_purchase", pa.float64()),
     ("sessions_to_purchase", pa.int64()), ("root_categoryid", pa.int64()), ("source_line", pa.int64())]
)

SCOPES = ("all", "root category", "no category")
MEASURES = ("view_to_purchase", "cart_to_purchase")
PERCENTILES = {"p25_s": 25, "median_s": 50, "p75_s": 75, "p90_s": 90}

PURCHASE_TIMING_SUMMARY_SCHEMA = pa.schema(
    [("scope", pa.string()), ("root_categoryid", pa.int64()), ("measure", pa.string()), ("purchases", pa.int64())]
    + [(name, pa.float64()) for name in PERCENTILES]
)


def _nullable_column(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values with NULL as 0, validity) of a numeric column."""
    column = table.column(name).combine_chunks()
    valid = np.asarray(column.is_valid()) if column.null_count else np.ones(len(column), dtype=bool)
    return column.fill_null(0).to_numpy(zero_copy_only=False), valid


def _first_of_pairs(pair: np.ndarray, time: np.ndarray, line: np.ndarray, rows: np.ndarray) -> pd.Series:
    """For each pair code among ``rows``: the row (index into the arrays) earliest by (time, line)."""
    order = rows[np.lexsort((line[rows], time[rows], pair[rows]))]
    first = np.ones(len(order), dtype=bool)
    first[1:] = pair[order][1:] != pair[order][:-1]
    return pd.Series(order[first], index=pair[order][first])


def purchase_timing(enriched: pa.Table) -> pa.Table:
    """One row per transaction row of ``enriched``, by (visitorid, time, source_line).

    Reads ``visitorid``, ``itemid``, ``event``, ``timestamp_ms``, ``session_id``,
    ``transactionid``, ``root_categoryid``, ``source_line``. ``first_view_time`` /
    ``first_cart_time``: the time of the same visitor's earliest view (addtocart) of the same
    item with ``timestamp_ms`` <= the purchase's (ties on time included, whatever their input
    order), NULL if none; ``seconds_view_to_purchase`` / ``seconds_cart_to_purchase``: the
    purchase's time minus that one's, in ms / 1000.0; ``sessions_to_purchase``: the purchase's
    ``session_id`` − that earliest view's + 1 (NULL without a view). ``root_categoryid`` is the
    purchase row's (point in time); ``source_line`` the purchase row's input line (unique).
    """
    codes = event_codes(enriched)
    buys = np.flatnonzero(codes == TRANSACTION)
    if len(buys) == 0:
        return PURCHASE_TIMING_SCHEMA.empty_table()
    visitor = enriched.column("visitorid").to_numpy()
    item = enriched.column("itemid").to_numpy()
    time = enriched.column("timestamp_ms").to_numpy()
    line = enriched.column("source_line").to_numpy()
    session = enriched.column("session_id").to_numpy().astype(np.int64)
    buys = buys[np.lexsort((line[buys], time[buys], visitor[buys]))]

    # the views and addtocarts of the buyers, then pair codes for (visitor, item)
    of_buyer = pd.Index(pd.unique(visitor[buys])).get_indexer(visitor) >= 0
    rows = np.flatnonzero(of_buyer & (codes != TRANSACTION))
    rows = np.concatenate([buys, rows])
    items = pd.factorize(item[rows])[0].astype(np.int64)
    pair = np.full(len(visitor), -1, dtype=np.int64)
    pair[rows] = pd.factorize(visitor[rows])[0].astype(np.int64) * (int(items.max()) + 1) + items
    buy_time = time[buys]

    def earliest(code: int) -> tuple[np.ndarray, np.ndarray]:
        """(row of the earliest such event of the purchase's pair, whether it is <= the purchase)."""
        firsts = _first_of_pairs(pair, time, line, rows[codes[rows] == code])
        at = firsts.index.get_indexer(pair[buys])
        row = np.where(at >= 0, firsts.to_numpy()[np.maximum(at, 0)] if len(firsts) else 0, 0)
        return row, (at >= 0) & (time[row] <= buy_time)

    view_row, has_view = earliest(VIEW)
    cart_row, has_cart = earliest(ADDTOCART)

    def when(row: np.ndarray, has: np.ndarray) -> pa.Array:
        text = format_event_time(time[row])
        return pa.array(text.to_numpy(zero_copy_only=False), pa.string(), mask=~has)

    def seconds(row: np.ndarray, has: np.ndarray) -> pa.Array:
        return pa.array((buy_time - time[row]) / 1000.0, pa.float64(), mask=~has)

    transactionid, has_transactionid = _nullable_column(enriched, "transactionid")
    root, has_root = _nullable_column(enriched, "root_categoryid")
    return pa.table(
        {
            "visitorid": pa.array(visitor[buys].astype(np.int64)),
            "itemid": pa.array(item[buys].astype(np.int64)),
            "transactionid": pa.array(transactionid[buys].astype(np.int64), pa.int64(), mask=~has_transactionid[buys]),
            "purchase_time": format_event_time(buy_time),
            "first_view_time": when(view_row, has_view),
            "first_cart_time": when(cart_row, has_cart),
            "seconds_view_to_purchase": seconds(view_row, has_view),
            "seconds_cart_to_purchase": seconds(cart_row, has_cart),
            "sessions_to_purchase": pa.array(session[buys] - session[view_row] + 1, pa.int64(), mask=~has_view),
            "root_categoryid": pa.array(root[buys].astype(np.int64), pa.int64(), mask=~has_root[buys]),
            "source_line": pa.array(line[buys].astype(np.int64)),
        },
        schema=PURCHASE_TIMING_SCHEMA,
    )


def purchase_timing_summary(purchase_timing: pa.Table) -> pa.Table:
    """Percentiles of the seconds from first view (first addtocart) to purchase.

    Reads ``root_categoryid``, ``seconds_view_to_purchase``, ``seconds_cart_to_purchase`` of
    ``purchase_timing``. One row per (scope, measure) with at least one non-NULL value, in the
    order: scope ``all`` (every purchase), then ``root category`` by ``root_categoryid``, then
    ``no category`` (purchases whose ``root_categoryid`` is NULL); within a scope
    ``view_to_purchase`` before ``cart_to_purchase``. ``purchases``: the rows with that measure
    non-NULL. Percentiles are nearest rank: the p-th percentile of the n sorted values
    x_1 <= ... <= x_n is x_k with k = ceil(p × n / 100) (computed exactly in integers; k >= 1 as
    n >= 1); ``median_s`` is the 50th.
    """
    root, has_root = _nullable_column(purchase_timing, "root_categoryid")
    root = root.astype(np.int64)
    scope_parts, root_parts, measure_parts, value_parts = [], [], [], []
    for measure, name in enumerate(MEASURES):
        values, valid = _nullable_column(purchase_timing, f"seconds_{name}")
        values = values.astype(np.float64)[valid]
        own_root, own_has = root[valid], has_root[valid]
        count = len(values)
        # every value once in scope "all" and once in its category's scope
        scope_parts += [np.zeros(count, np.int64), np.where(own_has, 1, 2)]
        root_parts += [np.zeros(count, np.int64), np.where(own_has, own_root, 0)]
        measure_parts += [np.full(2 * count, measure, np.int64)]
        value_parts += [values, values]
    scope, group_root = np.concatenate(scope_parts), np.concatenate(root_parts)
    measure, values = np.concatenate(measure_parts), np.concatenate(value_parts)
    if len(values) == 0:
        return PURCHASE_TIMING_SUMMARY_SCHEMA.empty_table()
    order = np.lexsort((values, measure, group_root, scope))
    scope, group_root, measure, values = scope[order], group_root[order], measure[order], values[order]
    new = np.ones(len(values), dtype=bool)
    new[1:] = (scope[1:] != scope[:-1]) | (group_root[1:] != group_root[:-1]) | (measure[1:] != measure[:-1])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, len(values)))
    columns = {
        "scope": pa.array(np.array(SCOPES, dtype=object)[scope[starts]], pa.string()),
        "root_categoryid": pa.array(group_root[starts], pa.int64(), mask=scope[starts] != 1),
        "measure": pa.array(np.array(MEASURES, dtype=object)[measure[starts]], pa.string()),
        "purchases": pa.array(sizes.astype(np.int64)),
    }
    for column, p in PERCENTILES.items():
        rank = np.maximum((p * sizes + 99) // 100, 1)
        columns[column] = pa.array(values[starts + rank - 1], pa.float64())
    return pa.table(columns, schema=PURCHASE_TIMING_SUMMARY_SCHEMA)


def purchase_timing_partial(enriched: pa.Table) -> pa.Table:
    """``purchase_timing`` of some visitors (each visitor's events all in ``enriched``): the
    table itself, as a purchase's row needs only its visitor's events."""
    return purchase_timing(enriched)


def purchase_timing_combine(partials: Sequence[pa.Table]) -> pa.Table:
    """``purchase_timing`` from the partials of all shards: their rows in (visitorid, time,
    source_line) order. Each partial is in that order and a visitor's rows are all in one, so
    a stable sort by visitorid merges them."""
    rows = pa.concat_tables(list(partials)).combine_chunks() if partials else PURCHASE_TIMING_SCHEMA.empty_table()
    order = np.argsort(rows.column("visitorid").to_numpy(), kind="stable")
    return rows.take(pa.array(order, pa.int64()))
