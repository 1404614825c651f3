"""Running out of resources, stale temporary files, and readers while the database is republished.

- A full disk (a small tmpfs, when this machine lets the tests mount one) or a file-size limit
  (``RLIMIT_FSIZE``, which works everywhere) fails the run with the cause in its output, never a
  silent kill, and leaves the published database untouched; once there is room, the next run
  finishes the job.
- The temporary files of killed runs are removed once stale, and nothing else is.
- A Datasette started as ``make serve`` starts it keeps answering, without one error, while the
  pipeline replaces the database under it, and then serves the new database.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from conftest import REPO, SAMPLE, free_port, get, pipeline_command, read_tables, run_pipeline, verify
from retail_pipeline import stages
from retail_pipeline.errors import InputError, describe_failure

T0 = 1_433_116_800_000  # 2015-06-01 00:00:00 UTC
CAUSES = ("No space left on device", "database or disk is full", "File too large", "disk I/O error")


def sample_copy(folder):
    shutil.copytree(SAMPLE, folder, ignore=shutil.ignore_patterns("README.md"))
    return folder


def change_inputs(data, k: int = 0):
    with open(data / "events.csv", "a") as f:
        f.writelines(f"{T0 + 1000 * i},{800_000 + k},view,{i},\n" for i in range(20))


def fingerprint(database) -> str:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT value FROM _build_info WHERE key = 'fingerprint'").fetchone()[0]
    finally:
        conn.close()


# --- A full disk and a file-size limit ----------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """Mount a tmpfs at tmp_path/disk; yields a function setting its size (e.g. "2m")."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (the file-size-limit test covers this case)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the file-size-limit test covers this case")

    def resize(size: str):
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount_point)], check=True)
        return mount_point

    yield resize
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def assert_failed_cleanly(result, database, before: bytes):
    assert result.returncode > 0, f"killed by signal {-result.returncode}" if result.returncode < 0 else "exit 0"
    assert any(cause in result.stderr for cause in CAUSES), result.stderr[-3000:]
    assert database.read_bytes() == before, "the published database changed after a failed run"
    assert not list(database.parent.glob(f".{database.name}.building-*")), "a temporary database was left"


@pytest.mark.slow
def test_a_full_disk_for_the_work_dir_fails_the_run_and_keeps_the_database(small_disk, tmp_path):
    data = sample_copy(tmp_path / "data")
    disk = small_disk("64m")
    work, database = disk / "work", tmp_path / "retail.db"
    assert run_pipeline(data, work, database).returncode == 0
    before = database.read_bytes()
    change_inputs(data)
    used = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
    small_disk(f"{(used + 1_000_000) // 1024}k")  # room for about a quarter of the new work
    result = run_pipeline(data, work, database)
    assert_failed_cleanly(result, database, before)
    small_disk("64m")
    again = run_pipeline(data, work, database)
    assert again.returncode == 0, again.stderr[-3000:]
    assert database.read_bytes() != before and verify(database).returncode == 0


@pytest.mark.slow
def test_a_full_disk_for_the_database_fails_the_publish_and_keeps_the_database(small_disk, tmp_path):
    data = sample_copy(tmp_path / "data")
    disk = small_disk("64m")
    work, database = tmp_path / "work", disk / "retail.db"
    assert run_pipeline(data, work, database).returncode == 0
    before = database.read_bytes()
    change_inputs(data)
    small_disk(f"{len(before) * 3 // 2 // 1024}k")  # the old database and half a new one
    result = run_pipeline(data, work, database)
    assert_failed_cleanly(result, database, before)
    assert "failed    PublishDatabase()" in result.stderr, result.stderr[-3000:]
    small_disk("64m")
    again = run_pipeline(data, work, database)
    assert again.returncode == 0, again.stderr[-3000:]
    assert verify(database).returncode == 0


def _limit_file_size(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_a_file_size_limit_fails_the_run_with_its_cause_not_a_signal(tmp_path):
    """Past RLIMIT_FSIZE the kernel sends SIGXFSZ, which kills a process by default; Python ignores
    it, so a write fails with EFBIG instead and the run reports the error and exits non-zero."""
    data = sample_copy(tmp_path / "data")
    work, database = tmp_path / "work", tmp_path / "retail.db"
    assert run_pipeline(data, work, database).returncode == 0
    before = database.read_bytes()
    change_inputs(data)
    result = subprocess.run(pipeline_command(data, work, database), cwd=REPO, capture_output=True, text=True,
                            timeout=300, preexec_fn=_limit_file_size(100_000))
    assert_failed_cleanly(result, database, before)
    again = run_pipeline(data, work, database)
    assert again.returncode == 0, again.stderr[-3000:]
    assert verify(database).returncode == 0


@pytest.mark.slow
def test_running_out_of_space_is_reported_in_one_line(tmp_path):
    data = sample_copy(tmp_path / "data")
    result = subprocess.run(pipeline_command(data, tmp_path / "work", tmp_path / "retail.db"), cwd=REPO,
                            capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size(100_000))
    assert result.returncode > 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ") and "[pid " not in line]
    assert lines and all("cannot write" in line for line in lines), result.stderr[-3000:]


def test_describe_failure_names_the_cause_in_one_line(tmp_path):
    assert describe_failure(InputError("data/events.csv: file is empty")) == "data/events.csv: file is empty"
    full = OSError(errno.ENOSPC, "No space left on device", "/work/x.parquet-luigi-tmp-1")
    assert describe_failure(full).startswith("/work/x.parquet-luigi-tmp-1: cannot write: no space left on the device")
    too_large = describe_failure(OSError(errno.EFBIG, "File too large"), where="WriteTablePart(table=sessions)")
    assert too_large.startswith("WriteTablePart(table=sessions): cannot write: ") and "file-size limit" in too_large
    assert describe_failure(ValueError("a bug")) is None and describe_failure(OSError(errno.ENOENT, "x")) is None
    conn = sqlite3.connect(tmp_path / "tiny.db")
    conn.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.OperationalError) as error:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 100)
        conn.commit()
    conn.close()
    assert describe_failure(error.value).startswith("cannot write a SQLite file: no space left")
    for message in (describe_failure(full), describe_failure(error.value)):
        assert "\n" not in message


# --- Stale temporary files ----------------------------------------------------------------------

def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    work, database = tmp_path / "work", tmp_path / "db" / "retail.db"
    (work / "LoadEvents").mkdir(parents=True)
    database.parent.mkdir()
    kept = [work / "LoadEvents" / "events-0-abc.parquet", database, database.parent / ".other.db.building-12",
            work / "LoadEvents" / "stats-abc.json-luigi-tmp-0000000007"]  # the last one is recent
    stale = [work / "LoadEvents" / "events-0-abc.parquet-luigi-tmp-0123456789",
             database.parent / ".retail.db.building-4242"]
    for path in kept + stale:
        path.write_bytes(b"x")
    now = time.time()
    for path in stale + kept[:3]:
        os.utime(path, (now - 2 * stages.STALE_AFTER_S, now - 2 * stages.STALE_AFTER_S))
    assert stages.temporary_files(work, database) == sorted([kept[3], *stale])
    assert stages.remove_stale_temporaries(work, database, now=now) == sorted(stale)
    assert all(path.exists() for path in kept) and not any(path.exists() for path in stale)
    assert stages.remove_stale_temporaries(tmp_path / "nowhere", tmp_path / "nowhere" / "x.db") == []


# --- Readers while the database is republished ---------------------------------------------------

SERVE = REPO / "scripts" / "serve.py"
FINGERPRINT_URL = "/retail.json?" + urllib.parse.urlencode(
    {"sql": "SELECT value FROM _build_info WHERE key = 'fingerprint'", "_shape": "array"})
PAGES = ["/retail/data_quality.json?_shape=array", "/retail/events_enriched.json?_size=5", "/retail.json"]


@pytest.mark.slow
def test_datasette_keeps_answering_across_a_republish_then_serves_the_new_database(tmp_path):
    data = sample_copy(tmp_path / "data")
    work, database = tmp_path / "work", tmp_path / "retail.db"
    assert run_pipeline(data, work, database).returncode == 0
    old = fingerprint(database)
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, str(SERVE), "--database", str(database), "--port", str(port),
                               "--state-dir", str(tmp_path / "state")], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    answers: list[tuple[float, str]] = []  # (time, fingerprint)
    errors: list[str] = []
    stop = threading.Event()

    def hammer(k: int):
        while not stop.is_set():
            try:
                status, body = get(base + FINGERPRINT_URL)
                if status != 200:
                    errors.append(f"HTTP {status}: {body[:200]}")
                else:
                    answers.append((time.monotonic(), json.loads(body)[0]["value"]))
                status, body = get(base + PAGES[k % len(PAGES)])
                if status != 200:
                    errors.append(f"HTTP {status} for {PAGES[k % len(PAGES)]}: {body[:200]}")
            except Exception as error:  # a refused or dropped connection is a failure too
                errors.append(repr(error))
            k += 1
            time.sleep(0.005)

    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if get(base + "/-/versions.json")[0] == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve.py did not answer within 60 s"
                time.sleep(0.05)
        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(1)
        change_inputs(data)
        republish = run_pipeline(data, work, database)
        published = time.monotonic()
        assert republish.returncode == 0, republish.stderr[-3000:]
        new = fingerprint(database)
        assert new != old
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the last 50 answers all come from the new database
            recent = [value for _, value in answers[-50:]]
            if len(recent) == 50 and set(recent) == {new} and answers[-50][0] > published:
                break
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        status, body = get(base + "/retail.json")  # row counts: those of the new file
        assert status == 200
        served_counts = {t["name"]: t["count"] for t in json.loads(body)["tables"]}
    finally:
        stop.set()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()

    assert not errors, f"{len(errors)} failed requests, e.g. {errors[:3]}"
    values = [value for _, value in answers]
    assert set(values) == {old, new} and values[0] == old and values[-1] == new
    switched = values.index(new)
    assert values[switched:].count(old) <= 20, "old answers kept coming after the switch"  # only in-flight ones
    assert served_counts["events_enriched"] == len(read_tables(database, ("events_enriched",))["events_enriched"])
