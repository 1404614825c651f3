"""Per-visitor tables: ``visitors`` (one row per visitor: activity, segment, a label) and
``cohort_retention`` (visitors grouped by the week of their first event, followed week by week).

Vectorised like ``analytics``: visitor ids are factorised into dense codes, counts are
``np.bincount`` and distinct counts are the distinct values of one combined integer key.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .columns import ADDTOCART, TRANSACTION, VIEW, distinct_count, event_codes, hashed_codes, rate, sum_by, unique
from .quality import in_expected_range
from .timefmt import day_index, format_days, format_event_time

SEGMENTS = ("bounce", "browser", "carter", "buyer")
CRAWL_VIEWED_ITEMS = 50  # a session with more distinct viewed items than this is a crawl

VISITORS_SCHEMA = pa.schema(
    [("visitorid", pa.int64()), ("label", pa.string()), ("segment", pa.string()),
     ("first_event_time", pa.string()), ("last_event_time", pa.string())]
    + [(name, pa.int64()) for name in ("events", "views", "addtocarts", "transactions", "sessions", "orders",
                                       "suspected_bot")]
)

COHORT_RETENTION_SCHEMA = pa.schema(
    [("cohort_week", pa.string()), ("week_number", pa.int64()), ("visitors", pa.int64()),
     ("active_visitors", pa.int64()), ("buyers", pa.int64()), ("retention_rate", pa.float64()),
     ("purchase_rate", pa.float64())]
)


def visitor_codes(visitorid: np.ndarray, *, sort: bool) -> tuple[np.ndarray, np.ndarray]:
    """(dense code of each row's visitor, the visitorids by code), ascending by visitorid if ``sort``.

    Only the first row of each run of equal visitorids is hashed: events_enriched is a
    concatenation of visitor shards, each in visitor order, so that is one row per visitor
    instead of one per event. Any order of rows gives the same codes.
    """
    visitorid = np.asarray(visitorid)
    new = np.ones(len(visitorid), dtype=bool)
    np.not_equal(visitorid[1:], visitorid[:-1], out=new[1:])
    run_code, ids = pd.factorize(visitorid[new], sort=False)
    run_code, ids = run_code.astype(np.int64), np.asarray(ids, dtype=np.int64)
    if sort:
        order = np.argsort(ids)
        rank = np.empty(len(ids), dtype=np.int64)
        rank[order] = np.arange(len(ids))
        run_code, ids = rank[run_code], ids[order]
    return run_code[np.cumsum(new) - 1], ids


def _extreme(values: np.ndarray, groups: np.ndarray, size: int, ufunc: np.ufunc) -> np.ndarray:
    """``np.minimum`` or ``np.maximum`` of the int64 ``values`` per group code 0..size-1."""
    info = np.iinfo(np.int64)
    out = np.full(size, info.max if ufunc is np.minimum else info.min, dtype=np.int64)
    ufunc.at(out, groups, values.astype(np.int64, copy=False))
    return out


def _crawl_visitors(visitor: np.ndarray, session: np.ndarray, item: np.ndarray, size: int) -> np.ndarray:
    """0/1 per visitor code: 1 if one of the visitor's sessions has more than 50 distinct viewed items.

    ``visitor`` (codes), ``session``, ``item`` are of the view rows. Only visitors, then
    sessions, with more than 50 view rows can qualify; the distinct count runs on their rows.
    """
    flagged = np.zeros(size, dtype=np.int64)
    rows = (np.bincount(visitor, minlength=size) > CRAWL_VIEWED_ITEMS)[visitor]
    if not rows.any():
        return flagged
    visitor, session, item = visitor[rows], session[rows], item[rows]
    session_key = hashed_codes(visitor * (int(session.max()) + 1) + session)
    rows = (np.bincount(session_key) > CRAWL_VIEWED_ITEMS)[session_key]
    if not rows.any():
        return flagged
    sessions, members = hashed_codes(session_key[rows]), hashed_codes(item[rows])
    crawl = distinct_count(sessions, members, int(sessions.max()) + 1) > CRAWL_VIEWED_ITEMS
    flagged[visitor[rows][crawl[sessions]]] = 1
    return flagged


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _labels(segment: np.ndarray, sessions: np.ndarray, orders: np.ndarray) -> pa.Array:
    """``<segment> · <n> session(s)[ · <n> order(s)]`` per visitor. Few visitors differ in all
    three, so each distinct (segment, sessions, orders) is written once and then taken."""
    width = np.int64(len(SEGMENTS))
    top = int(orders.max()) + 1 if len(orders) else 1
    key = (sessions.astype(np.int64) * top + orders) * width + segment
    code, distinct = pd.factorize(key, sort=False)
    texts = []
    for k in np.asarray(distinct).tolist():
        rest, seg = divmod(k, int(width))
        n_sessions, n_orders = divmod(rest, top)
        text = f"{SEGMENTS[seg]} · {_plural(n_sessions, 'session')}"
        texts.append(text + f" · {_plural(n_orders, 'order')}" if n_orders else text)
    return pc.take(pa.array(texts, pa.string()), pa.array(code))


def visitors(enriched: pa.Table) -> pa.Table:
    """One row per visitor of ``enriched`` (by ``visitorid``), every event counted.

    Reads ``visitorid``, ``timestamp_ms``, ``event``, ``itemid``, ``transactionid``, ``session_id``.

    - ``first_event_time``, ``last_event_time``: the visitor's earliest and latest event time;
    - ``events``, ``views``, ``addtocarts``, ``transactions``: the visitor's rows, all and by type;
    - ``sessions``: the visitor's largest ``session_id``;
    - ``orders``: distinct non-NULL ``transactionid`` over the visitor's transaction rows;
    - ``segment``: ``buyer`` if ``transactions`` > 0, else ``carter`` if ``addtocarts`` > 0,
      else ``browser`` if ``events`` > 1, else ``bounce``;
    - ``suspected_bot``: 1 if any of the visitor's sessions is a crawl session (more than 50
      distinct viewed items), else 0;
    - ``label``: ``<segment> · <n> session(s)``, then `` · <n> order(s)`` when ``orders`` > 0,
      e.g. ``buyer · 3 sessions · 2 orders``, ``bounce · 1 session``.
    """
    if enriched.num_rows == 0:
        return VISITORS_SCHEMA.empty_table()
    code, ids = visitor_codes(enriched.column("visitorid").to_numpy(), sort=True)
    size = len(ids)
    time = enriched.column("timestamp_ms").to_numpy()
    session = enriched.column("session_id").to_numpy().astype(np.int64)
    codes = event_codes(enriched)

    def count(rows: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(code if rows is None else code[rows], minlength=size).astype(np.int64)

    events = count()
    is_view, is_buy = codes == VIEW, codes == TRANSACTION
    views, addtocarts, transactions = count(is_view), count(codes == ADDTOCART), count(is_buy)

    transactionid = enriched.column("transactionid").combine_chunks()
    ordered = is_buy & np.asarray(transactionid.is_valid())
    order_ids = transactionid.fill_null(0).to_numpy(zero_copy_only=False)[ordered]
    orders = distinct_count(code[ordered], hashed_codes(order_ids), size)

    itemid = enriched.column("itemid").to_numpy()
    suspected_bot = _crawl_visitors(code[is_view], session[is_view], itemid[is_view], size)

    segment_code = np.where(transactions > 0, 3, np.where(addtocarts > 0, 2, np.where(events > 1, 1, 0)))
    sessions = _extreme(session, code, size, np.maximum)
    return pa.table(
        {
            "visitorid": pa.array(ids),
            "label": _labels(segment_code, sessions, orders),
            "segment": pc.take(pa.array(SEGMENTS, pa.string()), pa.array(segment_code)),
            "first_event_time": format_event_time(_extreme(time, code, size, np.minimum)),
            "last_event_time": format_event_time(_extreme(time, code, size, np.maximum)),
            "events": events,
            "views": views,
            "addtocarts": addtocarts,
            "transactions": transactions,
            "sessions": sessions,
            "orders": orders,
            "suspected_bot": suspected_bot,
        },
        schema=VISITORS_SCHEMA,
    )


def monday_week(ms: np.ndarray) -> np.ndarray:
    """Week index of each time: weeks since Monday 1969-12-29, a week running Monday 00:00 to
    Sunday 23:59:59.999 UTC (1970-01-01, day 0, was a Thursday)."""
    return np.floor_divide(day_index(ms) + 3, 7)


def cohort_retention(enriched: pa.Table) -> pa.Table:
    """One row per (cohort week, week number): how many of a cohort came back, and bought, each week.

    Reads ``visitorid``, ``timestamp_ms``, ``event``. Only events inside the expected range of
    times (``quality.in_expected_range``) count, as in the hour-by-hour tables. The week of an
    event is the Monday on or before its UTC date; a visitor's cohort is the week of their first
    event. For each cohort (oldest first) ``week_number`` runs from 0 to the week of the last
    event of the whole data set, every week present. ``visitors``: the cohort's size;
    ``active_visitors`` / ``buyers``: those of them with an event / a transaction in week
    ``cohort_week`` + 7 × ``week_number`` days; ``retention_rate`` = active_visitors / visitors,
    ``purchase_rate`` = buyers / visitors.

    All events are one shard: the partial of them, combined (one computation of the cells for
    the pipeline's shards and for the whole data).
    """
    return cohort_retention_combine([cohort_retention_partial(enriched)])


def _cohort_table(cohort_weeks: np.ndarray, lengths: np.ndarray, offsets: np.ndarray, size: np.ndarray,
                  active: np.ndarray, buyers: np.ndarray) -> pa.Table:
    """``cohort_retention`` from its cells, cohort by cohort (``lengths[k]`` weeks of cohort k,
    from ``offsets[k]`` on), and each cohort's ``size``."""
    row_cohort = np.repeat(np.arange(len(cohort_weeks)), lengths)
    visitors_col = size[row_cohort]
    return pa.table(
        {
            "cohort_week": pc.take(format_days(cohort_weeks * 7 - 3), pa.array(row_cohort)),
            "week_number": pa.array(np.arange(int(offsets[-1]), dtype=np.int64) - offsets[row_cohort]),
            "visitors": pa.array(visitors_col),
            "active_visitors": pa.array(active),
            "buyers": pa.array(buyers),
            "retention_rate": rate(active, visitors_col),
            "purchase_rate": rate(buyers, visitors_col),
        },
        schema=COHORT_RETENTION_SCHEMA,
    )


COHORT_CELLS_SCHEMA = pa.schema([("cohort_week", pa.int64()), ("week", pa.int64()), ("active_visitors", pa.int64()),
                                 ("buyers", pa.int64())])


def cohort_retention_partial(enriched: pa.Table) -> pa.Table:
    """``cohort_retention``'s cells of some visitors (each visitor's events all in ``enriched``):
    one row per (``cohort_week``, ``week``) (week indexes, ``monday_week``) with an active
    visitor, its distinct ``active_visitors`` and ``buyers``; a cohort's size is its active
    visitors in its own week. Distinct visitors add up over visitor shards."""
    time = enriched.column("timestamp_ms").to_numpy()
    keep = in_expected_range(time)
    if not keep.any():
        return COHORT_CELLS_SCHEMA.empty_table()
    week = monday_week(time[keep])
    visitor, ids = visitor_codes(enriched.column("visitorid").to_numpy()[keep], sort=False)
    is_buy = event_codes(enriched)[keep] == TRANSACTION
    first_week = _extreme(week, visitor, len(ids), np.minimum)
    earliest = int(first_week.min())
    span = int(week.max()) - earliest + 1

    def cells(rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(the cells, as (cohort - earliest) * span + (week - earliest), sorted; the distinct visitors of each)."""
        v, w = (visitor, week) if rows is None else (visitor[rows], week[rows])
        pairs = unique(v * span + (w - earliest))
        v, w = pairs // span, pairs % span
        return np.unique((first_week[v] - earliest) * span + w, return_counts=True)

    keys, active = cells(None)
    buy_keys, buyers = cells(is_buy)
    buyers_of_cell = np.zeros(len(keys), dtype=np.int64)
    buyers_of_cell[np.searchsorted(keys, buy_keys)] = buyers  # a buyer's cell is an active one
    cohort, week_of_cell = np.divmod(keys, span)
    return pa.table({"cohort_week": pa.array(cohort + earliest, pa.int64()),
                     "week": pa.array(week_of_cell + earliest, pa.int64()),
                     "active_visitors": pa.array(active.astype(np.int64)),
                     "buyers": pa.array(buyers_of_cell)}, schema=COHORT_CELLS_SCHEMA)


def cohort_retention_combine(partials: Sequence[pa.Table]) -> pa.Table:
    """``cohort_retention`` from the partials of all shards (``cohort_retention_partial``): the
    cells summed, every week of every cohort up to the last week present, rates from the sums."""
    cells = sum_by(partials, ["cohort_week", "week"])
    if cells.num_rows == 0:
        return COHORT_RETENTION_SCHEMA.empty_table()
    cell_cohort, cell_week = cells.column("cohort_week").to_numpy(), cells.column("week").to_numpy()
    cohort_weeks, cohort = np.unique(cell_cohort, return_inverse=True)
    own_week = cell_week == cell_cohort
    size = np.zeros(len(cohort_weeks), dtype=np.int64)
    size[cohort[own_week]] = cells.column("active_visitors").to_numpy()[own_week]
    last_week = int(cell_week.max())
    lengths = (last_week - cohort_weeks + 1).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    total = int(offsets[-1])
    at = offsets[cohort] + (cell_week - cell_cohort)
    active, buyers = np.zeros(total, dtype=np.int64), np.zeros(total, dtype=np.int64)
    active[at], buyers[at] = cells.column("active_visitors").to_numpy(), cells.column("buyers").to_numpy()
    return _cohort_table(cohort_weeks, lengths, offsets, size, active, buyers)
