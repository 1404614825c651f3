"""Transforms against brute-force references written here, on adversarial generated data:
ties, duplicates, unsorted input, gaps in time, properties that start after the first event."""

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_pipeline import aggregates
from retail_pipeline.categories import TREE_SCHEMA, build_category_tree, first_rows
from retail_pipeline.enrich import attribute_lookups, enrich_events
from retail_pipeline.errors import CategoryCycleError
from retail_pipeline.events import drop_duplicate_events
from retail_pipeline.properties import latest_item_properties, point_in_time_snapshots
from retail_pipeline.records import CATEGORY_TREE, EVENT_TYPES, EVENTS, ITEM_PROPERTIES

HOUR = 3_600_000
T0 = 1_433_000_000_000

# Timestamps cluster so that ties, exact 30-minute gaps and empty hours all happen.
timestamps = st.one_of(
    st.integers(0, 6).map(lambda k: T0 + k * 1_800_000),
    st.integers(0, 6).map(lambda k: T0 + k * 1_800_000 + 1),
    st.integers(0, 400 * HOUR).map(lambda k: T0 + k),
)
event_rows = st.lists(
    st.tuples(timestamps, st.integers(1, 4), st.sampled_from(EVENT_TYPES), st.integers(1, 4)), max_size=60
)


def events_table(rows):
    """Loader-schema table; line numbers in list order (the list itself is unsorted)."""
    return pa.Table.from_pylist(
        [
            {"line": i + 2, "timestamp": t, "visitorid": v, "event": EVENT_TYPES.index(e), "itemid": item,
             "transactionid": 100 + i if e == "transaction" else None}
            for i, (t, v, e, item) in enumerate(rows)
        ],
        schema=EVENTS.arrow_schema,
    )


def utc_text(ms):
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def brute_force_visitor_columns(rows):
    """{line: (prev_event, seconds, session_id, view_to_purchase)} by walking each visitor's events."""
    out = {}
    records = [(t, v, e, item, i + 2) for i, (t, v, e, item) in enumerate(rows)]
    for visitor in {r[1] for r in records}:
        mine = sorted((r for r in records if r[1] == visitor), key=lambda r: (r[0], r[4]))
        session = 0
        for k, (t, _, e, item, line) in enumerate(mine):
            if k == 0:
                prev, seconds, session = None, None, 1
            else:
                prev, seconds = mine[k - 1][2], (t - mine[k - 1][0]) / 1000.0
                if t - mine[k - 1][0] > 1_800_000:
                    session += 1
            v2p = None
            if e == "view":
                v2p = int(any(o[2] == "transaction" and o[3] == item and o[0] >= t for o in mine))
            out[line] = (prev, seconds, session, v2p)
    return out


@settings(max_examples=200, deadline=None)
@given(rows=event_rows)
def test_per_visitor_columns_sessions_and_view_to_purchase(rows):
    empty_snapshots = point_in_time_snapshots(ITEM_PROPERTIES.arrow_schema.empty_table())
    enriched = enrich_events(events_table(rows), attribute_lookups(empty_snapshots), TREE_SCHEMA.empty_table()).to_pylist()
    got = {r["source_line"]: (r["prev_event"], r["seconds_since_prev_event"], r["session_id"], r["view_to_purchase"])
           for r in enriched}
    assert got == brute_force_visitor_columns(rows)
    for r in enriched:
        assert r["event_time"] == utc_text(r["timestamp_ms"])
        assert r["event_hour"] == r["event_time"][:13] + ":00:00"
        assert r["event_date"] == r["event_time"][:10]
        assert r["hour_of_day"] == int(r["event_time"][11:13])


@settings(max_examples=150, deadline=None)
@given(rows=event_rows)
def test_sessions_table_matches_brute_force(rows):
    empty_snapshots = point_in_time_snapshots(ITEM_PROPERTIES.arrow_schema.empty_table())
    enriched = enrich_events(events_table(rows), attribute_lookups(empty_snapshots), TREE_SCHEMA.empty_table())
    expected = {}
    for r in enriched.to_pylist():
        key = (r["visitorid"], r["session_id"])
        expected.setdefault(key, []).append(r)
    want = {}
    for key, evs in expected.items():
        times = [e["timestamp_ms"] for e in evs]
        kinds = [e["event"] for e in evs]
        want[key] = (utc_text(min(times)), utc_text(max(times)), (max(times) - min(times)) / 1000.0, len(evs),
                     kinds.count("view"), kinds.count("addtocart"), kinds.count("transaction"),
                     int("transaction" in kinds))
    # Shuffle the enriched rows: the sessions table must not depend on their order.
    shuffled = enriched.take(pa.array(list(reversed(range(enriched.num_rows))), pa.int64()))
    for table in (enriched, shuffled):
        got = {(r["visitorid"], r["session_id"]): (r["start_time"], r["end_time"], r["duration_s"], r["events"],
                                                    r["views"], r["addtocarts"], r["transactions"], r["converted"])
               for r in aggregates.sessions(table).to_pylist()}
        assert got == want


@settings(max_examples=150, deadline=None)
@given(rows=event_rows)
def test_hourly_counts_are_gap_filled_and_rolling_means_span_hours(rows):
    empty_snapshots = point_in_time_snapshots(ITEM_PROPERTIES.arrow_schema.empty_table())
    enriched = enrich_events(events_table(rows), attribute_lookups(empty_snapshots), TREE_SCHEMA.empty_table())
    counts = aggregates.event_type_counts(enriched).to_pylist()
    trend = aggregates.hourly_trend(aggregates.event_type_counts(enriched)).to_pylist()
    if not rows:
        assert counts == [] and trend == []
        return
    first, last = min(t for t, *_ in rows) // HOUR, max(t for t, *_ in rows) // HOUR
    hours = list(range(first, last + 1))
    assert [c["hour"] for c in counts] == [utc_text(h * HOUR)[:13] + ":00:00" for h in hours]
    totals = []
    for h, c in zip(hours, counts):
        in_hour = [e for t, _, e, _ in rows if t // HOUR == h]
        assert (c["view"], c["addtocart"], c["transaction"], c["total_events"]) == (
            in_hour.count("view"), in_hour.count("addtocart"), in_hour.count("transaction"), len(in_hour))
        totals.append(len(in_hour))
    for k, row in enumerate(trend):
        assert row["total_events"] == totals[k]
        for window, column in ((24, "rolling_avg_24h"), (168, "rolling_avg_168h")):
            span = [totals[j] for j in range(len(totals)) if hours[k] - window < hours[j] <= hours[k]]
            assert math.isclose(row[column], sum(span) / len(span), rel_tol=1e-12)


def test_trailing_means_start_with_fewer_hours():
    assert list(aggregates.trailing_means([2, 4, 6, 8], 2)) == [2.0, 3.0, 5.0, 7.0]


@settings(max_examples=150, deadline=None)
@given(rows=event_rows)
def test_daily_funnel_counts_distinct_visitors(rows):
    empty_snapshots = point_in_time_snapshots(ITEM_PROPERTIES.arrow_schema.empty_table())
    enriched = enrich_events(events_table(rows), attribute_lookups(empty_snapshots), TREE_SCHEMA.empty_table())
    got = {r["date"]: r for r in aggregates.daily_funnel(enriched).to_pylist()}
    assert set(got) == {utc_text(t)[:10] for t, *_ in rows}
    for date, r in got.items():
        day = [(v, e) for t, v, e, _ in rows if utc_text(t)[:10] == date]
        distinct = lambda kind: len({v for v, e in day if e == kind})  # noqa: E731
        assert r["visitors"] == len({v for v, _ in day})
        assert (r["viewers"], r["carters"], r["buyers"]) == (distinct("view"), distinct("addtocart"),
                                                             distinct("transaction"))
        for name, num, den in (("view_to_cart_rate", "carters", "viewers"),
                               ("cart_to_purchase_rate", "buyers", "carters"),
                               ("view_to_purchase_rate", "buyers", "viewers")):
            assert r[name] == (None if r[den] == 0 else r[num] / r[den])


def test_exact_duplicates_are_dropped_keeping_the_first():
    table = pa.Table.from_pylist(
        [{"line": 2, "timestamp": 5, "visitorid": 1, "event": 0, "itemid": 3, "transactionid": None},
         {"line": 3, "timestamp": 5, "visitorid": 1, "event": 0, "itemid": 3, "transactionid": None},
         {"line": 4, "timestamp": 5, "visitorid": 1, "event": 2, "itemid": 3, "transactionid": 9},
         {"line": 5, "timestamp": 5, "visitorid": 1, "event": 2, "itemid": 3, "transactionid": 8},
         {"line": 6, "timestamp": 5, "visitorid": 1, "event": 2, "itemid": 3, "transactionid": 9}],
        schema=EVENTS.arrow_schema,
    )
    kept, dropped = drop_duplicate_events(table)
    assert dropped == 2 and kept.column("line").to_pylist() == [2, 4, 5]


# --- Item properties: latest value and the value in effect at an event --------------------------

snapshot_rows = st.lists(
    st.tuples(st.integers(0, 5).map(lambda k: T0 + k * 7 * 24 * HOUR), st.integers(1, 4),
              st.sampled_from(["categoryid", "available", "888", "6"]),
              st.sampled_from(["1", "2", "0", "7.0", "n1338.000", "", "12 34"])),
    max_size=40,
)


def properties_table(rows):
    return pa.Table.from_pylist(
        [{"line": i + 2, "timestamp": t, "itemid": item, "property": p, "value": v}
         for i, (t, item, p, v) in enumerate(rows)],
        schema=ITEM_PROPERTIES.arrow_schema,
    )


def as_int(value):
    head, _, tail = value.partition(".")
    ok = head.lstrip("-").isdigit() and 1 <= len(head.lstrip("-")) <= 18 and (not _ or (tail and set(tail) == {"0"}))
    return int(head) if ok and head.count("-") <= 1 and not head.endswith("-") else None


@settings(max_examples=200, deadline=None)
@given(rows=snapshot_rows)
def test_latest_value_per_item_property(rows):
    got = {(r["itemid"], r["property"]): (r["value"], r["timestamp_ms"])
           for r in latest_item_properties(properties_table(rows)).to_pylist()}
    want = {}
    for t, item, p, v in rows:  # input order: a later row with the same timestamp wins
        if (item, p) not in want or t >= want[(item, p)][1]:
            want[(item, p)] = (v, t)
    assert got == want
    keys = [(r["itemid"], r["property"]) for r in latest_item_properties(properties_table(rows)).to_pylist()]
    assert keys == sorted(keys)


@settings(max_examples=100, deadline=None)
@given(rows=snapshot_rows, batch_rows=st.integers(1, 4))
def test_latest_values_in_batches_written_out_read_back_as_the_whole_table(tmp_path_factory, rows, batch_rows):
    """What a property-file load writes: the latest values taken and written a batch at a time."""
    from retail_pipeline.properties import LATEST_SCHEMA, latest_item_properties_in_batches
    from retail_pipeline.storage import read_arrow_file, write_arrow_batches

    table = properties_table(rows)
    halves = [table.slice(0, len(rows) // 2), table.slice(len(rows) // 2)]  # as loaded: in chunks
    chunked = pa.concat_tables(halves)
    path = tmp_path_factory.mktemp("latest") / "latest.arrow"
    write_arrow_batches(path, LATEST_SCHEMA, latest_item_properties_in_batches(chunked, batch_rows=batch_rows))
    assert read_arrow_file(path).to_pylist() == latest_item_properties(table).to_pylist()


@settings(max_examples=200, deadline=None)
@given(files=st.lists(snapshot_rows, min_size=1, max_size=3), parts=st.integers(1, 4), step=st.integers(1, 3))
def test_property_files_reduced_apart_and_merged_by_item_range_give_the_latest_of_all(files, parts, step):
    """What the pipeline does with several property files: each file's own latest values, cut
    into item ranges, merged range by range (files in name order), then the ranges in order."""
    from retail_pipeline.stages import item_properties_by_range

    per_file = [latest_item_properties(properties_table(rows)) for rows in files]
    ranges = list(item_properties_by_range(per_file, parts, samples=step))
    assert len(ranges) == parts
    merged = [r for part in ranges for r in part.to_pylist()]
    everything = latest_item_properties(properties_table([row for rows in files for row in rows])).to_pylist()
    assert merged == everything


@settings(max_examples=200, deadline=None)
@given(snaps=snapshot_rows, rows=event_rows)
def test_point_in_time_attributes(snaps, rows):
    snapshots = point_in_time_snapshots(properties_table(snaps))
    enriched = enrich_events(events_table(rows), attribute_lookups(snapshots), TREE_SCHEMA.empty_table()).to_pylist()
    for r in enriched:
        for prop in ("categoryid", "available"):
            mine = [(t, i, v) for i, (t, item, p, v) in enumerate(snaps) if item == r["itemid"] and p == prop]
            if not mine:
                want = None
            else:
                before = [s for s in mine if s[0] <= r["timestamp_ms"]]
                # latest at or before the event, else the earliest; ties: last in input order
                chosen = max(before) if before else max(s for s in mine if s[0] == min(m[0] for m in mine))
                want = as_int(chosen[2])
            assert r[prop] == want, (prop, r, mine)


# --- Category tree -------------------------------------------------------------------------------

def tree(rows):
    table = pa.Table.from_pylist([{"line": i + 2, "categoryid": c, "parentid": p} for i, (c, p) in enumerate(rows)],
                                 schema=CATEGORY_TREE.arrow_schema)
    unique, repeats = first_rows(table)
    return {r["categoryid"]: (r["parentid"], r["root_categoryid"], r["depth"])
            for r in build_category_tree(unique).to_pylist()}, repeats


def test_roots_depths_and_missing_parents():
    got, repeats = tree([(3, 2), (1, None), (2, 1), (5, 99), (6, 5), (3, 1)])
    assert got == {1: (None, 1, 0), 2: (1, 1, 1), 3: (2, 1, 2), 5: (99, 99, 1), 6: (5, 99, 2)}
    assert repeats == [7]


@pytest.mark.parametrize("rows, named", [([(1, 1)], "1 -> 1"), ([(1, 2), (2, 3), (3, 1), (4, 1)], "1 -> 2 -> 3 -> 1")])
def test_cycle_stops_with_the_categories_named(rows, named):
    with pytest.raises(CategoryCycleError, match=named):
        tree(rows)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2),
                               st.one_of(st.none(), st.integers(-1, 1))), max_size=40))
def test_duplicate_removal_matches_brute_force(rows):
    table = pa.Table.from_pylist(
        [{"line": i + 2, "timestamp": t, "visitorid": v, "event": e, "itemid": item, "transactionid": tx}
         for i, (t, v, e, item, tx) in enumerate(rows)],
        schema=EVENTS.arrow_schema,
    )
    kept, dropped = drop_duplicate_events(table)
    first_lines = [i + 2 for i, row in enumerate(rows) if row not in rows[:i]]
    assert kept.column("line").to_pylist() == first_lines
    assert dropped == len(rows) - len(first_lines)


DAY = 24 * HOUR
YEAR_10000 = 253_402_300_800_000  # 10000-01-01 00:00:00.000: the first time too wide for the fixed width
YEAR_0 = -62_167_219_200_000  # 0000-01-01 00:00:00.000: a millisecond earlier is year -1
# Event times around every edge of the fixed-width path: the data's years, 1970 (negative
# times), the 9999/10000 and 0/-1 year boundaries, and anywhere an 18-digit timestamp reaches.
event_times = st.one_of(
    st.integers(T0 - 400 * DAY, T0 + 400 * DAY),
    st.integers(-2 * DAY, 2 * DAY),
    st.integers(YEAR_10000 - 2 * DAY, YEAR_10000 + 2 * DAY),
    st.integers(YEAR_0 - 2 * DAY, YEAR_0 + 2 * DAY),
    st.sampled_from([YEAR_10000 - 1, YEAR_10000, YEAR_0 - 1, YEAR_0, -1, 0, 10**18 - 1, -(10**18 - 1)]),
    st.integers(-(10**18 - 1), 10**18 - 1),
)


@settings(max_examples=300, deadline=None)
@given(times=st.lists(event_times, max_size=40), in_range=st.lists(st.integers(T0, T0 + 400 * DAY), max_size=40),
       seed=st.randoms(use_true_random=False))
def test_event_times_are_formatted_as_the_reference_does_in_and_out_of_the_fixed_width(times, in_range, seed):
    """format_event_time writes every time in range on the fixed-width path and patches in the
    few that do not fit it (years before 0 or after 9999): the same text as the reference's
    one-by-one formatting, whatever the mix and order."""
    from reference import format_time
    from retail_pipeline.timefmt import format_event_time

    mixed = times + in_range
    seed.shuffle(mixed)
    formatted = format_event_time(np.array(mixed, dtype=np.int64))
    assert formatted.type == pa.string() and formatted.null_count == 0
    assert formatted.to_pylist() == [format_time(t) for t in mixed]
