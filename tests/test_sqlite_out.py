"""Writing and publishing SQLite: values survive exactly, the target is replaced atomically."""

import os
import sqlite3

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_pipeline.schema import TABLES, TableSchema
from retail_pipeline.sqlite_btree import PAGE_SIZE, NotWritable, table_cells
from retail_pipeline.sqlite_out import build_core, publish_database, read_build_info, write_big_table, write_sqlite_part

SCHEMA = TableSchema("t", (("i", "INTEGER"), ("s", "TEXT"), ("r", "REAL"), ("d", "TEXT")))

values = st.tuples(
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, 1, 1])),
    st.one_of(st.none(), st.text(max_size=5), st.sampled_from(["888", "888", ""])),
    st.one_of(st.none(), st.floats(allow_nan=False)),
    st.one_of(st.none(), st.sampled_from(["view", "addtocart"])),
)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(values, max_size=600))
def test_written_rows_read_back_identical(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("w") / "t.db"
    table = pa.table({
        "i": pa.array([r[0] for r in rows], pa.int64()),
        "s": pa.array([r[1] for r in rows], pa.string()),
        "r": pa.array([r[2] for r in rows], pa.float64()),
        "d": pa.array([r[3] for r in rows], pa.string()).dictionary_encode(),
    })
    assert write_sqlite_part(path, SCHEMA, table) == len(rows)
    back = sqlite3.connect(path).execute("SELECT i, s, r, d FROM t ORDER BY rowid").fetchall()
    assert back == [tuple(r) for r in rows]


def tiny_parts(folder):
    parts = {}
    for name, schema in TABLES.items():
        table = pa.table({column: pa.array([], pa.string() if t == "TEXT" else pa.int64() if t == "INTEGER"
                                           else pa.float64()) for column, t in schema.columns})
        parts[name] = folder / f"{name}.sqlite"
        write_sqlite_part(parts[name], schema, table)
    return parts


def core_and_parts(folder):
    """A core file holding the big tables (as the pipeline's is) and one part per small table."""
    parts = tiny_parts(folder)
    core = folder / "core.sqlite"
    write_sqlite_part(core, TABLES["sessions"], pa.table({c: pa.array([], pa.int64()) for c, _ in TABLES["sessions"].columns}))
    for name in ("item_properties", "events_enriched"):
        conn = sqlite3.connect(core)
        conn.execute(f"ATTACH ? AS part", (str(parts.pop(name)),))
        conn.execute(f"CREATE TABLE [{name}] AS SELECT * FROM part.[{name}]")
        conn.commit()
        conn.close()
    del parts["sessions"]
    return core, {k: [v] for k, v in parts.items()}


def test_publish_replaces_the_database_whole(tmp_path):
    database = tmp_path / "retail.db"
    database.write_bytes(b"previous database")
    core, parts = core_and_parts(tmp_path)
    publish_database(core, parts, database, {"fingerprint": "abc"})
    assert core.exists()  # copied, not taken
    assert read_build_info(database) == {"fingerprint": "abc"}
    conn = sqlite3.connect(database)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")} >= {
        *TABLES, "events"}
    assert [p for p in os.listdir(tmp_path) if "building" in p] == []


def test_failed_publish_leaves_the_previous_database(tmp_path):
    database = tmp_path / "retail.db"
    database.write_bytes(b"previous database")
    core, parts = core_and_parts(tmp_path)
    parts["overview"][0].write_bytes(b"not a database")
    with pytest.raises(sqlite3.DatabaseError):
        publish_database(core, parts, database, {"fingerprint": "abc"}, take_base=True)
    assert database.read_bytes() == b"previous database"
    assert [p for p in os.listdir(tmp_path) if "building" in p] == []


def test_publish_stops_when_a_table_has_no_rows_anywhere(tmp_path):
    database = tmp_path / "retail.db"
    core, parts = core_and_parts(tmp_path)
    del parts["overview"]
    with pytest.raises(ValueError, match="overview"):
        publish_database(core, parts, database, {"fingerprint": "abc"})
    assert not database.exists()


def test_a_taken_core_is_moved_into_the_database(tmp_path):
    database = tmp_path / "retail.db"
    core, parts = core_and_parts(tmp_path)
    inode = core.stat().st_ino
    publish_database(core, parts, database, {"fingerprint": "abc"}, take_base=True)
    assert not core.exists() and database.stat().st_ino == inode


def test_build_core_takes_the_base_over_and_writes_the_tables_in(tmp_path):
    parts = tiny_parts(tmp_path)
    base = parts["item_properties"]
    os.utime(base, (0, 0))
    inode = base.stat().st_ino
    rows = pa.table({c: pa.array(["1", "2"] if t == "TEXT" else [1, 2], pa.float64() if t == "REAL"
                                 else pa.int64() if t == "INTEGER" else pa.string())
                     for c, t in TABLES["events_enriched"].columns})
    cells = [table_cells(TABLES["events_enriched"], rows, 1), table_cells(TABLES["events_enriched"], rows, 3)]
    core = tmp_path / "core.sqlite"
    build_core(base, [(TABLES["events_enriched"], [rows, rows], cells)], core, take_base=True)
    assert not base.exists() and core.stat().st_ino == inode
    assert core.stat().st_mtime > 0  # marked in use: no clean-up takes it for a stale temporary
    conn = sqlite3.connect(core)
    assert conn.execute("SELECT count(*) FROM events_enriched").fetchone() == (4,)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {f"idx_events_enriched_{'_'.join(cols)}" for cols in TABLES["events_enriched"].indexes} <= indexes


def test_build_core_copies_the_base_unless_told_to_take_it(tmp_path):
    base = tiny_parts(tmp_path)["item_properties"]
    build_core(base, [], tmp_path / "core.sqlite")
    assert base.exists() and (tmp_path / "core.sqlite").exists()


def events_rows(n, start=0):
    return pa.table({c: pa.array([str(start + i % 7) for i in range(n)] if t == "TEXT" else
                                 [start + i for i in range(n)], pa.float64() if t == "REAL"
                                 else pa.int64() if t == "INTEGER" else pa.string())
                     for c, t in TABLES["events_enriched"].columns})


def test_build_core_through_sqlite_writes_the_same_tables_and_indexes(tmp_path):
    """``writer="sqlite"`` ([retail] sqlite_writer = sqlite): no page written by the pipeline,
    the same rows (rowids included), the same indexes."""
    visitors = pa.table({c: pa.array([f"v{i}" for i in range(50)] if t == "TEXT" else [i * 3 for i in range(50)],
                                     pa.string() if t == "TEXT" else pa.int64()) for c, t in TABLES["visitors"].columns})
    parts = [events_rows(300), events_rows(200, 300)]
    cells = [table_cells(TABLES["events_enriched"], parts[0], 1), table_cells(TABLES["events_enriched"], parts[1], 301)]
    cores = {}
    for writer in ("pages", "sqlite"):
        (tmp_path / writer).mkdir()
        base = tiny_parts(tmp_path / writer)["item_properties"]
        cores[writer] = tmp_path / writer / "core.sqlite"
        build_core(base, [(TABLES["visitors"], [visitors], None),
                          (TABLES["events_enriched"], parts, cells if writer == "pages" else None)],
                   cores[writer], writer=writer)
    pages, sqlite = (sqlite3.connect(cores[w]) for w in ("pages", "sqlite"))
    for conn in (pages, sqlite):
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    schema_sql = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
    assert pages.execute(schema_sql).fetchall() == sqlite.execute(schema_sql).fetchall()
    for query in ("SELECT rowid, * FROM events_enriched ORDER BY rowid", "SELECT rowid, * FROM visitors ORDER BY rowid"):
        assert pages.execute(query).fetchall() == sqlite.execute(query).fetchall()


def test_an_unknown_writer_is_refused(tmp_path):
    base = tiny_parts(tmp_path)["item_properties"]
    with pytest.raises(ValueError, match="unknown SQLite writer 'bytes'"):
        build_core(base, [], tmp_path / "core.sqlite", writer="bytes")
    with pytest.raises(ValueError, match="unknown SQLite writer"):
        write_big_table(tmp_path / "x.sqlite", SCHEMA, [], writer="bytes")


def test_what_the_page_writer_refuses_sqlite_writes(tmp_path):
    """The way out: a table the page writer does not handle goes in through SQLite itself."""
    blobs = TableSchema("b", (("k", "INTEGER"), ("x", "BLOB")), indexes=(("x",),))
    rows = pa.table({"k": pa.array([1, 2], pa.int64()), "x": pa.array([b"\x00\xff", b"a"], pa.binary())})
    with pytest.raises(NotWritable, match="b: .*BLOB"):
        write_big_table(tmp_path / "pages.db", blobs, [rows], writer="pages")
    assert not (tmp_path / "pages.db").exists()
    assert write_big_table(tmp_path / "sqlite.db", blobs, [rows], writer="sqlite") == 2
    conn = sqlite3.connect(tmp_path / "sqlite.db")
    assert conn.execute("SELECT k, x, typeof(x) FROM b ORDER BY k").fetchall() == [(1, b"\x00\xff", "blob"), (2, b"a", "blob")]
    assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall() == [("idx_b_x",)]
    assert conn.execute("PRAGMA page_size").fetchone() == (PAGE_SIZE,)
