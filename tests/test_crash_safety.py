"""Crash safety: ``kill -9`` at any moment of a ``RunAll`` loses nothing and leaves nothing half done.

A run over a generated sample big enough to take several seconds is killed again and again (the
whole process group, Luigi's forked workers included) at spread-out moments, some of them while
the database is being assembled. After every kill the published database is still there and
byte for byte either the previous one or the new complete one, and every intermediate file
under its final name is whole; the runs that follow pick up where the killed one stopped, and a
last run finishes the job with exactly the tables a clean, uninterrupted run publishes. What the
killed runs leave behind are temporary files only, bounded in number and removed once stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_same_tables, pipeline_command, read_tables, run_pipeline, verify, write_inputs
from retail_pipeline import stages, storage
from retail_pipeline.schema import TABLES
from retail_pipeline.sqlite_out import read_build_info

pytestmark = pytest.mark.slow

T0 = 1_433_116_800_000  # 2015-06-01 00:00:00 UTC

# Kills at these many seconds after the start (cut short if the database assembly starts first)...
KILL_AFTER_S = [1.0, 1.6, 2.2, 2.8]
# ...then kills at these fractions of the time the first run's PublishDatabase took, after the
# assembly has started (the last ones may land after the new database is in place). The early ones
# are dense: the assembly takes the core over and copies only the small tables, so its temporary
# file exists for a short part of the task's time.
KILL_IN_PUBLISH = [0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.7, 1.3]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated") / "data"
    subprocess.run([sys.executable, "-m", "retail_pipeline.generate", str(folder), "--scale", "0.05", "--seed", "3"],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    return folder


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def building_files(database: Path) -> set[str]:
    return {p.name for p in database.parent.glob(f".{database.name}.building-*")}


def assert_whole(work: Path) -> int:
    """Every intermediate file under its final name can be read completely; returns how many."""
    checked = 0
    for path in sorted(p for p in work.rglob("*") if p.is_file() and "-luigi-tmp-" not in p.name):
        if path.suffix == ".arrow":
            storage.read_arrow_file(path).validate(full=True)
        elif path.suffix == ".sqlite":
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",), path
                for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                    conn.execute(f"SELECT count(*) FROM [{table}]").fetchone()
            finally:
                conn.close()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        else:
            raise AssertionError(f"unexpected file in the work dir: {path}")
        checked += 1
    return checked


def start_run(data, work, database) -> subprocess.Popen:
    return subprocess.Popen(pipeline_command(data, work, database, "--workers", "2"), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def kill_9(run: subprocess.Popen) -> bool:
    """SIGKILL the run's whole process group; True if the run had already ended by itself."""
    ended = run.poll() is not None
    try:
        os.killpg(run.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    run.wait(timeout=30)
    return ended


def wait_for(condition, run: subprocess.Popen, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and run.poll() is None:
        if condition():
            return True
        time.sleep(0.005)
    return False


def publish_seconds(stderr: str) -> float:
    """How long PublishDatabase took, from the run's ``TIMING`` lines."""
    (line,) = [line for line in stderr.splitlines() if line.startswith("TIMING PublishDatabase")]
    return float(line.split()[-1].rstrip("s"))


def test_kill_9_at_any_moment_leaves_the_previous_or_the_new_database(sample, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(sample, data)
    work, database = tmp_path / "work", tmp_path / "db" / "retail.db"
    first = run_pipeline(data, work, database, "--workers", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    previous = digest(database)
    publish_s = publish_seconds(first.stderr)

    # New inputs: everything that depends on the events or the item properties is redone.
    with open(data / "events.csv", "a") as f:
        f.writelines(f"{T0 + k * 1000},{900_000 + k},view,{k},\n" for k in range(50))
    with open(data / "item_properties_part2.csv", "a") as f:
        f.write(f"{T0},1,categoryid,1\n")

    seen, verified, moments, killed_while_publishing = [], {previous}, [], 0
    for delay, fraction in [(d, None) for d in KILL_AFTER_S] + [(None, f) for f in KILL_IN_PUBLISH]:
        before = building_files(database)
        run = start_run(data, work, database)
        started = time.monotonic()
        publishing = lambda: building_files(database) - before  # noqa: E731
        if delay is not None:
            wait_for(publishing, run, delay)
            moments.append(f"{time.monotonic() - started:.2f}s")
        elif wait_for(publishing, run, 120):
            time.sleep(fraction * publish_s)
            moments.append(f"publish+{fraction * publish_s:.2f}s")
        else:  # nothing left to publish: an earlier kill came after the new database was in place
            moments.append("nothing to do")
        in_publish = bool(publishing())
        ended = kill_9(run)
        assert database.exists(), f"the published database is missing after a kill at {moments[-1]}"
        current = digest(database)
        if current not in verified:  # a new database appeared: it must be complete
            checked = verify(database)
            assert checked.returncode == 0, f"after a kill at {moments[-1]}:\n{checked.stdout}"
            verified.add(current)
        killed_while_publishing += in_publish and not ended and current == previous
        seen.append(current)
        assert assert_whole(work) > 0
        if ended:
            moments[-1] += " (had finished)"
    assert killed_while_publishing >= 2, f"too few kills landed in the publish step: {moments}"

    last = run_pipeline(data, work, database, "--workers", "2")
    assert last.returncode == 0, last.stderr[-3000:]
    final = digest(database)
    assert set(seen) <= {previous, final}, f"a database neither the previous nor the final one; kills: {moments}"
    assert final != previous
    checked = verify(database)
    assert checked.returncode == 0, checked.stdout

    clean = run_pipeline(data, tmp_path / "clean-work", tmp_path / "clean.db", "--workers", "2")
    assert clean.returncode == 0, clean.stderr[-3000:]
    everything = tuple(TABLES)
    assert_same_tables(read_tables(database, everything), read_tables(tmp_path / "clean.db", everything))

    # What the kills left: temporary files only, a few per kill, never read, removed once stale.
    leftovers = stages.temporary_files(work, database)
    assert len(leftovers) <= 3 * len(moments), leftovers
    assert stages.remove_stale_temporaries(work, database) == []  # all recent: could belong to a running run
    long_ago = time.time() - 2 * stages.STALE_AFTER_S
    for path in leftovers:
        os.utime(path, (long_ago, long_ago))
    assert stages.remove_stale_temporaries(work, database) == leftovers
    assert stages.temporary_files(work, database) == []
    again = run_pipeline(data, work, database)
    assert again.returncode == 0 and "Did not run any tasks" in again.stderr
    assert digest(database) == final


# --- A load task killed between the renames of its outputs ------------------------------------

SMALL = {
    "events.csv": "timestamp,visitorid,event,itemid,transactionid\n"
                  + "".join(f"{T0 + k * 60_000},{k % 3},view,{k % 4},\n" for k in range(20)),
    "item_properties_part1.csv": "timestamp,itemid,property,value\n" + f"{T0},1,categoryid,10\n",
    "category_tree.csv": "categoryid,parentid\n10,\n",
}


LOADS = [("LoadEvents", "stats-*.json"), ("LoadItemProperties", "stats-*.json"),
         ("LoadCategoryTree", "tree-*.arrow")]


def test_loads_killed_between_renaming_their_outputs_are_redone(tmp_path):
    """A load writes several files; a kill between their renames leaves some in place. The task
    is then incomplete, and the next run must redo it over the files already there."""
    data = write_inputs(tmp_path / "data", SMALL)
    work, database = tmp_path / "work", tmp_path / "retail.db"
    assert run_pipeline(data, work, database).returncode == 0
    missing = []
    for task, name in LOADS:  # as if killed just before this output was renamed into place...
        (path,) = (work / task).glob(name)
        path.unlink()
        missing.append(path)
    for folder in work.iterdir():  # ...so that nothing after the loads has run yet
        if not folder.name.startswith("Load"):
            shutil.rmtree(folder)
    database.unlink()
    result = run_pipeline(data, work, database)
    assert result.returncode == 0, result.stderr[-3000:]
    ran = result.stderr.split("ran successfully:")[1]
    assert all(f"{task}()" in ran for task, _ in LOADS) and all(path.exists() for path in missing)
    assert stages.temporary_files(work, database) == []


def test_files_taken_over_by_a_superseded_run_are_remade_by_the_publish(tmp_path):
    """docs/decisions.md, "Taking work files over": the published database records this run's
    core, so Luigi counts the core and the item_properties file as made, although both were taken
    (moved into the database), but not this run's publish (as if another run had published since).
    PublishDatabase remakes both files by hand, item_properties first, and publishes the same tables."""
    data = write_inputs(tmp_path / "data", SMALL)
    work, database = tmp_path / "work", tmp_path / "retail.db"
    assert run_pipeline(data, work, database).returncode == 0
    published = read_tables(database)
    taken = [*(work / "WriteItemProperties").glob("*.sqlite"), *(work / "BuildCoreDatabase").glob("*.sqlite")]
    assert taken == []  # both moved: item_properties into the core, the core into the database
    conn = sqlite3.connect(database)
    with conn:
        conn.execute("UPDATE [_build_info] SET value = 'another run' WHERE key = 'fingerprint'")
    conn.close()

    result = run_pipeline(data, work, database)
    assert result.returncode == 0, result.stderr[-3000:]
    started = {line.split()[1].split("_")[0] for line in result.stderr.splitlines() if line.startswith("STARTED ")}
    assert started == {"PublishDatabase", "RunAll"}  # for Luigi the core and item_properties were made
    assert read_build_info(database)["fingerprint"] != "another run"  # republished, from a remade core
    assert_same_tables(read_tables(database), published)
    assert verify(database).returncode == 0
    assert [*(work / "WriteItemProperties").glob("*.sqlite"), *(work / "BuildCoreDatabase").glob("*.sqlite")] == []
    assert stages.temporary_files(work, database) == []
