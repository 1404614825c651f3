"""The visitor-side analyst tables (sessions' cart columns, daily_cart_abandonment, visitors,
cohort_retention, purchase_timing, purchase_timing_summary) against brute-force references
written here as plain loops over dict rows, on adversarial generated data: ties in time (broken
by source_line), rows repeated in everything but source_line, unsorted input, carts bought in the
same and in later sessions (or only another item later), purchases without a view, views after
the purchase, first events on the Sunday/Monday boundary, NULL transactionids, crawl sessions,
events outside the expected range of times. Then a few examples with hand-checked numbers."""

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_pipeline import aggregates
from retail_pipeline.carts import daily_cart_abandonment
from retail_pipeline.purchases import purchase_timing, purchase_timing_summary
from retail_pipeline.quality import EXPECTED_END_MS, EXPECTED_FIRST_MS
from retail_pipeline.visitors import cohort_retention, visitors

DAY = 86_400_000
GAP = 1_800_000
MONDAY = 1_433_116_800_000  # 2015-06-01 00:00:00.000 UTC, a Monday
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

SESSION_COLUMNS = ["visitorid", "session_id", "start_time", "end_time", "duration_s", "events", "views", "addtocarts",
                   "transactions", "converted", "cart_items", "abandoned_cart", "recovered"]
DAILY_COLUMNS = ["date", "cart_sessions", "abandoned_sessions", "abandonment_rate", "recovered_sessions",
                 "recovery_rate"]
VISITOR_COLUMNS = ["visitorid", "label", "segment", "first_event_time", "last_event_time", "events", "views",
                   "addtocarts", "transactions", "sessions", "orders", "suspected_bot"]
COHORT_COLUMNS = ["cohort_week", "week_number", "visitors", "active_visitors", "buyers", "retention_rate",
                  "purchase_rate"]
TIMING_COLUMNS = ["visitorid", "itemid", "transactionid", "purchase_time", "first_view_time", "first_cart_time",
                  "seconds_view_to_purchase", "seconds_cart_to_purchase", "sessions_to_purchase", "root_categoryid",
                  "source_line"]
SUMMARY_COLUMNS = ["scope", "root_categoryid", "measure", "purchases", "p25_s", "median_s", "p75_s", "p90_s"]


def utc_text(ms):
    moment = EPOCH + dt.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def utc_date(ms):
    return (EPOCH + dt.timedelta(milliseconds=ms)).date()


def in_range(ms):
    return EXPECTED_FIRST_MS <= ms < EXPECTED_END_MS


def rate(numerator, denominator):
    return numerator / denominator if denominator else None


# ------------------------------------------------------------------ building events_enriched


def enriched_table(rows, *, plain_event=False):
    """``rows``: dicts with timestamp_ms, visitorid, event, itemid, transactionid, root_categoryid,
    source_line, in any order. Adds event_time and session_id (per visitor, in (time, line) order,
    +1 after each gap of more than 30 minutes) and keeps the given row order."""
    rows = [dict(r) for r in rows]
    by_visitor = {}
    for r in rows:
        by_visitor.setdefault(r["visitorid"], []).append(r)
    for mine in by_visitor.values():
        mine.sort(key=lambda r: (r["timestamp_ms"], r["source_line"]))
        session = 1
        for k, r in enumerate(mine):
            if k and r["timestamp_ms"] - mine[k - 1]["timestamp_ms"] > GAP:
                session += 1
            r["session_id"] = session
    for r in rows:
        r["event_time"] = utc_text(r["timestamp_ms"])
    event_type = pa.string() if plain_event else pa.dictionary(pa.int8(), pa.string())
    schema = pa.schema([("timestamp_ms", pa.int64()), ("visitorid", pa.int64()), ("event", event_type),
                        ("itemid", pa.int64()), ("transactionid", pa.int64()), ("event_time", pa.string()),
                        ("session_id", pa.int64()), ("root_categoryid", pa.int64()), ("source_line", pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema), rows


OUTSIDE = [0, -1, EXPECTED_FIRST_MS - 1, EXPECTED_END_MS, EXPECTED_END_MS + 3 * DAY, 253_402_300_799_999]
timestamps = st.one_of(
    st.sampled_from([MONDAY - 1, MONDAY, MONDAY + 1, MONDAY + 7 * DAY - 1, MONDAY + 7 * DAY, MONDAY - 7 * DAY]),
    st.integers(-4, 6).map(lambda k: MONDAY + k * GAP),
    st.integers(-4, 6).map(lambda k: MONDAY + k * GAP + 1),
    st.integers(-20 * DAY, 40 * DAY).map(lambda k: MONDAY + k),
    st.integers(0, 3).map(lambda k: MONDAY + k * 3 * GAP + 1),
    st.sampled_from(OUTSIDE + [EXPECTED_FIRST_MS]),
)
event_tuples = st.tuples(
    timestamps,
    st.integers(1, 5),  # visitorid
    st.sampled_from(["view", "view", "addtocart", "transaction"]),
    st.integers(1, 3),  # itemid
    st.sampled_from([None, 100, 101, 102]),  # transactionid (also on views: counted nowhere)
    st.sampled_from([None, 7, 8]),  # root_categoryid
)


@st.composite
def enriched_inputs(draw):
    base = draw(st.lists(event_tuples, max_size=45))
    if base:  # rows equal to others in everything but source_line
        base += [base[i] for i in draw(st.lists(st.integers(0, len(base) - 1), max_size=8))]
    crawl = draw(st.one_of(st.none(), st.integers(49, 52)))
    if crawl is not None:  # one session of `crawl` distinct viewed items (some viewed twice), then a cart
        start = MONDAY + draw(st.integers(0, 10)) * DAY
        base += [(start + k * 1000, 9, "view", 1000 + k % crawl, None, None) for k in range(crawl + 3)]
        base += [(start + 2 * DAY, 9, "addtocart", 1, None, 7)]
    base = draw(st.permutations(base))
    lines = draw(st.permutations(list(range(2, len(base) + 2))))
    rows = [{"timestamp_ms": t, "visitorid": v, "event": e, "itemid": i, "transactionid": x, "root_categoryid": c,
             "source_line": line} for (t, v, e, i, x, c), line in zip(base, lines)]
    return enriched_table(rows, plain_event=draw(st.booleans()))


# ------------------------------------------------------------------ brute-force references


def group(rows, *keys):
    out = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


def ref_sessions(rows):
    out = []
    for (visitor, session), evs in sorted(group(rows, "visitorid", "session_id").items()):
        times = [e["timestamp_ms"] for e in evs]
        kinds = [e["event"] for e in evs]
        cart = {e["itemid"] for e in evs if e["event"] == "addtocart"}
        abandoned = None if not cart else int("transaction" not in kinds)
        recovered = None
        if abandoned == 1:
            recovered = int(any(o["visitorid"] == visitor and o["session_id"] > session and o["event"] == "transaction"
                                and o["itemid"] in cart for o in rows))
        out.append({"visitorid": visitor, "session_id": session, "start_time": utc_text(min(times)),
                    "end_time": utc_text(max(times)), "duration_s": (max(times) - min(times)) / 1000.0,
                    "events": len(evs), "views": kinds.count("view"), "addtocarts": kinds.count("addtocart"),
                    "transactions": kinds.count("transaction"), "converted": int("transaction" in kinds),
                    "cart_items": len(cart), "abandoned_cart": abandoned, "recovered": recovered})
    return out


def ref_daily_cart_abandonment(session_rows):
    per_date = {}
    for s in session_rows:
        if s["addtocarts"] == 0:
            continue
        counts = per_date.setdefault(s["start_time"][:10], [0, 0, 0])
        counts[0] += 1
        counts[1] += s["abandoned_cart"]
        counts[2] += s["recovered"] or 0
    return [{"date": date, "cart_sessions": c, "abandoned_sessions": a, "abandonment_rate": rate(a, c),
             "recovered_sessions": r, "recovery_rate": rate(r, a)} for date, (c, a, r) in sorted(per_date.items())]


def plural(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def ref_visitors(rows):
    out = []
    for (visitor,), evs in sorted(group(rows, "visitorid").items()):
        kinds = [e["event"] for e in evs]
        views, carts, buys = kinds.count("view"), kinds.count("addtocart"), kinds.count("transaction")
        segment = "buyer" if buys else "carter" if carts else "browser" if len(evs) > 1 else "bounce"
        sessions = max(e["session_id"] for e in evs)
        orders = len({e["transactionid"] for e in evs if e["event"] == "transaction" and e["transactionid"] is not None})
        viewed = group([e for e in evs if e["event"] == "view"], "session_id")
        bot = int(any(len({e["itemid"] for e in v}) > 50 for v in viewed.values()))
        label = f"{segment} · {plural(sessions, 'session')}" + (f" · {plural(orders, 'order')}" if orders else "")
        times = [e["timestamp_ms"] for e in evs]
        out.append({"visitorid": visitor, "label": label, "segment": segment, "first_event_time": utc_text(min(times)),
                    "last_event_time": utc_text(max(times)), "events": len(evs), "views": views,
                    "addtocarts": carts, "transactions": buys, "sessions": sessions, "orders": orders,
                    "suspected_bot": bot})
    return out


def monday_of(ms):
    date = utc_date(ms)
    return date - dt.timedelta(days=date.weekday())


def ref_cohort_retention(rows):
    kept = [r for r in rows if in_range(r["timestamp_ms"])]
    if not kept:
        return []
    last_week = max(monday_of(r["timestamp_ms"]) for r in kept)
    active, bought = {}, {}
    for r in kept:
        active.setdefault(r["visitorid"], set()).add(monday_of(r["timestamp_ms"]))
        if r["event"] == "transaction":
            bought.setdefault(r["visitorid"], set()).add(monday_of(r["timestamp_ms"]))
    cohorts = {}
    for visitor, weeks in active.items():
        cohorts.setdefault(min(weeks), []).append(visitor)
    out = []
    for cohort in sorted(cohorts):
        members = cohorts[cohort]
        for number in range((last_week - cohort).days // 7 + 1):
            week = cohort + dt.timedelta(days=7 * number)
            a = sum(week in active[v] for v in members)
            b = sum(week in bought.get(v, ()) for v in members)
            out.append({"cohort_week": cohort.isoformat(), "week_number": number, "visitors": len(members),
                        "active_visitors": a, "buyers": b, "retention_rate": a / len(members),
                        "purchase_rate": b / len(members)})
    return out


def ref_purchase_timing(rows):
    out = []
    buys = sorted((r for r in rows if r["event"] == "transaction"),
                  key=lambda r: (r["visitorid"], r["timestamp_ms"], r["source_line"]))
    for p in buys:
        def earliest(kind):
            found = [r for r in rows if r["visitorid"] == p["visitorid"] and r["itemid"] == p["itemid"]
                     and r["event"] == kind and r["timestamp_ms"] <= p["timestamp_ms"]]
            return min(found, key=lambda r: (r["timestamp_ms"], r["source_line"])) if found else None

        view, cart = earliest("view"), earliest("addtocart")
        out.append({
            "visitorid": p["visitorid"], "itemid": p["itemid"], "transactionid": p["transactionid"],
            "purchase_time": utc_text(p["timestamp_ms"]),
            "first_view_time": utc_text(view["timestamp_ms"]) if view else None,
            "first_cart_time": utc_text(cart["timestamp_ms"]) if cart else None,
            "seconds_view_to_purchase": (p["timestamp_ms"] - view["timestamp_ms"]) / 1000.0 if view else None,
            "seconds_cart_to_purchase": (p["timestamp_ms"] - cart["timestamp_ms"]) / 1000.0 if cart else None,
            "sessions_to_purchase": p["session_id"] - view["session_id"] + 1 if view else None,
            "root_categoryid": p["root_categoryid"], "source_line": p["source_line"],
        })
    return out


def nearest_rank(values, p):
    values = sorted(values)
    k = max(1, -(-p * len(values) // 100))  # ceil(p * n / 100) in integers
    return values[k - 1]


def ref_purchase_timing_summary(timing_rows):
    groups = {}
    for r in timing_rows:
        scope = ("all", None)
        own = ("root category", r["root_categoryid"]) if r["root_categoryid"] is not None else ("no category", None)
        for measure in ("view_to_purchase", "cart_to_purchase"):
            value = r[f"seconds_{measure}"]
            if value is not None:
                for s in (scope, own):
                    groups.setdefault((*s, measure), []).append(value)
    scope_rank = {"all": 0, "root category": 1, "no category": 2}
    measure_rank = {"view_to_purchase": 0, "cart_to_purchase": 1}
    out = []
    for (scope, root, measure) in sorted(groups, key=lambda g: (scope_rank[g[0]], g[1] or 0, measure_rank[g[2]])):
        values = groups[(scope, root, measure)]
        out.append({"scope": scope, "root_categoryid": root, "measure": measure, "purchases": len(values),
                    "p25_s": nearest_rank(values, 25), "median_s": nearest_rank(values, 50),
                    "p75_s": nearest_rank(values, 75), "p90_s": nearest_rank(values, 90)})
    return out


def check_schema(table, columns, integers=(), reals=()):
    assert table.column_names == columns
    for field in table.schema:
        expected = pa.int64() if field.name in integers else pa.float64() if field.name in reals else pa.string()
        assert field.type == expected, field.name


# ------------------------------------------------------------------ properties


@settings(max_examples=200, deadline=None)
@given(data=enriched_inputs())
def test_sessions_and_daily_cart_abandonment_match_brute_force(data):
    table, rows = data
    got = aggregates.sessions(table)
    assert got.column_names == SESSION_COLUMNS
    want = ref_sessions(rows)
    assert got.to_pylist() == want
    daily = daily_cart_abandonment(got)
    check_schema(daily, DAILY_COLUMNS, integers=("cart_sessions", "abandoned_sessions", "recovered_sessions"),
                 reals=("abandonment_rate", "recovery_rate"))
    assert daily.to_pylist() == ref_daily_cart_abandonment(want)


@settings(max_examples=200, deadline=None)
@given(data=enriched_inputs())
def test_visitors_match_brute_force(data):
    table, rows = data
    got = visitors(table)
    check_schema(got, VISITOR_COLUMNS, integers=("visitorid", "events", "views", "addtocarts", "transactions",
                                                 "sessions", "orders", "suspected_bot"))
    assert got.to_pylist() == ref_visitors(rows)


@settings(max_examples=200, deadline=None)
@given(data=enriched_inputs())
def test_cohort_retention_matches_brute_force(data):
    table, rows = data
    got = cohort_retention(table.select(["visitorid", "timestamp_ms", "event"]))
    check_schema(got, COHORT_COLUMNS, integers=("week_number", "visitors", "active_visitors", "buyers"),
                 reals=("retention_rate", "purchase_rate"))
    assert got.to_pylist() == ref_cohort_retention(rows)


@settings(max_examples=200, deadline=None)
@given(data=enriched_inputs())
def test_purchase_timing_and_summary_match_brute_force(data):
    table, rows = data
    got = purchase_timing(table)
    check_schema(got, TIMING_COLUMNS,
                 integers=("visitorid", "itemid", "transactionid", "sessions_to_purchase", "root_categoryid",
                           "source_line"),
                 reals=("seconds_view_to_purchase", "seconds_cart_to_purchase"))
    want = ref_purchase_timing(rows)
    assert got.to_pylist() == want
    summary = purchase_timing_summary(got)
    check_schema(summary, SUMMARY_COLUMNS, integers=("root_categoryid", "purchases"),
                 reals=("p25_s", "median_s", "p75_s", "p90_s"))
    assert summary.to_pylist() == ref_purchase_timing_summary(want)


# ------------------------------------------------------------------ examples with hand-checked numbers


def event(t, visitor, kind, item, line, transactionid=None, root=None):
    return {"timestamp_ms": t, "visitorid": visitor, "event": kind, "itemid": item, "transactionid": transactionid,
            "root_categoryid": root, "source_line": line}


H = 3_600_000
CART_STORY = [
    # visitor 1: carts 10 and 11 on Monday (abandoned), buys 11 the next day: recovered
    event(MONDAY, 1, "view", 10, 2), event(MONDAY + 1000, 1, "addtocart", 10, 3),
    event(MONDAY + 2000, 1, "addtocart", 11, 4), event(MONDAY + 3000, 1, "addtocart", 11, 5),
    event(MONDAY + DAY, 1, "transaction", 11, 6, 500, 7),
    # visitor 2: carts 20 on Monday, buys only 21 later: abandoned, not recovered
    event(MONDAY + H, 2, "addtocart", 20, 7), event(MONDAY + 5 * H, 2, "transaction", 21, 8, 501),
    # visitor 3: carts and buys 30 in one session on Tuesday; buys 30 again later (no view before either)
    event(MONDAY + DAY + H, 3, "addtocart", 30, 9), event(MONDAY + DAY + H + 60_000, 3, "transaction", 30, 10, None),
    event(MONDAY + 3 * DAY, 3, "transaction", 30, 11, 502, 8),
    # visitor 4: a single view (a bounce)
    event(MONDAY + 2 * H, 4, "view", 40, 12),
]


def test_cart_columns_and_daily_abandonment_by_hand():
    table, _ = enriched_table(list(reversed(CART_STORY)))
    got = {(r["visitorid"], r["session_id"]): (r["cart_items"], r["abandoned_cart"], r["recovered"])
           for r in aggregates.sessions(table).to_pylist()}
    assert got == {(1, 1): (2, 1, 1), (1, 2): (0, None, None), (2, 1): (1, 1, 0), (2, 2): (0, None, None),
                   (3, 1): (1, 0, None), (3, 2): (0, None, None), (4, 1): (0, None, None)}
    daily = daily_cart_abandonment(aggregates.sessions(table)).to_pylist()
    assert daily == [
        {"date": "2015-06-01", "cart_sessions": 2, "abandoned_sessions": 2, "abandonment_rate": 1.0,
         "recovered_sessions": 1, "recovery_rate": 0.5},
        {"date": "2015-06-02", "cart_sessions": 1, "abandoned_sessions": 0, "abandonment_rate": 0.0,
         "recovered_sessions": 0, "recovery_rate": None},
    ]


def test_daily_cart_abandonment_dates_are_in_calendar_order_past_year_9999():
    sessions = pa.table({"start_time": ["10000-01-01 00:00:00.000", "9999-12-31 23:59:59.999",
                                        "2015-06-01 00:00:00.000"],
                         "abandoned_cart": pa.array([1, 0, 1], pa.int64()),
                         "recovered": pa.array([0, None, 1], pa.int64())})
    got = daily_cart_abandonment(sessions).to_pylist()
    assert [r["date"] for r in got] == ["2015-06-01", "9999-12-31", "10000-01-01"]
    assert [r["recovered_sessions"] for r in got] == [1, 0, 0]


def test_visitors_labels_segments_and_orders_by_hand():
    table, _ = enriched_table(list(reversed(CART_STORY)) + [event(MONDAY + 4 * DAY, 4, "view", 41, 13)])
    got = {r["visitorid"]: (r["label"], r["segment"], r["sessions"], r["orders"], r["transactions"])
           for r in visitors(table).to_pylist()}
    assert got == {1: ("buyer · 2 sessions · 1 order", "buyer", 2, 1, 1),
                   2: ("buyer · 2 sessions · 1 order", "buyer", 2, 1, 1),
                   3: ("buyer · 2 sessions · 1 order", "buyer", 2, 1, 2),  # one NULL transactionid
                   4: ("browser · 2 sessions", "browser", 2, 0, 0)}
    table, _ = enriched_table([event(MONDAY, 5, "view", 1, 2), event(MONDAY, 6, "addtocart", 1, 3),
                               event(MONDAY, 7, "transaction", 1, 4, 9), event(MONDAY + 1, 7, "transaction", 2, 5, 8)])
    assert [r["label"] for r in visitors(table).to_pylist()] == [
        "bounce · 1 session", "carter · 1 session", "buyer · 1 session · 2 orders"]


def test_suspected_bot_needs_more_than_50_distinct_items_in_one_session():
    def crawler(visitor, items, first_line):
        return [event(MONDAY + k * 1000, visitor, "view", k % items, first_line + k) for k in range(items + 5)]

    split = [event(MONDAY + k * 1000 + (k >= 30) * DAY, 3, "view", k, 400 + k) for k in range(60)]  # 2 sessions
    table, _ = enriched_table(crawler(1, 50, 2) + crawler(2, 51, 100) + split)
    assert [(r["visitorid"], r["suspected_bot"]) for r in visitors(table).to_pylist()] == [(1, 0), (2, 1), (3, 0)]


def test_cohort_weeks_at_the_sunday_monday_boundary():
    rows = [event(MONDAY - 1, 1, "view", 1, 2),  # Sunday 2015-05-31 23:59:59.999: cohort 2015-05-25
            event(MONDAY, 1, "transaction", 1, 3, 1),  # ... buys in its week 1
            event(MONDAY, 2, "view", 1, 4),  # Monday 00:00: cohort 2015-06-01
            event(MONDAY + 14 * DAY, 2, "view", 1, 5),  # the last week of the data: 2015-06-15
            event(0, 3, "view", 1, 6)]  # outside the expected range: in no cohort
    got = [tuple(r.values()) for r in cohort_retention(enriched_table(rows)[0]).to_pylist()]
    assert got == [("2015-05-25", 0, 1, 1, 0, 1.0, 0.0), ("2015-05-25", 1, 1, 1, 1, 1.0, 1.0),
                   ("2015-05-25", 2, 1, 0, 0, 0.0, 0.0), ("2015-05-25", 3, 1, 0, 0, 0.0, 0.0),
                   ("2015-06-01", 0, 1, 1, 0, 1.0, 0.0), ("2015-06-01", 1, 1, 0, 0, 0.0, 0.0),
                   ("2015-06-01", 2, 1, 1, 0, 1.0, 0.0)]


def test_purchase_timing_by_hand():
    rows = [event(MONDAY, 1, "view", 10, 2), event(MONDAY + 10 * H, 1, "addtocart", 10, 3),
            event(MONDAY + 10 * H, 1, "view", 10, 4),
            event(MONDAY + 10 * H + 90_000, 1, "transaction", 10, 5, 77, 8),
            event(MONDAY + 10 * H + 90_000, 1, "view", 11, 7),  # same time as the purchase: counts
            event(MONDAY + 10 * H + 90_000, 1, "transaction", 11, 6, 77, 8),  # earlier line than the view
            event(MONDAY + 11 * H, 1, "view", 12, 8), event(MONDAY + 10 * H + 90_001, 1, "transaction", 12, 9)]
    got = [(r["itemid"], r["first_view_time"], r["first_cart_time"], r["seconds_view_to_purchase"],
            r["seconds_cart_to_purchase"], r["sessions_to_purchase"], r["transactionid"])
           for r in purchase_timing(enriched_table(rows)[0]).to_pylist()]
    assert got == [(10, "2015-06-01 00:00:00.000", "2015-06-01 10:00:00.000", 36_090.0, 90.0, 2, 77),
                   (11, "2015-06-01 10:01:30.000", None, 0.0, None, 1, 77),
                   (12, None, None, None, None, None, None)]  # the view came after the purchase


def test_purchase_timing_summary_nearest_rank_by_hand():
    timing = pa.table({
        "root_categoryid": pa.array([5] * 10 + [None, 6], pa.int64()),
        "seconds_view_to_purchase": pa.array([float(x) for x in range(10, 0, -1)] + [100.0, None]),
        "seconds_cart_to_purchase": pa.array([None] * 11 + [4.5], pa.float64()),
    })
    got = [tuple(r.values()) for r in purchase_timing_summary(timing).to_pylist()]
    assert got == [
        ("all", None, "view_to_purchase", 11, 3.0, 6.0, 9.0, 10.0),  # k = 3, 6, 9, 10 of 11
        ("all", None, "cart_to_purchase", 1, 4.5, 4.5, 4.5, 4.5),
        ("root category", 5, "view_to_purchase", 10, 3.0, 5.0, 8.0, 9.0),  # k = 3, 5, 8, 9 of 10
        ("root category", 6, "cart_to_purchase", 1, 4.5, 4.5, 4.5, 4.5),
        ("no category", None, "view_to_purchase", 1, 100.0, 100.0, 100.0, 100.0),
    ]


@pytest.mark.parametrize("function", [visitors, cohort_retention, purchase_timing, aggregates.sessions])
def test_no_events_give_empty_tables(function):
    table, _ = enriched_table([])
    assert function(table).num_rows == 0
    assert purchase_timing_summary(purchase_timing(table)).num_rows == 0
    assert daily_cart_abandonment(aggregates.sessions(table)).num_rows == 0
