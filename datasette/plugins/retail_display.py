"""How the retail database reads in Datasette: formatted numbers, id links, and the glossary page.

The metric vocabulary lives in ``datasette/glossary.yml`` (read once, at import). From it:

- ``render_cell``: a cell of a glossary column is shown formatted (rates as percentages, durations
  as h:mm:ss, counts with thousands separators), the exact stored value in its ``title``. In query
  results (canned or ad hoc), a canned query's message about a parameter (a text starting "⚠ ") is
  shown as a message, wide enough to read, and an id column that names an item, a visitor or a category links to
  its row page (/retail/items/N...), as it does on a row page (where Datasette shows foreign keys
  as plain numbers); on table pages Datasette expands the declared foreign keys into links with
  labels itself. The database, its JSON and CSV keep the exact
  values. Datasette calls this once per cell: it is a dict lookup by column name (each name
  resolved once, then remembered), no queries.
- ``/-/glossary`` (HTML) and ``/-/glossary.json``: every term, what it means, how it is shown and
  which columns of the database carry it.
- ``glossary_anchor(column)`` in templates: the glossary anchor of a column name, or None (the
  table page's column documentation links each metric to its definition).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml
from datasette import hookimpl
from datasette.utils.asgi import Response
from markupsafe import Markup, escape

GLOSSARY_FILE = Path(__file__).resolve().parent.parent / "glossary.yml"
DATABASE = "retail"
NBSP = "\u00a0"


def load_glossary(path: Path = GLOSSARY_FILE) -> dict:
    """The glossary document: ``shown_as``, ``groups`` and ``terms`` (a list of dicts)."""
    document = yaml.safe_load(path.read_text())
    names = [term["name"] for term in document["terms"]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{path}: terms defined more than once: {duplicates}")
    for term in document["terms"]:
        if term["shown_as"] not in document["shown_as"] or term["group"] not in document["groups"]:
            raise ValueError(f"{path}: term {term['name']!r}: unknown shown_as or group")
    return document


GLOSSARY = load_glossary()
TERMS = {term["name"]: term for term in GLOSSARY["terms"]}
COLUMN_NAME = re.compile(r"^[a-z0-9_]+$")
WEEK = re.compile(r"^week_[0-9]+$")
AVERAGE = re.compile(r"^avg_[a-z_]+_per_day$")


def term_for(column: str) -> dict | None:
    """The glossary term a column name carries: its own entry, else its family's
    (subtree_<name>, avg_<count>_per_day, week_<n>, *_s / seconds_*), else None."""
    term = TERMS.get(column)
    if term is not None and COLUMN_NAME.match(column):
        return term
    if column.startswith("subtree_"):
        inner = TERMS.get(column[len("subtree_"):])
        if inner is not None and inner["group"] == "counts":
            return TERMS["subtree_<name>"]
        return None
    if AVERAGE.match(column):
        return TERMS["avg_<count>_per_day"]
    if WEEK.match(column):
        return TERMS["week_<n>"]
    if column.endswith("_s") or column.startswith("seconds_"):
        return TERMS["*_s, seconds_*"]
    return None


# ------------------------------------------------------------------ formats


def format_count(value):
    if isinstance(value, float):
        if not value.is_integer():
            return format_average(value)
        value = int(value)
    return f"{value:,}"


def format_average(value):
    return Markup('<span class="num" title="{}">{}</span>').format(repr(value), f"{value:,.1f}")


def format_number(value):
    return Markup('<span class="num" title="{}">{}</span>').format(repr(value), f"{value:,.2f}")


def rate_text(value) -> str:
    """A fraction as a percentage with three significant digits (at most six decimals)."""
    percent = 100.0 * value
    if percent == 0:
        return f"0{NBSP}%"
    decimals = min(max(2 - math.floor(math.log10(abs(percent))), 0), 6)
    return f"{percent:,.{decimals}f}{NBSP}%"


def format_rate(value):
    return Markup('<span class="num" title="{}">{}</span>').format(repr(value), rate_text(value))


def duration_text(seconds) -> str:
    """Seconds as h:mm:ss (rounded to the second), with days in front past 24 hours: 2 d 3:04:05."""
    sign = "-" if seconds < 0 else ""
    days, rest = divmod(round(abs(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{sign}{days:,}{NBSP}d {text}" if days else sign + text


def format_duration(value):
    return Markup('<span class="num" title="{} s">{}</span>').format(repr(value), duration_text(value))


FORMATTERS = {"count": format_count, "average": format_average, "number": format_number,
              "rate": format_rate, "duration": format_duration}

# column name -> (formatter or None, table linked to or None); filled as names are first seen
_RESOLVED: dict[str, tuple] = {}


def _resolve(column: str) -> tuple:
    term = term_for(column)
    if term is None:
        found = (None, None)
    else:
        found = (FORMATTERS.get(term["shown_as"]), term.get("links_to"))
    _RESOLVED[column] = found
    return found


OWN_KEY = {"items": "itemid", "categories": "categoryid", "visitors": "visitorid"}  # the entity tables' keys
MESSAGE_MARK = "⚠ "  # how a canned query's answer to an unusable parameter starts (metadata.yml)


@hookimpl
def render_cell(value, column, table, database, datasette):
    if database != DATABASE or value is None or isinstance(value, (bytes, dict)):
        return None
    if isinstance(value, str):
        if table is None and value.startswith(MESSAGE_MARK):
            return Markup('<div class="query-message" style="min-width: 36em; font-weight: bold; color: #a33">{}</div>'
                          ).format(value)
        return None
    formatter, links_to = _RESOLVED.get(column) or _resolve(column)
    if links_to is not None:
        # An id links to its row page: in query results, and on row pages, where Datasette shows
        # foreign keys as plain numbers (on table pages it expands them, with their labels, into
        # links itself: those values come here as dicts, left alone above). Not an entity table's
        # own key: that is the row itself.
        if isinstance(value, int) and OWN_KEY.get(table) != column:
            return Markup('<a href="{}">{}</a>').format(datasette.urls.row(DATABASE, links_to, str(value)), value)
        return None
    if formatter is None:
        return None
    return formatter(value)


# ------------------------------------------------------------------ glossary page


def glossary_anchor(column: str) -> str | None:
    """The anchor of ``column``'s glossary entry (its own name or its family's), or None."""
    term = term_for(column)
    return None if term is None else anchor(term["name"])


def anchor(name: str) -> str:
    return "term-" + re.sub(r"[^a-z0-9_]+", "-", name.lower()).strip("-")


async def _columns(datasette) -> list[tuple[str, str, str]]:
    """(table, column, declared type) of every table and view of the database."""
    db = datasette.get_database(DATABASE)
    result = await db.execute(
        "select m.name, p.name, p.type from sqlite_master m join pragma_table_info(m.name) p "
        "where m.type in ('table', 'view') and m.name not like 'sqlite_%' and m.name not like '\\_%' escape '\\' "
        "order by m.name, p.cid")
    return [tuple(row) for row in result.rows]


async def glossary_document(datasette) -> dict:
    """The glossary as data: every term with its meaning, how it is shown and the columns carrying it."""
    used: dict[str, list[dict]] = {}
    try:
        columns = await _columns(datasette)
    except KeyError:  # no retail database served
        columns = []
    for table, column, declared in columns:
        term = term_for(column)
        if term is not None:
            used.setdefault(term["name"], []).append({"table": table, "column": column, "type": declared})
    terms = []
    for term in GLOSSARY["terms"]:
        terms.append({
            "name": term["name"],
            "anchor": anchor(term["name"]),
            "group": term["group"],
            "group_title": GLOSSARY["groups"][term["group"]],
            "definition": " ".join(term["definition"].split()),
            "formula": term.get("formula"),
            "shown_as": term["shown_as"],
            "shown_as_text": GLOSSARY["shown_as"][term["shown_as"]],
            "links_to": term.get("links_to"),
            "columns": used.get(term["name"], []),
        })
    return {"database": DATABASE, "terms": terms}


async def glossary_json(datasette):
    return Response.json(await glossary_document(datasette))


async def glossary_page(datasette, request):
    document = await glossary_document(datasette)
    groups = []
    for key, title in GLOSSARY["groups"].items():
        members = [t for t in document["terms"] if t["group"] == key]
        if members:
            groups.append({"key": key, "title": title, "terms": members})
    examples = {"rate": rate_text(0.0116510372264848), "duration": duration_text(1913.712),
                "count": f"{2756101:,}", "average": f"{19827.4:,.1f}"}
    return Response.html(await datasette.render_template(
        "glossary.html", {"groups": groups, "database": DATABASE, "examples": examples}, request=request))


@hookimpl
def register_routes():
    return [(r"^/-/glossary$", glossary_page), (r"^/-/glossary\.json$", glossary_json)]


@hookimpl
def prepare_jinja2_environment(env):
    env.globals["glossary_anchor"] = glossary_anchor
