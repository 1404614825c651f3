"""End to end through the real `luigi` command: correct tables, clear failures, freshness."""

from __future__ import annotations

import gzip
import shutil
import time

import pytest

from conftest import (REALDATA, SAMPLE, assert_same_tables, read_tables, run_pipeline, touch_later, verify,
                      write_inputs)
from reference import build_reference

pytestmark = pytest.mark.slow

EVENTS = "timestamp,visitorid,event,itemid,transactionid\n"
PROPS = "timestamp,itemid,property,value\n"
TREE = "categoryid,parentid\n"
DAY = 86_400_000
T0 = 1_433_300_000_000  # 2015-06-03 02:53:20 UTC

# Unsorted, with ties, an exact 30-minute gap, a 30 min + 1 ms gap, a duplicate, empty hours,
# a transaction id written as 14418.0, an item first snapshotted after its first event,
# same-timestamp snapshots, a non-integer categoryid, a category missing from the tree,
# and one line of each rejection kind.
DIRTY = {
    "events.csv": EVENTS + "\n".join([
        f"{T0 + 5_000},1,view,10,",
        f"{T0},1,view,10,",
        f"{T0},1,addtocart,10,",  # tie with the line before: input order decides
        f"{T0 + 5_000 + 1_800_000},1,view,11,",  # exactly 30 minutes: same session
        f"{T0 + 5_000 + 3_600_001},1,transaction,10,14418.0",  # 30 min + 1 ms: new session
        f"{T0 + 5_000 + 3_600_001},1,transaction,10,14418",  # duplicate of the line above
        f"{T0 + 2 * DAY},2,view,12,",
        f"{T0 + 2 * DAY + 10},2,view,13,",
        f"{T0 + 2 * DAY + 20},2,view,14,",
        f"{T0 - DAY},3,view,10,",
        "",
        f"{T0},4,view",
        f"x{T0},4,view,10,",
        f"{T0},4,VIEW,10,",
        f"{T0},4,transaction,10,",
        f"{T0},4,view,10,1.5",
        f"{T0 + 3 * DAY},5,transaction,12,7",
    ]) + "\n",
    "item_properties_part1.csv": PROPS + "\n".join([
        f"{T0 - 3 * DAY},10,categoryid,100",
        f"{T0 + DAY},10,categoryid,101",
        f"{T0 + DAY},10,categoryid,102",  # same timestamp: the later line wins
        f"{T0 + DAY},11,categoryid,n1338.000",
        f"{T0 + 3 * DAY},12,categoryid,200",  # first snapshot after the item's first event
        f"{T0},13,categoryid,999",  # not in the tree
        f"{T0},10,available,1",
        f"{T0},10,888,n48.000",
        "bad,10,888,x",
    ]) + "\n",
    "item_properties_part2.csv": PROPS + "\n".join([
        f"{T0 + DAY},10,categoryid,103",  # part2 after part1: wins the tie
        f"{T0 - 3 * DAY},10,available,0",
        f"{T0},10,888,n48.000 1 2",
    ]) + "\n",
    "category_tree.csv": TREE + "\n".join(["100,", "101,100", "102,101", "103,55", "200,", "101,", "x,1"]) + "\n",
}


@pytest.fixture(scope="module")
def dirty_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dirty")
    data = write_inputs(root / "data", DIRTY)
    result = run_pipeline(data, root / "work", root / "retail.db")
    return data, root / "retail.db", result


def test_dirty_data_matches_the_reference_row_for_row(dirty_run):
    data, database, result = dirty_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_tables(read_tables(database), build_reference(data))


def test_dirty_data_rejections_carry_file_line_and_reason(dirty_run):
    _, database, _ = dirty_run
    rejected = {(r["source_file"], r["line_number"]): r["reason"] for r in read_tables(database)["rejected_rows"]}
    assert rejected == {
        ("events.csv", 12): "blank line",
        ("events.csv", 13): "wrong number of fields: expected 5, got 3",
        ("events.csv", 14): "timestamp is not an integer",
        ("events.csv", 15): "unknown event type",
        ("events.csv", 16): "transaction without transactionid",
        ("events.csv", 17): "transactionid is not an integer",
        ("item_properties_part1.csv", 10): "timestamp is not an integer",
        ("category_tree.csv", 7): "duplicate categoryid",
        ("category_tree.csv", 8): "categoryid is not an integer",
    }


def test_dirty_data_passes_verify_results(dirty_run):
    _, database, _ = dirty_run
    result = verify(database)
    assert result.returncode == 0, result.stdout + result.stderr


def test_published_types_are_declared(dirty_run):
    import sqlite3

    _, database, _ = dirty_run
    conn = sqlite3.connect(database)
    types = dict(conn.execute("SELECT name, type FROM pragma_table_info('events_enriched')").fetchall())
    assert types["transactionid"] == "INTEGER" and types["event_time"] == "TEXT"
    assert conn.execute("SELECT typeof(transactionid) FROM events_enriched WHERE event = 'transaction'").fetchall() \
        == [("integer",), ("integer",)]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    indexed = {r[0] for r in conn.execute("SELECT tbl_name FROM sqlite_master WHERE type = 'index'")}
    assert {"events_enriched", "category_tree", "sessions"} <= indexed


def test_real_rows_are_read_as_they_are(tmp_path):
    result = run_pipeline(REALDATA, tmp_path / "work", tmp_path / "retail.db")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Published tables:" in result.stdout and "events_enriched" in result.stdout
    tables = read_tables(tmp_path / "retail.db")
    assert_same_tables(tables, build_reference(REALDATA))
    assert len(tables["events_enriched"]) == 2770 and tables["rejected_rows"] == []
    assert {r["transactionid"] for r in tables["events_enriched"] if r["event"] == "transaction"} >= {14418}
    assert verify(tmp_path / "retail.db").returncode == 0


def test_bundled_sample_runs_and_verifies(tmp_path):
    result = run_pipeline(SAMPLE, tmp_path / "work", tmp_path / "retail.db")
    assert result.returncode == 0, result.stderr[-3000:]
    checked = verify(tmp_path / "retail.db")
    assert checked.returncode == 0, checked.stdout


def test_gzip_inputs_publish_the_same_tables(tmp_path, dirty_run):
    data, database, _ = dirty_run
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    for path in data.iterdir():
        (zipped / (path.name + ".gz")).write_bytes(gzip.compress(path.read_bytes()))
    result = run_pipeline(zipped, tmp_path / "work", tmp_path / "retail.db")
    assert result.returncode == 0, result.stderr[-3000:]
    plain, packed = read_tables(database), read_tables(tmp_path / "retail.db")
    for rows in (plain["rejected_rows"], packed["rejected_rows"]):
        for r in rows:
            r["source_file"] = r["source_file"].removesuffix(".gz")
    for rows in (plain["data_quality"], packed["data_quality"]):
        for r in rows:
            r["check_name"] = r["check_name"].replace(".csv.gz", ".csv")
            r["detail"] = r["detail"].replace(".csv.gz", ".csv")
    assert_same_tables(packed, plain)


# --- Failures: a non-zero exit, one clear line, the published database untouched ----------------

def published_then_broken(tmp_path, break_inputs):
    data = write_inputs(tmp_path / "data", DIRTY)
    work, database = tmp_path / "work", tmp_path / "retail.db"
    assert run_pipeline(data, work, database).returncode == 0
    before = database.read_bytes()
    break_inputs(data)
    result = run_pipeline(data, work, database)
    assert result.returncode != 0
    assert database.read_bytes() == before, "the published database changed after a failed run"
    return result


def test_missing_file_stops_the_run_naming_it(tmp_path):
    result = published_then_broken(tmp_path, lambda d: (d / "category_tree.csv").unlink())
    assert f"ERROR: {tmp_path / 'data' / 'category_tree.csv'}: input file not found" in result.stderr


def test_wrong_header_stops_the_run_naming_the_file(tmp_path):
    def rename_column(data):
        text = (data / "events.csv").read_text().replace("visitorid", "visitor_id", 1)
        (data / "events.csv").write_text(text)

    result = published_then_broken(tmp_path, rename_column)
    assert f"ERROR: {tmp_path / 'data' / 'events.csv'}: wrong header" in result.stderr


def test_category_cycle_stops_the_run_naming_the_categories(tmp_path):
    def add_cycle(data):
        with open(data / "category_tree.csv", "a") as f:
            f.write("300,301\n301,302\n302,300\n")

    result = published_then_broken(tmp_path, add_cycle)
    assert "ERROR: category_tree: cycle among categories 300 -> 301 -> 302 -> 300" in result.stderr


def test_same_input_as_csv_and_gz_stops_the_run(tmp_path):
    def add_gz(data):
        (data / "events.csv.gz").write_bytes(gzip.compress((data / "events.csv").read_bytes()))

    result = published_then_broken(tmp_path, add_gz)
    assert "events.csv.gz: the same input is also given as" in result.stderr


# --- Freshness ----------------------------------------------------------------------------------

def ran(result) -> str:
    """The part of Luigi's summary listing the tasks that ran."""
    summary = result.stderr.split("===== Luigi Execution Summary =====")[1]
    return summary.split("ran successfully:")[1] if "ran successfully:" in summary else ""


def test_unchanged_rerun_does_nothing_and_changes_are_picked_up(tmp_path):
    data = write_inputs(tmp_path / "data", DIRTY)
    work, database = tmp_path / "work", tmp_path / "retail.db"
    assert run_pipeline(data, work, database).returncode == 0

    started = time.monotonic()
    again = run_pipeline(data, work, database)
    assert again.returncode == 0 and "Did not run any tasks" in again.stderr
    assert time.monotonic() - started < 30

    with open(data / "events.csv", "a") as f:
        f.write(f"{T0 + 4 * DAY},9,view,10,\n")
    changed = run_pipeline(data, work, database)
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert "LoadEvents" in ran(changed) and "LoadItemProperties" not in ran(changed)
    assert any(r["visitorid"] == 9 for r in read_tables(database)["events_enriched"])
    assert_same_tables(read_tables(database), build_reference(data))

    touch_later(data / "category_tree.csv")
    touched = run_pipeline(data, work, database)
    assert "LoadCategoryTree" in ran(touched) and "LoadEvents" not in ran(touched)


def test_a_deleted_database_is_published_again(tmp_path):
    data = write_inputs(tmp_path / "data", DIRTY)
    work, database = tmp_path / "work", tmp_path / "retail.db"
    assert run_pipeline(data, work, database).returncode == 0
    database.unlink()
    result = run_pipeline(data, work, database)
    assert result.returncode == 0 and "PublishDatabase" in ran(result) and "LoadEvents" not in ran(result)
    assert database.exists()


def test_a_new_database_path_is_published_from_the_same_work(tmp_path):
    data = write_inputs(tmp_path / "data", DIRTY)
    work = tmp_path / "work"
    assert run_pipeline(data, work, tmp_path / "a.db").returncode == 0
    second = run_pipeline(data, work, tmp_path / "b.db")
    assert second.returncode == 0 and "EnrichEvents" not in ran(second)
    shutil.rmtree(work)
    assert read_tables(tmp_path / "a.db") == read_tables(tmp_path / "b.db")


def test_results_do_not_depend_on_shards_or_workers(tmp_path, dirty_run):
    _, database, _ = dirty_run  # the default: 4 shards, one worker
    data = write_inputs(tmp_path / "data", DIRTY)
    for shards, workers in ((1, 1), (3, 2)):
        other = tmp_path / f"s{shards}.db"
        result = run_pipeline(data, tmp_path / f"work{shards}", other, "--retail-shards", str(shards),
                              "--workers", str(workers))
        assert result.returncode == 0, result.stderr[-3000:]
        assert_same_tables(read_tables(other), read_tables(database))
