"""The dashboards of ``datasette/dashboards.yml`` (datasette-dashboards), as a person uses them.

The real pipeline builds the sample database once for this module; a real Datasette serves it on a
free loopback port exactly as `make serve` starts it (``scripts/serve.py``'s ``datasette_command``).
First every chart query is sent to Datasette's JSON API the way the plugin's page sends it (its
``[[ ... ]]`` clauses resolved by the plugin's own function, the filters in the query string), with
and without filters, and each query's plan is read: the big tables (events_enriched,
item_properties, sessions, visitors) are only ever searched through an index, never scanned. Then a headless Chromium (Debian's
``/usr/bin/chromium``, driven by Playwright) opens each dashboard: every chart is drawn, the item
dashboard shows the item's numbers as SQLite has them, a top item and a category lead to their
dashboards, and the date filter changes the cards. Screenshots go to ``test-artifacts/``; with
``UPDATE_SCREENSHOTS=1`` also to ``docs/screenshots/``.
"""

from __future__ import annotations

import re
import sqlite3
import urllib.parse

import pytest
import yaml

from conftest import REPO, get_json, screenshot, sqlite_rows, DASHBOARD_DRAWN


from datasette_dashboards import replace_opts_in_query  # noqa: E402  (how the plugin resolves [[ ... ]])

pytestmark = pytest.mark.slow

DASHBOARDS = yaml.safe_load((REPO / "datasette" / "dashboards.yml").read_text())["plugins"]["datasette-dashboards"]
BIG_TABLES = ("events_enriched", "item_properties", "sessions", "visitors")  # millions of rows at full scale
DATES = {"date_start": "2015-06-01", "date_end": "2015-06-07"}


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def database(sample_database):
    return sample_database


@pytest.fixture(scope="module")
def server(sample_server):
    return sample_server["base"]


@pytest.fixture(scope="module")
def known(database):
    """Ids the entity dashboards are opened for: the item with the most transactions, a category
    below a root with events of its own, a buyer with several sessions."""
    (item,), = sqlite_rows(database, "SELECT itemid FROM items ORDER BY transactions DESC, views DESC, itemid LIMIT 1")
    (category,), = sqlite_rows(database, "SELECT categoryid FROM categories WHERE parentid IS NOT NULL AND events > 0 "
                                         "ORDER BY events DESC, categoryid LIMIT 1")
    (root,), = sqlite_rows(database, "SELECT categoryid FROM categories WHERE parentid IS NULL "
                                     "ORDER BY subtree_events DESC, categoryid LIMIT 1")
    (visitor,), = sqlite_rows(database, "SELECT visitorid FROM visitors WHERE transactions > 0 AND sessions > 1 "
                                        "ORDER BY events DESC, visitorid LIMIT 1")
    return {"itemid": str(item), "categoryid": str(category), "root": str(root), "visitorid": str(visitor)}


def filter_sets(known) -> dict[str, list[dict[str, str]]]:
    """For each dashboard, the filter values its queries are tried with (none, real ids, an unknown id)."""
    return {
        "retail": [{}, DATES, {"date_start": "2015-07-01"}, {"date_end": "2015-05-20"}, {"date_start": "2030-01-01"}],
        "item": [{}, {"itemid": known["itemid"]}, {"itemid": "999999999"}],
        "category": [{}, {"categoryid": known["categoryid"]}, {"categoryid": known["root"]},
                     {"categoryid": "999999999"}],
        "visitor": [{}, {"visitorid": known["visitorid"]}, {"visitorid": "999999999"}],
    }


def charts_with_queries():
    return [(slug, name, chart) for slug, dashboard in DASHBOARDS.items()
            for name, chart in dashboard["charts"].items() if "query" in chart]


def run_chart(server, chart, filters: dict[str, str]) -> list[dict]:
    """A chart's rows as the dashboard page fetches them: the plugin resolves the [[ ]] clauses,
    the page sends the SQL with the filters given in the query string."""
    sql = replace_opts_in_query(chart["query"], filters)
    query = urllib.parse.urlencode({"sql": sql, **filters, "_shape": "objects"})
    document = get_json(f"{server}/{chart['db']}.json?{query}")
    assert document.get("ok", True) and not document.get("error"), document
    return document["rows"]


# ------------------------------------------------------------------ the configuration and its queries


def test_the_four_dashboards_and_their_filters():
    assert set(DASHBOARDS) == {"retail", "item", "category", "visitor"}
    assert set(DASHBOARDS["retail"]["filters"]) == {"date_start", "date_end"}
    for slug, key in (("item", "itemid"), ("category", "categoryid"), ("visitor", "visitorid")):
        assert set(DASHBOARDS[slug]["filters"]) == {key}
    for slug, dashboard in DASHBOARDS.items():
        in_layout = {name for row in dashboard["layout"] for name in row}
        assert in_layout == set(dashboard["charts"]), slug
        for name, chart in dashboard["charts"].items():
            for clause in re.findall(r"\[\[.*?\]\]", chart.get("query", "")):
                assert ":" in clause, f"{slug}/{name}: an optional clause without a parameter"


def test_metric_names_follow_the_vocabulary():
    text = (REPO / "datasette" / "dashboards.yml").read_text()
    assert "item_stats" not in text and "category_stats" not in text
    retail = DASHBOARDS["retail"]["charts"]
    assert "purchased_view_rate" in retail["purchased-view-metric"]["title"]
    assert "purchased_view_rate" in retail["purchased-view-metric"]["query"]
    assert "view_to_purchase_rate = buyers / viewers" in retail["daily-rates"]["title"]
    assert "view_to_purchase_rate" in retail["daily-rates"]["display"]["transform"][0]["fold"]
    # A card or chart that does not follow the dates says so in its title.
    for name, chart in retail.items():
        if "query" in chart and ":date_start" not in chart["query"]:
            assert "all dates" in chart["title"], f"{name} ignores the dates without saying so"


def test_every_query_answers_through_datasette(server, known, database):
    sets = filter_sets(known)
    for slug, name, chart in charts_with_queries():
        for filters in sets[slug]:
            rows = run_chart(server, chart, filters)
            if chart["library"] in ("table", "metric"):  # the plugin's table and metric cards need a row
                assert rows, f"{slug}/{name} {filters}: no rows"
            if chart["library"] == "metric":
                assert chart["display"]["field"] in rows[0]
    # The dates reach the charts.
    funnel = run_chart(server, DASHBOARDS["retail"]["charts"]["daily-funnel"], DATES)
    assert [r["date"][:10] for r in funnel] == [f"2015-06-0{d}" for d in range(1, 8)]
    whole = run_chart(server, DASHBOARDS["retail"]["charts"]["daily-funnel"], {})
    assert len(whole) == sqlite_rows(database, "SELECT count(*) FROM daily_funnel")[0][0]
    # An entity dashboard shows the id asked for.
    daily = run_chart(server, DASHBOARDS["item"]["charts"]["item-daily"], {"itemid": known["itemid"]})
    assert sum(r["views"] + r["addtocarts"] + r["transactions"] for r in daily) == sqlite_rows(
        database, "SELECT events FROM items WHERE itemid = ?", int(known["itemid"]))[0][0]
    journey = run_chart(server, DASHBOARDS["visitor"]["charts"]["visitor-journey"], {"visitorid": known["visitorid"]})
    assert len(journey) == sqlite_rows(database, "SELECT events FROM visitors WHERE visitorid = ?",
                                       int(known["visitorid"]))[0][0]


def test_queries_read_the_big_tables_only_through_an_index(database, known):
    """At full scale events_enriched has 2.76 M rows, item_properties 11.7 M, sessions 1.77 M,
    visitors 1.4 M: a query that scans one of them (even through a covering index) takes up to
    seconds. The two session cards of the main dashboard are the exception: with dates chosen they
    count the sessions started in the dates, reading the whole sessions table (about 0.15 s at full
    scale); without dates they read overview."""
    sets = filter_sets(known)
    allowed = {("retail", "sessions-metric", "sessions"), ("retail", "session-conversion-metric", "sessions")}
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        for slug, name, chart in charts_with_queries():
            for filters in sets[slug]:
                sql = replace_opts_in_query(chart["query"], filters)
                parameters = {p: filters.get(p, "") for p in re.findall(r":([A-Za-z0-9_]+)", sql)}
                plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, parameters)]
                for step in plan:
                    for table in BIG_TABLES:
                        if re.match(rf"SCAN {table}\b", step) and (slug, name, table) not in allowed:
                            pytest.fail(f"{slug}/{name} {filters}: {step}\n" + "\n".join(plan))
    finally:
        conn.close()


# ------------------------------------------------------------------ in a browser




def open_dashboard(page, server, slug, **filters):
    query = f"?{urllib.parse.urlencode(filters)}" if filters else ""
    page.goto(f"{server}/-/dashboards/{slug}{query}")
    page.wait_for_function(DASHBOARD_DRAWN, timeout=30_000)
    page.wait_for_load_state("networkidle")


def card_text(page, chart: str) -> str:
    return page.inner_text(f"#chart-{chart}").strip()


def table_cells(page, chart: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"#chart-{chart} table tbody tr", "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => c.innerText.trim()))")


def assert_drawn_without_errors(page, slug):
    dashboard = DASHBOARDS[slug]
    vega = [name for name, chart in dashboard["charts"].items() if chart["library"] == "vega-lite"]
    drawn = page.eval_on_selector_all(".dashboard-card-chart canvas, .dashboard-card-chart svg.marks",
                                      "e => e.map(x => x.closest('.dashboard-card-chart').id)")
    assert sorted(set(drawn)) == sorted(f"chart-{name}" for name in vega), slug
    text = page.inner_text(".dashboard-grid").lower()
    for word in ("error", "undefined", "nan"):
        assert not re.search(rf"\b{word}\b", text), f"{slug}: '{word}' on the page"
    assert not page.is_visible(".chart-tooltip"), f"{slug}: a chart's query returned too many rows"


@pytest.mark.parametrize("slug", ["retail", "item", "category", "visitor"])
def test_each_dashboard_draws_every_chart(server, page, slug):
    open_dashboard(page, server, slug)
    assert_drawn_without_errors(page, slug)
    screenshot(page, f"dashboard_{slug}.png", for_docs=True, full_page=True,
               clip={"x": 0, "y": 0, "width": 1280, "height": 2400})


def test_entity_dashboards_draw_for_given_ids(server, page, known):
    for slug, key in (("item", "itemid"), ("category", "categoryid"), ("category", "root"), ("visitor", "visitorid")):
        parameter = "categoryid" if key == "root" else key
        open_dashboard(page, server, slug, **{parameter: known[key]})
        assert_drawn_without_errors(page, slug)
        assert "asked for" in card_text(page, f"{slug}-heading")
    open_dashboard(page, server, "item", itemid="999999999")
    assert "no such item" in card_text(page, "item-details")


def test_item_dashboard_shows_the_items_numbers_as_in_sqlite(server, page, database, known):
    itemid = int(known["itemid"])
    open_dashboard(page, server, "item", itemid=itemid)
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    item = dict(conn.execute("SELECT * FROM items WHERE itemid = ?", (itemid,)).fetchone())
    pairs = conn.execute("SELECT other_itemid FROM item_pairs WHERE itemid = ? ORDER BY rank LIMIT 20", (itemid,)).fetchall()
    conn.close()
    for measure in ("views", "addtocarts", "transactions", "buyers"):
        assert card_text(page, f"item-{measure}") == f"{item[measure]:,}", measure
    shown = dict(row[:2] for row in table_cells(page, "item-details"))
    for measure in ("events", "views", "addtocarts", "transactions", "visitors", "viewers", "carters", "buyers",
                    "purchased_views", "views_while_unavailable", "category_changes"):
        assert shown[measure] == f"{item[measure]:,}", measure
    for rate in ("view_to_purchase_rate", "purchased_view_rate"):
        assert shown[rate] == ("n/a" if item[rate] is None else f"{100 * item[rate]:.2f} %"), rate
    assert shown["first_event_time"] == item["first_event_time"] and shown["last_event_time"] == item["last_event_time"]
    heading = table_cells(page, "item-heading")[0]
    assert str(itemid) in heading and item["category_path"] in heading
    if pairs:
        linked = page.eval_on_selector_all("#chart-item-pairs a.item-link", "e => e.map(a => a.innerText.trim())")
        assert linked == [str(other) for (other,) in pairs]
    screenshot(page, "dashboard_item_known.png", full_page=True)


def test_clicking_a_top_item_opens_its_dashboard(server, page, database):
    open_dashboard(page, server, "retail")
    (top,), = sqlite_rows(database, "SELECT itemid FROM items ORDER BY transactions DESC, views DESC, itemid LIMIT 1")
    link = page.locator("#chart-top-items a.item-link").first
    assert link.inner_text().strip() == str(top)
    link.click()
    page.wait_for_url(f"**/-/dashboards/item?itemid={top}")
    page.wait_for_function(DASHBOARD_DRAWN, timeout=30_000)
    (views,), = sqlite_rows(database, "SELECT views FROM items WHERE itemid = ?", top)
    page.wait_for_function("() => document.querySelector('#chart-item-views p')")
    assert card_text(page, "item-views") == f"{views:,}"


def test_category_links_go_to_the_category_dashboard(server, page, database, known):
    # From an item's category path ...
    open_dashboard(page, server, "item", itemid=known["itemid"])
    (categoryid,), = sqlite_rows(database, "SELECT categoryid FROM items WHERE itemid = ?", int(known["itemid"]))
    page.locator(f"#chart-item-heading a.category-link:text-is('{categoryid}')").click()
    page.wait_for_url(f"**/-/dashboards/category?categoryid={categoryid}")
    page.wait_for_function(DASHBOARD_DRAWN, timeout=30_000)
    (events,), = sqlite_rows(database, "SELECT subtree_events FROM categories WHERE categoryid = ?", categoryid)
    page.wait_for_function("() => document.querySelector('#chart-category-events p')")
    assert card_text(page, "category-events") == f"{events:,}"
    # ... and from a bar of the main dashboard's top categories (a vega-lite href).
    open_dashboard(page, server, "retail")
    (first,), = sqlite_rows(database, "SELECT categoryid FROM categories WHERE transactions > 0 "
                                      "ORDER BY transactions DESC, views DESC, categoryid LIMIT 1")
    page.locator("#chart-top-categories svg.marks g.mark-rect path").first.click()
    page.wait_for_url(f"**/-/dashboards/category?categoryid={first}")
    # ... and down to a subcategory.
    open_dashboard(page, server, "category", categoryid=known["root"])
    child = page.locator("#chart-category-children a.category-link").first
    childid = child.inner_text().strip()
    assert sqlite_rows(database, "SELECT parentid FROM categories WHERE categoryid = ?", int(childid))[0][0] == int(known["root"])
    child.click()
    page.wait_for_url(f"**/-/dashboards/category?categoryid={childid}")


def test_a_visitor_link_goes_to_the_visitor_dashboard(server, page, database, known):
    open_dashboard(page, server, "item", itemid=known["itemid"])
    link = page.locator("#chart-item-events a.visitor-link").first
    visitorid = link.inner_text().strip()
    link.click()
    page.wait_for_url(f"**/-/dashboards/visitor?visitorid={visitorid}")
    page.wait_for_function(DASHBOARD_DRAWN, timeout=30_000)
    (events,), = sqlite_rows(database, "SELECT events FROM visitors WHERE visitorid = ?", int(visitorid))
    assert card_text(page, "visitor-events") == f"{events:,}"
    journey = table_cells(page, "visitor-journey")
    expected = sqlite_rows(database, "SELECT session_id, event_time, event, itemid FROM events_enriched "
                                     "WHERE visitorid = ? ORDER BY timestamp_ms, source_line", int(visitorid))
    assert [row[:4] for row in journey] == [[str(s), t, e, str(i)] for s, t, e, i in expected]


def test_the_date_filter_changes_the_cards(server, page, database):
    open_dashboard(page, server, "retail")
    (events,), = sqlite_rows(database, "SELECT events FROM overview")
    assert card_text(page, "events-metric") == f"{events:,}"
    before = {name: card_text(page, name) for name in ("events-metric", "transactions-metric", "sessions-metric",
                                                        "avg-visitors-metric", "abandonment-metric")}
    page.fill("#date_start", DATES["date_start"])
    page.fill("#date_end", DATES["date_end"])
    page.click(".dashboard-filters input[type=submit]")
    page.wait_for_url("**/-/dashboards/retail?*date_start=2015-06-01*")
    page.wait_for_function(DASHBOARD_DRAWN, timeout=30_000)
    page.wait_for_load_state("networkidle")
    assert_drawn_without_errors(page, "retail")
    after = {name: card_text(page, name) for name in before}
    (week_events, week_transactions), = sqlite_rows(
        database, "SELECT sum(total_events), sum(\"transaction\") FROM event_type_counts WHERE hour >= ? AND hour < ?",
        "2015-06-01", "2015-06-08")
    (sessions,), = sqlite_rows(database, "SELECT count(*) FROM sessions WHERE start_time >= ? AND start_time < ?",
                               "2015-06-01", "2015-06-08")
    (visitor_days,), = sqlite_rows(database, "SELECT sum(visitors) FROM daily_funnel WHERE date BETWEEN ? AND ?",
                                   "2015-06-01", "2015-06-07")
    assert after["events-metric"] == f"{week_events:,}" != before["events-metric"]
    assert after["transactions-metric"] == f"{week_transactions:,}"
    assert after["sessions-metric"] == f"{sessions:,}" != before["sessions-metric"]
    average = visitor_days / 7
    assert after["avg-visitors-metric"] == (f"{round(average):,}" if average >= 100 else f"{average:.1f}")
    assert "2015-06-01 to 2015-06-07" in card_text(page, "period-metric") and "7 days" in card_text(page, "period-metric")
    # Cards that show the whole period whatever the dates keep their numbers (and say so in their titles).
    (visitors,), = sqlite_rows(database, "SELECT visitors FROM overview")
    assert card_text(page, "visitors-metric") == f"{visitors:,}"
    screenshot(page, "dashboard_retail_one_week.png", full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1400})
