"""Hand-worked examples for the brute-force reference (tests/reference.py).

Each test writes a tiny data directory and states the expected rows as worked out by hand from
SPEC.md and docs/decisions.md, so the reference itself is pinned on the trickiest rules.
"""

from __future__ import annotations

import gzip
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import (
    ReferenceInputError,
    build_reference,
    civil_from_days,
    format_date,
    format_hour,
    format_time,
    write_sqlite,
)

EVENTS_HEADER = "timestamp,visitorid,event,itemid,transactionid\n"
PROPERTIES_HEADER = "timestamp,itemid,property,value\n"
CATEGORIES_HEADER = "categoryid,parentid\n"
T0 = 1_433_116_800_000  # 2015-06-01 00:00:00 UTC
HOUR = 3_600_000
MINUTE = 60_000


def make_data(folder, events="", properties="", categories="", **files):
    """A data directory: the three inputs given as data lines (headers added) plus any
    ``files`` given as exact bytes or text (file name -> content)."""
    folder.mkdir(parents=True, exist_ok=True)
    defaults = {
        "events.csv": EVENTS_HEADER + events,
        "item_properties_part1.csv": PROPERTIES_HEADER + properties,
        "category_tree.csv": CATEGORIES_HEADER + categories,
    }
    for name, content in {**defaults, **files}.items():
        if content is None:
            continue
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def by_line(tables):
    return {row["source_line"]: row for row in tables["events_enriched"]}


def quality(tables):
    return {row["check_name"]: row["value"] for row in tables["data_quality"]}


def rejected(tables):
    return sorted((r["source_file"], r["line_number"], r["reason"], r["raw"]) for r in tables["rejected_rows"])


# --------------------------------------------------------------------------- point in time


def test_point_in_time_latest_then_earliest_fallback_and_ties(tmp_path):
    properties = (
        f"{T0 + 2000},1,categoryid,10\n"   # line 2
        f"{T0 + 1000},1,categoryid,11\n"   # line 3: the earliest
        f"{T0 + 3000},1,categoryid,12\n"   # line 4
        f"{T0 + 3000},1,categoryid,13\n"   # line 5: same timestamp, later in input: wins over 12
        f"{T0 + 1000},1,available,1\n"     # line 6
        f"{T0 + 1000},1,available,0\n"     # line 7: tie at the earliest snapshot: 0 wins
    )
    part2 = PROPERTIES_HEADER + f"{T0 + 3000},1,categoryid,14\n"  # part2 comes after part1: wins over 13
    events = "".join(f"{T0 + t},5,view,1,\n" for t in (500, 1000, 1999, 2500, 3000, 99_999))
    data = make_data(tmp_path, events, properties, "10,\n11,\n12,\n13,\n14,10\n",
                     **{"item_properties_part2.csv": part2})
    rows = by_line(build_reference(data))
    # line 2: t=500, before every snapshot: the earliest (11), and the earliest of available is a tie
    assert [(rows[n]["categoryid"], rows[n]["available"]) for n in range(2, 8)] == [
        (11, 0),   # t=500: earliest categoryid 11; earliest available: tie at 1000, last in input (0)
        (11, 0),   # t=1000: latest <= t
        (11, 0),   # t=1999
        (10, 0),   # t=2500
        (14, 0),   # t=3000: snapshots 12, 13 (part1) and 14 (part2) at 3000: the last in input order
        (14, 0),   # t=99999
    ]
    assert rows[6]["parent_categoryid"] == 10 and rows[6]["root_categoryid"] == 10
    assert rows[2]["parent_categoryid"] is None and rows[2]["root_categoryid"] == 11


def test_value_in_effect_is_chosen_before_it_is_read_as_an_integer(tmp_path):
    properties = (
        f"{T0},2,categoryid,n1338.000\n"      # not an integer
        f"{T0 + 1000},2,categoryid,7.000\n"   # an integer written with a zero fraction
        f"{T0 + 2000},2,categoryid,+5\n"      # not an integer
        f"{T0 + 3000},2,categoryid,0012\n"    # 12
        f"{T0},3,available,1\n"
    )
    events = "".join(f"{T0 + t},5,view,{item},\n" for t, item in
                     ((0, 2), (1500, 2), (2000, 2), (3000, 2), (0, 3), (0, 4)))
    tables = build_reference(make_data(tmp_path, events, properties))
    rows = by_line(tables)
    assert [rows[n]["categoryid"] for n in range(2, 8)] == [None, 7, None, 12, None, None]
    assert [rows[n]["available"] for n in range(2, 8)] == [None, None, None, None, 1, None]
    assert quality(tables)["events_without_categoryid"] == 4
    # item_properties keeps the text exactly as read, the latest per (item, property)
    assert sorted((r["itemid"], r["property"], r["value"], r["timestamp_ms"]) for r in tables["item_properties"]) == [
        (2, "categoryid", "0012", T0 + 3000),
        (3, "available", "1", T0),
    ]


def test_item_properties_latest_ties_go_to_the_last_in_input_order(tmp_path):
    part1 = PROPERTIES_HEADER + f"{T0},1,888,a\n{T0 + 5},1,888,b\n{T0 + 5},1,888,c\n{T0 + 1},1,790,x\n"
    part2 = PROPERTIES_HEADER + f"{T0 + 5},1,888,d\n{T0},1,790,y\n"
    data = make_data(tmp_path, **{"item_properties_part1.csv": part1, "item_properties_part2.csv.gz":
                                  gzip.compress(part2.encode())})
    tables = build_reference(data)
    assert sorted((r["itemid"], r["property"], r["value"], r["timestamp_ms"]) for r in tables["item_properties"]) == [
        (1, "790", "x", T0 + 1),
        (1, "888", "d", T0 + 5),
    ]
    assert quality(tables)["data_lines item_properties_part2.csv.gz"] == 2


# --------------------------------------------------------------------------- per visitor


def test_session_gap_of_exactly_30_minutes_and_one_ms_more(tmp_path):
    events = (
        f"{T0},1,view,1,\n"
        f"{T0 + 30 * MINUTE},1,view,2,\n"           # gap exactly 30 min: same session
        f"{T0 + 60 * MINUTE + 1},1,addtocart,2,\n"  # gap 30 min + 1 ms: new session
        f"{T0 + 60 * MINUTE + 1},2,view,3,\n"       # another visitor
    )
    tables = build_reference(make_data(tmp_path, events))
    rows = by_line(tables)
    assert [(rows[n]["prev_event"], rows[n]["seconds_since_prev_event"], rows[n]["session_id"])
            for n in (2, 3, 4, 5)] == [
        (None, None, 1),
        ("view", 1800.0, 1),
        ("view", 1800.001, 2),
        (None, None, 1),
    ]
    assert tables["sessions"] == [
        {"visitorid": 1, "session_id": 1, "start_time": "2015-06-01 00:00:00.000",
         "end_time": "2015-06-01 00:30:00.000", "duration_s": 1800.0, "events": 2, "views": 2,
         "addtocarts": 0, "transactions": 0, "converted": 0, "cart_items": 0, "abandoned_cart": None,
         "recovered": None},
        {"visitorid": 1, "session_id": 2, "start_time": "2015-06-01 01:00:00.001",
         "end_time": "2015-06-01 01:00:00.001", "duration_s": 0.0, "events": 1, "views": 0,
         "addtocarts": 1, "transactions": 0, "converted": 0, "cart_items": 1, "abandoned_cart": 1,
         "recovered": 0},
        {"visitorid": 2, "session_id": 1, "start_time": "2015-06-01 01:00:00.001",
         "end_time": "2015-06-01 01:00:00.001", "duration_s": 0.0, "events": 1, "views": 1,
         "addtocarts": 0, "transactions": 0, "converted": 0, "cart_items": 0, "abandoned_cart": None,
         "recovered": None},
    ]


def test_view_to_purchase_with_a_transaction_at_the_same_timestamp(tmp_path):
    events = (
        f"{T0 + 5000},1,transaction,7,900\n"  # line 2: same time as the view below, earlier in input
        f"{T0 + 5000},1,view,7,\n"            # line 3: bought at the same timestamp -> 1
        f"{T0 + 6000},1,view,7,\n"            # line 4: after the only transaction -> 0
        f"{T0 + 1000},1,view,8,\n"            # line 5: never bought -> 0
        f"{T0 + 1000},2,view,7,\n"            # line 6: another visitor bought item 7, not this one -> 0
        f"{T0 + 2000},1,addtocart,7,\n"       # line 7: not a view -> NULL
    )
    rows = by_line(build_reference(make_data(tmp_path, events)))
    assert {n: rows[n]["view_to_purchase"] for n in rows} == {2: None, 3: 1, 4: 0, 5: 0, 6: 0, 7: None}
    # ties are ordered by input line: the transaction (line 2) comes before the view (line 3)
    assert rows[3]["prev_event"] == "transaction" and rows[3]["seconds_since_prev_event"] == 0.0
    assert [rows[n]["prev_event"] for n in (5, 7, 2, 4)] == [None, "view", "addtocart", "view"]


# --------------------------------------------------------------------------- hourly tables


def test_hourly_gap_filling_and_rolling_windows_at_the_start(tmp_path):
    events = (
        f"{T0 + 10},1,view,1,\n{T0 + 20},1,addtocart,1,\n"           # hour 0: 2 events
        f"{T0 + 2 * HOUR + 5},2,transaction,1,3\n"                     # hour 2: 1
        f"{T0 + 30 * HOUR},3,view,1,\n{T0 + 30 * HOUR + 1},3,view,1,\n{T0 + 30 * HOUR + 2},3,view,1,\n"  # hour 30: 3
    )
    tables = build_reference(make_data(tmp_path, events))
    counts = tables["event_type_counts"]
    trend = {row["hour"]: row for row in tables["hourly_trend"]}
    assert len(counts) == 31 and len(trend) == 31
    assert counts[0] == {"hour": "2015-06-01 00:00:00", "view": 1, "addtocart": 1, "transaction": 0, "total_events": 2}
    assert counts[1] == {"hour": "2015-06-01 01:00:00", "view": 0, "addtocart": 0, "transaction": 0, "total_events": 0}
    assert counts[2]["transaction"] == 1 and counts[30]["hour"] == "2015-06-02 06:00:00"

    def averages(hour):
        return trend[hour]["rolling_avg_24h"], trend[hour]["rolling_avg_168h"]

    assert averages("2015-06-01 00:00:00") == (2.0, 2.0)          # one hour of data so far
    assert averages("2015-06-01 01:00:00") == (1.0, 1.0)          # (2 + 0) / 2
    assert averages("2015-06-01 02:00:00") == (1.0, 1.0)          # (2 + 0 + 1) / 3
    assert averages("2015-06-01 23:00:00") == (3 / 24, 3 / 24)    # hours 0..23
    assert averages("2015-06-02 00:00:00") == (1 / 24, 3 / 25)    # hours 1..24 / 0..24
    assert averages("2015-06-02 01:00:00") == (1 / 24, 3 / 26)    # hours 2..25 still hold hour 2
    assert averages("2015-06-02 02:00:00") == (0.0, 3 / 27)       # hours 3..26 are all empty
    assert averages("2015-06-02 06:00:00") == (3 / 24, 6 / 31)    # hours 7..30 / 0..30


def test_daily_funnel_rates_and_nulls(tmp_path):
    day2 = T0 + 24 * HOUR
    events = (
        f"{T0},1,view,1,\n{T0 + 1},1,addtocart,1,\n{T0 + 2},1,transaction,1,5\n"
        f"{T0},2,view,1,\n{T0},3,view,2,\n{T0 + 9},3,view,3,\n"
        f"{day2},4,addtocart,1,\n"
    )
    tables = build_reference(make_data(tmp_path, events))
    assert tables["daily_funnel"] == [
        {"date": "2015-06-01", "visitors": 3, "viewers": 3, "carters": 1, "buyers": 1,
         "view_to_cart_rate": 1 / 3, "cart_to_purchase_rate": 1.0, "view_to_purchase_rate": 1 / 3},
        {"date": "2015-06-02", "visitors": 1, "viewers": 0, "carters": 1, "buyers": 0,
         "view_to_cart_rate": None, "cart_to_purchase_rate": 0.0, "view_to_purchase_rate": None},
    ]


# --------------------------------------------------------------------------- categories


def test_category_root_and_depth_with_a_missing_parent(tmp_path):
    categories = "1,\n2,1\n3,2\n4,99\n5,4\n2,3\n\n"  # 2,3 repeats 2; the file ends with a blank line
    events = f"{T0},1,view,1,\n{T0},1,view,2,\n"
    properties = f"{T0},1,categoryid,5\n{T0},2,categoryid,99\n"
    tables = build_reference(make_data(tmp_path, events, properties, categories))
    assert tables["category_tree"] == [
        {"categoryid": 1, "parentid": None, "root_categoryid": 1, "depth": 0},
        {"categoryid": 2, "parentid": 1, "root_categoryid": 1, "depth": 1},
        {"categoryid": 3, "parentid": 2, "root_categoryid": 1, "depth": 2},
        {"categoryid": 4, "parentid": 99, "root_categoryid": 99, "depth": 1},
        {"categoryid": 5, "parentid": 4, "root_categoryid": 99, "depth": 2},
    ]
    assert rejected(tables) == [("category_tree.csv", 7, "duplicate categoryid", "2,3"),
                                ("category_tree.csv", 8, "blank line", "")]
    rows = by_line(tables)
    assert (rows[2]["categoryid"], rows[2]["parent_categoryid"], rows[2]["root_categoryid"]) == (5, 4, 99)
    # 99 names no row of the tree: parent and root are NULL
    assert (rows[3]["categoryid"], rows[3]["parent_categoryid"], rows[3]["root_categoryid"]) == (99, None, None)
    assert quality(tables)["data_lines category_tree.csv"] == 7


@pytest.mark.parametrize("categories, members", [
    ("1,\n2,3\n3,4\n4,2\n5,2\n", "2, 3, 4"),
    ("7,7\n", "7"),
])
def test_category_cycle_stops_the_run(tmp_path, categories, members):
    with pytest.raises(ReferenceInputError, match=f"cycle among categories {members}"):
        build_reference(make_data(tmp_path, categories=categories))


# --------------------------------------------------------------------------- reading lines


def test_rejection_reasons_and_line_numbers_with_crlf_and_bom(tmp_path):
    lines = [
        b"1000,1,view,5,",           # 2 kept
        b"",                         # 3 blank line
        b"1000,1,view,5",            # 4 wrong number of fields
        b"abc,1,view,5,",            # 5 timestamp
        b"1000,x,view,5,",           # 6 visitorid
        b"1000,1,View,5,",           # 7 event types are case-sensitive
        b"1000,1,view,5.5,",         # 8 itemid
        b"1000,1,view,5,1e3",        # 9 transactionid on a view: still rejected if not an integer
        b"1000,1,transaction,5,",    # 10
        b"1000,1,addtocart,5,77",    # 11 kept, with its transactionid
        b"1000,1,view,\xff,",        # 12 undecodable
        b"1000.0,1,view,5,",         # 13 duplicate of line 2 once parsed
        b"-0,007,view,0005.00,",     # 14 kept: timestamp 0, visitor 7, item 5
        b"1234567890123456789,1,view,5,",  # 15 19 digits
        b"1000,1,bogus,x,",          # 16 first fault in column order: the event type
        b"2000,1,view,5,\r",         # 17 last line: no newline, a final CR is dropped
    ]
    events = b"\xef\xbb\xbf" + EVENTS_HEADER.encode().replace(b"\n", b"\r\n") + b"\r\n".join(lines)
    tables = build_reference(make_data(tmp_path, **{"events.csv": events}))
    assert rejected(tables) == [
        ("events.csv", 3, "blank line", ""),
        ("events.csv", 4, "wrong number of fields: expected 5, got 4", "1000,1,view,5"),
        ("events.csv", 5, "timestamp is not an integer", "abc,1,view,5,"),
        ("events.csv", 6, "visitorid is not an integer", "1000,x,view,5,"),
        ("events.csv", 7, "unknown event type", "1000,1,View,5,"),
        ("events.csv", 8, "itemid is not an integer", "1000,1,view,5.5,"),
        ("events.csv", 9, "transactionid is not an integer", "1000,1,view,5,1e3"),
        ("events.csv", 10, "transaction without transactionid", "1000,1,transaction,5,"),
        ("events.csv", 12, "undecodable bytes", "1000,1,view,\ufffd,"),
        ("events.csv", 15, "timestamp is not an integer", "1234567890123456789,1,view,5,"),
        ("events.csv", 16, "unknown event type", "1000,1,bogus,x,"),
    ]
    rows = by_line(tables)
    assert sorted(rows) == [2, 11, 14, 17]
    assert (rows[11]["event"], rows[11]["transactionid"]) == ("addtocart", 77)
    assert (rows[14]["timestamp_ms"], rows[14]["visitorid"], rows[14]["itemid"]) == (0, 7, 5)
    assert rows[14]["event_time"] == "1970-01-01 00:00:00.000"
    assert quality(tables) == {
        "data_lines events.csv": 16,
        "data_lines item_properties_part1.csv": 0,
        "data_lines category_tree.csv": 0,
        "rows_rejected": 11,
        "duplicate_events_dropped": 1,
        "events_without_categoryid": 4,
        "events_published": 4,
        "events_outside_expected_range": 4,  # 1970: kept, counted, left out of the hourly tables
    }


def test_duplicates_compare_parsed_values(tmp_path):
    events = (
        f"{T0},1,transaction,5,14418.0\n"   # 2 kept
        f"{T0},1,transaction,5,14418\n"     # 3 duplicate of 2
        f"{T0},1,transaction,5,14419\n"     # 4 differs in transactionid: kept
        f"{T0},1,view,5,\n"                 # 5 kept
        f"{T0}.00,01,view,5,\n"             # 6 duplicate of 5
        f"{T0},1,view,5,0\n"                # 7 a transactionid 0 is not empty: kept
    )
    tables = build_reference(make_data(tmp_path, events))
    assert sorted(by_line(tables)) == [2, 4, 5, 7]
    assert by_line(tables)[2]["transactionid"] == 14418
    assert quality(tables)["duplicate_events_dropped"] == 2
    assert quality(tables)["data_lines events.csv"] == 6


def test_item_property_and_category_rows_are_checked_in_column_order(tmp_path):
    properties = "x,1,a,b\n1,y,a,b\n1,2,a\n1,2,,\n1,2,p,v,w\n"
    categories = "a,1\n1,b\n2,\n"
    tables = build_reference(make_data(tmp_path, properties=properties, categories=categories))
    assert rejected(tables) == [
        ("category_tree.csv", 2, "categoryid is not an integer", "a,1"),
        ("category_tree.csv", 3, "parentid is not an integer", "1,b"),
        ("item_properties_part1.csv", 2, "timestamp is not an integer", "x,1,a,b"),
        ("item_properties_part1.csv", 3, "itemid is not an integer", "1,y,a,b"),
        ("item_properties_part1.csv", 4, "wrong number of fields: expected 4, got 3", "1,2,a"),
        ("item_properties_part1.csv", 6, "wrong number of fields: expected 4, got 5", "1,2,p,v,w"),
    ]
    assert tables["item_properties"] == [{"itemid": 2, "property": "", "value": "", "timestamp_ms": 1}]


@pytest.mark.parametrize("files, message", [
    ({"events.csv": None}, "events.csv: missing"),
    ({"category_tree.csv": None}, "category_tree.csv: missing"),
    ({"item_properties_part1.csv": None}, "item_properties"),
    ({"events.csv": b""}, "events.csv: empty file"),
    ({"events.csv": b"\xef\xbb\xbf"}, "events.csv: empty file"),
    ({"events.csv": "timestamp,visitorid,event,itemid\n"}, "events.csv: wrong header"),
    ({"events.csv": "Timestamp,visitorid,event,itemid,transactionid\n"}, "events.csv: wrong header"),
    ({"category_tree.csv.gz": gzip.compress(b"categoryid,parentid\n")}, "two candidates"),
    ({"item_properties_part1.csv.gz": gzip.compress(PROPERTIES_HEADER.encode())}, "two candidates"),
])
def test_fatal_input_problems(tmp_path, files, message):
    with pytest.raises(ReferenceInputError, match=message):
        build_reference(make_data(tmp_path, **files))


def test_gzip_inputs_and_crlf_headers_read_like_plain_ones(tmp_path):
    plain = make_data(tmp_path / "plain", f"{T0},1,view,5,\n", f"{T0},5,categoryid,3\n", "3,\n")
    packed = tmp_path / "packed"
    packed.mkdir()
    for path in plain.iterdir():
        content = path.read_bytes().replace(b"\n", b"\r\n")
        (packed / (path.name + ".gz")).write_bytes(gzip.compress(content))
    expected, got = build_reference(plain), build_reference(packed)
    for table in expected:
        if table in ("rejected_rows", "data_quality"):
            continue
        assert got[table] == expected[table], table
    assert sorted(quality(got)) == sorted(name.replace(".csv", ".csv.gz") for name in quality(expected))


# --------------------------------------------------------------------------- time text


def test_times_before_1970_and_outside_four_digit_years():
    assert format_time(-1) == "1969-12-31 23:59:59.999"
    assert format_hour(-1) == "1969-12-31 23:00:00"
    assert format_date(-1) == "1969-12-31"
    assert format_time(T0 + 12_345) == "2015-06-01 00:00:12.345"
    assert format_time(253_402_300_799_999) == "9999-12-31 23:59:59.999"
    assert format_time(253_402_300_800_000) == "10000-01-01 00:00:00.000"
    assert format_time(-62_135_596_800_000) == "0001-01-01 00:00:00.000"
    assert format_time(-62_167_219_200_000) == "0000-01-01 00:00:00.000"
    assert format_time(-62_167_219_200_001) == "-0001-12-31 23:59:59.999"
    assert format_time(999_999_999_999_999_999)[:5] == "31690"


def test_negative_timestamps_in_the_tables(tmp_path):
    tables = build_reference(make_data(tmp_path, "-1,1,view,1,\n-3600001,1,view,1,\n"))
    rows = by_line(tables)
    assert (rows[2]["event_hour"], rows[2]["hour_of_day"], rows[2]["event_date"]) == ("1969-12-31 23:00:00", 23, "1969-12-31")
    assert rows[3]["event_time"] == "1969-12-31 22:59:59.999"
    assert tables["event_type_counts"] == tables["hourly_trend"] == []  # both outside the expected range
    assert rows[2]["prev_event"] == "view" and rows[2]["seconds_since_prev_event"] == 3600.0


@settings(max_examples=300, deadline=None)
@given(days=st.integers(-719_162, 2_932_896))  # 0001-01-01 .. 9999-12-31
def test_civil_from_days_agrees_with_datetime(days):
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=days)
    assert civil_from_days(days) == (moment.year, moment.month, moment.day)


# --------------------------------------------------------------------------- write_sqlite


def test_write_sqlite_creates_every_table_and_the_events_view(tmp_path):
    tables = build_reference(make_data(tmp_path / "data", f"{T0},1,view,5,\n{T0 + 1},1,transaction,5,8.0\n"))
    database = tmp_path / "out.db"
    write_sqlite(tables, database)
    connection = sqlite3.connect(database)
    try:
        kinds = dict(connection.execute("SELECT name, type FROM sqlite_master"))
        assert kinds.pop("events") == "view"
        assert set(kinds.values()) == {"table"} and set(kinds) == set(tables)
        assert connection.execute("SELECT * FROM events ORDER BY timestamp_ms").fetchall() == [
            (T0, 1, "view", 5, None), (T0 + 1, 1, "transaction", 5, 8)]
        for table, rows in tables.items():
            assert connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == len(rows)
        types = {row[1]: row[2] for row in connection.execute("PRAGMA table_info(hourly_trend)")}
        assert types == {"hour": "TEXT", "total_events": "INTEGER", "rolling_avg_24h": "REAL", "rolling_avg_168h": "REAL"}
    finally:
        connection.close()


# --------------------------------------------------------------------------- analyst tables

DAY = 24 * HOUR
WEEK = 7 * DAY


def columns(rows, *names):
    return [tuple(row[name] for name in names) for row in rows]


def test_visitors_sessions_cart_columns_and_daily_cart_abandonment(tmp_path):
    events = (
        f"{T0},1,view,1,\n"                          # 2  v1 s1; ties with the next line
        f"{T0},1,addtocart,1,\n"                     # 3
        f"{T0 + MINUTE},1,addtocart,2,\n"            # 4
        f"{T0 + 2 * MINUTE},1,addtocart,1,\n"        # 5  item 1 again: cart_items stays 2
        f"{T0 + 2 * HOUR},1,transaction,2,900\n"     # 6  v1 s2: item 2 carted in s1, bought later
        f"{T0 + 2 * HOUR},1,transaction,3,900\n"     # 7  same order id
        f"{T0 + 2 * HOUR + MINUTE},1,transaction,1,901\n"  # 8
        f"{T0 + 10 * MINUTE},2,addtocart,5,\n"       # 9  v2 s1: carted and bought in the session
        f"{T0 + 11 * MINUTE},2,transaction,5,902\n"  # 10
        f"{T0 + 5 * HOUR},2,addtocart,6,\n"          # 11 v2 s2: abandoned
        f"{T0 + 10 * HOUR},2,transaction,5,903\n"    # 12 v2 s3: buys item 5 (not carted in s2)
        f"{T0 + HOUR},3,transaction,7,904\n"         # 13 v3 s1: bought before...
        f"{T0 + DAY + HOUR},3,addtocart,7,\n"        # 14 v3 s2: ...carted later: not recovered
        f"{T0},4,view,8,\n{T0 + 1},4,view,8,\n"      # 15, 16 v4: browser
        f"{T0 + 3 * HOUR},5,view,9,\n"               # 17 v5: bounce
        f"{T0 + DAY - 10 * MINUTE},6,view,9,\n"      # 18 v6 s1 starts 2015-06-01 23:50
        f"{T0 + DAY + 10 * MINUTE},6,addtocart,9,\n"  # 19 ... its addtocart is on 2015-06-02
        f"{T0 + 2 * DAY},7,addtocart,1,\n"           # 20 v7: a cart session that converts
        f"{T0 + 2 * DAY + 1},7,transaction,1,905\n"  # 21
    )
    tables = build_reference(make_data(tmp_path, events))
    assert tables["visitors"] == [
        {"visitorid": 1, "first_event_time": "2015-06-01 00:00:00.000", "last_event_time": "2015-06-01 02:01:00.000",
         "events": 7, "views": 1, "addtocarts": 3, "transactions": 3, "sessions": 2, "orders": 2, "segment": "buyer"},
        {"visitorid": 2, "first_event_time": "2015-06-01 00:10:00.000", "last_event_time": "2015-06-01 10:00:00.000",
         "events": 4, "views": 0, "addtocarts": 2, "transactions": 2, "sessions": 3, "orders": 2, "segment": "buyer"},
        {"visitorid": 3, "first_event_time": "2015-06-01 01:00:00.000", "last_event_time": "2015-06-02 01:00:00.000",
         "events": 2, "views": 0, "addtocarts": 1, "transactions": 1, "sessions": 2, "orders": 1, "segment": "buyer"},
        {"visitorid": 4, "first_event_time": "2015-06-01 00:00:00.000", "last_event_time": "2015-06-01 00:00:00.001",
         "events": 2, "views": 2, "addtocarts": 0, "transactions": 0, "sessions": 1, "orders": 0, "segment": "browser"},
        {"visitorid": 5, "first_event_time": "2015-06-01 03:00:00.000", "last_event_time": "2015-06-01 03:00:00.000",
         "events": 1, "views": 1, "addtocarts": 0, "transactions": 0, "sessions": 1, "orders": 0, "segment": "bounce"},
        {"visitorid": 6, "first_event_time": "2015-06-01 23:50:00.000", "last_event_time": "2015-06-02 00:10:00.000",
         "events": 2, "views": 1, "addtocarts": 1, "transactions": 0, "sessions": 1, "orders": 0, "segment": "carter"},
        {"visitorid": 7, "first_event_time": "2015-06-03 00:00:00.000", "last_event_time": "2015-06-03 00:00:00.001",
         "events": 2, "views": 0, "addtocarts": 1, "transactions": 1, "sessions": 1, "orders": 1, "segment": "buyer"},
    ]
    assert columns(tables["sessions"], "visitorid", "session_id", "addtocarts", "transactions", "cart_items",
                   "abandoned_cart", "recovered") == [
        (1, 1, 3, 0, 2, 1, 1),        # item 2 bought in session 2
        (1, 2, 0, 3, 0, None, None),  # no addtocart
        (2, 1, 1, 1, 1, 0, None),     # converted: not abandoned
        (2, 2, 1, 0, 1, 1, 0),        # item 6 never bought
        (2, 3, 0, 1, 0, None, None),
        (3, 1, 0, 1, 0, None, None),
        (3, 2, 1, 0, 1, 1, 0),        # item 7 was bought in an earlier session only
        (4, 1, 0, 0, 0, None, None),
        (5, 1, 0, 0, 0, None, None),
        (6, 1, 1, 0, 1, 1, 0),
        (7, 1, 1, 1, 1, 0, None),
    ]
    assert tables["daily_cart_abandonment"] == [
        # v1 s1, v2 s1, v2 s2 and v6 s1 (started 23:50, its addtocart after midnight)
        {"date": "2015-06-01", "cart_sessions": 4, "abandoned_sessions": 3, "abandonment_rate": 0.75,
         "recovered_sessions": 1, "recovery_rate": 1 / 3},
        {"date": "2015-06-02", "cart_sessions": 1, "abandoned_sessions": 1, "abandonment_rate": 1.0,
         "recovered_sessions": 0, "recovery_rate": 0.0},
        {"date": "2015-06-03", "cart_sessions": 1, "abandoned_sessions": 0, "abandonment_rate": 0.0,
         "recovered_sessions": 0, "recovery_rate": None},
    ]


def test_purchase_timing_ties_purchases_without_a_view_and_several_sessions(tmp_path):
    events = (
        f"{T0 + 1000},10,transaction,1,50\n"          # 2  a view at the same time, later in input, counts
        f"{T0 + 1000},10,view,1,\n"                   # 3
        f"{T0},11,addtocart,2,\n"                     # 4  carted, never viewed
        f"{T0 + 5000},11,transaction,2,51\n"          # 5
        f"{T0 + HOUR},12,transaction,2,52\n"          # 6  nothing before it
        f"{T0 + HOUR + 1},12,view,2,\n"               # 7  a view after the purchase does not count
        f"{T0 - HOUR},12,view,3,\n"                   # 8  a view of another item does not count
        f"{T0 - HOUR},14,view,2,\n"                   # 9  another visitor's view does not count
        f"{T0},13,view,3,\n"                          # 10 v13 s1: the earliest view
        f"{T0 + 5 * MINUTE},13,view,3,\n"             # 11
        f"{T0 + 2 * HOUR},13,addtocart,3,\n"          # 12 v13 s2: the earliest addtocart
        f"{T0 + 2 * HOUR + MINUTE},13,addtocart,3,\n"  # 13
        f"{T0 + 5 * HOUR},13,transaction,3,60\n"      # 14 v13 s3
        f"{T0 + 5 * HOUR + 1000},13,transaction,3,61\n"  # 15
    )
    tables = build_reference(make_data(tmp_path, events))
    assert tables["purchase_timing"] == [
        {"visitorid": 10, "itemid": 1, "transactionid": 50, "purchase_time": "2015-06-01 00:00:01.000",
         "first_view_time": "2015-06-01 00:00:01.000", "first_cart_time": None,
         "seconds_view_to_purchase": 0.0, "seconds_cart_to_purchase": None, "sessions_to_purchase": 1},
        {"visitorid": 11, "itemid": 2, "transactionid": 51, "purchase_time": "2015-06-01 00:00:05.000",
         "first_view_time": None, "first_cart_time": "2015-06-01 00:00:00.000",
         "seconds_view_to_purchase": None, "seconds_cart_to_purchase": 5.0, "sessions_to_purchase": None},
        {"visitorid": 12, "itemid": 2, "transactionid": 52, "purchase_time": "2015-06-01 01:00:00.000",
         "first_view_time": None, "first_cart_time": None,
         "seconds_view_to_purchase": None, "seconds_cart_to_purchase": None, "sessions_to_purchase": None},
        {"visitorid": 13, "itemid": 3, "transactionid": 60, "purchase_time": "2015-06-01 05:00:00.000",
         "first_view_time": "2015-06-01 00:00:00.000", "first_cart_time": "2015-06-01 02:00:00.000",
         "seconds_view_to_purchase": 18000.0, "seconds_cart_to_purchase": 10800.0, "sessions_to_purchase": 3},
        {"visitorid": 13, "itemid": 3, "transactionid": 61, "purchase_time": "2015-06-01 05:00:01.000",
         "first_view_time": "2015-06-01 00:00:00.000", "first_cart_time": "2015-06-01 02:00:00.000",
         "seconds_view_to_purchase": 18001.0, "seconds_cart_to_purchase": 10801.0, "sessions_to_purchase": 3},
    ]


def test_cohort_retention_weeks_and_events_outside_the_expected_range(tmp_path):
    sunday_end = T0 + WEEK - 1  # 2015-06-07 23:59:59.999, a Sunday: still the week of Monday 2015-06-01
    events = (
        f"{sunday_end},1,view,1,\n"                   # 2  v1: cohort 2015-06-01
        f"{T0 + WEEK},1,view,1,\n"                    # 3  Monday 2015-06-08: week 1
        f"{T0 + WEEK},2,view,1,\n"                    # 4  v2: cohort 2015-06-08...
        f"946684799999,2,view,1,\n"                   # 5  ...its 1999-12-31 event is left out
        f"{T0 + 3 * WEEK},2,transaction,1,70\n"       # 6  week 2 of its cohort; the last week of the data
        f"4102444800000,3,addtocart,1,\n"             # 7  v3: only an event in 2100: in no cohort
        f"{T0},4,view,1,\n"                           # 8  v4: cohort 2015-06-01, buys in week 0
        f"{T0 + HOUR},4,transaction,1,71\n"           # 9
    )
    tables = build_reference(make_data(tmp_path, events))
    assert columns(tables["cohort_retention"], "cohort_week", "week_number", "visitors", "active_visitors",
                   "buyers", "retention_rate", "purchase_rate") == [
        ("2015-06-01", 0, 2, 2, 1, 1.0, 0.5),
        ("2015-06-01", 1, 2, 1, 0, 0.5, 0.0),
        ("2015-06-01", 2, 2, 0, 0, 0.0, 0.0),
        ("2015-06-01", 3, 2, 0, 0, 0.0, 0.0),
        ("2015-06-08", 0, 1, 1, 0, 1.0, 0.0),
        ("2015-06-08", 1, 1, 0, 0, 0.0, 0.0),
        ("2015-06-08", 2, 1, 1, 1, 1.0, 1.0),
    ]
    # ...while every other analyst table counts the events outside the range
    visitors = {row["visitorid"]: row for row in tables["visitors"]}
    assert sorted(visitors) == [1, 2, 3, 4]
    assert visitors[2]["events"] == 3 and visitors[2]["first_event_time"] == "1999-12-31 23:59:59.999"
    assert visitors[3]["segment"] == "carter" and visitors[3]["first_event_time"] == "2100-01-01 00:00:00.000"
    assert [row["date"] for row in tables["daily_cart_abandonment"]] == ["2100-01-01"]
    assert [row["date"] for row in tables["category_daily_funnel"]] == [
        "1999-12-31", "2015-06-01", "2015-06-07", "2015-06-08", "2015-06-22", "2100-01-01"]
    assert len(tables["purchase_timing"]) == 2
    # v2's 1999 view is its first view of item 1: three sessions before the purchase (1999, 06-08, 06-22)
    assert tables["purchase_timing"][0]["first_view_time"] == "1999-12-31 23:59:59.999"
    assert tables["purchase_timing"][0]["sessions_to_purchase"] == 3


def test_cohort_retention_is_empty_without_events_in_the_expected_range(tmp_path):
    tables = build_reference(make_data(tmp_path, "0,1,view,1,\n"))
    assert tables["cohort_retention"] == [] and len(tables["visitors"]) == 1


def test_category_daily_funnel_by_point_in_time_root(tmp_path):
    properties = (
        f"{T0},10,categoryid,2\n"           # item 10: category 2 (root 1) ...
        f"{T0 + HOUR},10,categoryid,3\n"    # ... then 3 (a root)
        f"{T0},11,categoryid,3\n"
        f"{T0},12,categoryid,99\n"          # not in the tree: root NULL
    )
    events = (
        f"{T0},1,view,10,\n"                # root 1
        f"{T0 + 1},1,addtocart,11,\n"       # root 3
        f"{T0},2,view,12,\n"                # NULL
        f"{T0 + 1},2,view,13,\n"            # item without snapshots: NULL
        f"{T0 + 2},2,transaction,13,5\n"    # NULL
        f"{T0 + 2 * HOUR},3,view,10,\n"     # root 3 by now
        f"{T0 + DAY},1,view,10,\n"          # root 3, the next day
    )
    tables = build_reference(make_data(tmp_path, events, properties, "1,\n2,1\n3,\n"))
    assert tables["category_daily_funnel"] == [
        {"date": "2015-06-01", "root_categoryid": None, "visitors": 1, "viewers": 1, "carters": 0, "buyers": 1,
         "view_to_cart_rate": 0.0, "cart_to_purchase_rate": None, "view_to_purchase_rate": 1.0},
        {"date": "2015-06-01", "root_categoryid": 1, "visitors": 1, "viewers": 1, "carters": 0, "buyers": 0,
         "view_to_cart_rate": 0.0, "cart_to_purchase_rate": None, "view_to_purchase_rate": 0.0},
        {"date": "2015-06-01", "root_categoryid": 3, "visitors": 2, "viewers": 1, "carters": 1, "buyers": 0,
         "view_to_cart_rate": 1.0, "cart_to_purchase_rate": 0.0, "view_to_purchase_rate": 0.0},
        {"date": "2015-06-02", "root_categoryid": 3, "visitors": 1, "viewers": 1, "carters": 0, "buyers": 0,
         "view_to_cart_rate": 0.0, "cart_to_purchase_rate": None, "view_to_purchase_rate": 0.0},
    ]


def session_of_views(visitorid, items, start=T0):
    return "".join(f"{start + k},{visitorid},view,{item},\n" for k, item in enumerate(items))


def test_item_pairs_sessions_of_50_and_51_items_ties_and_lift(tmp_path):
    events = (
        session_of_views(1, [*range(1, 51), 1])      # 50 distinct items (item 1 twice): eligible
        + session_of_views(2, range(1, 52))          # 51 distinct items: a crawl, left out
        + session_of_views(3, [1, 2]) + f"{T0 + 5},3,addtocart,3,\n"  # an addtocart is not a view
        + session_of_views(4, [1, 3])
        + f"{T0},5,addtocart,1,\n"                   # no view: not an eligible session
        + session_of_views(6, [1])                   # one item: counts in N and sessions(1)
        + session_of_views(7, [2, 5])
        + session_of_views(7, [2, 1], start=T0 + DAY)  # v7's second session: not its first
    )
    tables = build_reference(make_data(tmp_path, events))
    # N = 6 (v1, v3, v4, v6, v7 s1, v7 s2); sessions(1) = 5, sessions(2) = 4, sessions(3) = 2, sessions(5) = 2
    # together(1, 2) = 3 (v1, v3, v7 s2), (1, 3) = 2 (v1, v4), (2, 5) = 2 (v1, v7 s1), others 1
    assert columns(tables["item_pairs"], "itemid", "rank", "other_itemid", "together", "lift") == [
        (1, 1, 2, 3, 3 * 6 / (5 * 4)),
        (1, 2, 3, 2, 2 * 6 / (5 * 2)),
        (2, 1, 1, 3, 3 * 6 / (4 * 5)),
        (2, 2, 5, 2, 2 * 6 / (4 * 2)),
        (3, 1, 1, 2, 2 * 6 / (2 * 5)),
        (5, 1, 2, 2, 2 * 6 / (2 * 4)),
    ]


def test_item_pairs_keep_the_best_20_smaller_other_item_first_on_ties(tmp_path):
    items = [0, *range(1, 26)]
    events = session_of_views(100, items) + session_of_views(101, items) + session_of_views(102, [0, 25])
    tables = build_reference(make_data(tmp_path, events))
    rows = [row for row in tables["item_pairs"] if row["itemid"] == 0]
    assert columns(rows, "rank", "other_itemid", "together") == [(1, 25, 3)] + [(k + 1, k, 2) for k in range(1, 20)]
    assert rows[0]["lift"] == 3 * 3 / (3 * 3)
    assert rows[1]["lift"] == 2 * 3 / (3 * 2)
    per_item = {}
    for row in tables["item_pairs"]:
        per_item.setdefault(row["itemid"], []).append(row["rank"])
    assert sorted(per_item) == list(range(26))
    assert all(ranks == list(range(1, 21)) for ranks in per_item.values())


def test_item_property_history_runs_ties_and_a_value_that_comes_back(tmp_path):
    part1 = PROPERTIES_HEADER + (
        f"{T0},1,categoryid,5\n"
        f"{T0 + 10},1,categoryid,6\n"
        f"{T0 + 10},1,categoryid,5\n"   # same timestamp, later in input: 5, so no change at T0 + 10
        f"{T0 + 20},1,categoryid,7\n"   # loses to part2's 8 at the same timestamp
        f"{T0 + 30},1,categoryid,5\n"   # 5 -> 8 -> 5: a third run
        f"{T0 + 40},1,categoryid,5\n"   # same value: merged
        f"{T0 + 5},1,available,1\n"     # out of time order in the file
        f"{T0},1,available,1\n"
        f"{T0 + 50},1,available,0\n"
        f"{T0},1,888,x\n"               # other properties have no history
        f"{T0},2,categoryid,7.0\n"
        f"{T0 + 1},2,categoryid,7\n"    # the same integer, other text: a change of the value as read
        f"-1,3,available,n1.000\n"      # any text, any time
    )
    part2 = PROPERTIES_HEADER + f"{T0 + 20},1,categoryid,8\n"
    tables = build_reference(make_data(tmp_path, **{"item_properties_part1.csv": part1,
                                                    "item_properties_part2.csv": part2}))
    assert columns(tables["item_property_history"], "itemid", "property", "value", "valid_from_ms",
                   "valid_to_ms") == [
        (1, "available", "1", T0, T0 + 50),
        (1, "available", "0", T0 + 50, None),
        (1, "categoryid", "5", T0, T0 + 20),
        (1, "categoryid", "8", T0 + 20, T0 + 30),
        (1, "categoryid", "5", T0 + 30, None),
        (2, "categoryid", "7.0", T0, T0 + 1),
        (2, "categoryid", "7", T0 + 1, None),
        (3, "available", "n1.000", -1, None),
    ]
    first, last = tables["item_property_history"][0], tables["item_property_history"][-1]
    assert (first["valid_from"], first["valid_to"]) == ("2015-06-01 00:00:00.000", "2015-06-01 00:00:00.050")
    assert (last["valid_from"], last["valid_to"]) == ("1969-12-31 23:59:59.999", None)


def test_write_sqlite_declares_the_visitor_foreign_keys(tmp_path):
    tables = build_reference(make_data(tmp_path / "data", f"{T0},1,view,5,\n{T0 + 1},1,transaction,5,8\n"))
    database = tmp_path / "out.db"
    write_sqlite(tables, database)
    connection = sqlite3.connect(database)
    try:
        for table in ("events_enriched", "sessions", "purchase_timing"):
            links = [(row[2], row[3], row[4]) for row in connection.execute(f"PRAGMA foreign_key_list({table})")]
            assert links == [("visitors", "visitorid", "visitorid")], table
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        assert connection.execute("SELECT * FROM visitors").fetchall() == [
            (1, "2015-06-01 00:00:00.000", "2015-06-01 00:00:00.001", 2, 1, 0, 1, 1, 1, "buyer")]
    finally:
        connection.close()
