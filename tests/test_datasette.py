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

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, SPEC_TABLES, get, get_json, screenshot, sqlite_rows, DASHBOARD_DRAWN

sys.path.insert(0, str(REPO / "scripts"))
import serve  # noqa: E402  (scripts/serve.py: the command `make serve` runs)

pytestmark = pytest.mark.slow

QUERIES = {"conversion_funnel", "peak_hours", "top_items", "category_performance", "visitor_journey",
           "hourly_events", "cart_abandonment", "time_to_purchase", "cohort_triangle", "category_funnel",
           "viewed_together", "item_timeline", "category_changes"}
ANALYSIS_TABLES = ("overview", "items", "categories", "visitors", "hour_of_day_profile", "weekday_hour_profile",
                   "purchase_timing_summary")
NBSP = "\u00a0"


def load_display_plugin():
    """datasette/plugins/retail_display.py, loaded from its file as Datasette loads it."""
    spec = importlib.util.spec_from_file_location("retail_display_in_tests", REPO / "datasette" / "plugins" / "retail_display.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


display = load_display_plugin()


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def database(sample_database):
    return sample_database


@pytest.fixture(scope="module")
def server(sample_server):
    return sample_server


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
    for entity in ("visitors", "items", "categories"):
        assert described[entity]["label_column"] == "label"
    assert "UTC" in described["events_enriched"]["columns"]["hour_of_day"]
    assert "NULL" in described["events_enriched"]["columns"]["view_to_purchase"]
    assert "time of the event" in described["events_enriched"]["columns"]["categoryid"]


def test_build_info_is_hidden_and_table_pages_fold_the_column_descriptions(server):
    tables = {t["name"]: t for t in get_json(f"{server['base']}/retail.json")["tables"]}
    assert tables["_build_info"]["hidden"] is True
    assert all(not tables[name]["hidden"] for name in (*SPEC_TABLES, *ANALYSIS_TABLES))
    status, html = get(f"{server['base']}/retail/events_enriched")
    assert status == 200 and 'class="column-descriptions"' in html and "view_to_purchase" in html
    folded = re.search(r'<details class="column-documentation">(.*?)</details>', html, re.DOTALL)
    assert folded and 'class="column-descriptions"' in folded.group(1)  # closed: no "open" attribute
    assert 'href="/-/glossary#term-view_to_purchase"' in folded.group(1)  # a metric links to its definition


def test_a_wide_table_page_links_to_its_key_columns_first(server):
    key_columns = get_json(f"{server['base']}/-/metadata.json")["databases"]["retail"]["tables"]["items"]["key_columns"]
    assert "view_to_purchase_rate" in key_columns and "purchased_view_rate" in key_columns
    status, html = get(f"{server['base']}/retail/items")
    link = re.search(r'<p class="key-columns"><a href="([^"]+)"', html).group(1).replace("&amp;", "&")
    status, html = get(server["base"] + link)
    assert status == 200
    assert re.findall(r'<th [^>]*data-column="(\w+)"', html) == ["itemid", *key_columns]


def test_the_rows_start_near_the_top_of_a_table_page(server, page):
    page.goto(f"{server['base']}/retail/items")
    top = page.evaluate("() => document.querySelector('table.rows-and-columns').getBoundingClientRect().top")
    assert top < 600, f"the rows start {top:.0f} px down"
    assert not page.is_visible("dl.column-descriptions")
    page.click("details.column-documentation > summary")
    assert page.is_visible("dl.column-descriptions")


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
        rows = query(server, name)
        assert rows and len(rows[0]) > 1 and any(v is not None for v in list(rows[0].values())[1:]), \
            f"{name}: no rows with the default parameters: {rows[:1]}"
        status, html = get(f"{server['base']}/retail/{name}")
        assert status == 200 and "message-error" not in html and "took too long" not in html, name
        for column in rows[0]:  # a number with decimals in a query is a metric of the glossary
            if any(isinstance(r[column], float) for r in rows):
                assert display.term_for(column), f"{name}.{column}: a REAL column the glossary does not define"


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

    for column in ("views", "addtocarts", "transactions", "buyers"):
        top = query(server, "top_items", rank_by=column, limit="5")
        assert len(top) == 5 and top[0][column] == sqlite_rows(database, f"SELECT max({column}) FROM items")[0][0]
        assert [r[column] for r in top] == sorted((r[column] for r in top), reverse=True)
    for rate in ("purchased_view_rate", "view_to_purchase_rate"):
        by_rate = query(server, "top_items", rank_by=rate, min_views="3")
        assert by_rate and all(r["views"] >= 3 for r in by_rate)
        assert by_rate[0][rate] == sqlite_rows(database, f"SELECT max({rate}) FROM items WHERE views >= 3")[0][0]
    (root,) = sqlite_rows(database, "SELECT root_categoryid FROM items WHERE root_categoryid IS NOT NULL "
                                    "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")[0]
    assert {r["root_categoryid"] for r in query(server, "top_items", root_categoryid=str(root))} == {root}

    roots = query(server, "category_performance")
    assert {r["categoryid"] for r in roots} == {c for (c,) in sqlite_rows(
        database, "SELECT categoryid FROM categories WHERE parentid IS NULL")}
    parent = roots[0]["categoryid"]
    drilled = query(server, "category_performance", parent=str(parent))
    assert drilled[0]["kind"] == "selected" and drilled[0]["categoryid"] == parent
    assert {r["categoryid"] for r in drilled[1:]} == {c for (c,) in sqlite_rows(
        database, "SELECT categoryid FROM category_tree WHERE parentid = ?", parent)}


def test_the_new_tables_queries_agree_with_their_tables(server, database):
    carts = query(server, "cart_abandonment")
    assert [(r["date"], r["abandonment_rate"], r["recovery_rate"]) for r in carts] == sqlite_rows(
        database, "SELECT date, abandonment_rate, recovery_rate FROM daily_cart_abandonment ORDER BY date")

    timing = query(server, "time_to_purchase", measure="view_to_purchase")
    assert timing[0]["scope"] == "all" and {r["measure"] for r in timing} == {"view_to_purchase"}
    assert len(timing) == sqlite_rows(database, "SELECT count(*) FROM purchase_timing_summary "
                                                "WHERE measure = 'view_to_purchase'")[0][0]

    triangle = query(server, "cohort_triangle")
    cells = sqlite_rows(database, "SELECT cohort_week, week_number, retention_rate FROM cohort_retention")
    assert len(triangle) == len({c[0] for c in cells})
    by_week = {r["cohort_week"]: r for r in triangle}
    assert all(by_week[week][f"week_{n}"] == rate for week, n, rate in cells if n <= 20)
    assert all(0 <= v <= 1 for r in triangle for k, v in r.items() if k.startswith("week_") and v is not None)

    (root,) = sqlite_rows(database, "SELECT root_categoryid FROM category_daily_funnel "
                                    "WHERE root_categoryid IS NOT NULL LIMIT 1")[0]
    funnel = query(server, "category_funnel", root_categoryid=str(root))
    assert [(r["date"], r["view_to_purchase_rate"]) for r in funnel] == sqlite_rows(
        database, "SELECT date, view_to_purchase_rate FROM category_daily_funnel WHERE root_categoryid = ? "
                  "ORDER BY date", root)

    (item,) = sqlite_rows(database, "SELECT itemid FROM item_pairs LIMIT 1")[0]
    pairs = query(server, "viewed_together", itemid=str(item))
    assert [(r["rank"], r["other_itemid"], r["together"]) for r in pairs] == sqlite_rows(
        database, "SELECT rank, other_itemid, together FROM item_pairs WHERE itemid = ? ORDER BY rank", item)

    timeline = query(server, "item_timeline", itemid=str(item))
    assert len(timeline) == sqlite_rows(database, "SELECT count(*) FROM item_property_history WHERE itemid = ?",
                                        item)[0][0]
    changed = query(server, "category_changes", limit="1000")
    assert {r["itemid"] for r in changed} == {i for (i,) in sqlite_rows(
        database, "SELECT itemid FROM items WHERE category_changes > 0")}


# ------------------------------------------------------------------ parameters that answer


MALFORMED = [
    ("top_items", {"rank_by": "vews"}, 'rank_by: "vews" is not a ranking. Accepted: views (blank)'),
    ("top_items", {"limit": "lots"}, 'limit: "lots" is not a number of rows. Accepted: 1 to 1000'),
    ("top_items", {"root_categoryid": "abc"}, 'root_categoryid: "abc" is not a category id'),
    ("conversion_funnel", {"from_date": "July"}, 'from_date: "July" is not a date. Accepted: YYYY-MM-DD'),
    ("conversion_funnel", {"to_date": "2015-06-31"}, 'to_date: "2015-06-31" is not a date'),
    ("conversion_funnel", {"from_date": "2014-01-01", "to_date": "2014-01-31"}, "No events from 2014-01-01 to 2014-01-31"),
    ("peak_hours", {"from_date": "2015-07-10", "to_date": "2015-07-01"}, "from_date 2015-07-10 is after to_date 2015-07-01"),
    ("hourly_events", {"to_date": "yesterday"}, 'to_date: "yesterday" is not a date'),
    ("category_performance", {"parent": "abc"}, 'parent: "abc" is not a category id'),
    ("category_performance", {"parent": "999999999"}, "parent: there is no category 999999999"),
    ("visitor_journey", {"visitorid": "999999999999"}, "visitorid: there is no visitor 999999999999"),
    ("visitor_journey", {"visitorid": "12x"}, 'visitorid: "12x" is not a visitor id'),
    ("cart_abandonment", {"from_date": "05/06/2015"}, 'from_date: "05/06/2015" is not a date'),
    ("time_to_purchase", {"measure": "median"}, 'measure: "median" is not a measure. Accepted: view_to_purchase'),
    ("cohort_triangle", {"rate": "churn"}, 'rate: "churn" is not a cohort rate'),
    ("category_funnel", {"root_categoryid": "x"}, 'root_categoryid: "x" is not a category id'),
    ("viewed_together", {"itemid": "999999999"}, "itemid: there is no item 999999999"),
    ("item_timeline", {"itemid": "-1"}, 'itemid: "-1" is not an item id'),
    ("category_changes", {"limit": "0"}, 'limit: "0" is not a number of rows'),
]


@pytest.mark.parametrize("name, params, message", MALFORMED, ids=[f"{n}-{'-'.join(p)}" for n, p, _ in MALFORMED])
def test_an_unusable_parameter_answers_with_a_row_saying_what_is_accepted(server, name, params, message):
    rows = query(server, name, **params)
    assert len(rows) == 1, rows[:3]
    first, *rest = rows[0].values()
    assert str(first).startswith("⚠ " + message) and all(v is None for v in rest), rows[0]
    status, html = get(f"{server['base']}/retail/{name}?{urllib.parse.urlencode(params)}")
    assert status == 200 and f'<div class="query-message"' in html and html_text(message) in html


def html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&#34;").replace("<", "&lt;")


def test_a_category_that_is_not_a_root_is_named_with_its_root(server, database):
    (category, root) = sqlite_rows(database, "SELECT categoryid, root_categoryid FROM categories "
                                             "WHERE depth >= 1 AND root_categoryid IS NOT NULL LIMIT 1")[0]
    for name in ("top_items", "category_funnel"):
        (row,) = query(server, name, root_categoryid=str(category))
        assert f"category {category} is not a top-level category (its root is {root})" in row[next(iter(row))]


# ------------------------------------------------------------------ numbers as people read them, the glossary


def test_table_pages_and_queries_show_formatted_numbers_and_keep_exact_values(server, database):
    (events, rate, sessions) = sqlite_rows(database, "SELECT events, view_to_purchase_rate, sessions FROM overview")[0]
    status, html = get(f"{server['base']}/retail/overview")
    assert status == 200
    assert f'<td class="col-events type-int">{events:,}</td>' in html
    assert f'title="{rate!r}">{display.rate_text(rate)}</span>' in html and NBSP + "%" in display.rate_text(rate)
    assert get_json(f"{server['base']}/retail/overview.json?_shape=array")[0]["view_to_purchase_rate"] == rate

    (duration,) = sqlite_rows(database, "SELECT max(duration_s) FROM sessions")[0]
    status, html = get(f"{server['base']}/retail/sessions?_sort_desc=duration_s&_size=1")
    assert f'title="{duration!r} s">{display.duration_text(duration)}</span>' in html
    assert re.fullmatch(r"(\d+\u00a0d )?\d+:\d\d:\d\d", display.duration_text(duration))

    funnel = query(server, "conversion_funnel", from_date="2015-06-01", to_date="2015-06-01")[0]
    status, html = get(f"{server['base']}/retail/conversion_funnel?from_date=2015-06-01&to_date=2015-06-01")
    shown = display.rate_text(funnel["view_to_cart_rate"])
    assert f'<td class="col-view_to_cart_rate"><span class="num" title="{funnel["view_to_cart_rate"]!r}">{shown}</span>' in html
    assert not re.search(r">0\.\d{6,}<", html), "a rate shown with all its digits"

    (item, views) = sqlite_rows(database, "SELECT itemid, views FROM items ORDER BY views DESC LIMIT 1")[0]
    status, html = get(f"{server['base']}/retail/top_items?limit=1")
    assert f'<a href="/retail/items/{item}">{item}</a>' in html  # an id: no separators
    assert f'<td class="col-views">{views:,}</td>' in html


def test_the_glossary_lists_every_rate_column_once(server, database):
    status, html = get(f"{server['base']}/-/glossary")
    assert status == 200 and "purchased_views / views" in html and "buyers / viewers" in html
    terms = get_json(f"{server['base']}/-/glossary.json")["terms"]
    rates = {column for (column,) in sqlite_rows(
        database, "SELECT DISTINCT p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p "
                  "WHERE m.type = 'table' AND p.type = 'REAL' AND (p.name LIKE '%\\_rate' ESCAPE '\\' "
                  "OR p.name LIKE 'share\\_of\\_%' ESCAPE '\\')")}
    assert {"view_to_purchase_rate", "purchased_view_rate", "recovery_rate", "retention_rate"} <= rates
    for rate in rates:
        assert [t["name"] for t in terms].count(rate) == 1, rate
        assert html.count(f'data-name="{rate}"') == 1, rate
        (term,) = [t for t in terms if t["name"] == rate]
        assert term["formula"] and term["columns"], rate
    status, html = get(f"{server['base']}/retail")
    assert 'href="/-/glossary"' in html  # the database page leads to it


# ------------------------------------------------------------------ in a browser




def test_dashboard_draws_its_charts_and_headline_numbers(server, page, database):
    page.goto(f"{server['base']}/-/dashboards/retail")
    page.wait_for_function(DASHBOARD_DRAWN, timeout=30_000)
    charts = page.eval_on_selector_all(".dashboard-card-chart canvas, .dashboard-card-chart svg.marks", "e => e.length")
    assert charts >= 5  # hourly trend, daily funnel, daily rates, peak hours, top categories
    events = sqlite_rows(database, "SELECT events FROM overview")[0][0]
    assert page.inner_text("#chart-events-metric").strip() == f"{events:,}"
    visitors = sqlite_rows(database, "SELECT visitors FROM overview")[0][0]
    assert page.inner_text("#chart-visitors-metric").strip() == f"{visitors:,}"
    screenshot(page, "dashboard.png", full_page=True)
    screenshot(page, "dashboard_top.png", full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1500})


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
    durations = {headers.index("seconds_since_prev_event"), headers.index("session_duration_s")}

    def shown(i, v):
        return "" if v is None else display.duration_text(v) if i in durations else str(v)

    assert cells == [[shown(i, v) for i, v in enumerate(row)] for row in expected]
    assert len({row[1] for row in expected}) > 1 and "transaction" in {row[3] for row in expected}
    screenshot(page, "visitor_journey.png")


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


# ------------------------------------------------------------------ ids lead to entity pages and their dashboards


def test_an_itemid_on_a_table_page_leads_to_the_item_page_and_its_dashboard(server, page, database):
    (item,) = sqlite_rows(database, "SELECT itemid FROM events_enriched ORDER BY timestamp_ms, source_line LIMIT 1")[0]
    page.goto(f"{server['base']}/retail/events_enriched?_sort=timestamp_ms&_size=5")
    link = page.locator(f'td.col-itemid a[href="/retail/items/{item}"]').first
    # Datasette's own foreign-key link: the item's label, then its id
    assert link.inner_text() == sqlite_rows(database, "SELECT label FROM items WHERE itemid = ?", item)[0][0]
    assert page.locator("td.col-itemid").first.inner_text().endswith(str(item))
    link.click()
    page.wait_for_url(f"**/retail/items/{item}")
    dashboard = page.locator("a.entity-dashboard-link")
    assert dashboard.get_attribute("href") == f"/-/dashboards/item?itemid={item}"
    box = dashboard.bounding_box()
    assert box and box["y"] < 300, "the dashboard link is at the top of the page"
    assert "Links from other tables" in page.content()
    screenshot(page, "item_page.png")
    # ...and on the item's page its category is a link to the category's page, and so on up
    (category, root) = sqlite_rows(database, "SELECT categoryid, root_categoryid FROM items WHERE itemid = ?", item)[0]
    if category is not None:
        assert page.locator(f'td.col-root_categoryid a[href="/retail/categories/{root}"]').count() == 1
        page.locator(f'td.col-categoryid a[href="/retail/categories/{category}"]').click()
        page.wait_for_url(f"**/retail/categories/{category}")
        assert page.locator("a.entity-dashboard-link").get_attribute("href") == \
            f"/-/dashboards/category?categoryid={category}"
        assert page.locator("td.col-categoryid a").count() == 0  # not a link to the page itself


def test_a_visitorid_in_a_query_result_leads_to_the_visitor_page_and_its_dashboard(server, page, database):
    page.goto(f"{server['base']}/retail/visitor_journey")
    cell = page.locator("table.rows-and-columns td.col-visitorid a").first
    visitor = int(cell.inner_text())
    assert cell.get_attribute("href") == f"/retail/visitors/{visitor}"
    cell.click()
    page.wait_for_url(f"**/retail/visitors/{visitor}")
    assert page.locator("a.entity-dashboard-link").get_attribute("href") == f"/-/dashboards/visitor?visitorid={visitor}"
    item = page.locator("table.rows-and-columns")  # the row itself, with its label
    assert sqlite_rows(database, "SELECT label FROM visitors WHERE visitorid = ?", visitor)[0][0] in item.inner_text()


def test_query_ids_link_to_items_and_categories(server, database):
    status, html = get(f"{server['base']}/retail/viewed_together")
    (item, other) = sqlite_rows(database, "SELECT x.itemid, x.other_itemid FROM item_pairs x JOIN items i USING (itemid) "
                                          "ORDER BY i.views DESC, x.itemid, x.rank LIMIT 1")[0]
    assert f'<a href="/retail/items/{other}">{other}</a>' in html and f'<a href="/retail/items/{item}">' in html
    (category,) = sqlite_rows(database, "SELECT categoryid FROM categories WHERE parentid IS NULL "
                                        "ORDER BY subtree_events DESC, categoryid LIMIT 1")[0]
    status, html = get(f"{server['base']}/retail/category_performance")
    assert f'<a href="/retail/categories/{category}">{category}</a>' in html
    status, html = get(f"{server['base']}/retail/categories/{category}")
    assert f'href="/-/dashboards/category?categoryid={category}"' in html
