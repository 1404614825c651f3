"""The analyst tables item_pairs, item_property_history, category_daily_funnel and
weekday_hour_profile against brute-force references written here (plain Python over dict rows).

The generated data is adversarial: sessions of exactly 50 and 51 distinct viewed items, repeated
views, ties in ``together``, items with more than 20 partners; property snapshots that tie on
time (within a file and across files), flip back and forth, repeat, or are not integers; NULL
root categories; dates across midnight, weekday boundaries and events outside the expected range.
"""

import datetime as dt
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_pipeline import aggregates
from retail_pipeline.funnels import category_daily_funnel
from retail_pipeline.item_pairs import item_pairs
from retail_pipeline.profiles import weekday_hour_profile
from retail_pipeline.property_history import item_property_history
from retail_pipeline.quality import EXPECTED_END_MS, EXPECTED_FIRST_MS
from retail_pipeline.records import EVENT_TYPES, ITEM_PROPERTIES

HOUR = 3_600_000
DAY = 24 * HOUR
MONDAY = 1_433_116_800_000  # 2015-06-01 00:00:00.000 UTC, a Monday
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def utc(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def utc_text(ms):
    if ms is None:
        return None
    return utc(ms).strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def event_column(names, as_dictionary):
    """The ``event`` column as events_enriched has it (dictionary) or as plain strings."""
    if as_dictionary:
        return pa.DictionaryArray.from_arrays(pa.array([EVENT_TYPES.index(n) for n in names], pa.int8()),
                                              pa.array(EVENT_TYPES))
    return pa.array(names, pa.string())


def enriched_table(rows, as_dictionary=True):
    """The columns of events_enriched these functions read, from dict rows (in list order)."""
    return pa.table({
        "timestamp_ms": pa.array([r["timestamp_ms"] for r in rows], pa.int64()),
        "visitorid": pa.array([r["visitorid"] for r in rows], pa.int64()),
        "event": event_column([r["event"] for r in rows], as_dictionary),
        "itemid": pa.array([r["itemid"] for r in rows], pa.int64()),
        "session_id": pa.array([r["session_id"] for r in rows], pa.int64()),
        "root_categoryid": pa.array([r["root_categoryid"] for r in rows], pa.int64()),
        "source_line": pa.array(range(2, len(rows) + 2), pa.int64()),
    })


# ------------------------------------------------------------------ item_pairs

ITEM_IDS = [3, 7, 10**12, 5, 10**12 + 1, 2] + list(range(100, 170))  # not in id order; some large


def brute_force_item_pairs(rows):
    viewed = defaultdict(set)
    for r in rows:
        if r["event"] == "view":
            viewed[(r["visitorid"], r["session_id"])].add(r["itemid"])
    eligible = [items for items in viewed.values() if len(items) <= 50]
    n = len(eligible)
    sessions_of = Counter(item for items in eligible for item in items)
    together = defaultdict(Counter)
    for items in eligible:
        for a in items:
            for b in items:
                if a != b:
                    together[a][b] += 1
    out = []
    for a in sorted(together):
        partners = sorted(((b, t) for b, t in together[a].items() if t >= 2), key=lambda p: (-p[1], p[0]))
        for rank, (b, t) in enumerate(partners[:20], start=1):
            out.append({"itemid": a, "rank": rank, "other_itemid": b, "together": t,
                        "lift": t * n / (sessions_of[a] * sessions_of[b])})
    return out


small_session = st.lists(st.integers(0, 12), min_size=1, max_size=6)  # few items: ties, together >= 2
wide_session = st.lists(st.integers(0, 40), min_size=15, max_size=45)  # many partners per item
exact_session = st.sampled_from([49, 50, 51]).flatmap(  # exactly 49/50/51 distinct items, some viewed twice
    lambda k: st.permutations(range(k + 10)).map(lambda p: p[:k] + p[: k // 5]))
session_spec = st.tuples(
    st.integers(1, 4),  # visitorid
    st.integers(1, 3),  # session_id (the same numbers recur for other visitors)
    st.one_of(small_session, small_session, wide_session, exact_session),
    st.lists(st.integers(0, 12), max_size=3),  # addtocart / transaction items: not views
)


def pair_rows(sessions, order, ids=ITEM_IDS):
    """Rows of (visitor, session, viewed item codes, other events' item codes), codes mapped by
    ``ids``, put in the order given by ``order(n)``."""
    rows = []
    for visitor, session, views, others in sessions:
        rows += [{"visitorid": visitor, "session_id": session, "event": "view", "itemid": ids[i]} for i in views]
        rows += [{"visitorid": visitor, "session_id": session, "event": EVENT_TYPES[1 + k % 2], "itemid": ids[i]}
                 for k, i in enumerate(others)]
    rows = [rows[k] for k in order(len(rows))]
    for k, r in enumerate(rows):
        r.update(timestamp_ms=MONDAY + k, root_categoryid=None)
    return rows


@settings(max_examples=150, deadline=None)
@given(sessions=st.lists(session_spec, max_size=12), seed=st.integers(0, 2**32 - 1), as_dictionary=st.booleans(),
       huge_visitorids=st.booleans())
def test_item_pairs_matches_brute_force(sessions, seed, as_dictionary, huge_visitorids):
    rows = pair_rows(sessions, np.random.default_rng(seed).permutation)
    if huge_visitorids:  # ids too far apart to combine with session and item by offsets
        for r in rows:
            r["visitorid"] = r["visitorid"] * 10**17
    got = item_pairs(enriched_table(rows, as_dictionary))
    assert got.schema.names == ["itemid", "rank", "other_itemid", "together", "lift"]
    assert [f.type for f in got.schema] == [pa.int64()] * 4 + [pa.float64()]
    assert got.to_pylist() == brute_force_item_pairs(rows)


def test_item_pairs_crawl_limit_ties_and_top_20():
    """A session of 50 distinct items counts, one of 51 does not; ties go to the smaller id."""
    fifty = list(range(100, 150))
    sessions = [(1, 1, fifty + fifty[:5], []), (2, 1, fifty, []),  # 50 distinct, twice: together 2 for all
                (3, 1, list(range(100, 151)), []), (3, 2, list(range(100, 151)), []),  # 51: crawls
                (4, 1, [100, 151], []), (4, 2, [100], [151])]  # together 1 (the second has no view of 151)
    rows = pair_rows(sessions, lambda n: range(n)[::-1], ids=range(1000))
    got = item_pairs(enriched_table(rows)).to_pylist()
    assert got == brute_force_item_pairs(rows)
    by_item = defaultdict(list)
    for r in got:
        by_item[r["itemid"]].append(r)
    assert set(by_item) == set(fifty)
    assert [r["other_itemid"] for r in by_item[100]] == list(range(101, 121))  # 49 tied partners: 20 smallest
    assert [r["rank"] for r in by_item[100]] == list(range(1, 21))
    n = 4  # eligible sessions: the two of 50 items, (4, 1) and (4, 2)
    assert by_item[100][0]["lift"] == 2 * n / (4 * 2)  # item 100: sessions (1,1), (2,1), (4,1), (4,2)
    assert by_item[101][0]["lift"] == 2 * n / (2 * 4)
    assert 151 not in by_item


# ------------------------------------------------------------------ item_property_history

T_SNAP = 1_433_000_000_000
snapshot_time = st.one_of(st.integers(0, 5).map(lambda k: T_SNAP + k * 7 * DAY),  # weekly: ties
                          st.sampled_from([0, -1, 1]))
snapshot_row = st.tuples(
    snapshot_time,
    st.integers(1, 4),  # itemid
    st.sampled_from(["categoryid", "available", "categoryid", "available", "790", "888"]),
    st.sampled_from(["0", "1", "1", "10", "10.0", "n1338.000", "", "1x"]),
)
# a file is one or two parts (each part's rows come with their own dictionary, as the loader's do)
property_file = st.lists(st.lists(snapshot_row, max_size=15), min_size=1, max_size=2)


def file_table(parts):
    tables = []
    for part in parts:
        table = pa.Table.from_pylist(
            [{"line": k + 2, "timestamp": t, "itemid": i, "property": p, "value": v}
             for k, (t, i, p, v) in enumerate(part)],
            schema=ITEM_PROPERTIES.arrow_schema,
        ).drop_columns(["line"])
        tables.append(table)
    return pa.concat_tables(tables)


def brute_force_history(files):
    snapshot = {}
    for parts in files:
        for part in parts:
            for t, item, prop, value in part:
                if prop in ("categoryid", "available"):
                    snapshot[(item, prop, t)] = value  # later in input order replaces
    series = defaultdict(list)
    for (item, prop, t), value in snapshot.items():
        series[(item, prop)].append((t, value))
    out = []
    for (item, prop) in sorted(series):
        runs = []
        for t, value in sorted(series[(item, prop)]):
            if not runs or runs[-1][1] != value:
                runs.append([t, value])
        for k, (start, value) in enumerate(runs):
            end = runs[k + 1][0] if k + 1 < len(runs) else None
            out.append({"itemid": item, "property": prop, "value": value, "valid_from_ms": start,
                        "valid_to_ms": end, "valid_from": utc_text(start), "valid_to": utc_text(end)})
    return out


@settings(max_examples=200, deadline=None)
@given(files=st.lists(property_file, min_size=1, max_size=3))
def test_item_property_history_matches_brute_force(files):
    got = item_property_history([file_table(parts) for parts in files])
    assert got.schema.names == ["itemid", "property", "value", "valid_from_ms", "valid_to_ms", "valid_from", "valid_to"]
    assert [f.type for f in got.schema] == [pa.int64(), pa.string(), pa.string(), pa.int64(), pa.int64(),
                                            pa.string(), pa.string()]
    assert got.to_pylist() == brute_force_history(files)


def test_item_property_history_cases():
    t1, t2, t3, t4 = (T_SNAP + k * 7 * DAY for k in range(4))
    first = [[(t1, 1, "categoryid", "5"), (t1, 1, "categoryid", "6"),  # same time: the later line wins
              (t2, 1, "categoryid", "5"), (t3, 1, "categoryid", "6"),  # 6 -> 5 -> 6: three rows
              (t1, 2, "available", "1"), (t2, 2, "available", "1"), (t3, 2, "available", "0")],
             [(t1, 3, "categoryid", "n1338.000"), (t4, 3, "888", "x")]]
    second = [[(t2, 1, "categoryid", "6"),  # replaces part1's 5 at t2 (a later file): one run 6
               (t4, 4, "available", "1")]]
    got = item_property_history([file_table(first), file_table(second)]).to_pylist()
    assert got == brute_force_history([first, second])
    assert [(r["itemid"], r["property"], r["value"], r["valid_from_ms"], r["valid_to_ms"]) for r in got] == [
        (1, "categoryid", "6", t1, None),
        (2, "available", "1", t1, t3), (2, "available", "0", t3, None),
        (3, "categoryid", "n1338.000", t1, None),
        (4, "available", "1", t4, None),
    ]
    assert item_property_history([file_table([[]])]).num_rows == 0


# ------------------------------------------------------------------ category_daily_funnel

MIDNIGHT = MONDAY + 3 * DAY
funnel_time = st.one_of(
    st.integers(-3, 3).map(lambda k: MIDNIGHT + k),  # either side of midnight
    st.integers(0, 3 * DAY).map(lambda k: MIDNIGHT - DAY + k),
    st.sampled_from([0, -1, EXPECTED_END_MS + 5]),  # outside the expected range: still counted
)
funnel_event = st.fixed_dictionaries({
    "timestamp_ms": funnel_time,
    "visitorid": st.integers(1, 5),
    "event": st.sampled_from(EVENT_TYPES),
    "itemid": st.integers(1, 4),
    "session_id": st.integers(1, 2),
    "root_categoryid": st.one_of(st.none(), st.sampled_from([0, 7, 10**12])),
})


def rate(numerator, denominator):
    return numerator / denominator if denominator else None


def brute_force_category_funnel(rows):
    groups = defaultdict(list)
    for r in rows:
        date = utc(r["timestamp_ms"]).strftime("%Y-%m-%d")
        groups[(date, r["root_categoryid"])].append(r)
    out = []
    for date, root in sorted(groups, key=lambda k: (k[0], k[1] is not None, k[1] or 0)):
        mine = groups[(date, root)]
        visitors = len({r["visitorid"] for r in mine})
        viewers, carters, buyers = (len({r["visitorid"] for r in mine if r["event"] == e}) for e in EVENT_TYPES)
        out.append({"date": date, "root_categoryid": root, "visitors": visitors, "viewers": viewers,
                    "carters": carters, "buyers": buyers, "view_to_cart_rate": rate(carters, viewers),
                    "cart_to_purchase_rate": rate(buyers, carters), "view_to_purchase_rate": rate(buyers, viewers)})
    return out


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(funnel_event, max_size=60), as_dictionary=st.booleans())
def test_category_daily_funnel_matches_brute_force(rows, as_dictionary):
    table = enriched_table(rows, as_dictionary)
    got = category_daily_funnel(table)
    assert got.schema.names == ["date", "root_categoryid", "visitors", "viewers", "carters", "buyers",
                                "view_to_cart_rate", "cart_to_purchase_rate", "view_to_purchase_rate"]
    assert got.to_pylist() == brute_force_category_funnel(rows)
    # with every event in one root, it is daily_funnel plus the root column
    one_root = table.set_column(table.schema.get_field_index("root_categoryid"), "root_categoryid",
                                pa.array([7] * len(rows), pa.int64()))
    assert category_daily_funnel(one_root).drop_columns(["root_categoryid"]).equals(aggregates.daily_funnel(one_root))


# ------------------------------------------------------------------ weekday_hour_profile

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
profile_time = st.one_of(
    st.sampled_from([MONDAY - 1, MONDAY, MONDAY + 1, MONDAY + HOUR - 1, MONDAY + HOUR]),  # Sunday 23:59:59.999 | Monday
    st.integers(-10 * DAY, 10 * DAY).map(lambda k: MONDAY + k),
    st.sampled_from([0, EXPECTED_FIRST_MS - 1, EXPECTED_END_MS, EXPECTED_END_MS + DAY]),  # left out
    st.sampled_from([EXPECTED_FIRST_MS, EXPECTED_FIRST_MS + 1]),  # counted (a Saturday, 2000-01-01)
)
profile_event = st.fixed_dictionaries({
    "timestamp_ms": profile_time,
    "visitorid": st.integers(1, 5),
    "event": st.sampled_from(EVENT_TYPES),
    "itemid": st.just(1),
    "session_id": st.just(1),
    "root_categoryid": st.none(),
})


def brute_force_profile(rows):
    kept = [r for r in rows if EXPECTED_FIRST_MS <= r["timestamp_ms"] < EXPECTED_END_MS]
    days = Counter()
    if kept:
        first = utc(min(r["timestamp_ms"] for r in kept)).date()
        last = utc(max(r["timestamp_ms"] for r in kept)).date()
        span = (last - first).days + 1
        for w in range(7):  # dates with weekday w+1: whole weeks, plus the remainder's
            days[w + 1] = span // 7 + sum(1 for k in range(span % 7) if (first + dt.timedelta(k)).isoweekday() == w + 1)
    slots = defaultdict(list)
    for r in kept:
        moment = utc(r["timestamp_ms"])
        slots[(moment.isoweekday(), moment.hour)].append((moment.date(), r))
    out = []
    for weekday in range(1, 8):
        for hour in range(24):
            mine = slots[(weekday, hour)]
            counts = {"events": len(mine)}
            for name, e in zip(("views", "addtocarts", "transactions"), EVENT_TYPES):
                counts[name] = sum(1 for _, r in mine if r["event"] == e)
            counts["visitors"] = len({r["visitorid"] for _, r in mine})
            counts["buyers"] = len({r["visitorid"] for _, r in mine if r["event"] == "transaction"})
            per_date_visitors = len({(d, r["visitorid"]) for d, r in mine})
            per_date_buyers = len({(d, r["visitorid"]) for d, r in mine if r["event"] == "transaction"})
            n = days[weekday]
            row = {"weekday": weekday, "weekday_name": WEEKDAYS[weekday - 1], "hour_of_day": hour, "days": n, **counts}
            for name in ("events", "views", "addtocarts", "transactions"):
                row[f"avg_{name}_per_day"] = rate(counts[name], n)
            row["avg_visitors_per_day"] = rate(per_date_visitors, n)
            row["avg_buyers_per_day"] = rate(per_date_buyers, n)
            out.append(row)
    return out


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(profile_event, max_size=50), as_dictionary=st.booleans())
def test_weekday_hour_profile_matches_brute_force(rows, as_dictionary):
    got = weekday_hour_profile(enriched_table(rows, as_dictionary))
    assert got.num_rows == 168
    assert got.to_pylist() == brute_force_profile(rows)


def test_weekday_hour_profile_sunday_midnight():
    rows = [{"timestamp_ms": t, "visitorid": 1, "event": "view", "itemid": 1, "session_id": 1, "root_categoryid": None}
            for t in (MONDAY - 1, MONDAY, 0, EXPECTED_END_MS)]
    got = {(r["weekday"], r["hour_of_day"]): r for r in weekday_hour_profile(enriched_table(rows)).to_pylist()}
    assert got[(7, 23)]["events"] == 1 and got[(7, 23)]["weekday_name"] == "Sunday"
    assert got[(1, 0)]["events"] == 1 and got[(1, 0)]["weekday_name"] == "Monday"
    assert sum(r["events"] for r in got.values()) == 2  # 1970 and 2100 left out
    assert got[(7, 23)]["days"] == got[(1, 0)]["days"] == 1 and got[(3, 0)]["days"] == 0
    assert got[(3, 0)]["avg_events_per_day"] is None
