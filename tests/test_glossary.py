"""The metric vocabulary (datasette/glossary.yml) against what is published and shown.

No pipeline run and no server: the published tables are those of ``retail_pipeline.schema``
(the columns and declared types every build creates), the descriptions those of
``datasette/metadata.yml``, the dashboards those of ``datasette/dashboards.yml``, and the cell
formats those of the display plugin (``datasette/plugins/retail_display.py``), loaded from its file
as Datasette loads it. tests/test_datasette.py checks the same things through a running Datasette.
"""

from __future__ import annotations

import importlib.util
import re

import pytest
import yaml
from markupsafe import Markup

from conftest import REPO
from retail_pipeline import schema

CONFIG = REPO / "datasette"
METADATA = yaml.safe_load((CONFIG / "metadata.yml").read_text())
TABLES = METADATA["databases"]["retail"]["tables"]
QUERIES = METADATA["databases"]["retail"]["queries"]


def load_plugin():
    spec = importlib.util.spec_from_file_location("retail_display_under_test", CONFIG / "plugins" / "retail_display.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plugin = load_plugin()
TERMS = plugin.TERMS


def published_columns():
    """(table, column, declared type) of every published table."""
    return [(name, column, kind) for name, table in schema.TABLES.items() for column, kind in table.columns]


def is_rate_name(column: str) -> bool:
    return column.endswith("_rate") or column.startswith("share_of_")


# ------------------------------------------------------------------ the glossary itself


def test_every_term_is_complete_and_named_once():
    names = [term["name"] for term in plugin.GLOSSARY["terms"]]
    assert len(names) == len(set(names))
    for term in plugin.GLOSSARY["terms"]:
        assert term["definition"].strip(), term["name"]
        assert term["shown_as"] in plugin.GLOSSARY["shown_as"] and term["group"] in plugin.GLOSSARY["groups"]
        if term["shown_as"] == "rate" and "<" not in term["name"]:
            assert term.get("formula"), f"{term['name']}: a rate says what it divides"


def test_the_vocabulary_of_the_design_is_there_with_its_meanings():
    formulas = {name: term.get("formula") for name, term in TERMS.items()}
    assert formulas["view_to_cart_rate"] == "carters / viewers"
    assert formulas["cart_to_purchase_rate"] == "buyers / carters"
    assert formulas["view_to_purchase_rate"] == "buyers / viewers"
    assert formulas["visitor_to_buyer_rate"] == "buyers / visitors"
    assert formulas["purchased_view_rate"] == "purchased_views / views"
    assert formulas["session_conversion_rate"] == "converted_sessions / sessions"
    assert formulas["abandonment_rate"] == "abandoned_sessions / cart_sessions"
    assert formulas["recovery_rate"] == "recovered_sessions / abandoned_sessions"
    assert formulas["retention_rate"] == "active_visitors / visitors"
    assert formulas["purchase_rate"] == "buyers / visitors"
    for name in ("events", "views", "addtocarts", "transactions", "visitors", "viewers", "carters", "buyers",
                 "purchased_views", "crawl session", "subtree_<name>", "avg_<count>_per_day"):
        assert name in TERMS, name


# ------------------------------------------------------------------ against the published tables


def test_every_real_column_of_the_published_tables_is_in_the_glossary():
    missing = [f"{table}.{column}" for table, column, kind in published_columns()
               if kind == "REAL" and plugin.term_for(column) is None]
    assert not missing, f"REAL columns the glossary does not define: {missing}"


def test_every_rate_column_is_a_rate_term_of_its_own():
    for table, column, kind in published_columns():
        if is_rate_name(column) or (plugin.term_for(column) or {}).get("shown_as") == "rate":
            term = TERMS.get(column)
            assert term is not None, f"{table}.{column}: a rate column needs a glossary entry of its own"
            assert term["shown_as"] == "rate" and kind == "REAL", f"{table}.{column}"


def test_every_published_table_and_column_is_described():
    missing = []
    for name, table in schema.TABLES.items():
        described = TABLES.get(name) or {}
        if not described.get("description"):
            missing.append(name)
        missing += [f"{name}.{column}" for column in table.column_names if not (described.get("columns") or {}).get(column)]
    assert not missing, f"not described in metadata.yml: {missing}"
    assert not {"item_stats", "category_stats"} & set(TABLES), "descriptions of tables no longer published"


def described_columns():
    """(table, column, description) of every column described in metadata.yml."""
    return [(table, column, " ".join(str(text).split()))
            for table, meta in TABLES.items() for column, text in (meta.get("columns") or {}).items()]


def test_a_metric_description_states_the_glossary_formula_first():
    wrong = []
    for table, column, text in described_columns():
        formula = (TERMS.get(column) or {}).get("formula")
        if formula and not text.startswith(formula):
            wrong.append(f"{table}.{column}: {text!r} does not start with {formula!r}")
    assert not wrong, "\n".join(wrong)


def test_no_column_name_means_two_things():
    """A rate's formula is written once in the glossary; a description of a column of the same
    name never starts with another term's formula, and every duration is said to be in seconds."""
    formulas = {term["formula"]: name for name, term in TERMS.items() if term.get("formula")}
    wrong = []
    for table, column, text in described_columns():
        for formula, name in formulas.items():
            if text.startswith(formula) and name != column and TERMS.get(column, {}).get("formula") != formula:
                wrong.append(f"{table}.{column} is described as {name} ({formula})")
        term = plugin.term_for(column)
        if term and term["shown_as"] == "duration" and "seconds" not in text.lower():
            wrong.append(f"{table}.{column}: a duration whose description does not say seconds")
    assert not wrong, "\n".join(wrong)


def test_entity_tables_show_their_label_where_ids_link():
    for table in ("visitors", "items", "categories"):
        assert TABLES[table]["label_column"] == "label"
        assert "label" in schema.TABLES[table].column_names


def test_key_columns_name_real_columns():
    for name, meta in TABLES.items():
        for column in meta.get("key_columns") or ():
            assert column in schema.TABLES[name].column_names, f"{name}: key column {column} is not a column"


# ------------------------------------------------------------------ the queries and the dashboards


def test_queries_use_the_new_table_names_and_no_percent_columns():
    for name, query in QUERIES.items():
        sql = query["sql"]
        assert not re.search(r"\b(item_stats|category_stats)\b", sql), name
        assert not re.search(r"\bas \w+_pct\b", sql), f"{name}: rates are fractions under their glossary name"
        assert "problem.message" in sql, f"{name}: says what it accepts when a parameter is unusable"
        declared = query.get("params") or []
        used = sorted(set(re.findall(r"(?<!:):([a-z_]+)", sql)))
        assert sorted(declared) == used, f"{name}: params {declared} vs used {used}"


SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def test_dashboard_titles_and_rate_columns_use_the_vocabulary():
    dashboards = yaml.safe_load((CONFIG / "dashboards.yml").read_text())["plugins"]["datasette-dashboards"]
    tables = set(schema.TABLES) | {"events"}
    unknown = []
    for slug, dashboard in dashboards.items():
        for chart_slug, chart in (dashboard.get("charts") or {}).items():
            for word in SNAKE.findall(chart.get("title") or ""):
                if plugin.term_for(word) is None and word not in tables and not word.endswith("_time"):
                    unknown.append(f"{slug}/{chart_slug}: title word {word!r}")
            for alias in re.findall(r"\bas\s+\"?([a-z_0-9]+)\"?", chart.get("query") or "", re.IGNORECASE):
                if is_rate_name(alias) and alias not in TERMS:
                    unknown.append(f"{slug}/{chart_slug}: column {alias!r}")
    assert not unknown, "not in the glossary:\n" + "\n".join(unknown)


# ------------------------------------------------------------------ how cells are shown


def test_rates_are_percentages_with_three_significant_digits():
    nbsp = "\u00a0"
    assert plugin.rate_text(0.0116510372264848) == f"1.17{nbsp}%"
    assert plugin.rate_text(0.29285714285714287) == f"29.3{nbsp}%"
    assert plugin.rate_text(0.000456) == f"0.0456{nbsp}%"
    assert plugin.rate_text(1.0) == f"100{nbsp}%"
    assert plugin.rate_text(0.0) == f"0{nbsp}%"
    assert plugin.rate_text(1e-12) == f"0.000000{nbsp}%"


def test_durations_are_hours_minutes_seconds():
    assert plugin.duration_text(1913.712) == "0:31:54"
    assert plugin.duration_text(0.0) == "0:00:00"
    assert plugin.duration_text(59.5) == "0:01:00"
    assert plugin.duration_text(3 * 86400 + 4 * 3600 + 5 * 60 + 6) == "3\u00a0d 4:05:06"


class Urls:
    def row(self, database, table, row_path, format=None):
        return f"/{database}/{table}/{row_path}"


class FakeDatasette:
    urls = Urls()


@pytest.mark.parametrize("column, value, table, shown", [
    ("events", 2756101, "overview", "2,756,101"),
    ("subtree_events", 1234, "categories", "1,234"),
    ("view_to_purchase_rate", 0.0116510372264848, "overview", "1.17\u00a0%"),
    ("duration_s", 1913.712, "sessions", "0:31:54"),
    ("p90_s", 752297.669, "purchase_timing_summary", "8\u00a0d 16:58:18"),
    ("avg_events_per_day", 19827.44, "hour_of_day_profile", "19,827.4"),
    ("week_3", 0.05, None, "5.00\u00a0%"),
    ("lift", 1.310854776693286, "item_pairs", "1.31"),
])
def test_cells_are_formatted_and_keep_the_exact_value_in_the_title(column, value, table, shown):
    cell = plugin.render_cell(value=value, column=column, table=table, database="retail", datasette=FakeDatasette())
    assert re.sub("<[^>]+>", "", str(cell)) == shown
    if isinstance(value, float):
        assert f'title="{value!r}' in str(cell)


@pytest.mark.parametrize("column", ["itemid", "other_itemid", "visitorid", "categoryid", "parentid",
                                    "root_categoryid", "parent_categoryid", "transactionid", "session_id",
                                    "timestamp_ms", "source_line", "valid_from_ms"])
def test_ids_never_get_separators_and_plain_ids_link_to_their_row_page(column):
    """A plain id (a query result's, or a row page's, where Datasette does not expand foreign
    keys) links to its row page; an expanded foreign key (a dict, on table pages) and an entity
    table's own key are left to Datasette; other integers are shown as they are."""
    ds = FakeDatasette()
    links_to = (TERMS.get(column) or {}).get("links_to")
    for table in (None, "events_enriched"):
        shown = plugin.render_cell(value=123456, column=column, table=table, database="retail", datasette=ds)
        if links_to:
            assert shown == Markup(f'<a href="/retail/{links_to}/123456">123456</a>')
        else:
            assert shown is None
    expanded = {"value": 123456, "label": "x"}
    assert plugin.render_cell(value=expanded, column=column, table="events_enriched", database="retail",
                              datasette=ds) is None
    if links_to:
        own = plugin.render_cell(value=123456, column=column, table=links_to, database="retail", datasette=ds)
        assert (own is None) == (column == plugin.OWN_KEY[links_to])


def test_text_nulls_labels_and_other_databases_are_left_to_datasette():
    ds = FakeDatasette()
    assert plugin.render_cell(value=None, column="events", table="overview", database="retail", datasette=ds) is None
    assert plugin.render_cell(value="a message", column="itemid", table=None, database="retail", datasette=ds) is None
    assert plugin.render_cell(value={"value": 5, "label": "x"}, column="categoryid", table="items", database="retail",
                              datasette=ds) is None
    assert plugin.render_cell(value=12345, column="events", table="t", database="other", datasette=ds) is None
    assert plugin.render_cell(value=12345, column="hour_of_day", table="t", database="retail", datasette=ds) is None


def test_a_column_is_resolved_once_then_looked_up():
    plugin._RESOLVED.clear()
    for _ in range(3):
        plugin.render_cell(value=1.5, column="median_s", table="x", database="retail", datasette=FakeDatasette())
    assert list(plugin._RESOLVED) == ["median_s"]


def test_a_query_message_is_shown_as_one_wide_message():
    ds = FakeDatasette()
    cell = plugin.render_cell(value='⚠ rank_by: "x" is not a ranking.', column="itemid", table=None,
                              database="retail", datasette=ds)
    assert 'class="query-message"' in cell and "&#34;x&#34;" in cell  # escaped
    assert plugin.render_cell(value="⚠ text in a table", column="raw", table="rejected_rows", database="retail",
                              datasette=ds) is None
