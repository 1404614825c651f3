"""Browsing the published database in Datasette, as `make serve` runs it.

The real pipeline builds the sample database once for this module; a real Datasette serves it
on a free loopback port with the repository's configuration (``scripts/serve.py``, the command
`make serve` runs). The JSON API is checked for the metadata and canned queries, and a headless
Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) for what a person sees: the
dashboard's charts drawn, a visitor's journey read back from the page, the category drill-down.
Screenshots go to ``test-artifacts/``; with ``UPDATE_SCREENSHOTS=1`` they also replace the ones
the README shows in ``docs/screenshots/``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import ARTIFACTS, REPO, SAMPLE, SCREENSHOTS, SPEC_TABLES, free_port, get, get_json, run_pipeline, screenshot

sys.path.insert(0, str(REPO / "scripts"))
import serve  # noqa: E402  (scripts/serve.py: the command `make serve` runs)

pytestmark = pytest.mark.slow

QUERIES = {"conversion_funnel", "peak_hours", "top_items", "category_performance", "visitor_journey",
           "hourly_events"}
ANALYSIS_TABLES = ("overview", "item_stats", "category_stats", "hour_of_day_profile")


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    folder = tmp_path_factory.mktemp("datasette")
    database = folder / "retail.db"
    result = run_pipeline(SAMPLE, folder / "work", database)
    assert result.returncode == 0, result.stderr[-3000:]
    return database


@pytest.fixture(scope="module")
def server(database, tmp_path_factory):
    """A Datasette started exactly as `make serve` starts it; polled until it answers."""
    state = tmp_path_factory.mktemp("state")
    port = free_port()
    command = serve.datasette_command(database, port=port, state_dir=state)
    log = open(state / "datasette.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (state / "datasette.log").read_text()
        try:
            if get(f"{base}/-/versions.json")[0] == 200:
                break
        except OSError:
            assert time.monotonic() < deadline, "datasette did not answer within 60 s"
            time.sleep(0.05)
    yield {"base": base, "state": state, "command": command}
    process.terminate()
    process.wait(timeout=30)
    log.close()


def sqlite_rows(database, sql, *params):
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------ the server and its command


def test_make_serve_runs_the_same_script_with_port_and_database():
    result = subprocess.run(["make", "-n", "serve", "PORT=9000", "DATABASE=/somewhere/retail.db"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert "scripts/serve.py --port 9000 --database /somewhere/retail.db" in result.stdout


def test_served_read_only_and_immutable_as_retail_with_inspect_counts(server, database):
    (db,) = get_json(f"{server['base']}/-/databases.json")
    assert db["name"] == "retail" and db["is_mutable"] is False
    command = server["command"]
    assert command[command.index("-i") + 1] == str(database)
    assert ["--host", "127.0.0.1"] == command[command.index("--host"):command.index("--host") + 2]
    counts = json.loads(Path(command[command.index("--inspect-file") + 1]).read_text())
    assert counts["retail"]["tables"]["events_enriched"]["count"] == sqlite_rows(
        database, "SELECT count(*) FROM events_enriched")[0][0]
    settings = get_json(f"{server['base']}/-/settings.json")
    assert settings["suggest_facets"] is False


def test_counts_file_is_regenerated_when_the_database_is_newer(database, tmp_path):
    copy = tmp_path / "retail.db"
    shutil.copyfile(database, copy)
    first = serve.inspect_file(copy, tmp_path / "state")
    stamp = first.stat().st_mtime_ns
    assert serve.inspect_file(copy, tmp_path / "state").stat().st_mtime_ns == stamp  # fresh: kept
    later = first.stat().st_mtime + 10
    os.utime(copy, (later, later))
    assert serve.inspect_file(copy, tmp_path / "state").stat().st_mtime_ns != stamp  # newer database: redone


def test_a_database_with_another_name_is_still_served_as_retail(database, tmp_path):
    other = tmp_path / "shop-2015.db"
    shutil.copyfile(database, other)
    command = serve.datasette_command(other, port=9, state_dir=tmp_path / "state")
    served = Path(command[command.index("-i") + 1])
    assert served.name == "retail.db" and served.is_symlink() and served.resolve() == other.resolve()
    counts = json.loads(Path(command[command.index("--inspect-file") + 1]).read_text())
    assert set(counts) == {"retail"}


# ------------------------------------------------------------------ metadata


def test_every_table_and_column_is_described(server, database):
    metadata = get_json(f"{server['base']}/-/metadata.json")
    assert metadata["title"] and "Retail Rocket" in metadata["description_html"]
    assert metadata["license"] == "CC BY-NC-SA 4.0" and "retailrocket/ecommerce-dataset" in metadata["source_url"]
    described = metadata["databases"]["retail"]["tables"]
    names = [r[0] for r in sqlite_rows(database, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                                                 "AND name NOT LIKE 'sqlite_%'")]
    assert set(SPEC_TABLES) | set(ANALYSIS_TABLES) | {"events"} <= set(names)
    missing = []
    for name in names:
        table = described.get(name, {})
        if not table.get("description"):
            missing.append(name)
        for (column,) in sqlite_rows(database, f"SELECT name FROM pragma_table_info('{name}')"):
            if not (table.get("columns") or {}).get(column):
                missing.append(f"{name}.{column}")
    assert not missing, f"not described: {missing}"
    assert "UTC" in described["events_enriched"]["columns"]["hour_of_day"]
    assert "NULL" in described["events_enriched"]["columns"]["view_to_purchase"]
    assert "time of the event" in described["events_enriched"]["columns"]["categoryid"]


def test_build_info_is_hidden_and_table_pages_show_column_descriptions(server):
    tables = {t["name"]: t for t in get_json(f"{server['base']}/retail.json")["tables"]}
    assert tables["_build_info"]["hidden"] is True
    assert all(not tables[name]["hidden"] for name in (*SPEC_TABLES, *ANALYSIS_TABLES))
    status, html = get(f"{server['base']}/retail/events_enriched")
    assert status == 200 and 'class="column-descriptions"' in html and "view_to_purchase" in html


# ------------------------------------------------------------------ canned queries


def query(server, name, **params):
    params = {**params, "_shape": "objects"}
    document = get_json(f"{server['base']}/retail/{name}.json?{urllib.parse.urlencode(params)}")
    assert document.get("ok", True) and not document.get("error"), document
    return document["rows"]


def test_every_canned_query_answers_with_rows_on_its_defaults(server):
    listed = {q["name"] for q in get_json(f"{server['base']}/retail.json")["queries"]}
    assert QUERIES <= listed
    for name in listed:
        assert query(server, name), f"{name}: no rows with the default parameters"
        status, html = get(f"{server['base']}/retail/{name}")
        assert status == 200 and "message-error" not in html and "took too long" not in html, name


def test_canned_queries_agree_with_the_tables(server, database):
    funnel = query(server, "conversion_funnel", from_date="2015-06-01", to_date="2015-06-07")
    assert [r["date"] for r in funnel] == [f"2015-06-0{d}" for d in range(1, 8)]
    assert len(query(server, "conversion_funnel")) == sqlite_rows(database, "SELECT count(*) FROM daily_funnel")[0][0]

    hours = query(server, "peak_hours")
    assert [r["hour_of_day"] for r in hours] == list(range(24))
    assert sum(r["events"] for r in hours) == sqlite_rows(database, "SELECT count(*) FROM events_enriched")[0][0]

    trend = query(server, "hourly_events")  # the last 7 calendar dates of data
    expected = sqlite_rows(database, "SELECT hour, total_events FROM hourly_trend "
                                     "WHERE hour >= date((SELECT max(hour) FROM hourly_trend), '-6 days') ORDER BY hour")
    assert [(r["hour"], r["total_events"]) for r in trend] == expected
    assert all(r["views"] + r["addtocarts"] + r["transactions"] == r["total_events"] for r in trend)

    for rank_by, column in (("views", "views"), ("addtocarts", "addtocarts"), ("transactions", "transactions")):
        top = query(server, "top_items", rank_by=rank_by, limit="5")
        assert len(top) == 5 and top[0][column] == sqlite_rows(database, f"SELECT max({column}) FROM item_stats")[0][0]
    by_rate = query(server, "top_items", rank_by="view_to_purchase_rate", min_views="3")
    assert all(r["views"] >= 3 for r in by_rate)
    assert by_rate[0]["view_to_purchase_pct"] == max(r["view_to_purchase_pct"] for r in by_rate)

    roots = query(server, "category_performance")
    assert {r["categoryid"] for r in roots} == {c for (c,) in sqlite_rows(
        database, "SELECT categoryid FROM category_stats WHERE parentid IS NULL")}
    parent = roots[0]["categoryid"]
    drilled = query(server, "category_performance", parent=str(parent))
    assert drilled[0]["kind"] == "selected" and drilled[0]["categoryid"] == parent
    assert {r["categoryid"] for r in drilled[1:]} == {c for (c,) in sqlite_rows(
        database, "SELECT categoryid FROM category_tree WHERE parentid = ?", parent)}


# ------------------------------------------------------------------ in a browser


CHART_DRAWN = """() => {
  const cards = [...document.querySelectorAll('.dashboard-card-chart')];
  return cards.length > 0 && cards.every(card => {
    const canvas = card.querySelector('canvas');
    if (canvas) {
      if (!canvas.width || !canvas.height) return false;
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
      return false;
    }
    const svg = card.querySelector('svg');
    if (svg) return svg.querySelectorAll('path, rect, line').length > 0;
    return card.innerText.trim().length > 0;  // metric cards, tables, notes
  });
}"""


def test_dashboard_draws_its_charts_and_headline_numbers(server, page, database):
    page.goto(f"{server['base']}/-/dashboards/retail")
    page.wait_for_function(CHART_DRAWN, timeout=30_000)
    charts = page.eval_on_selector_all(".dashboard-card-chart canvas, .dashboard-card-chart svg.marks", "e => e.length")
    assert charts >= 5  # hourly trend, daily funnel, daily rates, peak hours, top categories
    events = sqlite_rows(database, "SELECT events FROM overview")[0][0]
    assert page.inner_text("#chart-events-metric").strip() == f"{events:,}"
    visitors = sqlite_rows(database, "SELECT visitors FROM overview")[0][0]
    assert page.inner_text("#chart-visitors-metric").strip() == f"{visitors:,}"
    screenshot(page, "dashboard.png", full_page=True)
    screenshot(page, "dashboard_top.png", for_docs=True, full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1500})


def test_visitor_journey_in_the_browser_matches_sqlite(server, page, database):
    # A visitor with several sessions and a purchase.
    (visitor,) = sqlite_rows(database, "SELECT visitorid FROM sessions GROUP BY visitorid "
                                       "HAVING count(*) > 1 AND max(converted) = 1 ORDER BY sum(events) DESC LIMIT 1")[0]
    page.goto(f"{server['base']}/retail/visitor_journey")
    page.fill("input[name=visitorid]", str(visitor))
    page.click("form.sql input[type=submit]")
    page.wait_for_url(f"**/retail/visitor_journey?visitorid={visitor}*")
    headers = page.eval_on_selector_all("table.rows-and-columns thead th", "e => e.map(h => h.innerText.trim())")
    cells = page.eval_on_selector_all(
        "table.rows-and-columns tbody tr", "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => c.innerText.trim()))")
    expected = sqlite_rows(
        database,
        "SELECT e.visitorid, e.session_id, e.event_time, e.event, e.itemid, e.transactionid, e.categoryid, "
        "e.available, e.seconds_since_prev_event, e.view_to_purchase, s.events, s.duration_s, s.converted "
        "FROM events_enriched e JOIN sessions s USING (visitorid, session_id) WHERE e.visitorid = ? "
        "ORDER BY e.timestamp_ms, e.source_line", visitor)
    assert headers[:4] == ["visitorid", "session_id", "event_time", "event"]
    assert cells == [["" if v is None else str(v) for v in row] for row in expected]
    assert len({row[1] for row in expected}) > 1 and "transaction" in {row[3] for row in expected}
    screenshot(page, "visitor_journey.png", for_docs=True)


def test_category_drill_down_links_lead_to_the_subcategories(server, page, database):
    page.goto(f"{server['base']}/retail/category_performance")
    link = page.locator("table.rows-and-columns a", has_text="subcategories").first
    link.click()
    page.wait_for_url("**/retail/category_performance?parent=*")
    parent = int(urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["parent"][0])
    shown = page.eval_on_selector_all("table.rows-and-columns td.col-categoryid", "e => e.map(c => c.innerText.trim())")
    children = {str(c) for (c,) in sqlite_rows(database, "SELECT categoryid FROM category_tree WHERE parentid = ?",
                                               parent)}
    assert shown[0] == str(parent) and set(shown[1:]) == children
