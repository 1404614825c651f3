"""The entity tables ``items`` and ``categories`` and the pre-computed analysis tables
``overview`` and ``hour_of_day_profile``, computed from ``events_enriched``.

Each answers, in a few hundred thousand rows at most, a question that would otherwise scan
millions of events on every page load: the headline numbers (``overview``), per item
(``items``: also the landing page an ``itemid`` links to), per category and its whole subtree
(``categories``), and per hour of the day (``hour_of_day_profile``). Metric names follow the
glossary: ``view_to_purchase_rate`` is buyers / viewers everywhere, ``purchased_view_rate`` is
purchased views / views.

Everything is vectorised: ids are factorised into dense codes, counts are ``np.bincount`` and
distinct counts are the distinct values of one combined integer key per (group, member) pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .records import EVENT_CODES, EVENT_TYPES
from .columns import (ADDTOCART, TRANSACTION, VIEW, count, distinct_count, event_codes, hashed_codes, int_column,
                      nullable, rate, unique)
from .timefmt import day_index, format_days, format_event_time, hour_index


def _purchased_views(enriched: pa.Table) -> np.ndarray:
    """1 on a view followed by a purchase of its item by the same visitor (``view_to_purchase``), else 0."""
    values, valid = int_column(enriched, "view_to_purchase")
    return np.where(valid, values, 0).astype(np.int64)


# ------------------------------------------------------------------ overview


def overview(enriched: pa.Table) -> pa.Table:
    """The headline numbers of the whole data set, in one row (no row when there are no events).

    ``period`` is the ISO 8601 interval of event dates (``first/last``). Rates are NULL when
    their divisor is 0.
    """
    time = enriched.column("timestamp_ms").to_numpy()
    if len(time) == 0:
        return OVERVIEW_SCHEMA.empty_table()
    codes = event_codes(enriched)
    visitor = hashed_codes(enriched.column("visitorid").to_numpy())
    session = enriched.column("session_id").to_numpy().astype(np.int64)
    visitor_session = visitor * (int(session.max()) + 1) + session
    category, has_category = int_column(enriched, "categoryid")
    purchased = _purchased_views(enriched)

    def distinct(values: np.ndarray) -> int:
        return int(len(unique(values)))

    def ratio(numerator: int, denominator: int) -> float | None:
        return numerator / denominator if denominator else None

    counts = {name: int((codes == code).sum()) for name, code in EVENT_CODES.items()}
    visitors = distinct(visitor)
    buyers = distinct(visitor[codes == TRANSACTION])
    viewers, carters = distinct(visitor[codes == VIEW]), distinct(visitor[codes == ADDTOCART])
    sessions = distinct(visitor_session)
    converted = distinct(visitor_session[codes == TRANSACTION])
    first_day, last_day = int(day_index(time.min())), int(day_index(time.max()))
    days = format_days(np.array([first_day, last_day])).to_pylist()
    row = {
        "period": f"{days[0]}/{days[1]}",
        "first_event_time": format_event_time(np.array([time.min()]))[0].as_py(),
        "last_event_time": format_event_time(np.array([time.max()]))[0].as_py(),
        "days": last_day - first_day + 1,
        "events": len(time),
        "views": counts["view"],
        "addtocarts": counts["addtocart"],
        "transactions": counts["transaction"],
        "visitors": visitors,
        "viewers": viewers,
        "carters": carters,
        "buyers": buyers,
        "sessions": sessions,
        "converted_sessions": converted,
        "items": distinct(enriched.column("itemid").to_numpy()),
        "categories": distinct(category[has_category]),
        "purchased_views": int(purchased.sum()),
        "view_to_cart_rate": ratio(carters, viewers),
        "cart_to_purchase_rate": ratio(buyers, carters),
        "view_to_purchase_rate": ratio(buyers, viewers),
        "visitor_to_buyer_rate": ratio(buyers, visitors),
        "session_conversion_rate": ratio(converted, sessions),
        "purchased_view_rate": ratio(int(purchased.sum()), counts["view"]),
    }
    return pa.Table.from_pylist([row], schema=OVERVIEW_SCHEMA)


OVERVIEW_SCHEMA = pa.schema(
    [("period", pa.string()), ("first_event_time", pa.string()), ("last_event_time", pa.string())]
    + [(name, pa.int64()) for name in ("days", "events", "views", "addtocarts", "transactions", "visitors",
                                       "viewers", "carters", "buyers", "sessions", "converted_sessions", "items",
                                       "categories", "purchased_views")]
    + [(name, pa.float64()) for name in ("view_to_cart_rate", "cart_to_purchase_rate", "view_to_purchase_rate",
                                         "visitor_to_buyer_rate", "session_conversion_rate", "purchased_view_rate")]
)


# ------------------------------------------------------------------ the catalogue's state now


def latest_snapshot_values(snapshots: pa.Table, prop: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(itemids, values, valid): each item's latest snapshot of ``prop`` read as an integer (the
    catalogue's state at the end of the data; ``valid`` False where it is not an integer).

    ``snapshots`` is the point-in-time snapshots table (one row per item, property and
    timestamp, sorted by property, itemid, timestamp_ms), so an item's latest is its last row.
    """
    rows = np.flatnonzero(pc.equal(snapshots.column("property"), prop).to_numpy(zero_copy_only=False))
    item = snapshots.column("itemid").to_numpy()[rows]
    last = np.ones(len(rows), dtype=bool)
    last[:-1] = item[1:] != item[:-1]
    values, valid = int_column(snapshots.take(pa.array(rows[last], pa.int64())), "value_int")
    return item[last], values, valid


def _positions(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Positions of ``values`` in the sorted distinct ``keys``, each of which must be there: a
    table indexed by value when the keys span a small range (Retail Rocket's ids do), else a
    binary search (several times slower on millions of values)."""
    if len(keys) and int(keys[-1]) - int(keys[0]) < 4 * len(keys) + (1 << 20):
        table = np.zeros(int(keys[-1]) - int(keys[0]) + 1, dtype=np.int64)
        table[keys - keys[0]] = np.arange(len(keys))
        return table[values - keys[0]]
    return np.searchsorted(keys, values)


def _lookup(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions of ``wanted`` in the sorted distinct ``keys``, -1 where absent."""
    at = np.searchsorted(keys, wanted)
    found = at < len(keys)
    found[found] = keys[at[found]] == wanted[found]
    return np.where(found, at, -1)


# ------------------------------------------------------------------ per category


def category_ancestors(categories: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Ancestor codes by level: row ``k`` holds each category's ancestor ``k`` hops up, or -1.

    ``parents[i]`` is the code of category ``i``'s parent, or -1. Row 0 is the categories
    themselves. Raises ``ValueError`` on a cycle (the published tree never has one).
    """
    levels = [np.arange(len(categories), dtype=np.int64)]
    current = levels[0]
    while True:
        up = np.where(current >= 0, parents[np.maximum(current, 0)], -1) if len(current) else current
        if not (up >= 0).any():
            break
        if len(levels) > len(categories):
            raise ValueError("categories: the category tree has a cycle")
        levels.append(up)
        current = up
    return np.vstack(levels)


PATH_SEPARATOR = " › "


def category_paths(universe: np.ndarray, ancestors: np.ndarray) -> list[str]:
    """Each category's path from the top of its walk down to itself: ``1482 › 1055 › 491``.

    One short loop per category over at most a few levels (there are a few thousand)."""
    paths = []
    for k in range(len(universe)):
        chain = ancestors[:, k]
        paths.append(PATH_SEPARATOR.join(str(universe[c]) for c in chain[chain >= 0][::-1]))
    return paths


def categories(enriched: pa.Table, tree: pa.Table, item_categoryids: np.ndarray | None = None) -> pa.Table:
    """One row per category: its place in the tree, its path, its own activity and its whole
    subtree's.

    Rows are the categories of ``tree``, the parent ids the tree names but does not hold
    (the walk to the root ends there, so they act as roots), the categories events have that
    are not in the tree (no parent, root or depth), and ``item_categoryids`` (the items'
    categories now, which ``items.categoryid`` links to). The direct columns count the events
    whose point-in-time ``categoryid`` is the category itself (so they add up over categories
    without double counting); the ``subtree_`` columns count those of the category or any
    category below it. Events without a ``categoryid`` are in no row. Reads ``visitorid``,
    ``event``, ``itemid``, ``view_to_purchase``, ``categoryid``.
    """
    tree_ids = tree.column("categoryid").to_numpy().astype(np.int64)
    tree_parents, has_parent = int_column(tree, "parentid")
    event_category, has_category = int_column(enriched, "categoryid")
    extra = np.asarray(item_categoryids if item_categoryids is not None else [], dtype=np.int64)
    universe = np.sort(unique(np.concatenate([tree_ids, tree_parents[has_parent], event_category[has_category],
                                              extra])))
    n = len(universe)
    in_tree = np.zeros(n, dtype=bool)
    in_tree[np.searchsorted(universe, tree_ids)] = True
    parents = np.full(n, -1, dtype=np.int64)
    parents[np.searchsorted(universe, tree_ids[has_parent])] = np.searchsorted(universe, tree_parents[has_parent])
    ancestors = category_ancestors(universe, parents)

    # depth and root: hops to the top of the walk, for categories in the tree or named as a parent
    has_level = ancestors >= 0
    hops = has_level.sum(axis=0) - 1
    top = ancestors[hops, np.arange(n)]
    named_parent = np.zeros(n, dtype=bool)
    named_parent[parents[parents >= 0]] = True
    placed = in_tree | named_parent

    # events of each category itself, by dense code
    events = has_category
    cat = _positions(universe, event_category[events])
    codes = event_codes(enriched)[events]
    visitor = hashed_codes(enriched.column("visitorid").to_numpy()[events])
    item = hashed_codes(enriched.column("itemid").to_numpy()[events])
    purchased = _purchased_views(enriched)[events]

    def subtree_sum(direct: np.ndarray) -> np.ndarray:
        total = np.zeros(n, dtype=np.int64)
        for level in ancestors:
            ok = level >= 0
            np.add.at(total, level[ok], direct[ok])
        return total

    def distinct_members(groups: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distinct members of each category itself, of its whole subtree)."""
        if len(groups) == 0:
            return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        width = int(members.max()) + 1
        pairs = unique(groups * width + members)  # distinct (category, member) first: far fewer
        own, member = pairs // width, pairs % width
        direct = count(own, n)
        # A member of one category only (most visitors, nearly all items) is one of each of its
        # ancestors' distinct members: a subtree sum counts those. Only members of several
        # categories can reach an ancestor twice; their (ancestor, member) pairs are made distinct.
        alone = np.bincount(member, minlength=width)[member] == 1
        total = subtree_sum(count(own[alone], n))
        own, member = own[~alone], member[~alone]
        lifted = [np.column_stack([level[own], member])[level[own] >= 0] for level in ancestors]
        stacked = np.concatenate(lifted)
        return direct, total + distinct_count(stacked[:, 0], stacked[:, 1], n)

    def of_type(code: int) -> np.ndarray:
        return count(cat[codes == code], n)

    buy, view = codes == TRANSACTION, codes == VIEW
    views, purchased_views = of_type(VIEW), count(cat, n, weights=purchased)
    subtree_views, subtree_purchased = subtree_sum(views), subtree_sum(purchased_views)
    items, subtree_items = distinct_members(cat, item)
    visitors, subtree_visitors = distinct_members(cat, visitor)
    _, subtree_viewers = distinct_members(cat[view], visitor[view])
    buyers, subtree_buyers = distinct_members(cat[buy], visitor[buy])
    paths = pa.array(category_paths(universe, ancestors), pa.string())
    return pa.table(
        {
            "categoryid": pa.array(universe),
            "label": paths,
            "category_path": paths,
            "parentid": nullable(universe[np.maximum(parents, 0)], parents >= 0),
            "root_categoryid": nullable(universe[top], placed),
            "depth": nullable(hops, placed),
            "in_tree": pa.array(in_tree.astype(np.int64)),
            "children": count(parents[parents >= 0], n),
            "items": items,
            "events": count(cat, n),
            "views": views,
            "addtocarts": of_type(ADDTOCART),
            "transactions": of_type(TRANSACTION),
            "visitors": visitors,
            "buyers": buyers,
            "subtree_items": subtree_items,
            "subtree_events": subtree_sum(count(cat, n)),
            "subtree_views": subtree_views,
            "subtree_addtocarts": subtree_sum(of_type(ADDTOCART)),
            "subtree_transactions": subtree_sum(of_type(TRANSACTION)),
            "subtree_visitors": subtree_visitors,
            "subtree_viewers": subtree_viewers,
            "subtree_buyers": subtree_buyers,
            "subtree_purchased_views": subtree_purchased,
            "subtree_view_to_purchase_rate": rate(subtree_buyers, subtree_viewers),
            "subtree_visitor_to_buyer_rate": rate(subtree_buyers, subtree_visitors),
            "subtree_purchased_view_rate": rate(subtree_purchased, subtree_views),
        }
    )


# ------------------------------------------------------------------ per item


def items(enriched: pa.Table, categories_table: pa.Table, snapshots: pa.Table, catalogue_itemids: np.ndarray,
          history: pa.Table) -> pa.Table:
    """One row per item of ``events_enriched`` or of the catalogue (``catalogue_itemids``: the
    items of item_properties): what happened to it over the whole period, and where it is filed.

    ``categoryid`` and ``available`` are the item's state now: its latest snapshot of each, read
    as an integer (NULL if it is not one or there is none); its events carry the values in
    effect at their own times. ``category_path`` and ``root_categoryid`` come from
    ``categories_table`` (the ``categories`` table, which holds every such categoryid).
    ``views_while_unavailable`` counts views whose point-in-time ``available`` is 0.
    ``category_changes`` is the item's ``categoryid`` runs in ``history`` (the
    ``item_property_history`` table) minus one. Items without events have zero counts, NULL
    rates and times. Reads ``timestamp_ms``, ``visitorid``, ``event``, ``itemid``,
    ``view_to_purchase``, ``available``.
    """
    event_item = enriched.column("itemid").to_numpy().astype(np.int64)
    universe = np.sort(unique(np.concatenate([event_item, np.asarray(catalogue_itemids, dtype=np.int64)])))
    n = len(universe)
    item = _positions(universe, event_item)
    codes = event_codes(enriched)
    visitor = hashed_codes(enriched.column("visitorid").to_numpy())
    time = enriched.column("timestamp_ms").to_numpy()
    purchased = _purchased_views(enriched)
    available_then, known = int_column(enriched, "available")

    def per_type(code: int) -> np.ndarray:
        return count(item[codes == code], n)

    # distinct (item, visitor, event type) once; distinct visitors per item and type from those
    types = len(EVENT_TYPES)
    width = int(visitor.max()) + 1 if len(visitor) else 1
    triples = unique((item * width + visitor) * types + codes)
    pairs_of, type_of = np.divmod(triples, types)

    def distinct_of(code: int) -> np.ndarray:
        return count(pairs_of[type_of == code] // width, n)

    views, events = per_type(VIEW), count(item, n)
    viewers, buyers = distinct_of(VIEW), distinct_of(TRANSACTION)
    purchased_views = count(item, n, weights=purchased)
    has_events = events > 0
    first_time, last_time = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    if len(item):
        frame = pd.Series(time).groupby(item)
        first_time[frame.min().index.to_numpy()] = frame.min().to_numpy()
        last_time[frame.max().index.to_numpy()] = frame.max().to_numpy()

    def now(prop: str) -> tuple[np.ndarray, np.ndarray]:
        ids, values, valid = latest_snapshot_values(snapshots, prop)
        at = _lookup(ids, universe)
        has = at >= 0
        has[has] = valid[at[has]]
        return np.append(values, 0)[at], has  # (at = -1: the appended 0, marked not valid)

    categoryid, has_category = now("categoryid")
    available, has_available = now("available")
    known_ids = categories_table.column("categoryid").to_numpy()
    at = np.where(has_category, _lookup(known_ids, categoryid), -1)
    if (has_category & (at < 0)).any():
        raise ValueError("items: a category the items are filed in is not in the categories table")
    filed = at >= 0
    path = categories_table.column("category_path").take(pa.array(at, pa.int64(), mask=~filed))
    root, has_root = int_column(categories_table, "root_categoryid")
    root, has_root = np.append(root, 0)[at], np.append(has_root, False)[at]  # (at = -1: the appended "none")
    label = pc.if_else(pa.array(filed), pc.binary_join_element_wise("item in ", path, ""),
                       pa.scalar("item, category unknown"))

    changes = np.zeros(n, dtype=np.int64)
    runs = history.filter(pc.equal(history.column("property"), "categoryid")).column("itemid").to_numpy()
    if len(runs):
        run_items, run_counts = np.unique(runs.astype(np.int64), return_counts=True)
        where = _lookup(universe, run_items)
        changes[where[where >= 0]] = run_counts[where >= 0] - 1

    def when(ms: np.ndarray) -> pa.Array:
        text = format_event_time(ms)
        return pc.if_else(pa.array(has_events), text, pa.scalar(None, pa.string()))

    return pa.table(
        {
            "itemid": pa.array(universe),
            "label": label,
            "category_path": path,
            "categoryid": nullable(categoryid, has_category),
            "root_categoryid": nullable(root, has_root),
            "available": nullable(available, has_available),
            "views": views,
            "addtocarts": per_type(ADDTOCART),
            "transactions": per_type(TRANSACTION),
            "viewers": viewers,
            "carters": distinct_of(ADDTOCART),
            "buyers": buyers,
            "view_to_purchase_rate": rate(buyers, viewers),
            "purchased_view_rate": rate(purchased_views, views),
            "visitors": count(unique(pairs_of) // width, n),
            "events": events,
            "purchased_views": purchased_views,
            "views_while_unavailable": count(item[(codes == VIEW) & known & (available_then == 0)], n),
            "category_changes": changes,
            "first_event_time": when(first_time),
            "last_event_time": when(last_time),
        }
    )


# ------------------------------------------------------------------ per hour of the day


def hour_of_day_profile(enriched: pa.Table) -> pa.Table:
    """24 rows, hours 0-23 UTC (zeros included): what happens at each hour of the day, over all dates.

    ``avg_events_per_day`` divides by the number of calendar days from the first event's date
    to the last's, inclusive. ``visitors`` / ``buyers`` are distinct over the whole period.
    """
    time = enriched.column("timestamp_ms").to_numpy()
    hour = (hour_index(time) % 24).astype(np.int64)
    codes = event_codes(enriched)
    visitor = hashed_codes(enriched.column("visitorid").to_numpy())
    purchased = _purchased_views(enriched)
    days = int(day_index(time.max()) - day_index(time.min()) + 1) if len(time) else 0
    events = count(hour, 24)
    views = count(hour[codes == VIEW], 24)
    purchased_views = count(hour, 24, weights=purchased)
    visitors = distinct_count(hour, visitor, 24)
    buy = codes == TRANSACTION
    buyers = distinct_count(hour[buy], visitor[buy], 24)
    return pa.table(
        {
            "hour_of_day": pa.array(np.arange(24, dtype=np.int64)),
            "events": events,
            "views": views,
            "addtocarts": count(hour[codes == ADDTOCART], 24),
            "transactions": count(hour[buy], 24),
            "visitors": visitors,
            "buyers": buyers,
            "avg_events_per_day": rate(events, np.full(24, days)),
            "share_of_events": rate(events, np.full(24, len(time))),
            "purchased_views": purchased_views,
            "purchased_view_rate": rate(purchased_views, views),
            "visitor_to_buyer_rate": rate(buyers, visitors),
        }
    )
