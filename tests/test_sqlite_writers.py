"""The two SQLite writers (``[retail] sqlite_writer``) publish the same database.

``pages`` (the default) writes the big tables' b-tree pages itself (retail_pipeline/sqlite_btree.py);
``sqlite`` has SQLite insert every row (ADBC) and build every index (CREATE INDEX). The pipeline
runs both ways through the real `luigi` command, on the hand-written dirty inputs of
test_pipeline_cli.py and on generated dirty data, and the two databases must hold the same tables,
row for row (scripts/compare_databases.py), with the same schema, and pass ``PRAGMA
integrity_check``.
"""

from __future__ import annotations

import configparser
import shutil
import sqlite3
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import REPO, run_pipeline, write_inputs
from test_pipeline_cli import DIRTY

from retail_pipeline import schema
from retail_pipeline.generate import generate

DATASETS = {
    "hand-written": lambda folder: write_inputs(folder, DIRTY),
    "generated": lambda folder: generate(folder, scale=0.02, seed=7, dirty=True),
}


@pytest.fixture(scope="module", params=list(DATASETS))
def both_ways(request, tmp_path_factory):
    """The pipeline with the default writer, then with ``--retail-sqlite-writer sqlite`` on the
    same work dir and database path (the setting is part of every task's fingerprint, so the
    second run redoes the work and publishes again)."""
    root = tmp_path_factory.mktemp(request.param)
    data = root / "data"
    DATASETS[request.param](data)
    work, database = root / "work", root / "retail.db"
    pages = run_pipeline(data, work, database)  # luigi.cfg: sqlite_writer = pages
    assert pages.returncode == 0, pages.stderr[-3000:]
    shutil.copyfile(database, root / "pages.db")
    sqlite = run_pipeline(data, work, database, "--retail-sqlite-writer", "sqlite")
    assert sqlite.returncode == 0, sqlite.stderr[-3000:]
    return SimpleNamespace(pages=root / "pages.db", sqlite=database, work=work, sqlite_run=sqlite)


def build_info(database) -> dict[str, str]:
    conn = sqlite3.connect(database)
    try:
        return dict(conn.execute("SELECT key, value FROM _build_info"))
    finally:
        conn.close()


@pytest.mark.slow
def test_the_setting_changes_what_is_built(both_ways):
    assert "Did not run any tasks" not in both_ways.sqlite_run.stderr
    for task in ("EnrichEventsShard", "WriteItemProperties", "BuildCoreDatabase", "PublishDatabase"):
        assert f"TIMING {task}_" in both_ways.sqlite_run.stderr, task
    assert build_info(both_ways.pages)["sqlite_writer"] == "pages"
    assert build_info(both_ways.sqlite)["sqlite_writer"] == "sqlite"
    # with sqlite the shards make no cells: the only ones are the page writer's run's (4 shards)
    assert len(list((both_ways.work / "EnrichEventsShard").glob("events_enriched_cells-*"))) == 4


@pytest.mark.slow
def test_both_writers_publish_the_same_tables_row_for_row(both_ways):
    compared = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_databases.py"), str(both_ways.pages),
                               str(both_ways.sqlite)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert compared.returncode == 0, compared.stdout
    assert "all tables the same" in compared.stdout
    same = {line.split()[1].rstrip(":") for line in compared.stdout.splitlines() if line.startswith("SAME")}
    assert same == set(schema.TABLES)
    conn = sqlite3.connect(both_ways.pages)
    assert conn.execute("SELECT count(*) FROM events_enriched").fetchone()[0] > 0
    assert conn.execute("SELECT count(*) FROM item_properties").fetchone()[0] > 0


@pytest.mark.slow
def test_both_databases_pass_integrity_check_and_have_the_same_schema(both_ways):
    schemas = []
    for database in (both_ways.pages, both_ways.sqlite):
        conn = sqlite3.connect(database)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], database
            schemas.append(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
                           .fetchall())
        finally:
            conn.close()
    assert schemas[0] == schemas[1]


def test_the_default_is_the_page_writer():
    config = configparser.ConfigParser()
    config.read(REPO / "luigi.cfg")
    assert config["retail"]["sqlite_writer"] == "pages"
    from tasks.config import retail

    assert set(retail.sqlite_writer._choices) == {"pages", "sqlite"}
