"""Runs against a real central scheduler (luigid on loopback): progress in the visualiser,
parallel workers, overlapping runs, several worker processes standing in for several hosts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
from collections import Counter

import pytest

import tasks

from conftest import (BIN, REPO, assert_same_tables, free_port, get, pipeline_command, read_tables, run_pipeline,
                      screenshot, verify, write_inputs)
from reference import build_reference
from test_pipeline_cli import DIRTY

pytestmark = pytest.mark.slow

FAMILIES = set(tasks.__all__) - {"retail"}  # every task family of the graph


@pytest.fixture
def luigid(tmp_path):
    """A luigid on a free loopback port, with the repository's luigi.cfg; polled until it answers."""
    port = free_port()
    (tmp_path / "logs").mkdir()
    log = open(tmp_path / "luigid.log", "w")
    process = subprocess.Popen(
        [str(BIN / "luigid"), "--address", "127.0.0.1", "--port", str(port),
         "--state-path", str(tmp_path / "state.pickle"), "--logdir", str(tmp_path / "logs")],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, "LUIGI_CONFIG_PATH": str(REPO / "luigi.cfg")},
    )
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (tmp_path / "luigid.log").read_text()
        try:
            get(f"http://127.0.0.1:{port}/api/ping")  # any HTTP answer means it is up
            break
        except OSError:
            assert time.monotonic() < deadline, "luigid did not answer within 60 s"
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(timeout=30)
    log.close()


def scheduler_tasks(port, status=None) -> dict:
    query = {} if status is None else {"status": status}
    url = f"http://127.0.0.1:{port}/api/task_list?data={urllib.parse.quote(json.dumps(query))}"
    return json.loads(get(url)[1])["response"]


def task_runs(*results) -> Counter:
    """How many times each task ran, over the given runs (from the TIMING line of each finished task)."""
    return Counter(m for r in results for m in re.findall(r"^TIMING (\S+) ", r.stderr, re.M))


def test_a_run_with_two_workers_is_done_and_shows_progress(tmp_path, luigid, browser):
    data = write_inputs(tmp_path / "data", DIRTY)
    result = run_pipeline(data, tmp_path / "work", tmp_path / "retail.db", "--workers", "2", scheduler_port=luigid)
    assert result.returncode == 0, result.stderr[-3000:]
    done = scheduler_tasks(luigid, "DONE")
    assert {t["name"] for t in done.values()} == FAMILIES
    assert scheduler_tasks(luigid, "FAILED") == {}
    # Every task that does real work told the visualiser what it was doing...
    silent = {t["display_name"] for t in done.values()
              if not t["status_message"] and t["name"] not in {"InputFile", "EnrichEvents", "RunAll", "LoadCategoryTree"}}
    assert not silent, silent
    assert "lines read" in next(t["status_message"] for t in done.values() if t["name"] == "LoadEvents")
    # ...and the steps of the long ones reached 100 %.
    stepped = {"EnrichEventsShard", "WriteTablePart", "WriteItemProperties", "BuildCoreDatabase", "AnalysisPartials",
               "EventAnalyses", "EntityTables", "PublishDatabase"}
    unfinished = {t["display_name"]: t["progress_percentage"] for t in done.values()
                  if t["name"] in stepped and t["progress_percentage"] != 100}
    assert not unfinished, unfinished
    assert verify(tmp_path / "retail.db").returncode == 0

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"http://127.0.0.1:{luigid}/static/visualiser/index.html#tab=graph&taskId=RunAll__99914b932b")
    # drawn once its links are in the SVG (attached: Playwright may judge a link, a line one pixel
    # wide, not visible, and wait on a drawn graph)
    page.wait_for_selector("#graphPlaceholder svg line.link", state="attached", timeout=30_000)
    drawn = set(page.locator("#graphPlaceholder svg text").all_text_contents())
    assert FAMILIES - {"InputFile"} <= drawn, FAMILIES - drawn  # input nodes are drawn with their path
    screenshot(page, "luigi_visualiser_graph.png", for_docs=True)
    page.close()


def test_two_runs_started_together_both_succeed_and_run_each_task_once(tmp_path, luigid):
    data = write_inputs(tmp_path / "data", DIRTY)
    command = pipeline_command(data, tmp_path / "work", tmp_path / "retail.db", "--workers", "2",
                               scheduler_port=luigid)
    runs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = []
    for process in runs:
        stdout, stderr = process.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    runs_per_task = task_runs(*results)
    assert runs_per_task and max(runs_per_task.values()) == 1, runs_per_task
    assert scheduler_tasks(luigid, "FAILED") == {}
    assert_same_tables(read_tables(tmp_path / "retail.db"), build_reference(data))


def test_independent_worker_processes_share_the_work(tmp_path, luigid):
    """Stands in for workers on several hosts: three `luigi` processes, one shared work dir,
    a different shard count; the result equals a one-worker local run."""
    data = write_inputs(tmp_path / "data", DIRTY)
    command = pipeline_command(data, tmp_path / "work", tmp_path / "retail.db", "--retail-shards", "2",
                               scheduler_port=luigid)
    processes = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
    results = [subprocess.CompletedProcess(command, p.wait(timeout=600), "", p.stderr.read()) for p in processes]
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    runs = task_runs(*results)
    # Every task of the graph ran exactly once over the three processes (how they split it
    # depends on timing: on small data one process may get everything). EnrichEvents, which
    # has nothing to do but wait for the shards, may instead be found complete by a process
    # that schedules the graph after the shards are done (only DataQuality needs it now that
    # the analyses read AnalysisPartials, so it can wait behind them long enough for that).
    assert set(runs.values()) == {1}
    ran = {task_id.split("_")[0] for task_id in runs}
    assert FAMILIES - {"InputFile", "EnrichEvents"} <= ran <= FAMILIES - {"InputFile"}

    alone = run_pipeline(data, tmp_path / "alone-work", tmp_path / "alone.db", "--retail-shards", "5")
    assert alone.returncode == 0
    assert_same_tables(read_tables(tmp_path / "retail.db"), read_tables(tmp_path / "alone.db"))


def test_overlapping_runs_on_a_bad_input_both_fail(tmp_path, luigid):
    files = dict(DIRTY)
    files["category_tree.csv"] = "categoryid,parentid\n1,2\n2,1\n"
    data = write_inputs(tmp_path / "data", files)
    command = pipeline_command(data, tmp_path / "work", tmp_path / "retail.db", "--workers", "2",
                               scheduler_port=luigid)
    processes = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    codes = [p.wait(timeout=600) for p in processes]
    assert all(code != 0 for code in codes), codes
    assert not (tmp_path / "retail.db").exists()
