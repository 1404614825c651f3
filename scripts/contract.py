"""Write docs/data-contract.md, the data contract, from the sources it must never drift from.

    .venv/bin/python scripts/contract.py            # rewrite docs/data-contract.md
    .venv/bin/python scripts/contract.py --check    # exit 1 if the file is not what it would write

The contract is put together from:

- ``retail_pipeline/schema.py`` (``TABLES``): every published table, its columns in order, their
  declared SQLite types, primary keys, foreign keys, NOT NULL columns and indexes;
- ``datasette/metadata.yml``: the description of every table and column (what Datasette shows);
- ``datasette/glossary.yml``: the metric vocabulary (what /-/glossary shows);
- ``docs/contract-rules.md``: the rules in prose (inputs, reading rules, order, sessions, point in
  time), and under "Per-table rules" a section per table, put into that table's entry.

A table or column the schema has and the metadata does not describe (or the other way round), or a
rules section for a table that does not exist, stops the script with a message saying which:
tests/test_docs.py runs it, and checks that the committed file is what it writes.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from retail_pipeline.schema import BUILD_INFO_TABLE, EVENTS_VIEW_SQL, TABLES  # noqa: E402

METADATA = REPO / "datasette" / "metadata.yml"
GLOSSARY = REPO / "datasette" / "glossary.yml"
RULES = REPO / "docs" / "contract-rules.md"
OUTPUT = REPO / "docs" / "data-contract.md"
COMMAND = ".venv/bin/python scripts/contract.py"
PER_TABLE = "## Per-table rules"

# Published objects that are not in schema.TABLES: the events view and the build record.
EVENTS_VIEW = "events"
EVENTS_VIEW_COLUMNS = tuple(
    c.strip() for c in re.search(r"SELECT (.*) FROM", EVENTS_VIEW_SQL).group(1).split(","))
EXTRA_TABLES = {EVENTS_VIEW: "view", BUILD_INFO_TABLE: "table"}
BUILD_INFO_COLUMNS = (("key", "TEXT"), ("value", "TEXT"))

# The order the contract lists the tables in, by kind. A table of the schema not named here is
# listed under "Other tables" (so a new table is never left out); a name here that is not
# published stops the script.
GROUPS = (
    ("Events, properties, categories: the cleaned inputs",
     ("events_enriched", EVENTS_VIEW, "item_properties", "category_tree", "sessions")),
    ("One row per visitor, item, category: what every id links to", ("visitors", "items", "categories")),
    ("By hour, day and week", ("event_type_counts", "hourly_trend", "daily_funnel", "category_daily_funnel",
                               "daily_cart_abandonment", "cohort_retention")),
    ("Purchases, pairs, history", ("purchase_timing", "purchase_timing_summary", "item_pairs",
                                   "item_property_history")),
    ("Pre-computed for browsing", ("overview", "hour_of_day_profile", "weekday_hour_profile")),
    ("Data quality and the build", ("rejected_rows", "data_quality", BUILD_INFO_TABLE)),
)


class ContractError(Exception):
    """The sources disagree: the message says where."""


def described_tables(metadata: dict | None = None) -> dict[str, dict]:
    """The ``tables`` of the ``retail`` database in datasette/metadata.yml."""
    metadata = metadata if metadata is not None else yaml.safe_load(METADATA.read_text())
    return metadata["databases"]["retail"]["tables"]


def disagreements(metadata: dict | None = None) -> list[str]:
    """Where schema.TABLES and metadata.yml disagree: a table or column described in one and not
    the other, a table or column without a description. Empty when they agree."""
    described = described_tables(metadata)
    problems = []
    expected = {name: schema.column_names for name, schema in TABLES.items()}
    expected[EVENTS_VIEW] = EVENTS_VIEW_COLUMNS
    expected[BUILD_INFO_TABLE] = tuple(name for name, _ in BUILD_INFO_COLUMNS)
    for table, columns in expected.items():
        entry = described.get(table)
        if entry is None:
            problems.append(f"{table}: a published table that datasette/metadata.yml does not describe")
            continue
        if not str(entry.get("description") or "").strip():
            problems.append(f"{table}: no description in datasette/metadata.yml")
        texts = entry.get("columns") or {}
        for column in columns:
            if not str(texts.get(column) or "").strip():
                problems.append(f"{table}.{column}: a published column that datasette/metadata.yml does not describe")
        for column in texts:
            if column not in columns:
                problems.append(f"{table}.{column}: described in datasette/metadata.yml but not a column of {table}")
    for table in described:
        if table not in expected:
            problems.append(f"{table}: described in datasette/metadata.yml but not a published table")
    return problems


def split_rules(text: str) -> tuple[str, dict[str, str]]:
    """The general part of docs/contract-rules.md (without its leading comment) and the
    per-table sections, by table name."""
    text = re.sub(r"\A\s*<!--.*?-->\s*", "", text, flags=re.S)
    general, _, per_table = text.partition(PER_TABLE)
    sections = {}
    for match in re.finditer(r"^### `([^`]+)`\n(.*?)(?=^### |\Z)", per_table, flags=re.S | re.M):
        sections[match.group(1)] = match.group(2).strip()
    return general.strip(), sections


def cell(text: str) -> str:
    """Text for a Markdown table cell: one line, pipes escaped, angle brackets shown as written."""
    text = " ".join(str(text).split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def prose(text: str) -> str:
    """A description as a Markdown paragraph (angle brackets shown as written)."""
    return " ".join(str(text).split()).replace("<", "&lt;").replace(">", "&gt;")


def first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.:])\s", " ".join(str(text).split()), maxsplit=1)[0]
    return sentence.rstrip(".:")


def code_list(names) -> str:
    return ", ".join(f"`{name}`" for name in names)


def key_text(key: tuple[str, ...]) -> str:
    return f"`{key[0]}`" if len(key) == 1 else "(" + code_list(key) + ")"


def table_entry(name: str, described: dict, rules: dict[str, str]) -> list[str]:
    entry = described[name]
    lines = [f"### `{name}`", "", prose(entry["description"]), ""]
    if name in rules:
        lines += ["**Rules.** " + rules[name], ""]
    if name == EVENTS_VIEW:
        lines += [f"A view: `{EVENTS_VIEW_SQL}`.", ""]
        columns = [(column, dict(TABLES["events_enriched"].columns)[column], "") for column in EVENTS_VIEW_COLUMNS]
    elif name == BUILD_INFO_TABLE:
        columns = [(column, kind, "") for column, kind in BUILD_INFO_COLUMNS]
    else:
        schema = TABLES[name]
        facts = []
        if schema.primary_key:
            facts.append(f"Key: {key_text(schema.primary_key)} (unique)"
                         + (", stored `WITHOUT ROWID`" if schema.without_rowid else ""))
        else:
            facts.append("No primary key")
        if schema.all_indexes:
            facts.append("indexed on " + ", ".join(key_text(index) for index in schema.all_indexes))
        lines += ["; ".join(facts) + ".", ""]
        references = dict(schema.foreign_keys)
        columns = []
        for column, kind in schema.columns:
            notes = []
            if column in schema.primary_key:
                notes.append("key")
            if column in schema.not_null:
                notes.append("NOT NULL")
            if column in references:
                notes.append(f"→ [`{references[column]}`](#{references[column]})")
            columns.append((column, kind, ", ".join(notes)))
    texts = entry["columns"]
    lines += ["| column | type | key, link | meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{column}` | {kind} | {notes} | {cell(texts[column])} |" for column, kind, notes in columns]
    return lines + [""]


def glossary_section(glossary: dict) -> list[str]:
    lines = [
        "## Metric vocabulary",
        "",
        "Every column, canned query, dashboard card and chart uses these names with these meanings",
        "(from [`datasette/glossary.yml`](../datasette/glossary.yml), shown by `make serve` at",
        "`/-/glossary`). A rate column's description in the tables above starts with its formula.",
        "",
    ]
    groups = glossary.get("groups", {})
    terms = glossary["terms"]
    for group, title in groups.items():
        members = [term for term in terms if term.get("group") == group]
        if not members:
            continue
        lines += [f"**{title}**", "", "| name | meaning | formula |", "| --- | --- | --- |"]
        for term in members:
            formula = f"`{cell(term['formula'])}`" if term.get("formula") else ""
            lines.append(f"| `{cell(term['name'])}` | {cell(term['definition'])} | {formula} |")
        lines.append("")
    return lines


def render() -> str:
    """The text of docs/data-contract.md; ContractError if the sources disagree."""
    metadata = yaml.safe_load(METADATA.read_text())
    problems = disagreements(metadata)
    described = described_tables(metadata)
    general, rules = split_rules(RULES.read_text())
    published = [*TABLES, *EXTRA_TABLES]
    problems += [f"docs/contract-rules.md: a section for `{name}`, which is not a published table"
                 for name in rules if name not in published]
    grouped = [name for _, names in GROUPS for name in names]
    problems += [f"scripts/contract.py GROUPS: `{name}` is not a published table"
                 for name in grouped if name not in published]
    groups = [*GROUPS, ("Other tables", tuple(name for name in published if name not in grouped))]
    groups = [(title, names) for title, names in groups if names]
    if problems:
        raise ContractError("the sources of the contract disagree:\n  " + "\n  ".join(problems))
    glossary = yaml.safe_load(GLOSSARY.read_text())

    lines = [
        "<!-- Generated by scripts/contract.py: do not edit this file. Edit docs/contract-rules.md,",
        "datasette/metadata.yml (descriptions), datasette/glossary.yml (metrics) or",
        f"retail_pipeline/schema.py (tables), then run `{COMMAND}`. -->",
        "",
        "# Data contract",
        "",
        "What the pipeline reads, how it reads it, and what it publishes: every table and column with",
        "its meaning and rules. Table and column names are fixed (queries, dashboards and",
        "`verify_results.py` depend on them); tables and columns may be added, not renamed or dropped.",
        "Where these rules leave a choice open, [decisions.md](decisions.md) records the one made.",
        "",
        "Contents: [Inputs](#inputs) · [Reading rules](#reading-rules) ·",
        "[Order, sessions and time](#order-sessions-and-time) · [Point in time](#point-in-time) ·",
        "[Published tables](#published-tables) · [Metric vocabulary](#metric-vocabulary)",
        "",
        general,
        "",
        "## Published tables",
        "",
        "One SQLite database (`data/retail.db` unless told otherwise; Datasette serves it as `retail`).",
        "Column types are declared, not inferred. Every column whose type cell shows `→ table` is a",
        "foreign key to that table's key (and indexed): Datasette links each id to its row page and",
        "shows the row's label. The descriptions below are those Datasette shows on each table page.",
        "",
        "| table | one row per / what it holds | key |",
        "| --- | --- | --- |",
    ]
    for title, names in groups:
        lines.append(f"| **{title}** | | |")
        for name in names:
            key = key_text(TABLES[name].primary_key) if name in TABLES and TABLES[name].primary_key else ""
            kind = f" ({EXTRA_TABLES[name]})" if name in EXTRA_TABLES else ""
            about = cell(first_sentence(described[name]["description"]))
            lines.append(f"| [`{name}`](#{name}){kind} | {about} | {key} |")
    lines.append("")
    for title, names in groups:
        lines += [f"## {title}", ""]
        for name in names:
            lines += table_entry(name, described, rules)
    lines += glossary_section(glossary)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    args = parser.parse_args(argv)
    try:
        text = render()
    except ContractError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(REPO)} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
