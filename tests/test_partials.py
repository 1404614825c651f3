"""Every analysis table computed from per-shard partial results equals the table computed from
all the events at once (the whole-data functions, themselves checked against brute force in
test_analytics, test_item_tables and test_visitor_tables), row for row and bit for bit.

The events are adversarial: ties on time, rows equal but for their source line, hour, day and
week boundaries, times outside the expected range and years past 9999, NULL categories, a crawl
session, rows in no particular order. They are split into k visitor shards at random (k from 1
to more shards than visitors, so some shards are empty), and each shard's partials go through
an Arrow IPC file as the pipeline's do.
"""

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_pipeline import aggregates, analytics, carts, funnels, item_pairs, profiles, purchases, visitors
from retail_pipeline.quality import EXPECTED_END_MS, EXPECTED_FIRST_MS
from retail_pipeline.records import EVENT_TYPES
from test_analytics import snapshots_table, tree_table, trees

HOUR, DAY = 3_600_000, 86_400_000
MONDAY = 1_433_116_800_000  # 2015-06-01 00:00 UTC, a Monday
GAP = 30 * 60 * 1000

timestamps = st.one_of(
    st.sampled_from([MONDAY - 1, MONDAY, MONDAY + 1, MONDAY + 7 * DAY - 1, MONDAY + 7 * DAY, MONDAY + HOUR - 1]),
    st.integers(-3, 40).map(lambda k: MONDAY + k * DAY // 2),
    st.integers(0, 30 * DAY).map(lambda k: MONDAY + k),
    st.sampled_from([0, -1, -5 * DAY, EXPECTED_FIRST_MS - 1, EXPECTED_FIRST_MS, EXPECTED_END_MS - 1, EXPECTED_END_MS,
                     253_402_300_800_000]),  # outside the expected range, and year 10000
)
event = st.tuples(
    timestamps,
    st.one_of(st.integers(1, 6), st.just(2**62)),  # visitorid
    st.sampled_from(EVENT_TYPES),
    st.one_of(st.integers(1, 8), st.just(2**40)),  # itemid
    st.sampled_from([None, 100, 101]),  # transactionid
    st.integers(0, 3),  # session_id
    st.booleans(),  # view_to_purchase, on views
    st.one_of(st.none(), st.integers(0, 9), st.integers(50, 51)),  # categoryid: tree ids, unknown ids, NULL
    st.one_of(st.none(), st.integers(0, 3)),  # root_categoryid
    st.one_of(st.none(), st.integers(0, 1)),  # available
)
# (visitorid, session_id, items viewed, hour): items 1-8 so that pairs often recur in sessions
baskets = st.lists(st.tuples(st.integers(1, 6), st.integers(0, 3), st.lists(st.integers(1, 8), min_size=2, max_size=6),
                             st.integers(0, 48)), max_size=12)
snapshot_rows = st.lists(
    st.tuples(st.integers(1, 10), st.sampled_from(["categoryid", "available"]), st.integers(0, 50),
              st.one_of(st.none(), st.integers(0, 9), st.integers(60, 61))),
    max_size=20, unique_by=lambda r: (r[0], r[1], r[2]),
)

COLUMNS = ("timestamp_ms", "visitorid", "event", "itemid", "transactionid", "session_id", "view_to_purchase",
           "categoryid", "root_categoryid", "available")
TYPES = (pa.int64(), pa.int64(), pa.string(), pa.int64(), pa.int64(), pa.int64(), pa.int8(), pa.int64(), pa.int64(),
         pa.int64())


@st.composite
def split_events(draw):
    """(all the events as events_enriched's columns, in no order; the same split into k visitor shards)."""
    rows = draw(st.lists(event, max_size=60))
    if rows:  # rows equal to others in everything but source_line
        rows += [rows[i] for i in draw(st.lists(st.integers(0, len(rows) - 1), max_size=8))]
    for visitor, session, items, at in draw(baskets):  # sessions viewing several items, so pairs repeat
        rows += [(MONDAY + at * HOUR + k, visitor, "view", item, None, session, False, None, None, None)
                 for k, item in enumerate(items)]
    crawl = draw(st.one_of(st.none(), st.integers(49, 52)))
    if crawl is not None:  # one session of `crawl` distinct viewed items, some viewed twice
        start = MONDAY + draw(st.integers(0, 10)) * DAY
        rows += [(start + k * 1000, 7, "view", 1000 + k % crawl, None, 1, False, 3, 1, 1) for k in range(crawl + 3)]
    rows = draw(st.permutations(rows))
    lines = draw(st.permutations(list(range(2, len(rows) + 2))))
    columns = {name: pa.array([(int(r[k]) if r[2] == "view" else None) if name == "view_to_purchase" else r[k]
                               for r in rows], kind) for k, (name, kind) in enumerate(zip(COLUMNS, TYPES))}
    columns["source_line"] = pa.array(lines, pa.int64())
    table = pa.table(columns)
    if draw(st.booleans()):
        table = table.set_column(2, "event", table.column("event").dictionary_encode())
    ids = sorted(set(table.column("visitorid").to_pylist()))
    k = draw(st.integers(1, len(ids) + 2))
    shard_of = dict(zip(ids, draw(st.lists(st.integers(0, k - 1), min_size=len(ids), max_size=len(ids)))))
    visitor = table.column("visitorid").to_pylist()
    shards = [table.filter(pa.array([shard_of[v] == s for v in visitor], pa.bool_())) for s in range(k)]
    return table, shards


def through_file(table: pa.Table) -> pa.Table:
    """``table`` written to an Arrow IPC file and read back, as the pipeline hands partials over."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=3)  # several chunks, as big files have
    return pa.ipc.open_file(sink.getvalue()).read_all()


def partials(partial, shards, *args):
    """The partial of each shard; for partials of several tables, {name: [one per shard]}."""
    results = [partial(shard, *args) for shard in shards]
    if isinstance(results[0], dict):
        return {name: [through_file(r[name]) for r in results] for name in results[0]}
    return [through_file(r) for r in results]


def assert_same(got: pa.Table, want: pa.Table):
    assert got.schema == want.schema
    assert got.to_pylist() == want.to_pylist()


EVENT_TABLES = {
    "event_type_counts": (aggregates.event_type_counts, aggregates.event_type_counts_partial,
                          aggregates.event_type_counts_combine),
    "daily_funnel": (aggregates.daily_funnel, aggregates.daily_funnel_partial, aggregates.daily_funnel_combine),
    "overview": (analytics.overview, analytics.overview_partial, analytics.overview_combine),
    "hour_of_day_profile": (analytics.hour_of_day_profile, analytics.hour_of_day_profile_partial,
                            analytics.hour_of_day_profile_combine),
    "weekday_hour_profile": (profiles.weekday_hour_profile, profiles.weekday_hour_profile_partial,
                             profiles.weekday_hour_profile_combine),
    "category_daily_funnel": (funnels.category_daily_funnel, funnels.category_daily_funnel_partial,
                              funnels.category_daily_funnel_combine),
    "cohort_retention": (visitors.cohort_retention, visitors.cohort_retention_partial,
                         visitors.cohort_retention_combine),
    "purchase_timing": (purchases.purchase_timing, purchases.purchase_timing_partial,
                        purchases.purchase_timing_combine),
}


@settings(max_examples=200, deadline=None)
@given(data=split_events())
def test_tables_of_the_events_combine_from_shards(data):
    """The tables computed from the events alone, and purchase_timing_summary from the combined
    purchase_timing."""
    table, shards = data
    for name, (whole, partial, combine) in EVENT_TABLES.items():
        assert_same(combine(partials(partial, shards)), whole(table)), name
    timing = purchases.purchase_timing_combine(partials(purchases.purchase_timing_partial, shards))
    assert_same(purchases.purchase_timing_summary(timing),
                purchases.purchase_timing_summary(purchases.purchase_timing(table)))


@settings(max_examples=200, deadline=None)
@given(data=split_events())
def test_daily_cart_abandonment_combines_from_the_shards_sessions(data):
    table, shards = data
    want = carts.daily_cart_abandonment(aggregates.sessions(table))
    got = carts.daily_cart_abandonment_combine(
        [through_file(carts.daily_cart_abandonment_partial(aggregates.sessions(shard))) for shard in shards])
    assert_same(got, want)


@settings(max_examples=200, deadline=None)
@given(data=split_events(), tree_rows=trees, snapshots=snapshot_rows,
       catalogue=st.lists(st.integers(1, 12), max_size=6),
       runs=st.dictionaries(st.integers(1, 12), st.integers(1, 3), max_size=4))
def test_categories_and_items_combine_from_shards(data, tree_rows, snapshots, catalogue, runs):
    table, shards = data
    tree, snapshot_table = tree_table(tree_rows), snapshots_table(snapshots)
    history = pa.table({"itemid": pa.array([i for i, n in runs.items() for _ in range(n)], pa.int64()),
                        "property": pa.array(["categoryid"] * sum(runs.values()), pa.string())})
    _, values, valid = analytics.latest_snapshot_values(snapshot_table, "categoryid")
    want = analytics.categories(table, tree, values[valid])
    parts = partials(analytics.categories_partial, shards, tree)
    got = analytics.categories_combine(parts["categories"], parts["category_items"], tree, values[valid])
    assert_same(got, want)
    catalogue = np.array(catalogue, np.int64)
    assert_same(analytics.items_combine(partials(analytics.items_partial, shards), got,
                                        analytics.ItemCatalogue.of(snapshot_table, history), catalogue),
                analytics.items(table, want, snapshot_table, catalogue, history))


@settings(max_examples=200, deadline=None)
@given(data=split_events(), rows=st.sampled_from([1, 2, 5, 40, item_pairs.COMBINE_ROWS]))
def test_item_pairs_combine_from_shards_in_ranges_of_items(data, rows):
    """Whatever the number of pair rows combined at a time (one range of items, or many)."""
    table, shards = data
    parts = partials(item_pairs.item_pairs_partial, shards)
    got = item_pairs.item_pairs_combine(parts["item_pairs"], parts["item_view_sessions"], rows=rows)
    assert_same(got, item_pairs.item_pairs(table))


def test_item_pairs_top_partners_cut_across_ranges():
    """An item with more than 20 partners, its pairs split over shards and ranges: the best 20
    of all, ties to the smaller itemid, whichever range each partner's pair is counted in."""
    rows = []
    for visitor in range(1, 31):  # visitor v views item 100 and items 1..v in two sessions each
        for session in (1, 2):
            rows += [(MONDAY + visitor * DAY + session * DAY // 2 + k, visitor, "view", item, None, session, 0,
                      None, None, None) for k, item in enumerate([100] + list(range(1, min(visitor, 40) + 1)))]
    columns = {name: pa.array([r[k] for r in rows], kind) for k, (name, kind) in enumerate(zip(COLUMNS, TYPES))}
    columns["source_line"] = pa.array(range(2, len(rows) + 2), pa.int64())
    table = pa.table(columns)
    want = item_pairs.item_pairs(table)
    assert want.num_rows > 20 and 20 in want.column("rank").to_pylist()
    for k in (1, 3, 7):
        visitor = np.array(table.column("visitorid").to_pylist())
        shards = [table.filter(pa.array(visitor % k == s)) for s in range(k)]
        parts = partials(item_pairs.item_pairs_partial, shards)
        for rows_at_a_time in (1, 10, 100, item_pairs.COMBINE_ROWS):
            got = item_pairs.item_pairs_combine(parts["item_pairs"], parts["item_view_sessions"], rows=rows_at_a_time)
            assert_same(got, want)


def test_item_ranges_cover_every_item_with_bounded_rows():
    rng = np.random.default_rng(5)
    firsts = [np.sort(rng.integers(0, 1000, size)) for size in (0, 500, 2000, 3000)]
    ranges = item_pairs._item_ranges([pa.table({"itemid": pa.array(f, pa.int64())}) for f in firsts], 400)
    assert ranges[0][0] is None and ranges[-1][1] is None
    assert all(high == low for (_, high), (low, _) in zip(ranges, ranges[1:]))
    for low, high in ranges:
        inside = sum(int(((f >= (low if low is not None else -1)) & (f < (high if high is not None else 10**9))).sum())
                     for f in firsts)
        assert inside <= 400
