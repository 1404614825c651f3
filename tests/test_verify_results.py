"""verify_results.py on databases known to be right (built by the brute-force reference) and on
copies corrupted one fault at a time: every fault must turn the named check into a FAIL."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_pipeline
from reference import build_reference, format_date, format_hour, format_time, parse_int, utc_parts, write_sqlite

REPO = Path(__file__).resolve().parent.parent
VERIFY = REPO / "verify_results.py"
REALDATA = REPO / "tests" / "realdata"  # a copy of ../shared/realdata, so a checkout anywhere has it


def load_verify_module():
    """verify_results.py as a module (it is a script at the repository root, not in a package)."""
    spec = importlib.util.spec_from_file_location("verify_results", VERIFY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verify_results = load_verify_module()

T0 = 1_433_116_800_000  # 2015-06-01 00:00:00 UTC
MIN = 60_000
H = 3_600_000

EVENT_LINES = [
    f"{T0 + 40 * MIN},101,transaction,1,5001",   # ties with the addtocart and the view below
    f"{T0 + 10 * MIN},101,view,1,",
    f"{T0 + 5 * H},202,view,2,",
    f"{T0 + 10 * MIN},101,view,2,",              # same time as the view of item 1
    f"{T0 + 40 * MIN},101,addtocart,1,",         # exactly 30 minutes on: same session
    f"{T0 + 40 * MIN},101,view,1,",              # bought at the same timestamp: view_to_purchase 1
    "",                                          # blank line
    f"{T0 + 5 * H},202,view,2,",                 # duplicate
    f"{T0 + 5 * H + 30 * MIN + 1},202,view,2,",  # 30 minutes + 1 ms: a new session
    f"{T0 + 5 * H + 30 * MIN + 1},202,transaction,2,5002.0",
    f"{T0 + 3 * H},101,view,3,",                 # new session
    f"{T0 + 3 * H},101,view,3",                  # wrong number of fields
    f"{T0 + 50 * H},101,view,1,",                # two days later
    f"{T0 + 2 * H},404,transaction,5,14418.0",
    f"{T0 + 2 * H},404,transaction,5,14418",     # duplicate once parsed
    f"{T0 + 2 * H},404,transaction,5,",          # transaction without transactionid
    f"{T0 + 2 * H},404,click,5,",                # unknown event type
    f"x{T0},404,view,5,",                        # timestamp is not an integer
    f"{T0 + 2 * H + 1},404,view,6,7",            # a transactionid on a view is kept
    f"{T0 + 26 * H},505,addtocart,3,",
    f"{T0 + 26 * H + 1},505,view,3,",
    *(f"{T0 + k * 20 * H + 7},303,view,4," for k in range(11)),  # a visitor over eight days
    f"{T0 + 201 * H},303,addtocart,4,",
    f"{T0 + 100 * H},707,view,1,",               # items 1 and 2 viewed together again (item_pairs)...
    f"{T0 + 100 * H + 1},707,view,2,",
    f"{T0 + 150 * H},707,view,2,",               # ...and again, in a later session
    f"{T0 + 150 * H + 1},707,view,1,",
    *(f"{T0 + h * H},808,view,{item}," for h in (170, 180) for item in (2, 3)),  # items 2 and 3 twice;
    f"{T0 + 60 * H},909,addtocart,4,",           # 808 is of the cohort of Monday 2015-06-08
    f"{T0 + 62 * H},909,transaction,4,6000",     # a cart abandoned, then bought in a later session
]
PROPERTY_LINES = [
    f"{T0 - 24 * H},1,categoryid,10",
    f"{T0 + 24 * H},1,categoryid,11",
    f"{T0 + 24 * H},1,categoryid,12",   # same timestamp, later: wins
    f"{T0},1,available,1",
    f"{T0 + 24 * H},1,available,0",
    f"{T0 + 1 * H},2,categoryid,n5.000",  # the earliest snapshot of item 2, not an integer
    f"{T0 + 6 * H},2,categoryid,12",
    f"{T0},3,categoryid,99",            # a category outside the tree
    f"{T0 + 100 * H},4,categoryid,13",  # only later than most events of item 4
    f"{T0},4,888,543080 702002 n48.000",
    f"{T0},5,790,n68280.000",
    "x,7,790,n1.000",                   # rejected
    f"{T0},6,available,1",
]
PART2_LINES = [f"{T0 + 6 * H},2,categoryid,14", f"{T0 + 10},4,283,abc"]
CATEGORY_LINES = ["10,", "11,10", "12,11", "13,50", "14,12", "11,12", "x,1"]


def write_dirty_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    events = ("timestamp,visitorid,event,itemid,transactionid\n" + "\n".join(EVENT_LINES)).encode()
    (folder / "events.csv").write_bytes(events + b"\n1433116800000,606,view,\xfe,")  # undecodable, no final newline
    (folder / "item_properties_part1.csv").write_text(
        "timestamp,itemid,property,value\n" + "\n".join(PROPERTY_LINES) + "\n")
    (folder / "item_properties_part2.csv.gz").write_bytes(
        gzip.compress(("timestamp,itemid,property,value\n" + "\n".join(PART2_LINES) + "\n").encode()))
    (folder / "category_tree.csv").write_bytes(
        b"\xef\xbb\xbf" + ("categoryid,parentid\r\n" + "\r\n".join(CATEGORY_LINES) + "\r\n").encode())
    return folder


def run_verify(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(VERIFY), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def failed_checks(result: subprocess.CompletedProcess) -> list[str]:
    return [line.split(":")[0][len("FAIL "):] for line in result.stdout.splitlines() if line.startswith("FAIL ")]


def assert_all_pass(result: subprocess.CompletedProcess) -> None:
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines and all(line.startswith("PASS ") for line in lines), result.stdout


@pytest.fixture(scope="module")
def dirty_tables(tmp_path_factory):
    tables = build_reference(write_dirty_data(tmp_path_factory.mktemp("dirty")))
    # the data set really has what the corruptions below rely on
    quality = {row["check_name"]: row["value"] for row in tables["data_quality"]}
    assert quality["duplicate_events_dropped"] == 2 and quality["rows_rejected"] == 9
    assert {row["session_id"] for row in tables["events_enriched"] if row["visitorid"] == 202} == {1, 2}
    assert any(row["view_to_purchase"] == 1 for row in tables["events_enriched"])
    assert len(tables["hourly_trend"]) == 202
    # ...and what the corruptions of the analyst tables rely on
    assert [(r["itemid"], r["rank"], r["other_itemid"], r["together"]) for r in tables["item_pairs"]] == [
        (1, 1, 2, 3), (2, 1, 1, 3), (2, 2, 3, 2), (3, 1, 2, 2)]
    assert {(r["abandoned_cart"], r["recovered"]) for r in tables["sessions"]} == {
        (None, None), (0, None), (1, 0), (1, 1)}
    assert {r["recovery_rate"] for r in tables["daily_cart_abandonment"]} == {None, 0.0, 1.0}
    assert {r["first_view_time"] is None for r in tables["purchase_timing"]} == {True, False}
    assert len({r["cohort_week"] for r in tables["cohort_retention"]}) == 2
    assert None in {r["root_categoryid"] for r in tables["category_daily_funnel"]}
    assert [(r["value"], r["valid_to_ms"] is None) for r in tables["item_property_history"]
            if (r["itemid"], r["property"]) == (1, "categoryid")] == [("10", False), ("12", True)]
    return tables


@pytest.fixture(scope="module")
def good_database(dirty_tables, tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "retail.db"
    write_sqlite(dirty_tables, path)
    return path


def test_a_right_database_passes_every_check(good_database):
    digest = hashlib.sha256(good_database.read_bytes()).hexdigest()
    result = run_verify("--database", good_database)
    assert_all_pass(result)
    assert len(result.stdout.splitlines()) >= 20
    assert hashlib.sha256(good_database.read_bytes()).hexdigest() == digest  # read-only
    assert not Path(str(good_database) + "-journal").exists()


def test_the_real_sample_passes(tmp_path):
    database = tmp_path / "real.db"
    write_sqlite(build_reference(REALDATA), database)
    assert_all_pass(run_verify("--database", database))


def test_no_events_at_all_passes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.csv").write_text("timestamp,visitorid,event,itemid,transactionid\n")
    (data / "item_properties_part1.csv").write_text("timestamp,itemid,property,value\n")
    (data / "category_tree.csv").write_text("categoryid,parentid\n1,\n")
    write_sqlite(build_reference(data), tmp_path / "empty.db")
    assert_all_pass(run_verify("--database", tmp_path / "empty.db"))


def test_without_source_line_ties_follow_row_order(good_database, tmp_path):
    database = tmp_path / "no_source_line.db"
    shutil.copyfile(good_database, database)
    with sqlite3.connect(database) as connection:
        connection.execute("ALTER TABLE events_enriched DROP COLUMN source_line")
    result = run_verify("--database", database)
    assert_all_pass(result)
    assert "rowid" in result.stdout


def test_a_unique_index_stands_for_the_item_properties_check(good_database, tmp_path):
    database = tmp_path / "indexed.db"
    shutil.copyfile(good_database, database)
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE UNIQUE INDEX item_key ON item_properties(itemid, property)")
        connection.execute("CREATE INDEX by_visitor ON events_enriched(visitorid, timestamp_ms)")
        connection.execute("CREATE INDEX by_hour ON events_enriched(event_hour)")
    result = run_verify("--database", database)
    assert_all_pass(result)
    assert "PASS item_properties_unique: enforced by unique index item_key" in result.stdout


def test_a_damaged_page_fails_the_file_integrity_check(good_database, tmp_path):
    database = tmp_path / "damaged.db"
    shutil.copyfile(good_database, database)
    with sqlite3.connect(database) as connection:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        page, cells = connection.execute("SELECT pageno, ncell FROM dbstat WHERE name = 'events_enriched' "
                                          "AND pagetype = 'leaf' ORDER BY ncell DESC LIMIT 1").fetchone()
    assert cells >= 2
    with open(database, "r+b") as f:  # the page's first cell pointer made a copy of its second
        header = 100 if page == 1 else 0
        f.seek((page - 1) * page_size + header + 8 + 2)
        second = f.read(2)
        f.seek((page - 1) * page_size + header + 8)
        f.write(second)
    result = run_verify("--database", database)
    assert result.returncode != 0
    assert "file_integrity" in failed_checks(result), result.stdout


def test_an_index_that_disagrees_with_its_table_fails_the_file_integrity_check(good_database, tmp_path):
    """An index whose entries are in a valid b-tree but do not match the table's rows (what a
    writer of pages could get wrong: here one built DESC and declared ASC) passes SQLite's
    quick_check, so by default verify_results.py runs integrity_check, which catches it."""
    database = tmp_path / "wrong_index.db"
    shutil.copyfile(good_database, database)
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE INDEX by_time ON events_enriched(timestamp_ms DESC)")
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX by_time ON events_enriched(timestamp_ms)' "
                           "WHERE name = 'by_time'")
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    result = run_verify("--database", database)
    assert result.returncode != 0
    assert "file_integrity" in failed_checks(result), result.stdout
    quick = run_verify("--database", database, "--quick")
    assert "file_integrity" not in failed_checks(quick), quick.stdout  # what the quick check cannot see


def test_missing_database_fails(tmp_path):
    result = run_verify("--database", tmp_path / "nowhere.db")
    assert result.returncode != 0
    assert result.stdout.startswith("FAIL database:")


def test_a_file_that_is_not_a_database_fails(tmp_path):
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    result = run_verify("--database", tmp_path / "junk.db")
    assert result.returncode != 0
    assert "FAIL" in result.stdout


def test_default_database_comes_from_luigi_cfg(good_database, tmp_path):
    """Without --database: `[retail] database` of luigi.cfg beside the script, relative to it."""
    shutil.copyfile(VERIFY, tmp_path / "verify_results.py")
    (tmp_path / "luigi.cfg").write_text("[retail]\ndatabase = published/retail.db\n")
    script = [sys.executable, str(tmp_path / "verify_results.py")]
    result = subprocess.run(script, capture_output=True, text=True, cwd="/", timeout=120)
    assert result.returncode != 0
    assert f"FAIL database: {tmp_path / 'published' / 'retail.db'} does not exist" in result.stdout
    (tmp_path / "published").mkdir()
    shutil.copyfile(good_database, tmp_path / "published" / "retail.db")
    assert_all_pass(subprocess.run(script, capture_output=True, text=True, cwd="/", timeout=120))


def one(table: str, where: str = "1") -> str:
    """SQL for the rowid of the first row of ``table`` matching ``where``."""
    return f"(SELECT min(rowid) FROM {table} WHERE {where})"


A_VIEW, A_TRANSACTION = "event = 'view'", "event = 'transaction'"
FIRST_EVENT = "prev_event IS NULL"
LATER_EVENT = "prev_event IS NOT NULL"

# (id, SQL statements, the check that must fail)
CORRUPTIONS = [
    ("delete_an_hour", [f"DELETE FROM event_type_counts WHERE rowid = {one('event_type_counts', 'total_events = 0')}"],
     "event_type_counts_hours"),
    ("delete_the_first_hour", ["DELETE FROM event_type_counts WHERE hour = (SELECT min(hour) FROM event_type_counts)"],
     "event_type_counts_hours"),
    ("repeat_an_hour", [f"INSERT INTO event_type_counts SELECT * FROM event_type_counts WHERE rowid = {one('event_type_counts', 'total_events = 0')}"],
     "event_type_counts_hours"),
    ("hour_not_in_spec_format", ["UPDATE event_type_counts SET hour = replace(hour, ' ', 'T') WHERE rowid = 7"],
     "event_type_counts_hours"),
    ("delete_a_trend_hour", [f"DELETE FROM hourly_trend WHERE rowid = {one('hourly_trend', 'total_events = 0')}"],
     "hourly_trend_hours"),
    ("trend_hour_after_the_last_event", ["INSERT INTO hourly_trend SELECT datetime(max(hour), '+1 hour'), 0, 0, 0 FROM hourly_trend"],
     "hourly_trend_hours"),
    ("change_a_view_count", [f"UPDATE event_type_counts SET view = view + 1, total_events = total_events + 1 WHERE rowid = {one('event_type_counts', 'view > 0')}"],
     "event_type_counts_totals"),
    ("view_count_without_total", [f"UPDATE event_type_counts SET view = view + 1 WHERE rowid = {one('event_type_counts', 'view > 0')}"],
     "event_type_counts_totals"),
    ("view_counted_as_addtocart", [f"UPDATE event_type_counts SET view = view - 1, addtocart = addtocart + 1 WHERE rowid = {one('event_type_counts', 'view > 0')}"],
     "event_type_counts_totals"),
    # counted from the event_hour index, less the events outside the expected range of times
    ("view_moved_past_the_range_in_its_hour", [f"UPDATE events_enriched SET timestamp_ms = 4102444800000 WHERE rowid = {one('events_enriched', A_VIEW)}"],
     "event_type_counts_totals"),
    ("transaction_without_a_time_in_its_hour", [f"UPDATE events_enriched SET timestamp_ms = NULL WHERE rowid = {one('events_enriched', A_TRANSACTION)}"],
     "event_type_counts_totals"),
    ("trend_total", [f"UPDATE hourly_trend SET total_events = total_events + 1 WHERE rowid = {one('hourly_trend', 'total_events > 0')}"],
     "hourly_trend_totals"),
    ("rolling_24h_off_by_1e-6", ["UPDATE hourly_trend SET rolling_avg_24h = rolling_avg_24h + 1e-6 WHERE rowid = 40"],
     "rolling_averages"),
    ("rolling_168h_relative", ["UPDATE hourly_trend SET rolling_avg_168h = rolling_avg_168h * 1.001 WHERE rowid = (SELECT max(rowid) FROM hourly_trend)"],
     "rolling_averages"),
    ("rolling_null", ["UPDATE hourly_trend SET rolling_avg_24h = NULL WHERE rowid = 1"], "rolling_averages"),
    ("rolling_over_rows_not_from_the_first_hour", ["UPDATE hourly_trend SET rolling_avg_24h = total_events / 24.0 WHERE rowid = 1"],
     "rolling_averages"),
    ("prev_event_wrong", [f"UPDATE events_enriched SET prev_event = CASE prev_event WHEN 'view' THEN 'addtocart' ELSE 'view' END WHERE rowid = {one('events_enriched', LATER_EVENT)}"],
     "prev_event"),
    ("prev_event_on_a_first_event", [f"UPDATE events_enriched SET prev_event = 'view' WHERE rowid = {one('events_enriched', FIRST_EVENT)}"],
     "prev_event"),
    ("prev_event_missing", [f"UPDATE events_enriched SET prev_event = NULL WHERE rowid = {one('events_enriched', LATER_EVENT)}"],
     "prev_event"),
    ("prev_event_of_swapped_ties", ["UPDATE events_enriched SET prev_event = 'addtocart' WHERE visitorid = 101 AND event = 'transaction'"],
     "prev_event"),
    ("seconds_off_by_1ms", [f"UPDATE events_enriched SET seconds_since_prev_event = seconds_since_prev_event + 0.001 WHERE rowid = {one('events_enriched', LATER_EVENT)}"],
     "seconds_since_prev_event"),
    ("seconds_on_a_first_event", [f"UPDATE events_enriched SET seconds_since_prev_event = 0.0 WHERE rowid = {one('events_enriched', FIRST_EVENT)}"],
     "seconds_since_prev_event"),
    ("session_ids_skip_one", ["UPDATE events_enriched SET session_id = session_id + 1 WHERE visitorid = 303 AND session_id >= 3"],
     "session_id"),
    ("session_ids_from_0", ["UPDATE events_enriched SET session_id = session_id - 1 WHERE visitorid = 101"], "session_id"),
    ("gap_of_30_min_1_ms_not_split", ["UPDATE events_enriched SET session_id = 1 WHERE visitorid = 202"], "session_id"),
    ("gap_of_exactly_30_min_split", [f"UPDATE events_enriched SET session_id = session_id + 1 WHERE visitorid = 101 AND timestamp_ms >= {T0 + 40 * MIN}"],
     "session_id"),
    ("delete_a_session", [f"DELETE FROM sessions WHERE rowid = {one('sessions')}"], "sessions_totals"),
    ("session_end_time", [f"UPDATE sessions SET end_time = start_time WHERE rowid = {one('sessions', 'duration_s > 0')}"],
     "sessions_match_events"),
    ("session_duration", [f"UPDATE sessions SET duration_s = duration_s + 1 WHERE rowid = {one('sessions')}"],
     "sessions_match_events"),
    ("session_converted", [f"UPDATE sessions SET converted = 1 - converted WHERE rowid = {one('sessions')}"],
     "sessions_match_events"),
    ("views_moved_between_sessions", [f"UPDATE sessions SET views = views + 1 WHERE rowid = {one('sessions')}",
                                      f"UPDATE sessions SET views = views - 1 WHERE rowid = {one('sessions', 'views > 0 AND rowid > 1')}"],
     "sessions_match_events"),
    ("session_renumbered", [f"UPDATE sessions SET session_id = 9 WHERE rowid = {one('sessions')}"], "sessions_match_events"),
    ("view_to_purchase_flipped", [f"UPDATE events_enriched SET view_to_purchase = 1 - view_to_purchase WHERE rowid = {one('events_enriched', 'view_to_purchase = 1')}"],
     "view_to_purchase"),
    ("view_to_purchase_on_an_addtocart", [f"UPDATE events_enriched SET view_to_purchase = 0 WHERE rowid = {one('events_enriched', 'event = ' + chr(39) + 'addtocart' + chr(39))}"],
     "view_to_purchase"),
    ("view_to_purchase_null_on_a_view", [f"UPDATE events_enriched SET view_to_purchase = NULL WHERE rowid = {one('events_enriched', 'view_to_purchase = 0')}"],
     "view_to_purchase"),
    ("funnel_buyers", ["UPDATE daily_funnel SET buyers = buyers + 1 WHERE rowid = 1"], "daily_funnel"),
    ("funnel_rate", [f"UPDATE daily_funnel SET view_to_cart_rate = view_to_cart_rate + 0.01 WHERE rowid = {one('daily_funnel', 'view_to_cart_rate IS NOT NULL')}"],
     "daily_funnel"),
    ("funnel_rate_null", [f"UPDATE daily_funnel SET view_to_purchase_rate = NULL WHERE rowid = {one('daily_funnel', 'viewers > 0')}"],
     "daily_funnel"),
    ("funnel_rate_zero_instead_of_null", [f"UPDATE daily_funnel SET cart_to_purchase_rate = 0 WHERE rowid = {one('daily_funnel', 'carters = 0')}"],
     "daily_funnel"),
    ("funnel_date_missing", ["DELETE FROM daily_funnel WHERE rowid = (SELECT max(rowid) FROM daily_funnel)"], "daily_funnel"),
    ("duplicate_item_property", ["INSERT INTO item_properties SELECT * FROM item_properties WHERE rowid = 1"],
     "item_properties_unique"),
    ("rows_rejected", ["UPDATE data_quality SET value = value + 1 WHERE check_name = 'rows_rejected'"], "data_quality_counts"),
    ("events_published", ["UPDATE data_quality SET value = value - 1 WHERE check_name = 'events_published'"], "data_quality_counts"),
    ("events_without_categoryid", ["UPDATE data_quality SET value = value + 1 WHERE check_name = 'events_without_categoryid'"],
     "data_quality_counts"),
    ("delete_a_rejected_row", [f"DELETE FROM rejected_rows WHERE rowid = {one('rejected_rows')}"], "data_quality_counts"),
    ("delete_an_event", ["DELETE FROM events_enriched WHERE rowid = (SELECT max(rowid) FROM events_enriched)"], "data_quality_counts"),
    ("data_lines_events", ["UPDATE data_quality SET value = value + 1 WHERE check_name = 'data_lines events.csv'"], "data_lines"),
    ("data_lines_categories", ["UPDATE data_quality SET value = value - 1 WHERE check_name = 'data_lines category_tree.csv'"], "data_lines"),
    ("duplicates_dropped", ["UPDATE data_quality SET value = value + 1 WHERE check_name = 'duplicate_events_dropped'"], "data_lines"),
    ("item_property_lines_below_rejected", ["UPDATE data_quality SET value = 0 WHERE check_name = 'data_lines item_properties_part1.csv'"],
     "data_lines"),
    ("rejected_file_without_data_lines", ["UPDATE rejected_rows SET source_file = 'other.csv' WHERE rowid = 1"], "data_lines"),
    ("data_quality_row_missing", ["DELETE FROM data_quality WHERE check_name = 'duplicate_events_dropped'"], "data_quality_names"),
    ("data_quality_row_twice", ["INSERT INTO data_quality SELECT * FROM data_quality WHERE check_name = 'rows_rejected'"],
     "data_quality_names"),
    ("unknown_rejection_reason", ["UPDATE rejected_rows SET reason = 'bad row' WHERE rowid = 1"], "rejected_rows"),
    ("rejected_header_line", ["UPDATE rejected_rows SET line_number = 1 WHERE rowid = 1"], "rejected_rows"),
    ("drop_a_sessions_column", ["ALTER TABLE sessions DROP COLUMN converted"], "schema"),
    ("drop_an_events_enriched_column", ["ALTER TABLE events_enriched DROP COLUMN root_categoryid"], "schema"),
    ("drop_the_events_view", ["DROP VIEW events"], "schema"),
    ("drop_a_table", ["DROP TABLE daily_funnel"], "schema"),
    ("events_view_rows", ["DROP VIEW events",
                          "CREATE VIEW events AS SELECT timestamp_ms, visitorid, event, itemid, transactionid FROM events_enriched WHERE rowid > 1"],
     "events_values"),
    ("transaction_without_id", [f"UPDATE events_enriched SET transactionid = NULL WHERE rowid = {one('events_enriched', 'transactionid IS NOT NULL AND event = ' + chr(39) + 'transaction' + chr(39))}"],
     "events_values"),
    ("unknown_event_type", [f"UPDATE events_enriched SET event = 'click' WHERE rowid = {one('events_enriched')}"], "events_values"),
    ("event_hour", [f"UPDATE events_enriched SET event_hour = '2015-06-01 05:00:00' WHERE rowid = {one('events_enriched', 'event_hour <> ' + chr(39) + '2015-06-01 05:00:00' + chr(39))}"],
     "event_time_columns"),
    ("event_time_milliseconds", [f"UPDATE events_enriched SET event_time = substr(event_time, 1, 20) || '999' WHERE rowid = {one('events_enriched', 'timestamp_ms % 1000 <> 999')}"],
     "event_time_columns"),
    ("event_time_iso_t", ["UPDATE events_enriched SET event_time = replace(event_time, ' ', 'T') WHERE rowid = 1"], "event_time_columns"),
    ("event_date", ["UPDATE events_enriched SET event_date = date(event_date, '+1 day') WHERE rowid = 1"], "event_time_columns"),
    ("hour_of_day", ["UPDATE events_enriched SET hour_of_day = (hour_of_day + 1) % 24 WHERE rowid = 1"], "event_time_columns"),
    ("category_depth", ["UPDATE category_tree SET depth = depth + 1 WHERE categoryid = 12"], "category_tree"),
    ("category_root_of_a_root", ["UPDATE category_tree SET root_categoryid = 11 WHERE categoryid = 10"], "category_tree"),
    ("category_missing_parent_depth", ["UPDATE category_tree SET depth = 0 WHERE categoryid = 13"], "category_tree"),
    ("category_root_skips_a_level", ["UPDATE category_tree SET root_categoryid = 11 WHERE categoryid = 14"], "category_tree"),
    ("category_repeated", ["INSERT INTO category_tree SELECT * FROM category_tree WHERE categoryid = 10"], "category_tree"),
    ("event_root_category", [f"UPDATE events_enriched SET root_categoryid = 999 WHERE rowid = {one('events_enriched', 'root_categoryid IS NOT NULL')}"],
     "events_category_columns"),
    ("event_parent_outside_the_tree", ["UPDATE events_enriched SET parent_categoryid = 1 WHERE categoryid = 99"],
     "events_category_columns"),
    ("categoryid_not_the_latest_after_it", ["UPDATE events_enriched SET categoryid = 10, parent_categoryid = NULL, root_categoryid = 10"
                                            f" WHERE itemid = 1 AND timestamp_ms > {T0 + 24 * H}"],
     "point_in_time_attributes"),
    ("categoryid_without_any_snapshot", ["UPDATE events_enriched SET categoryid = 10, parent_categoryid = NULL, root_categoryid = 10 WHERE itemid = 6"],
     "point_in_time_attributes"),
    ("available_not_the_latest_after_it", [f"UPDATE events_enriched SET available = 1 WHERE itemid = 1 AND timestamp_ms > {T0 + 24 * H}"],
     "point_in_time_attributes"),
    # SPEC "Analyst tables"
    ("visitor_events", ["UPDATE visitors SET events = events + 1 WHERE visitorid = 101"], "visitors"),
    ("visitor_views_moved_to_addtocarts", ["UPDATE visitors SET views = views - 1, addtocarts = addtocarts + 1 WHERE visitorid = 303"],
     "visitors"),
    ("visitor_missing", ["DELETE FROM visitors WHERE visitorid = 808"], "visitors"),
    ("visitor_not_in_events", ["INSERT INTO visitors SELECT 999, first_event_time, last_event_time, events, views, addtocarts,"
                               " transactions, sessions, orders, segment FROM visitors WHERE visitorid = 808"], "visitors"),
    ("visitor_sessions_not_the_largest_session_id", ["UPDATE visitors SET sessions = sessions - 1 WHERE visitorid = 202"], "visitors"),
    ("visitor_orders", ["UPDATE visitors SET orders = orders + 1 WHERE visitorid = 101"], "visitors"),
    ("visitor_segment_carter_as_browser", ["UPDATE visitors SET segment = 'browser' WHERE visitorid = 505"], "visitors"),
    ("visitor_segment_browser_as_bounce", ["UPDATE visitors SET segment = 'bounce' WHERE visitorid = 707"], "visitors"),
    ("visitor_first_event_time", ["UPDATE visitors SET first_event_time = last_event_time WHERE visitorid = 303"], "visitors"),
    ("abandoned_cart_without_addtocart", [f"UPDATE sessions SET abandoned_cart = 0 WHERE rowid = {one('sessions', 'addtocarts = 0')}"],
     "sessions_cart_columns"),
    ("abandoned_cart_null_with_addtocart", ["UPDATE sessions SET abandoned_cart = NULL, recovered = NULL WHERE visitorid = 505"],
     "sessions_cart_columns"),
    ("abandoned_cart_on_a_converted_session", ["UPDATE sessions SET abandoned_cart = 1, recovered = 0 WHERE visitorid = 101 AND session_id = 1"],
     "sessions_cart_columns"),
    ("recovered_on_a_converted_session", ["UPDATE sessions SET recovered = 0 WHERE abandoned_cart = 0"], "sessions_cart_columns"),
    ("recovered_flipped", ["UPDATE sessions SET recovered = 1 - recovered WHERE visitorid = 909"], "sessions_cart_columns"),
    ("not_recovered_flipped", ["UPDATE sessions SET recovered = 1 WHERE visitorid = 505"], "sessions_cart_columns"),
    ("cart_items_off", ["UPDATE sessions SET cart_items = 2 WHERE visitorid = 505"], "sessions_cart_columns"),
    ("cart_items_on_a_session_without_addtocart", [f"UPDATE sessions SET cart_items = 1 WHERE rowid = {one('sessions', 'addtocarts = 0')}"],
     "sessions_cart_columns"),
    ("cart_sessions", ["UPDATE daily_cart_abandonment SET cart_sessions = cart_sessions + 1 WHERE date = '2015-06-02'"],
     "daily_cart_abandonment"),
    ("recovered_sessions", ["UPDATE daily_cart_abandonment SET recovered_sessions = 0, recovery_rate = 0.0 WHERE date = '2015-06-03'"],
     "daily_cart_abandonment"),
    ("abandonment_rate", ["UPDATE daily_cart_abandonment SET abandonment_rate = 0.99 WHERE date = '2015-06-02'"], "daily_cart_abandonment"),
    ("recovery_rate_zero_instead_of_null", ["UPDATE daily_cart_abandonment SET recovery_rate = 0.0 WHERE abandoned_sessions = 0"],
     "daily_cart_abandonment"),
    ("cart_date_missing", ["DELETE FROM daily_cart_abandonment WHERE date = '2015-06-09'"], "daily_cart_abandonment"),
    ("cart_date_by_the_end_of_the_session", ["UPDATE daily_cart_abandonment SET date = '2015-06-10' WHERE date = '2015-06-09'"],
     "daily_cart_abandonment"),
    ("purchase_missing", ["DELETE FROM purchase_timing WHERE visitorid = 404"], "purchase_timing"),
    ("purchase_twice", ["INSERT INTO purchase_timing SELECT * FROM purchase_timing WHERE visitorid = 202"], "purchase_timing"),
    ("purchase_first_view_time", ["UPDATE purchase_timing SET first_view_time = purchase_time WHERE visitorid = 101"], "purchase_timing"),
    ("purchase_view_time_without_a_view", ["UPDATE purchase_timing SET first_view_time = purchase_time,"
                                           " seconds_view_to_purchase = 0.0, sessions_to_purchase = 1 WHERE visitorid = 404"],
     "purchase_timing"),
    ("purchase_first_cart_time_null", ["UPDATE purchase_timing SET first_cart_time = NULL WHERE visitorid = 909"], "purchase_timing"),
    ("purchase_seconds_off_by_1ms", ["UPDATE purchase_timing SET seconds_view_to_purchase = seconds_view_to_purchase + 0.001"
                                     " WHERE visitorid = 202"], "purchase_timing"),
    ("purchase_cart_seconds_null", ["UPDATE purchase_timing SET seconds_cart_to_purchase = NULL WHERE visitorid = 101"], "purchase_timing"),
    ("purchase_sessions", ["UPDATE purchase_timing SET sessions_to_purchase = 1 WHERE visitorid = 202"], "purchase_timing"),
    ("cohort_week0_active", ["UPDATE cohort_retention SET active_visitors = 6, retention_rate = 6 / 7.0"
                             " WHERE cohort_week = '2015-06-01' AND week_number = 0"], "cohort_retention"),
    ("cohort_size", ["UPDATE cohort_retention SET visitors = 2, retention_rate = active_visitors / 2.0,"
                     " purchase_rate = buyers / 2.0 WHERE cohort_week = '2015-06-08'"], "cohort_retention"),
    ("cohort_week_missing", ["DELETE FROM cohort_retention WHERE cohort_week = '2015-06-01' AND week_number = 1"], "cohort_retention"),
    ("cohort_week_after_the_last", ["INSERT INTO cohort_retention VALUES ('2015-06-08', 1, 1, 0, 0, 0.0, 0.0)"], "cohort_retention"),
    ("cohort_week_not_a_monday", ["UPDATE cohort_retention SET cohort_week = '2015-06-07' WHERE cohort_week = '2015-06-08'"],
     "cohort_retention"),
    ("cohort_buyers", ["UPDATE cohort_retention SET buyers = 1, purchase_rate = 1 / 7.0 WHERE cohort_week = '2015-06-01'"
                       " AND week_number = 1"], "cohort_retention"),
    ("cohort_retention_rate", ["UPDATE cohort_retention SET retention_rate = 0.5 WHERE cohort_week = '2015-06-01' AND week_number = 1"],
     "cohort_retention"),
    ("cohort_of_an_event_outside_the_range", ["UPDATE events_enriched SET timestamp_ms = 946684799999 WHERE visitorid = 808"],
     "cohort_retention"),
    ("category_group_above_its_day", ["UPDATE category_daily_funnel SET visitors = visitors + 5 WHERE date = '2015-06-01' AND root_categoryid = 10"],
     "category_daily_funnel"),
    ("category_group_missing", ["DELETE FROM category_daily_funnel WHERE date = '2015-06-01' AND root_categoryid IS NULL"],
     "category_daily_funnel"),
    ("category_null_group_given_a_root", ["UPDATE category_daily_funnel SET root_categoryid = 10 WHERE date = '2015-06-08' AND root_categoryid IS NULL"],
     "category_daily_funnel"),
    ("category_buyers", ["UPDATE category_daily_funnel SET buyers = 0, cart_to_purchase_rate = 0.0, view_to_purchase_rate = 0.0"
                         " WHERE date = '2015-06-03' AND root_categoryid = 50"], "category_daily_funnel"),
    ("category_rate", ["UPDATE category_daily_funnel SET view_to_cart_rate = 0.5 WHERE date = '2015-06-01' AND root_categoryid = 10"],
     "category_daily_funnel"),
    ("category_rate_zero_instead_of_null", ["UPDATE category_daily_funnel SET cart_to_purchase_rate = 0.0 WHERE carters = 0"],
     "category_daily_funnel"),
    ("category_date_outside_daily_funnel", ["UPDATE category_daily_funnel SET date = '2015-06-10' WHERE date = '2015-06-09'"],
     "category_daily_funnel"),
    ("pair_together_asymmetric", ["UPDATE item_pairs SET together = 4 WHERE itemid = 1 AND other_itemid = 2"], "item_pairs"),
    ("pair_together_both_ways", ["UPDATE item_pairs SET together = 4 WHERE itemid + other_itemid = 3"], "item_pairs"),
    ("pair_reverse_missing", ["DELETE FROM item_pairs WHERE itemid = 3"], "item_pairs"),
    ("pair_rank_gap", ["UPDATE item_pairs SET rank = 3 WHERE itemid = 2 AND rank = 2"], "item_pairs"),
    ("pair_ranks_swapped", ["UPDATE item_pairs SET rank = 3 - rank WHERE itemid = 2"], "item_pairs"),
    ("pair_rank_from_0", ["UPDATE item_pairs SET rank = rank - 1 WHERE itemid = 2"], "item_pairs"),
    ("pair_together_below_2", ["UPDATE item_pairs SET together = 1 WHERE itemid + other_itemid = 5"], "item_pairs"),
    ("pair_more_than_20", ["INSERT INTO item_pairs SELECT 2, 2 + k, 100 + k, 2, 1.0 FROM (WITH RECURSIVE n(k) AS"
                           " (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 19) SELECT k FROM n)"], "item_pairs"),
    ("pair_lift_both_ways", ["UPDATE item_pairs SET lift = lift * 1.01 WHERE itemid + other_itemid = 3"], "item_pairs"),
    ("pair_with_itself", ["UPDATE item_pairs SET other_itemid = 3 WHERE itemid = 3"], "item_pairs"),
    ("history_gap", ["UPDATE item_property_history SET valid_to_ms = valid_to_ms + 1 WHERE itemid = 1 AND property = 'categoryid'"
                     " AND valid_to_ms IS NOT NULL"], "item_property_history"),
    ("history_last_run_with_an_end", ["UPDATE item_property_history SET valid_to_ms = valid_from_ms + 1, valid_to = valid_from"
                                      " WHERE itemid = 6"], "item_property_history"),
    ("history_runs_overlap", ["UPDATE item_property_history SET valid_from_ms = valid_from_ms - 1 WHERE itemid = 1 AND property = 'categoryid'"
                              " AND valid_to_ms IS NULL"], "item_property_history"),
    ("history_same_value_twice", ["UPDATE item_property_history SET value = '10' WHERE itemid = 1 AND property = 'categoryid'"],
     "item_property_history"),
    ("history_valid_from_text", ["UPDATE item_property_history SET valid_from = replace(valid_from, ' ', 'T') WHERE itemid = 6"],
     "item_property_history"),
    ("history_valid_to_text", ["UPDATE item_property_history SET valid_to = valid_from WHERE valid_to IS NOT NULL AND itemid = 2"],
     "item_property_history"),
    ("history_of_another_property", ["UPDATE item_property_history SET property = '888' WHERE itemid = 6"], "item_property_history"),
    ("history_missing_for_an_item", ["DELETE FROM item_property_history WHERE itemid = 3"], "item_property_history"),
    ("history_last_value_not_the_latest", ["UPDATE item_property_history SET value = '0' WHERE itemid = 6"], "item_property_history"),
    ("history_repeated_run", ["INSERT INTO item_property_history SELECT * FROM item_property_history WHERE itemid = 6"],
     "item_property_history"),
    ("history_value_in_effect", ["UPDATE item_property_history SET value = '11' WHERE itemid = 1 AND property = 'categoryid'"
                                 " AND valid_to_ms IS NOT NULL"], "history_matches_events"),
    ("history_change_moved_after_an_event", [
        f"UPDATE item_property_history SET valid_to_ms = {T0 + 51 * H} WHERE itemid = 1 AND property = 'categoryid' AND valid_to_ms IS NOT NULL",
        f"UPDATE item_property_history SET valid_from_ms = {T0 + 51 * H} WHERE itemid = 1 AND property = 'categoryid' AND valid_to_ms IS NULL"],
     "history_matches_events"),
    ("history_first_run_not_used_before_it", [f"UPDATE events_enriched SET categoryid = NULL, parent_categoryid = NULL, root_categoryid = NULL"
                                              f" WHERE itemid = 4 AND timestamp_ms < {T0 + 100 * H}"], "history_matches_events"),
    ("history_not_an_integer_read_as_one", [f"UPDATE events_enriched SET categoryid = 5 WHERE itemid = 2 AND timestamp_ms < {T0 + 6 * H}"],
     "history_matches_events"),
    ("event_available_without_history", ["UPDATE events_enriched SET available = 1 WHERE itemid = 3"], "history_matches_events"),
    ("session_of_a_missing_visitor", ["DELETE FROM visitors WHERE visitorid = 909"], "foreign_keys"),
    ("purchase_of_a_missing_visitor", ["UPDATE purchase_timing SET visitorid = 12345 WHERE visitorid = 404"], "foreign_keys"),
]


@pytest.mark.parametrize("statements, check", [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_each_corruption_fails_its_check(good_database, tmp_path, statements, check):
    database = tmp_path / "corrupt.db"
    shutil.copyfile(good_database, database)
    connection = sqlite3.connect(database)
    try:
        with connection:
            for sql in statements:
                changed = connection.execute(sql).rowcount
                assert changed != 0, f"the corruption changed nothing: {sql}"
    finally:
        connection.close()
    result = run_verify("--database", database)
    assert result.returncode != 0, result.stdout
    assert check in failed_checks(result), result.stdout


ANALYST_CHECKS = {  # check -> the table it needs
    "visitors": "visitors",
    "daily_cart_abandonment": "daily_cart_abandonment",
    "purchase_timing": "purchase_timing",
    "cohort_retention": "cohort_retention",
    "category_daily_funnel": "category_daily_funnel",
    "item_pairs": "item_pairs",
    "item_property_history": "item_property_history",
    "history_matches_events": "item_property_history",
}


@pytest.mark.parametrize("check, table", ANALYST_CHECKS.items(), ids=ANALYST_CHECKS)
def test_a_missing_analyst_table_fails_its_check_as_missing(good_database, tmp_path, check, table):
    database = tmp_path / "without.db"
    shutil.copyfile(good_database, database)
    with sqlite3.connect(database) as connection:
        connection.execute(f"DROP TABLE {table}")
    result = run_verify("--database", database)
    assert result.returncode != 0
    assert f"FAIL {check}: table missing: {table}" in result.stdout, result.stdout
    assert "schema" in failed_checks(result)


def test_sessions_without_the_cart_columns_fail_as_missing(good_database, tmp_path):
    database = tmp_path / "without.db"
    shutil.copyfile(good_database, database)
    with sqlite3.connect(database) as connection:
        connection.execute("ALTER TABLE sessions DROP COLUMN recovered")
    result = run_verify("--database", database)
    assert "FAIL sessions_cart_columns: column missing: sessions.recovered" in result.stdout, result.stdout


def test_time_text_outside_sqlite_years_agrees_with_the_reference():
    for ms in (-62_167_219_200_001, -62_167_219_200_000, 253_402_300_800_000, 999_999_999_999_999_999,
               -999_999_999_999_999_999, -1, 0, 1_433_116_800_123):
        expected = (format_time(ms), format_date(ms), format_hour(ms), utc_parts(ms)[3])
        assert verify_results.time_texts(ms) == expected


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(
    st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{0,3})?", fullmatch=True),
    st.text(alphabet="-+.0123456789e n", max_size=8),
))
def test_sql_integer_reading_agrees_with_the_reference(text):
    connection = sqlite3.connect(":memory:")
    try:
        got = connection.execute(f"SELECT {verify_results.sql_as_integer('x')} FROM (SELECT ? AS x)", (text,)).fetchone()[0]
    finally:
        connection.close()
    assert got == parse_int(text)


# --- Bounded memory: what verify_results.py holds does not grow with the database ----------------


def test_connections_keep_temporary_data_on_disk_and_map_nothing(good_database):
    """The settings that bound the memory: page caches of a fixed size (the TEMP schema's half the
    file's), TEMP tables and temporary b-trees in files, no memory-mapped pages of the database."""
    connection = verify_results.open_read_only(good_database, cache_mib=8)
    try:
        settings = {pragma: connection.execute(f"PRAGMA {pragma}").fetchone()[0]
                    for pragma in ("temp_store", "main.cache_size", "temp.cache_size", "mmap_size")}
    finally:
        connection.close()
    assert settings == {"temp_store": 1, "main.cache_size": -8 * 1024, "temp.cache_size": -4 * 1024,
                        "mmap_size": 0}


PEAK_MEMORY = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as stop:
    code = stop.code
else:
    code = 0
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("VmHWM", status["VmHWM"].split()[0], file=sys.stderr)
sys.exit(code)
"""


def peak_kib(database: Path, *args) -> int:
    """The peak resident memory (VmHWM, KiB) of a whole verify_results.py run that passes."""
    result = subprocess.run([sys.executable, "-c", PEAK_MEMORY, str(VERIFY), "--database", str(database), *args],
                            capture_output=True, text=True, timeout=600)
    assert_all_pass(result)
    return int(result.stderr.split("VmHWM")[-1])


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmHWM from /proc")
def test_peak_memory_does_not_grow_with_the_database(tmp_path):
    """Two generated data sets, the second 2.5 times the first, through the real pipeline: with
    small page caches (1 MiB) the peak memory of the checks stays put while the database grows by
    some 50 MB. What may still grow at these small sizes is fixed too: a sorter keeps up to 250
    pages in memory (4 MiB at 16 KiB pages) before it writes a sorted run to a temporary file.
    Reading whole tables, TEMP tables in memory or a memory map of the file fail this."""
    peaks, sizes = [], []
    for scale in ("0.02", "0.05"):
        data, database = tmp_path / f"data-{scale}", tmp_path / f"retail-{scale}.db"
        generated = subprocess.run([sys.executable, "-m", "retail_pipeline.generate", str(data), "--scale", scale,
                                    "--seed", "2"], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert generated.returncode == 0, generated.stderr[-2000:]
        published = run_pipeline(data, tmp_path / f"work-{scale}", database)
        assert published.returncode == 0, published.stderr[-3000:]
        sizes.append(database.stat().st_size)
        peaks.append(peak_kib(database, "--cache-mib", "1"))
    assert sizes[1] - sizes[0] > 40 * 2**20, sizes
    assert peaks[1] - peaks[0] < 16 * 1024, f"peak {peaks} KiB for databases of {sizes} bytes"
