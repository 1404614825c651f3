"""The entity and analysis tables of retail_pipeline/analytics.py against brute-force references written here.

Events are generated directly in the columns the functions read, with few visitors, items and
categories so that repeats, ties and empty groups all happen; the category trees have missing
parents, deep chains and categories that events name but the tree does not hold.
"""

import datetime as dt
import math
import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_pipeline import aggregates, analytics
from retail_pipeline.categories import TREE_SCHEMA, build_category_tree
from retail_pipeline.enrich import attribute_lookups, enrich_events
from retail_pipeline.properties import point_in_time_snapshots
from retail_pipeline.records import EVENT_TYPES, EVENTS, ITEM_PROPERTIES

HOUR = 3_600_000
T0 = 1_433_000_000_000

event = st.tuples(
    st.integers(0, 100 * HOUR).map(lambda k: T0 + k),  # timestamp_ms
    st.integers(1, 5),  # visitorid
    st.sampled_from(EVENT_TYPES),
    st.integers(1, 6),  # itemid
    st.integers(1, 3),  # session_id
    st.booleans(),  # view_to_purchase, on views
    st.one_of(st.none(), st.integers(0, 9), st.integers(50, 51)),  # categoryid: tree ids, unknown ids, NULL
    st.one_of(st.none(), st.integers(0, 3)),  # root_categoryid, carried through
    st.one_of(st.none(), st.integers(0, 1)),  # available, point in time
)
events = st.lists(event, max_size=50)

COLUMNS = ("timestamp_ms", "visitorid", "event", "itemid", "session_id", "view_to_purchase", "categoryid",
           "root_categoryid", "available", "source_line")


def as_dicts(rows):
    return [
        dict(zip(COLUMNS, (t, v, e, i, s, (int(p) if e == "view" else None), c, r, a, line)))
        for line, (t, v, e, i, s, p, c, r, a) in enumerate(rows, start=2)
    ]


def enriched_table(rows, *, dictionary=True):
    records = as_dicts(rows)
    table = pa.table({
        "timestamp_ms": pa.array([r["timestamp_ms"] for r in records], pa.int64()),
        "visitorid": pa.array([r["visitorid"] for r in records], pa.int64()),
        "event": pa.array([r["event"] for r in records], pa.string()),
        "itemid": pa.array([r["itemid"] for r in records], pa.int64()),
        "session_id": pa.array([r["session_id"] for r in records], pa.int64()),
        "view_to_purchase": pa.array([r["view_to_purchase"] for r in records], pa.int8()),
        "categoryid": pa.array([r["categoryid"] for r in records], pa.int64()),
        "root_categoryid": pa.array([r["root_categoryid"] for r in records], pa.int64()),
        "available": pa.array([r["available"] for r in records], pa.int64()),
        "source_line": pa.array([r["source_line"] for r in records], pa.int64()),
    })
    if dictionary:
        table = table.set_column(2, "event", table.column("event").dictionary_encode())
    return table


def shuffled(table, seed):
    order = list(range(table.num_rows))
    random.Random(seed).shuffle(order)
    return table.take(pa.array(order, pa.int64()))


def utc_text(ms):
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def rate(numerator, denominator):
    return None if denominator == 0 else numerator / denominator


def assert_rows_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for key in w:
            if isinstance(w[key], float):
                assert g[key] is not None and math.isclose(g[key], w[key], rel_tol=1e-12), (key, g, w)
            else:
                assert g[key] == w[key], (key, g, w)


# ------------------------------------------------------------------ overview


def brute_overview(records):
    if not records:
        return []
    kinds = [r["event"] for r in records]
    by_kind = {k: {r["visitorid"] for r in records if r["event"] == k} for k in EVENT_TYPES}
    visitors = {r["visitorid"] for r in records}
    sessions = {(r["visitorid"], r["session_id"]) for r in records}
    converted = {(r["visitorid"], r["session_id"]) for r in records if r["event"] == "transaction"}
    times = [r["timestamp_ms"] for r in records]
    first, last = utc_text(min(times)), utc_text(max(times))
    days = (dt.date.fromisoformat(last[:10]) - dt.date.fromisoformat(first[:10])).days + 1
    purchased = sum(r["view_to_purchase"] or 0 for r in records)
    return [{
        "period": f"{first[:10]}/{last[:10]}", "first_event_time": first, "last_event_time": last, "days": days,
        "events": len(records), "views": kinds.count("view"), "addtocarts": kinds.count("addtocart"),
        "transactions": kinds.count("transaction"), "visitors": len(visitors), "viewers": len(by_kind["view"]),
        "carters": len(by_kind["addtocart"]), "buyers": len(by_kind["transaction"]), "sessions": len(sessions),
        "converted_sessions": len(converted), "items": len({r["itemid"] for r in records}),
        "categories": len({r["categoryid"] for r in records if r["categoryid"] is not None}),
        "purchased_views": purchased,
        "view_to_cart_rate": rate(len(by_kind["addtocart"]), len(by_kind["view"])),
        "cart_to_purchase_rate": rate(len(by_kind["transaction"]), len(by_kind["addtocart"])),
        "view_to_purchase_rate": rate(len(by_kind["transaction"]), len(by_kind["view"])),
        "visitor_to_buyer_rate": len(by_kind["transaction"]) / len(visitors),
        "session_conversion_rate": len(converted) / len(sessions),
        "purchased_view_rate": rate(purchased, kinds.count("view")),
    }]


@settings(max_examples=150, deadline=None)
@given(rows=events, seed=st.integers(0, 1000), dictionary=st.booleans())
def test_overview_matches_brute_force(rows, seed, dictionary):
    table = shuffled(enriched_table(rows, dictionary=dictionary), seed)
    assert_rows_equal(analytics.overview(table).to_pylist(), brute_overview(as_dicts(rows)))


# ------------------------------------------------------------------ per hour of day


def brute_hour_profile(records):
    times = [r["timestamp_ms"] for r in records]
    days = ((dt.date.fromisoformat(utc_text(max(times))[:10]) - dt.date.fromisoformat(utc_text(min(times))[:10])).days
            + 1) if records else 0
    out = []
    for hour in range(24):
        mine = [r for r in records if int(utc_text(r["timestamp_ms"])[11:13]) == hour]
        kinds = [r["event"] for r in mine]
        visitors = {r["visitorid"] for r in mine}
        buyers = {r["visitorid"] for r in mine if r["event"] == "transaction"}
        purchased = sum(r["view_to_purchase"] or 0 for r in mine)
        out.append({
            "hour_of_day": hour, "events": len(mine), "views": kinds.count("view"),
            "addtocarts": kinds.count("addtocart"), "transactions": kinds.count("transaction"),
            "visitors": len(visitors), "buyers": len(buyers), "avg_events_per_day": rate(len(mine), days),
            "share_of_events": rate(len(mine), len(records)), "purchased_views": purchased,
            "purchased_view_rate": rate(purchased, kinds.count("view")),
            "visitor_to_buyer_rate": rate(len(buyers), len(visitors)),
        })
    return out


@settings(max_examples=150, deadline=None)
@given(rows=events, seed=st.integers(0, 1000))
def test_hour_of_day_profile_matches_brute_force(rows, seed):
    table = shuffled(enriched_table(rows), seed)
    assert_rows_equal(analytics.hour_of_day_profile(table).to_pylist(), brute_hour_profile(as_dicts(rows)))


# ------------------------------------------------------------------ per category

# A tree of categories 0..9 (a random subset): each parent is absent, an earlier category
# (so there is no cycle), or a missing id 90-91 that names no row.
trees = st.lists(
    st.tuples(st.integers(0, 9), st.one_of(st.none(), st.integers(0, 9), st.integers(90, 91))),
    max_size=10, unique_by=lambda r: r[0],
).map(lambda rows: [(c, p if p is None or p >= 90 or p < c else None) for c, p in rows])


def tree_table(rows):
    table = pa.table({"line": pa.array(range(2, len(rows) + 2), pa.int64()),
                      "categoryid": pa.array([c for c, _ in rows], pa.int64()),
                      "parentid": pa.array([p for _, p in rows], pa.int64())})
    return build_category_tree(table)


def brute_categories(records, tree_rows, extra=()):
    parent = dict(tree_rows)
    missing = {p for p in parent.values() if p is not None and p not in parent}
    universe = sorted(set(parent) | missing | {r["categoryid"] for r in records if r["categoryid"] is not None}
                      | set(extra))

    def chain(c):  # c and its ancestors
        out = [c]
        while parent.get(out[-1]) is not None:
            out.append(parent[out[-1]])
        return out

    def measures(mine):
        kinds = [r["event"] for r in mine]
        return kinds, {r["visitorid"] for r in mine}, {r["visitorid"] for r in mine if r["event"] == "transaction"}

    out = []
    for c in universe:
        placed = c in parent or c in missing
        own = [r for r in records if r["categoryid"] == c]
        tree = [r for r in records if r["categoryid"] is not None and c in chain(r["categoryid"])]
        kinds, visitors, buyers = measures(own)
        t_kinds, t_visitors, t_buyers = measures(tree)
        t_viewers = {r["visitorid"] for r in tree if r["event"] == "view"}
        purchased = sum(r["view_to_purchase"] or 0 for r in tree)
        path = " › ".join(str(x) for x in reversed(chain(c)))
        out.append({
            "categoryid": c, "label": path, "category_path": path, "parentid": parent.get(c),
            "root_categoryid": chain(c)[-1] if placed else None, "depth": len(chain(c)) - 1 if placed else None,
            "in_tree": int(c in parent), "children": sum(1 for p in parent.values() if p == c),
            "items": len({r["itemid"] for r in own}), "events": len(own), "views": kinds.count("view"),
            "addtocarts": kinds.count("addtocart"), "transactions": kinds.count("transaction"),
            "visitors": len(visitors), "buyers": len(buyers),
            "subtree_items": len({r["itemid"] for r in tree}), "subtree_events": len(tree),
            "subtree_views": t_kinds.count("view"), "subtree_addtocarts": t_kinds.count("addtocart"),
            "subtree_transactions": t_kinds.count("transaction"), "subtree_visitors": len(t_visitors),
            "subtree_viewers": len(t_viewers), "subtree_buyers": len(t_buyers),
            "subtree_purchased_views": purchased,
            "subtree_view_to_purchase_rate": rate(len(t_buyers), len(t_viewers)),
            "subtree_visitor_to_buyer_rate": rate(len(t_buyers), len(t_visitors)),
            "subtree_purchased_view_rate": rate(purchased, t_kinds.count("view")),
        })
    return out


@settings(max_examples=200, deadline=None)
@given(rows=events, tree_rows=trees, extra=st.lists(st.integers(0, 12), max_size=3), seed=st.integers(0, 1000))
def test_categories_count_each_category_and_its_whole_subtree(rows, tree_rows, extra, seed):
    """Direct counts (which add up without double counting) and subtree counts, paths, roots and
    depths; categories only items are filed in (``extra``) are rows too."""
    table = shuffled(enriched_table(rows), seed)
    got = analytics.categories(table, tree_table(tree_rows), np.array(extra, np.int64)).to_pylist()
    assert_rows_equal(got, brute_categories(as_dicts(rows), tree_rows, extra))
    assert sum(r["events"] for r in got) == sum(1 for r in as_dicts(rows) if r["categoryid"] is not None)


def test_category_roots_and_depths_agree_with_the_published_tree():
    tree_rows = [(1, None), (2, 1), (3, 2), (4, 3), (5, 99), (6, 5)]
    tree = tree_table(tree_rows)
    stats = {r["categoryid"]: r for r in analytics.categories(enriched_table([]), tree).to_pylist()}
    for row in tree.to_pylist():
        assert (stats[row["categoryid"]]["root_categoryid"], stats[row["categoryid"]]["depth"]) == (
            row["root_categoryid"], row["depth"])
    assert stats[99]["in_tree"] == 0 and stats[99]["depth"] == 0 and stats[99]["children"] == 1


def test_category_ancestors_refuses_a_cycle():
    with pytest.raises(ValueError, match="cycle"):
        analytics.category_ancestors(np.array([10, 11]), np.array([1, 0]))


# ------------------------------------------------------------------ per item

# The catalogue: each item's snapshots of categoryid / available (value None = not an integer),
# items 1-8, so some have events and no snapshot, some snapshots and no events.
snapshot_rows = st.lists(
    st.tuples(st.integers(1, 8), st.sampled_from(["categoryid", "available"]), st.integers(0, 50),
              st.one_of(st.none(), st.integers(0, 9), st.integers(60, 61))),
    max_size=25, unique_by=lambda r: (r[0], r[1], r[2]),
)


def snapshots_table(rows):
    rows = sorted(rows, key=lambda r: (r[1], r[0], r[2]))  # as PropertySnapshots sorts them
    return pa.table({"itemid": pa.array([r[0] for r in rows], pa.int64()),
                     "property": pa.array([r[1] for r in rows], pa.string()),
                     "timestamp_ms": pa.array([r[2] for r in rows], pa.int64()),
                     "value_int": pa.array([r[3] for r in rows], pa.int64())})


def history_table(runs):
    """item_property_history's itemid and property columns: ``runs[item]`` categoryid runs."""
    ids = [item for item, count in runs.items() for _ in range(count)]
    return pa.table({"itemid": pa.array(ids, pa.int64()), "property": pa.array(["categoryid"] * len(ids), pa.string())})


def brute_path(c, parent):
    chain = [c]
    while parent.get(chain[-1]) is not None:
        chain.append(parent[chain[-1]])
    return " › ".join(str(x) for x in reversed(chain))


def brute_items(records, tree_rows, snapshots, catalogue, runs):
    parent = dict(tree_rows)
    root = {c: r["root_categoryid"] for c, r in ((row["categoryid"], row) for row in tree_table(tree_rows).to_pylist())}

    def now(item, prop):
        mine = [r for r in snapshots if r[0] == item and r[1] == prop]
        return max(mine, key=lambda r: r[2])[3] if mine else None

    out = []
    for item in sorted({r["itemid"] for r in records} | set(catalogue)):
        mine = [r for r in records if r["itemid"] == item]
        kinds = [r["event"] for r in mine]

        def who(kind=None):
            return {r["visitorid"] for r in mine if kind is None or r["event"] == kind}

        purchased = sum(r["view_to_purchase"] or 0 for r in mine)
        category = now(item, "categoryid")
        missing = {p for p in parent.values() if p is not None and p not in parent}
        placed = category is not None and (category in parent or category in missing)
        path = brute_path(category, parent) if category is not None else None
        out.append({
            "itemid": item, "label": f"item in {path}" if path else "item, category unknown",
            "category_path": path, "categoryid": category,
            "root_categoryid": (root.get(category, category) if placed else None),
            "available": now(item, "available"),
            "views": kinds.count("view"), "addtocarts": kinds.count("addtocart"),
            "transactions": kinds.count("transaction"), "viewers": len(who("view")), "carters": len(who("addtocart")),
            "buyers": len(who("transaction")), "view_to_purchase_rate": rate(len(who("transaction")), len(who("view"))),
            "purchased_view_rate": rate(purchased, kinds.count("view")), "visitors": len(who()), "events": len(mine),
            "purchased_views": purchased,
            "views_while_unavailable": sum(1 for r in mine if r["event"] == "view" and r["available"] == 0),
            "category_changes": max(runs.get(item, 0) - 1, 0),
            "first_event_time": utc_text(min(r["timestamp_ms"] for r in mine)) if mine else None,
            "last_event_time": utc_text(max(r["timestamp_ms"] for r in mine)) if mine else None,
        })
    return out


@settings(max_examples=150, deadline=None)
@given(rows=events, tree_rows=trees, snapshots=snapshot_rows, catalogue=st.lists(st.integers(1, 12), max_size=6),
       runs=st.dictionaries(st.integers(1, 12), st.integers(1, 3), max_size=4), seed=st.integers(0, 1000),
       dictionary=st.booleans())
def test_items_match_brute_force(rows, tree_rows, snapshots, catalogue, runs, seed, dictionary):
    """Every item with events or in the catalogue, its counts, rates, category now and path,
    views while unavailable (point in time) and category changes (history runs - 1)."""
    table = shuffled(enriched_table(rows, dictionary=dictionary), seed)
    snapshot_table = snapshots_table(snapshots)
    _, values, valid = analytics.latest_snapshot_values(snapshot_table, "categoryid")
    categories = analytics.categories(table, tree_table(tree_rows), values[valid])
    got = analytics.items(table, categories, snapshot_table, np.array(catalogue, np.int64), history_table(runs))
    assert_rows_equal(got.to_pylist(), brute_items(as_dicts(rows), tree_rows, snapshots, catalogue, runs))


# ------------------------------------------------------------------ on real enriched events


def test_tables_from_the_real_enrichment_agree_with_sessions_and_funnel():
    rng = random.Random(7)
    loader_rows = [{"line": i + 2, "timestamp": T0 + rng.randrange(200 * HOUR), "visitorid": rng.randrange(30),
                    "event": rng.choice([0, 0, 0, 1, 2]), "itemid": rng.randrange(20), "transactionid": None}
                   for i in range(800)]
    for row in loader_rows:
        row["transactionid"] = 1000 + row["line"] if row["event"] == 2 else None
    enriched = enrich_events(pa.Table.from_pylist(loader_rows, schema=EVENTS.arrow_schema),
                             attribute_lookups(point_in_time_snapshots(ITEM_PROPERTIES.arrow_schema.empty_table())),
                             TREE_SCHEMA.empty_table())
    (top,) = analytics.overview(enriched).to_pylist()
    sessions = aggregates.sessions(enriched)
    assert top["sessions"] == sessions.num_rows
    assert top["converted_sessions"] == sum(sessions.column("converted").to_pylist())
    assert top["categories"] == 0
    items = analytics.items(enriched, analytics.categories(enriched, TREE_SCHEMA.empty_table()),
                            snapshots_table([]), np.zeros(0, np.int64), history_table({}))
    assert sum(items.column("events").to_pylist()) == enriched.num_rows
    profile = analytics.hour_of_day_profile(enriched)
    assert sum(profile.column("share_of_events").to_pylist()) == pytest.approx(1.0)


def test_empty_input_gives_empty_tables_and_a_full_day_profile():
    empty = enriched_table([])
    assert analytics.overview(empty).num_rows == 0
    categories = analytics.categories(empty, TREE_SCHEMA.empty_table())
    assert categories.num_rows == 0
    assert analytics.items(empty, categories, snapshots_table([]), np.zeros(0, np.int64),
                           history_table({})).num_rows == 0
    profile = analytics.hour_of_day_profile(empty).to_pylist()
    assert [r["hour_of_day"] for r in profile] == list(range(24))
    assert all(r["events"] == 0 and r["avg_events_per_day"] is None for r in profile)
