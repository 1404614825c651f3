"""Shared helpers: running the real `luigi` command, reading a published database."""

from __future__ import annotations

import json
import math
import shutil
import socket
import urllib.error
import urllib.request
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SAMPLE = REPO / "data" / "sample"
REALDATA = REPO / "tests" / "realdata"  # a copy of ../shared/realdata, so a checkout anywhere has it

SPEC_TABLES = ("events_enriched", "item_properties", "category_tree", "event_type_counts", "hourly_trend",
               "sessions", "daily_funnel", "rejected_rows", "data_quality",
               # SPEC "Analyst tables"
               "visitors", "daily_cart_abandonment", "purchase_timing", "cohort_retention",
               "category_daily_funnel", "item_pairs", "item_property_history")


def pipeline_command(data_dir, work_dir, database, *extra, scheduler_port=None) -> list[str]:
    """`luigi --module tasks RunAll`, with the local scheduler unless a luigid port is given."""
    where = ["--local-scheduler"] if scheduler_port is None else [
        "--scheduler-host", "127.0.0.1", "--scheduler-port", str(scheduler_port)]
    return [str(BIN / "luigi"), "--module", "tasks", "RunAll", *where,
            "--retail-data-dir", str(data_dir), "--retail-work-dir", str(work_dir),
            "--retail-database", str(database), *extra]


def run_pipeline(data_dir, work_dir, database, *extra, scheduler_port=None, timeout=600) -> subprocess.CompletedProcess:
    """Run the pipeline from the repository root, as a user runs it."""
    command = pipeline_command(data_dir, work_dir, database, *extra, scheduler_port=scheduler_port)
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def verify(database) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "verify_results.py"), "--database", str(database)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def read_tables(database, tables=SPEC_TABLES) -> dict[str, list[dict]]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return {t: [dict(r) for r in conn.execute(f"SELECT * FROM [{t}]")] for t in tables}
    finally:
        conn.close()


def _normalise(value):
    if isinstance(value, float):
        return ("f", round(value, 9)) if not math.isnan(value) else ("f", "nan")
    return (type(value).__name__, value)


def canonical(rows: list[dict], columns) -> list[tuple]:
    """Rows as sorted tuples of (type, value) over the given columns; floats rounded to 1e-9."""
    return sorted(tuple(_normalise(r[c]) for c in columns) for r in rows)


FREE_TEXT = {("data_quality", "detail")}  # wording, not data


def assert_same_tables(published: dict[str, list[dict]], expected: dict[str, list[dict]]):
    for table, rows in expected.items():
        columns = list(rows[0]) if rows else list(published[table][0]) if published[table] else []
        columns = [c for c in columns if (table, c) not in FREE_TEXT]
        got, want = canonical(published[table], columns), canonical(rows, columns)
        assert len(got) == len(want), f"{table}: {len(got)} rows published, {len(want)} expected"
        for g, w in zip(got, want):
            assert g == w, f"{table}: first difference\n published {g}\n expected  {w}"


@pytest.fixture
def workspace(tmp_path):
    """A work dir and database path of the test's own."""
    return tmp_path / "work", tmp_path / "retail.db"


def write_inputs(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


def touch_later(path: Path):
    """Change a file's modification time the way an edit would."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


# --- Servers on loopback and a real headless browser --------------------------------------------

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
SCREENSHOTS = REPO / "docs" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def get_json(url: str):
    status, body = get(url)
    assert status == 200, f"{url}: HTTP {status}: {body[:500]}"
    return json.loads(body)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def screenshot(page, name: str, *, for_docs: bool = False, **options) -> None:
    """Save a screenshot under test-artifacts/ (and docs/screenshots/ if asked and UPDATE_SCREENSHOTS is set)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), **options)
    if for_docs and os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / name, SCREENSHOTS / name)




# --- The sample database and a Datasette serving it, as `make serve` does -----------------------


@pytest.fixture(scope="session")
def sample_database(tmp_path_factory):
    """The bundled sample published by the real pipeline, once for the whole test session
    (read-only: a test that changes a database works on a copy)."""
    folder = tmp_path_factory.mktemp("sample-database")
    database = folder / "retail.db"
    result = run_pipeline(SAMPLE, folder / "work", database)
    assert result.returncode == 0, result.stderr[-3000:]
    return database


def start_datasette(database, state: Path) -> tuple[subprocess.Popen, dict]:
    """A Datasette started exactly as `make serve` starts it (scripts/serve.py's command), polled
    until it answers: (the process, {"base": its URL, "state": state, "command": the command})."""
    sys.path.insert(0, str(REPO / "scripts"))
    import serve  # noqa: E402  (scripts/serve.py)

    port = free_port()
    command = serve.datasette_command(database, port=port, state_dir=state)
    log = open(state / "datasette.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    wait_until_answering(process, base, state / "datasette.log", timeout=60)
    return process, {"base": base, "state": state, "command": command}


def wait_until_answering(process: subprocess.Popen, base: str, log: Path, timeout: float) -> None:
    """Poll the Datasette at ``base`` until it answers, failing with the end of its ``log`` if
    ``process`` exits first, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if get(f"{base}/-/versions.json")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{base} did not answer within {timeout} s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def sample_server(sample_database, tmp_path_factory):
    process, server = start_datasette(sample_database, tmp_path_factory.mktemp("state"))
    yield server
    process.terminate()
    process.wait(timeout=30)


def sqlite_rows(database, sql, *params):
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# In the page: true once every chart card of a dashboard has drawn something (a canvas with a
# painted pixel, an SVG with marks, or the text of a metric, table or note).
DASHBOARD_DRAWN = """() => {
  const cards = [...document.querySelectorAll('.dashboard-card-chart')];
  return cards.length > 0 && cards.every(card => {
    const canvas = card.querySelector('canvas');
    if (canvas) {
      if (!canvas.width || !canvas.height) return false;
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
      return false;
    }
    const svg = card.querySelector('svg.marks');
    if (svg) return svg.querySelectorAll('path, rect, line').length > 0;
    return card.innerText.trim().length > 0;  // metric cards, tables, notes
  });
}"""
