"""scripts/multi_process_run.py: the graph run by separate `luigi` processes that share nothing
but a real luigid and the work dir (standing in for several hosts), against one process."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import REPO, SAMPLE, assert_same_tables, read_tables, write_inputs

SCRIPT = REPO / "scripts" / "multi_process_run.py"


def _module():
    spec = importlib.util.spec_from_file_location("multi_process_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_what_each_process_ran_is_read_from_its_log():
    script = _module()
    stderr = "\n".join([
        "INFO: [pid 10] Worker Worker(...) running   LoadEvents()",
        "STARTED LoadEvents__99914b932b 1000.50",
        "STARTED EnrichEventsShard_1_634550f2e3 1002.00",
        "TIMING EnrichEventsShard_1_634550f2e3 0.25s",
        "MEMORY EnrichEventsShard_1_634550f2e3 peak 120.0MB rss 100.0MB pid 12",
        "TIMING LoadEvents__99914b932b 1.50s",
        "MEMORY LoadEvents__99914b932b peak 110.0MB rss 90.0MB pid 11",
        "STARTED PublishDatabase__99914b932b 1003.00",  # started, never finished: not counted as run
    ])
    ran = script.tasks_run(stderr)
    assert list(ran) == ["LoadEvents__99914b932b", "EnrichEventsShard_1_634550f2e3"]  # in the order they started
    assert ran["LoadEvents__99914b932b"] == {"seconds": 1.5, "started": 1000.5, "pid": 11}
    assert script.family("EnrichEventsShard_1_634550f2e3") == "EnrichEventsShard"
    assert script.families(["EnrichEventsShard_0_a", "EnrichEventsShard_1_b", "LoadEvents__c"]) == \
        "EnrichEventsShard ×2, LoadEvents"
    hosts = [{"tasks": ["A__1", "B__2"]}, {"tasks": []}, {"tasks": ["C__3", "A__1"]}]
    assert script.spread(hosts) == {"processes_that_ran_tasks": 2, "tasks_run": 3, "tasks_run_more_than_once": ["A__1"]}


def test_the_graph_stages_follow_the_shard_count():
    script = _module()
    stages = script.graph_stages(SAMPLE, ["--retail-shards", "3"])
    shards = [row for row in stages if "EnrichEventsShard" in row["families"]]
    assert len(shards) == 1 and shards[0]["families"]["EnrichEventsShard"] == 3
    assert stages[0]["families"]["LoadItemPropertyFile"] == 2  # one task per property file, side by side
    assert stages[-1]["families"] == {"RunAll": 1} and stages[-2]["families"] == {"PublishDatabase": 1}
    assert [row["stage"] for row in stages] == list(range(1, len(stages) + 1))


@pytest.mark.slow
def test_three_processes_share_the_graph_and_publish_what_one_process_publishes(tmp_path):
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-dir", str(SAMPLE), "--processes", "3", "--workers", "2",
         "--out-dir", str(out), "--timeout", "600"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["same_tables"]
    hosts = summary["hosts"]
    assert [host["exit_code"] for host in hosts] == [0, 0, 0]
    assert summary["processes_that_ran_tasks"] > 1, hosts  # the work was spread
    assert summary["tasks_run_more_than_once"] == []  # luigid handed each task to one process
    assert len(summary["published_by"]) == 1
    for i in (1, 2, 3):  # each process had a folder, home and temporary directory of its own
        assert (out / f"host-{i}" / "tmp").is_dir() and (out / f"host-{i}" / "stderr.log").is_file()
    assert "published the same tables as one process" in completed.stdout
    # The published database equals the single-process one, also as the tests compare tables.
    assert_same_tables(read_tables(out / "shared" / "retail.db"), read_tables(out / "single" / "retail.db"))


@pytest.mark.slow
def test_the_processes_database_is_checked_against_saved_digests_of_a_single_process_run(tmp_path):
    """How the ten-times run is checked (its two databases do not fit on one disk together): the
    single-process database's digests saved, the database deleted, then the shared run compared
    with them instead of running the graph again."""
    single = tmp_path / "single"
    ran = subprocess.run([sys.executable, "-m", "luigi", "--module", "tasks", "RunAll", "--local-scheduler",
                          "--retail-data-dir", str(SAMPLE), "--retail-work-dir", str(single / "work"),
                          "--retail-database", str(single / "retail.db")], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    digests = tmp_path / "single.json"
    subprocess.run([sys.executable, str(REPO / "scripts" / "compare_databases.py"), "--save", str(digests),
                    str(single / "retail.db")], check=True, capture_output=True, timeout=300)
    (single / "retail.db").unlink()
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-dir", str(SAMPLE), "--processes", "2", "--workers", "1",
         "--reference-digests", str(digests), "--out-dir", str(out), "--timeout", "600"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["same_tables"] and summary["reference_digests"] == str(digests)
    assert not (out / "single").exists()  # the graph was not run again in one process
    assert "SAME    events_enriched" in completed.stdout


def test_bad_usage_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "something").write_text("x")
    completed = subprocess.run([sys.executable, str(SCRIPT), "--out-dir", str(tmp_path / "out")],
                               cwd=REPO, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2 and "not empty" in completed.stderr


@pytest.mark.slow
def test_a_failing_process_fails_the_script(tmp_path):
    files = {name: (SAMPLE / name).read_bytes() for name in ("events.csv", "item_properties_part1.csv",
                                                              "item_properties_part2.csv")}
    files["category_tree.csv"] = "categoryid,parentid\n1,2\n2,1\n"  # a cycle stops the run
    data = write_inputs(tmp_path / "data", files)
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-dir", str(data), "--processes", "2", "--workers", "1",
         "--out-dir", str(out), "--timeout", "600"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "did not exit 0" in completed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["ok"] and all(host["exit_code"] != 0 for host in summary["hosts"])
    assert not (out / "single").exists()  # no reference run after a failure
