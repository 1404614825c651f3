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

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .records import EVENT_CODES, EVENT_TYPES
from .columns import (ADDTOCART, TRANSACTION, VIEW, count, distinct_count, event_codes, hashed_codes, int_column,
                      distinct, nullable, position_lookup, rate, reduce_in_batches, union, unique)
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
    totals = _overview_totals(enriched)
    totals["items"], totals["categories"] = len(totals.pop("itemids")), len(totals.pop("categoryids"))
    return _overview_table(totals)


def _overview_totals(enriched: pa.Table) -> dict:
    """The overview's numbers of the events (at least one): the first and last time, counts,
    distinct visitors and sessions, and the distinct ``itemids`` and ``categoryids``."""
    time = enriched.column("timestamp_ms").to_numpy()
    codes = event_codes(enriched)
    visitor = hashed_codes(enriched.column("visitorid").to_numpy())
    session = enriched.column("session_id").to_numpy().astype(np.int64)
    visitor_session = visitor * (int(session.max()) + 1) + session
    category, has_category = int_column(enriched, "categoryid")
    purchased = _purchased_views(enriched)

    def distinct(values: np.ndarray) -> int:
        return int(len(unique(values)))

    counts = {name: int((codes == code).sum()) for name, code in EVENT_CODES.items()}
    return {
        "first_ms": int(time.min()),
        "last_ms": int(time.max()),
        "events": len(time),
        "views": counts["view"],
        "addtocarts": counts["addtocart"],
        "transactions": counts["transaction"],
        "visitors": distinct(visitor),
        "viewers": distinct(visitor[codes == VIEW]),
        "carters": distinct(visitor[codes == ADDTOCART]),
        "buyers": distinct(visitor[codes == TRANSACTION]),
        "sessions": distinct(visitor_session),
        "converted_sessions": distinct(visitor_session[codes == TRANSACTION]),
        "purchased_views": int(purchased.sum()),
        "itemids": unique(enriched.column("itemid").to_numpy()),
        "categoryids": unique(category[has_category]),
    }


def _overview_table(totals: dict) -> pa.Table:
    """The overview's row from its numbers (``_overview_totals``, with ``items`` and
    ``categories`` counted): the dates, times and rates."""

    def ratio(numerator: int, denominator: int) -> float | None:
        return numerator / denominator if denominator else None

    first_ms, last_ms = totals["first_ms"], totals["last_ms"]
    first_day, last_day = int(day_index(first_ms)), int(day_index(last_ms))
    days = format_days(np.array([first_day, last_day])).to_pylist()
    visitors, viewers, carters, buyers = (totals[name] for name in ("visitors", "viewers", "carters", "buyers"))
    row = {
        "period": f"{days[0]}/{days[1]}",
        "first_event_time": format_event_time(np.array([first_ms], dtype=np.int64))[0].as_py(),
        "last_event_time": format_event_time(np.array([last_ms], dtype=np.int64))[0].as_py(),
        "days": last_day - first_day + 1,
        **{name: totals[name] for name in ("events", "views", "addtocarts", "transactions", "visitors", "viewers",
                                           "carters", "buyers", "sessions", "converted_sessions", "items",
                                           "categories", "purchased_views")},
        "view_to_cart_rate": ratio(carters, viewers),
        "cart_to_purchase_rate": ratio(buyers, carters),
        "view_to_purchase_rate": ratio(buyers, viewers),
        "visitor_to_buyer_rate": ratio(buyers, visitors),
        "session_conversion_rate": ratio(totals["converted_sessions"], totals["sessions"]),
        "purchased_view_rate": ratio(totals["purchased_views"], totals["views"]),
    }
    return pa.Table.from_pylist([row], schema=OVERVIEW_SCHEMA)


OVERVIEW_COUNTS = ("events", "views", "addtocarts", "transactions", "visitors", "viewers", "carters", "buyers",
                   "sessions", "converted_sessions", "purchased_views")


def overview_partial(enriched: pa.Table) -> pa.Table:
    """The overview's numbers of some visitors (each visitor's events all in ``enriched``), in
    one row (none without events): ``first_ms``, ``last_ms``, the counts (distinct visitors and
    sessions add up over visitor shards), and the distinct ``itemids`` and ``categoryids``
    (which do not: they are de-duplicated in ``overview_combine``)."""
    schema = pa.schema([("first_ms", pa.int64()), ("last_ms", pa.int64())]
                       + [(name, pa.int64()) for name in OVERVIEW_COUNTS]
                       + [("itemids", pa.list_(pa.int64())), ("categoryids", pa.list_(pa.int64()))])
    if enriched.num_rows == 0:
        return schema.empty_table()
    totals = _overview_totals(enriched)
    return pa.table({name: pa.array([totals[name]], field.type) for name, field in zip(schema.names, schema)},
                    schema=schema)


def overview_combine(partials: Sequence[pa.Table]) -> pa.Table:
    """``overview`` from the partials of all shards (``overview_partial``), one at a time."""
    totals = {name: 0 for name in OVERVIEW_COUNTS}
    first_ms, last_ms = [], []
    for part in partials:
        if part.num_rows == 0:
            continue
        for name in OVERVIEW_COUNTS:
            totals[name] += part.column(name)[0].as_py()
        first_ms.append(part.column("first_ms")[0].as_py())
        last_ms.append(part.column("last_ms")[0].as_py())
    if not first_ms:
        return OVERVIEW_SCHEMA.empty_table()
    totals["first_ms"], totals["last_ms"] = min(first_ms), max(last_ms)
    for name, ids in (("items", "itemids"), ("categories", "categoryids")):
        totals[name] = len(union(part.column(ids).combine_chunks().flatten().to_numpy(zero_copy_only=False)
                                 for part in partials if part.num_rows))
    return _overview_table(totals)


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


@dataclass(frozen=True)
class ItemCatalogue:
    """What the items table takes from the catalogue, in arrays small enough to keep while the
    tables are combined (the snapshots and history tables they come from can be let go): each
    item's latest ``categoryid`` and ``available`` (:func:`latest_snapshot_values`, by
    property), and the items with ``categoryid`` runs in the history and how many each has."""

    latest: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    run_items: np.ndarray
    run_counts: np.ndarray

    @staticmethod
    def latest_of(snapshots: pa.Table) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return {prop: latest_snapshot_values(snapshots, prop) for prop in ("categoryid", "available")}

    @staticmethod
    def runs_of(history: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(items, their number of ``categoryid`` runs) of the ``item_property_history`` table."""
        keyed = history.select(["itemid", "property"])  # (the other columns stay on disk)
        runs = keyed.filter(pc.equal(keyed.column("property"), "categoryid")).column("itemid").to_numpy()
        if not len(runs):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.unique(runs.astype(np.int64), return_counts=True)

    @classmethod
    def of(cls, snapshots: pa.Table, history: pa.Table) -> ItemCatalogue:
        return cls(cls.latest_of(snapshots), *cls.runs_of(history))


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
    event_category, has_category = int_column(enriched, "categoryid")
    universe, in_tree, parents, ancestors = _category_structure(tree, event_category[has_category], item_categoryids)
    counts, cat, item = _category_event_counts(enriched, universe, ancestors)
    counts["items"], counts["subtree_items"] = _distinct_members(ancestors, cat, hashed_codes(item))
    return _categories_table(universe, in_tree, parents, ancestors, counts)


def _category_structure(tree: pa.Table, event_categoryids: np.ndarray, item_categoryids: np.ndarray | None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(the categories of the table, sorted; whether each is in ``tree``; the code of each one's
    parent, or -1; ``category_ancestors``), the categories being those of ``tree``, the parents
    it names, ``event_categoryids`` and ``item_categoryids``."""
    tree_ids = tree.column("categoryid").to_numpy().astype(np.int64)
    tree_parents, has_parent = int_column(tree, "parentid")
    extra = np.asarray(item_categoryids if item_categoryids is not None else [], dtype=np.int64)
    universe = np.sort(unique(np.concatenate([tree_ids, tree_parents[has_parent],
                                              np.asarray(event_categoryids, dtype=np.int64), extra])))
    n = len(universe)
    in_tree = np.zeros(n, dtype=bool)
    in_tree[np.searchsorted(universe, tree_ids)] = True
    parents = np.full(n, -1, dtype=np.int64)
    parents[np.searchsorted(universe, tree_ids[has_parent])] = np.searchsorted(universe, tree_parents[has_parent])
    return universe, in_tree, parents, category_ancestors(universe, parents)


def _subtree_sum(ancestors: np.ndarray, direct: np.ndarray) -> np.ndarray:
    """Per category, the sum of ``direct`` over it and every category below it."""
    total = np.zeros(ancestors.shape[1], dtype=np.int64)
    for level in ancestors:
        ok = level >= 0
        np.add.at(total, level[ok], direct[ok])
    return total


def _distinct_members(ancestors: np.ndarray, groups: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct members of each category itself, of its whole subtree): ``groups`` are category
    codes, ``members`` dense codes, one pair per row."""
    n = ancestors.shape[1]
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
    total = _subtree_sum(ancestors, count(own[alone], n))
    own, member = own[~alone], member[~alone]
    lifted = [np.column_stack([level[own], member])[level[own] >= 0] for level in ancestors]
    stacked = np.concatenate(lifted)
    return direct, total + distinct_count(stacked[:, 0], stacked[:, 1], n)


# The columns of categories that add up over visitor shards, per category code.
CATEGORY_COUNTS = ("events", "views", "addtocarts", "transactions", "purchased_views", "visitors", "buyers",
                   "subtree_visitors", "subtree_viewers", "subtree_buyers")


def _category_event_counts(enriched: pa.Table, universe: np.ndarray, ancestors: np.ndarray
                           ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(``CATEGORY_COUNTS`` per category of ``universe``, which holds every ``categoryid`` of the
    events; the category code and the itemid of each event with a category)."""
    n = len(universe)
    event_category, events = int_column(enriched, "categoryid")
    cat = position_lookup(universe)(event_category[events])
    codes = event_codes(enriched)[events]
    visitor = hashed_codes(enriched.column("visitorid").to_numpy()[events])
    buy, view = codes == TRANSACTION, codes == VIEW
    visitors, subtree_visitors = _distinct_members(ancestors, cat, visitor)
    _, subtree_viewers = _distinct_members(ancestors, cat[view], visitor[view])
    buyers, subtree_buyers = _distinct_members(ancestors, cat[buy], visitor[buy])
    counts = {
        "events": count(cat, n),
        "views": count(cat[view], n),
        "addtocarts": count(cat[codes == ADDTOCART], n),
        "transactions": count(cat[buy], n),
        "purchased_views": count(cat, n, weights=_purchased_views(enriched)[events]),
        "visitors": visitors,
        "buyers": buyers,
        "subtree_visitors": subtree_visitors,
        "subtree_viewers": subtree_viewers,
        "subtree_buyers": subtree_buyers,
    }
    return counts, cat, enriched.column("itemid").to_numpy()[events].astype(np.int64)


def _categories_table(universe: np.ndarray, in_tree: np.ndarray, parents: np.ndarray, ancestors: np.ndarray,
                      counts: dict[str, np.ndarray]) -> pa.Table:
    """The categories table from the structure (``_category_structure``) and the counts of each
    category: ``CATEGORY_COUNTS``, ``items`` and ``subtree_items``."""
    n = len(universe)
    # depth and root: hops to the top of the walk, for categories in the tree or named as a parent
    has_level = ancestors >= 0
    hops = has_level.sum(axis=0) - 1
    top = ancestors[hops, np.arange(n)]
    named_parent = np.zeros(n, dtype=bool)
    named_parent[parents[parents >= 0]] = True
    placed = in_tree | named_parent
    views, purchased_views = counts["views"], counts["purchased_views"]
    subtree_views, subtree_purchased = _subtree_sum(ancestors, views), _subtree_sum(ancestors, purchased_views)
    subtree_visitors, subtree_viewers = counts["subtree_visitors"], counts["subtree_viewers"]
    subtree_buyers = counts["subtree_buyers"]
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
            "items": counts["items"],
            "events": counts["events"],
            "views": views,
            "addtocarts": counts["addtocarts"],
            "transactions": counts["transactions"],
            "visitors": counts["visitors"],
            "buyers": counts["buyers"],
            "subtree_items": counts["subtree_items"],
            "subtree_events": _subtree_sum(ancestors, counts["events"]),
            "subtree_views": subtree_views,
            "subtree_addtocarts": _subtree_sum(ancestors, counts["addtocarts"]),
            "subtree_transactions": _subtree_sum(ancestors, counts["transactions"]),
            "subtree_visitors": subtree_visitors,
            "subtree_viewers": subtree_viewers,
            "subtree_buyers": subtree_buyers,
            "subtree_purchased_views": subtree_purchased,
            "subtree_view_to_purchase_rate": rate(subtree_buyers, subtree_viewers),
            "subtree_visitor_to_buyer_rate": rate(subtree_buyers, subtree_visitors),
            "subtree_purchased_view_rate": rate(subtree_purchased, subtree_views),
        }
    )


def categories_partial(enriched: pa.Table, tree: pa.Table) -> dict[str, pa.Table]:
    """The categories table's numbers of some visitors (each visitor's events all in
    ``enriched``): ``categories``, a row per category with events itself or below it, its
    ``CATEGORY_COUNTS`` (distinct visitors add up over visitor shards); ``category_items``, the
    distinct (``categoryid``, ``itemid``) of the events (distinct items do not add up: they are
    de-duplicated in ``categories_combine``)."""
    event_category, has_category = int_column(enriched, "categoryid")
    universe, _, _, ancestors = _category_structure(tree, event_category[has_category], None)
    counts, cat, item = _category_event_counts(enriched, universe, ancestors)
    kept = (counts["events"] > 0) | (counts["subtree_visitors"] > 0)
    pairs = pd.DataFrame({"categoryid": universe[cat], "itemid": item}).drop_duplicates()
    return {
        "categories": pa.table({"categoryid": pa.array(universe[kept], pa.int64()),
                                **{name: pa.array(counts[name][kept], pa.int64()) for name in CATEGORY_COUNTS}}),
        "category_items": pa.table({"categoryid": pa.array(pairs["categoryid"].to_numpy(), pa.int64()),
                                    "itemid": pa.array(pairs["itemid"].to_numpy(), pa.int64())}),
    }


def categories_combine(partials: Sequence[pa.Table], item_partials: Sequence[pa.Table], tree: pa.Table,
                       item_categoryids: np.ndarray | None = None) -> pa.Table:
    """``categories`` from the partials of all shards (``categories_partial``: ``partials`` its
    ``categories``, ``item_partials`` its ``category_items``), the tree and the items'
    categories now; one shard's partials in memory at a time, besides the result."""
    with_events = [p.filter(pc.greater(p.column("events"), 0)).column("categoryid").to_numpy() for p in partials]
    universe, in_tree, parents, ancestors = _category_structure(
        tree, np.concatenate(with_events) if with_events else np.zeros(0, np.int64), item_categoryids)
    n = len(universe)
    counts = {name: np.zeros(n, dtype=np.int64) for name in CATEGORY_COUNTS}
    category_at = position_lookup(universe)
    for part in partials:
        at = category_at(part.column("categoryid").to_numpy())
        for name in CATEGORY_COUNTS:
            counts[name][at] += part.column(name).to_numpy()  # (a category once per partial)
    pairs = reduce_in_batches(
        (pd.DataFrame({"cat": category_at(part.column("categoryid").to_numpy()),
                       "itemid": part.column("itemid").to_numpy()}) for part in item_partials),
        lambda frames: pd.concat(frames, ignore_index=True).drop_duplicates(), len)
    if pairs is None:
        pairs = pd.DataFrame({"cat": np.zeros(0, np.int64), "itemid": np.zeros(0, np.int64)})
    counts["items"], counts["subtree_items"] = _distinct_members(
        ancestors, pairs["cat"].to_numpy(np.int64), hashed_codes(pairs["itemid"].to_numpy(np.int64)))
    return _categories_table(universe, in_tree, parents, ancestors, counts)


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
    universe = distinct(np.concatenate([event_item, np.asarray(catalogue_itemids, dtype=np.int64)]))
    return _items_table(universe, _item_event_counts(enriched, universe), categories_table,
                        ItemCatalogue.of(snapshots, history))


# The columns of items that add up over visitor shards; and the first and last event time.
ITEM_COUNTS = ("views", "addtocarts", "transactions", "viewers", "carters", "buyers", "visitors", "events",
               "purchased_views", "views_while_unavailable")


def _item_event_counts(enriched: pa.Table, universe: np.ndarray) -> dict[str, np.ndarray]:
    """Per item of ``universe`` (sorted, holding every itemid of the events): ``ITEM_COUNTS``,
    and ``first_time`` and ``last_time`` (0 for an item without events)."""
    n = len(universe)
    item = position_lookup(universe)(enriched.column("itemid").to_numpy().astype(np.int64))
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

    first_time, last_time = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    if len(item):
        frame = pd.Series(time).groupby(item)
        first_time[frame.min().index.to_numpy()] = frame.min().to_numpy()
        last_time[frame.max().index.to_numpy()] = frame.max().to_numpy()
    return {
        "views": per_type(VIEW),
        "addtocarts": per_type(ADDTOCART),
        "transactions": per_type(TRANSACTION),
        "viewers": distinct_of(VIEW),
        "carters": distinct_of(ADDTOCART),
        "buyers": distinct_of(TRANSACTION),
        "visitors": count(unique(pairs_of) // width, n),
        "events": count(item, n),
        "purchased_views": count(item, n, weights=purchased),
        "views_while_unavailable": count(item[(codes == VIEW) & known & (available_then == 0)], n),
        "first_time": first_time,
        "last_time": last_time,
    }


def _items_table(universe: np.ndarray, counts: dict[str, np.ndarray], categories_table: pa.Table,
                 catalogue: ItemCatalogue) -> pa.Table:
    """The items table of the items ``universe`` (sorted), from their event counts
    (``_item_event_counts``) and the catalogue."""
    n = len(universe)
    views, viewers, buyers = counts["views"], counts["viewers"], counts["buyers"]
    purchased_views = counts["purchased_views"]
    has_events = counts["events"] > 0

    def now(prop: str) -> tuple[np.ndarray, np.ndarray]:
        ids, values, valid = catalogue.latest[prop]
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
    if len(catalogue.run_items):
        where = _lookup(universe, catalogue.run_items)
        changes[where[where >= 0]] = catalogue.run_counts[where >= 0] - 1

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
            "addtocarts": counts["addtocarts"],
            "transactions": counts["transactions"],
            "viewers": viewers,
            "carters": counts["carters"],
            "buyers": buyers,
            "view_to_purchase_rate": rate(buyers, viewers),
            "purchased_view_rate": rate(purchased_views, views),
            "visitors": counts["visitors"],
            "events": counts["events"],
            "purchased_views": purchased_views,
            "views_while_unavailable": counts["views_while_unavailable"],
            "category_changes": changes,
            "first_event_time": when(counts["first_time"]),
            "last_event_time": when(counts["last_time"]),
        }
    )


def items_partial(enriched: pa.Table) -> pa.Table:
    """The items table's numbers of some visitors (each visitor's events all in ``enriched``):
    a row per ``itemid`` of the events, its ``ITEM_COUNTS`` (distinct visitors add up over
    visitor shards), ``first_time`` and ``last_time`` (ms)."""
    universe = distinct(enriched.column("itemid").to_numpy())
    counts = _item_event_counts(enriched, universe)
    return pa.table({"itemid": pa.array(universe, pa.int64()),
                     **{name: pa.array(values, pa.int64()) for name, values in counts.items()}})


def items_combine(partials: Sequence[pa.Table], categories_table: pa.Table, catalogue: ItemCatalogue,
                  catalogue_itemids: np.ndarray) -> pa.Table:
    """``items`` from the partials of all shards (``items_partial``) and the catalogue: counts
    summed, the earliest first and the latest last time; one shard's partial in memory at a
    time, besides the result. ``catalogue``: the :class:`ItemCatalogue` of the snapshots and
    the history."""
    universe = union(itertools.chain([catalogue_itemids], (part.column("itemid").to_numpy() for part in partials)))
    n = len(universe)
    counts = {name: np.zeros(n, dtype=np.int64) for name in ITEM_COUNTS}
    limits = np.iinfo(np.int64)
    first, last = np.full(n, limits.max, dtype=np.int64), np.full(n, limits.min, dtype=np.int64)
    item_at = position_lookup(universe)
    for part in partials:
        at = item_at(part.column("itemid").to_numpy())
        for name in ITEM_COUNTS:
            counts[name][at] += part.column(name).to_numpy()
        first[at] = np.minimum(first[at], part.column("first_time").to_numpy())  # (an item once per partial)
        last[at] = np.maximum(last[at], part.column("last_time").to_numpy())
    has_events = counts["events"] > 0
    counts["first_time"], counts["last_time"] = np.where(has_events, first, 0), np.where(has_events, last, 0)
    return _items_table(universe, counts, categories_table, catalogue)


# ------------------------------------------------------------------ per hour of the day


def hour_of_day_profile(enriched: pa.Table) -> pa.Table:
    """24 rows, hours 0-23 UTC (zeros included): what happens at each hour of the day, over all dates.

    ``avg_events_per_day`` divides by the number of calendar days from the first event's date
    to the last's, inclusive. ``visitors`` / ``buyers`` are distinct over the whole period.
    """
    counts, first_ms, last_ms = _hour_of_day_counts(enriched)
    return _hour_of_day_table(counts, first_ms, last_ms)


HOUR_OF_DAY_COUNTS = ("events", "views", "addtocarts", "transactions", "visitors", "buyers", "purchased_views")


def _hour_of_day_counts(enriched: pa.Table) -> tuple[dict[str, np.ndarray], int | None, int | None]:
    """(the counts of each hour of the day, ``HOUR_OF_DAY_COUNTS``; the first and last event
    time, None without events)."""
    time = enriched.column("timestamp_ms").to_numpy()
    hour = (hour_index(time) % 24).astype(np.int64)
    codes = event_codes(enriched)
    visitor = hashed_codes(enriched.column("visitorid").to_numpy())
    buy = codes == TRANSACTION
    counts = {
        "events": count(hour, 24),
        "views": count(hour[codes == VIEW], 24),
        "addtocarts": count(hour[codes == ADDTOCART], 24),
        "transactions": count(hour[buy], 24),
        "visitors": distinct_count(hour, visitor, 24),
        "buyers": distinct_count(hour[buy], visitor[buy], 24),
        "purchased_views": count(hour, 24, weights=_purchased_views(enriched)),
    }
    return counts, (int(time.min()) if len(time) else None), (int(time.max()) if len(time) else None)


def _hour_of_day_table(counts: dict[str, np.ndarray], first_ms: int | None, last_ms: int | None) -> pa.Table:
    events, views, purchased_views = counts["events"], counts["views"], counts["purchased_views"]
    visitors, buyers = counts["visitors"], counts["buyers"]
    days = int(day_index(last_ms) - day_index(first_ms) + 1) if first_ms is not None else 0
    return pa.table(
        {
            "hour_of_day": pa.array(np.arange(24, dtype=np.int64)),
            "events": events,
            "views": views,
            "addtocarts": counts["addtocarts"],
            "transactions": counts["transactions"],
            "visitors": visitors,
            "buyers": buyers,
            "avg_events_per_day": rate(events, np.full(24, days)),
            "share_of_events": rate(events, np.full(24, int(events.sum()))),
            "purchased_views": purchased_views,
            "purchased_view_rate": rate(purchased_views, views),
            "visitor_to_buyer_rate": rate(buyers, visitors),
        }
    )


def hour_of_day_profile_partial(enriched: pa.Table) -> pa.Table:
    """``hour_of_day_profile``'s counts of some visitors (each visitor's events all in
    ``enriched``): 24 rows, ``HOUR_OF_DAY_COUNTS``, and the first and last event time
    (``first_ms``, ``last_ms``, the same on every row; NULL without events)."""
    counts, first_ms, last_ms = _hour_of_day_counts(enriched)
    return pa.table({**{name: pa.array(values, pa.int64()) for name, values in counts.items()},
                     "first_ms": pa.array([first_ms] * 24, pa.int64()),
                     "last_ms": pa.array([last_ms] * 24, pa.int64())})


def hour_of_day_profile_combine(partials: Sequence[pa.Table]) -> pa.Table:
    """``hour_of_day_profile`` from the partials of all shards (``hour_of_day_profile_partial``)."""
    counts = {name: np.sum([p.column(name).to_numpy() for p in partials], axis=0).astype(np.int64)
              for name in HOUR_OF_DAY_COUNTS}
    rows = pa.concat_tables(list(partials))
    return _hour_of_day_table(counts, pc.min(rows.column("first_ms")).as_py(), pc.max(rows.column("last_ms")).as_py())
