"""B-trees written straight into SQLite's file format read back, check and write like SQLite's own.

Each test builds a file with ``sqlite_btree.write_pages`` and asks SQLite itself: ``PRAGMA
integrity_check`` (page structure, key order, every index entry matching a table row, free
space accounting), the rows read back against the rows given, queries through each index, and
a row inserted afterwards by SQLite. Small page sizes make trees of several levels and rows too
big for a page (left to SQLite) out of small data. Every file or schema property the writer does
not handle is refused, naming the table and the reason, with the file left as it was.
"""

import os
import sqlite3
from dataclasses import dataclass

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_pipeline import schema, sqlite_btree
from retail_pipeline.schema import TableSchema
from retail_pipeline.sqlite_btree import BTreeFile, NotWritable, max_local_payload, table_cells, write_pages

ITEM_PROPERTIES = schema.TABLES["item_properties"]
EVENTS = TableSchema(
    "ev", (("a", "INTEGER"), ("b", "TEXT"), ("r", "REAL"), ("c", "INTEGER"), ("flag", "INTEGER")),
    primary_key=("a", "c"), indexes=(("b",), ("c", "a"), ("r",), ("flag",)))

integers = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 127, 128, 32767, 32768,
                                                                          1433221332000, 2**47, -(2**47) - 1]))
texts = st.one_of(st.sampled_from(["", "888", "categoryid", "available", "é", "a\x00b"]), st.text(max_size=30),
                  st.integers(0, 3000).map(lambda n: "y" * n))
page_sizes = st.sampled_from([512, 1024, 4096, 16384])


def integrity(conn):
    return conn.execute("PRAGMA integrity_check").fetchall()


def as_parts(table: pa.Table, parts: int) -> list[pa.Table]:
    step = max(1, -(-table.num_rows // parts))
    return [table.slice(start, step) for start in range(0, table.num_rows, step)]


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(st.one_of(st.integers(0, 500), integers), texts, st.one_of(st.none(), texts),
                               st.one_of(st.none(), integers)), max_size=1500),
       page_size=page_sizes, parts=st.integers(1, 5))
def test_without_rowid_table_reads_back_as_sqlite_would_store_it(tmp_path_factory, rows, page_size, parts):
    rows = sorted({(r[0], r[1]): r for r in rows}.values(), key=lambda r: (r[0], r[1].encode()))
    table = pa.table({
        "itemid": pa.array([r[0] for r in rows], pa.int64()),
        "property": pa.array([r[1] for r in rows], pa.string()).dictionary_encode(),
        "value": pa.array([r[2] for r in rows], pa.string()),
        "timestamp_ms": pa.array([r[3] for r in rows], pa.int64()),
    })
    path = tmp_path_factory.mktemp("b") / "t.db"
    assert write_pages(path, ITEM_PROPERTIES, as_parts(table, parts), page_size=page_size) == len(rows)
    conn = sqlite3.connect(path)
    assert integrity(conn) == [("ok",)]
    assert conn.execute("SELECT * FROM item_properties").fetchall() == rows  # in key order
    assert conn.execute("SELECT typeof(property), typeof(value) FROM item_properties LIMIT 1").fetchall() in (
        [], [("text", "text")], [("text", "null")])
    if rows:
        key = rows[len(rows) // 2][:2]
        assert conn.execute("SELECT * FROM item_properties WHERE itemid = ? AND property = ?", key).fetchall() == [
            rows[len(rows) // 2]]
    conn.execute("INSERT INTO item_properties VALUES (-1, 'new', 'x', 1)")
    conn.commit()
    assert integrity(conn) == [("ok",)]


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(st.one_of(st.integers(0, 50), integers), st.one_of(st.none(), texts),
                               st.one_of(st.none(), st.floats(allow_nan=False), st.sampled_from([0.0, 3.0, -1.5])),
                               st.one_of(st.none(), st.integers(-3, 3), integers), st.one_of(st.none(), st.booleans())),
                     max_size=1500),
       page_size=page_sizes, parts=st.integers(1, 5), cells_made_before=st.booleans())
def test_rowid_table_and_its_indexes_read_back_as_sqlite_would_store_them(tmp_path_factory, rows, page_size, parts,
                                                                          cells_made_before):
    rows = list({(r[0], r[3]): r for r in rows}.values())  # unique on the primary key (a, c)
    table = pa.table({
        "a": pa.array([r[0] for r in rows], pa.int64()), "b": pa.array([r[1] for r in rows], pa.string()),
        "r": pa.array([r[2] for r in rows], pa.float64()), "c": pa.array([r[3] for r in rows], pa.int64()),
        "flag": pa.array([r[4] for r in rows], pa.bool_()),
    })
    path = tmp_path_factory.mktemp("b") / "t.db"
    sqlite3.connect(path).execute("CREATE TABLE before (x)").connection.commit()  # not the first table in the file
    given = None
    if cells_made_before:  # each part's cells made on its own, from its first rowid
        starts = [0]
        for part in as_parts(table, parts):
            starts.append(starts[-1] + part.num_rows)
        given = [table_cells(EVENTS, part, first + 1) for part, first in zip(as_parts(table, parts), starts)]
    assert write_pages(path, EVENTS, as_parts(table, parts), page_size=page_size, cells=given) == len(rows)
    conn = sqlite3.connect(path)
    assert integrity(conn) == [("ok",)]
    expected = [(i + 1, r[0], r[1], r[2], r[3], None if r[4] is None else int(r[4])) for i, r in enumerate(rows)]
    assert conn.execute("SELECT rowid, * FROM ev ORDER BY rowid").fetchall() == expected
    by = {"idx_ev_b": "b", "idx_ev_c_a": "c, a", "idx_ev_r": "r", "idx_ev_flag": "flag", "sqlite_autoindex_ev_1": "a, c"}
    for index, columns in by.items():
        through_index = conn.execute(f"SELECT rowid FROM ev INDEXED BY [{index}] WHERE {columns.split(',')[0]} "
                                     f"IS NOT NULL OR 1 ORDER BY {columns}, rowid").fetchall()
        assert through_index == conn.execute(f"SELECT rowid FROM ev NOT INDEXED ORDER BY {columns}, rowid").fetchall()
    conn.execute("INSERT INTO ev (a, b, r, c, flag) VALUES (-5, 'new', 1.5, 123456789, 1)")
    conn.commit()
    assert integrity(conn) == [("ok",)]


def test_rows_too_big_for_a_page_are_inserted_by_sqlite(tmp_path):
    big = "v" * (max_local_payload(1024, table_leaf=False) + 1)
    table = pa.table({"itemid": pa.array(range(100), pa.int64()), "property": pa.array(["p"] * 100),
                      "value": pa.array([big if i % 7 == 0 else str(i) for i in range(100)]),
                      "timestamp_ms": pa.array(range(100), pa.int64())})
    path = tmp_path / "t.db"
    write_pages(path, ITEM_PROPERTIES, [table], page_size=1024)
    conn = sqlite3.connect(path)
    assert integrity(conn) == [("ok",)]
    assert [r[2] for r in conn.execute("SELECT * FROM item_properties")] == table.column("value").to_pylist()


def test_text_bytes_are_kept_even_when_not_utf8(tmp_path):
    odd = pa.array([b"caf\xe9", b"ok", b"\xff" * 5000], pa.binary())  # the last too big for a 1024-byte page
    table = pa.table({"itemid": pa.array([1, 2, 3], pa.int64()), "property": pa.array(["p", "p", "p"]),
                      "value": odd, "timestamp_ms": pa.array([1, 2, 3], pa.int64())})
    path = tmp_path / "t.db"
    write_pages(path, ITEM_PROPERTIES, [table], page_size=1024)
    conn = sqlite3.connect(path)
    conn.text_factory = bytes
    assert [r[0] for r in conn.execute("SELECT value FROM item_properties")] == odd.to_pylist()
    assert conn.execute("SELECT DISTINCT typeof(value) FROM item_properties").fetchall() == [(b"text",)]


def test_reals_read_back_as_sqlite_stores_them(tmp_path):
    """-0.0 comes back as 0.0 and NaN as NULL, as when SQLite inserts them."""
    reals = [-0.0, float("nan"), 1.5, None]
    table = pa.table({"a": pa.array(range(4), pa.int64()), "b": pa.array(["x"] * 4), "r": pa.array(reals),
                      "c": pa.array(range(4), pa.int64()), "flag": pa.array([True] * 4)})
    write_pages(tmp_path / "ours.db", EVENTS, [table])
    theirs = sqlite3.connect(tmp_path / "theirs.db")
    theirs.execute("CREATE TABLE ev (a INTEGER, b TEXT, r REAL, c INTEGER, flag INTEGER)")
    theirs.executemany("INSERT INTO ev VALUES (?, 'x', ?, 0, 1)", [(i, r) for i, r in enumerate(reals)])
    query = "SELECT a, r, typeof(r) FROM ev ORDER BY a"
    ours = sqlite3.connect(tmp_path / "ours.db").execute(query).fetchall()
    assert repr(ours) == repr(theirs.execute(query).fetchall())


@pytest.mark.parametrize("itemids, properties", [([1, 1], ["b", "a"]), ([2, 1], ["a", "a"]), ([1, 1], ["a", "a"])])
def test_rows_out_of_key_order_are_refused(tmp_path, itemids, properties):
    table = pa.table({"itemid": pa.array(itemids, pa.int64()), "property": pa.array(properties),
                      "value": pa.array(["x", "y"]), "timestamp_ms": pa.array([1, 2], pa.int64())})
    with pytest.raises(ValueError, match="key order"):
        write_pages(tmp_path / "t.db", ITEM_PROPERTIES, [table])


def test_without_rowid_tables_it_cannot_write_are_refused_before_anything_is_written(tmp_path):
    keyed_late = TableSchema("t", (("v", "TEXT"), ("k", "INTEGER")), primary_key=("k",), without_rowid=True)
    with pytest.raises(ValueError, match="WITHOUT ROWID"):
        write_pages(tmp_path / "t.db", keyed_late, [])
    assert not (tmp_path / "t.db").exists()


def test_a_without_rowid_tables_other_indexes_are_built_by_sqlite_after_its_tree(tmp_path):
    indexed = TableSchema("t", (("k", "INTEGER"), ("v", "TEXT")), primary_key=("k",), without_rowid=True,
                          indexes=(("v",),))
    rows = pa.table({"k": pa.array(range(5000), pa.int64()), "v": pa.array([f"v{i % 7}" for i in range(5000)])})
    assert write_pages(tmp_path / "t.db", indexed, [rows.slice(0, 1234), rows.slice(1234)]) == 5000
    conn = sqlite3.connect(tmp_path / "t.db")
    assert integrity(conn) == [("ok",)]
    plan = " ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN SELECT k FROM t WHERE v = 'v3'"))
    assert "idx_t_v" in plan
    assert [r[0] for r in conn.execute("SELECT k FROM t WHERE v = 'v3' ORDER BY k")] == list(range(3, 5000, 7))


def test_key_order_is_checked_across_parts(tmp_path):
    def part(itemid):
        return pa.table({"itemid": pa.array([itemid], pa.int64()), "property": pa.array(["a"]),
                         "value": pa.array(["x"]), "timestamp_ms": pa.array([1], pa.int64())})
    with pytest.raises(ValueError, match="key order"):
        write_pages(tmp_path / "t.db", ITEM_PROPERTIES, [part(2), part(1)])


def test_duplicate_keys_of_a_unique_index_are_refused(tmp_path):
    table = pa.table({"a": pa.array([1, 1], pa.int64()), "b": pa.array(["x", "y"]), "r": pa.array([1.0, 2.0]),
                      "c": pa.array([5, 5], pa.int64()), "flag": pa.array([True, False])})
    with pytest.raises(ValueError, match="key order"):
        write_pages(tmp_path / "t.db", EVENTS, [table])


def test_empty_tables_are_left_as_sqlite_made_them(tmp_path):
    path = tmp_path / "t.db"
    assert write_pages(path, ITEM_PROPERTIES, [ITEM_PROPERTIES_EMPTY]) == 0
    assert write_pages(path, EVENTS, []) == 0
    conn = sqlite3.connect(path)
    assert integrity(conn) == [("ok",)]
    assert conn.execute("SELECT count(*) FROM item_properties").fetchone() == (0,)


ITEM_PROPERTIES_EMPTY = pa.table({"itemid": pa.array([], pa.int64()), "property": pa.array([], pa.string()),
                                  "value": pa.array([], pa.string()), "timestamp_ms": pa.array([], pa.int64())})


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "t.db"
    path.write_bytes(b"not a database" * 10)
    with pytest.raises(ValueError, match="not an SQLite database"):
        BTreeFile(path)


def test_trees_of_several_levels(tmp_path):
    """Enough rows on small pages for interior levels above interior levels, in both kinds of tree."""
    n = 30_000
    items = pa.table({"itemid": pa.array(range(n), pa.int64()), "property": pa.array(["p"] * n),
                      "value": pa.array([str(i * 7919 % 1000) for i in range(n)]),
                      "timestamp_ms": pa.array(range(n), pa.int64())})
    events = pa.table({"a": pa.array([i * 7919 % n for i in range(n)], pa.int64()), "b": pa.array([str(i % 97) for i in range(n)]),
                       "r": pa.array([i / 3 for i in range(n)]), "c": pa.array(range(n), pa.int64()),
                       "flag": pa.array([i % 2 == 0 for i in range(n)])})
    path = tmp_path / "t.db"
    write_pages(path, ITEM_PROPERTIES, as_parts(items, 3), page_size=512)
    write_pages(path, EVENTS, as_parts(events, 3), page_size=512)
    conn = sqlite3.connect(path)
    assert integrity(conn) == [("ok",)]
    assert conn.execute("SELECT count(*) FROM item_properties WHERE value = '7'").fetchone()[0] == 30
    assert conn.execute("SELECT sum(c) FROM ev WHERE b = '5'").fetchone()[0] == sum(i for i in range(n) if i % 97 == 5)
    for tree in ("item_properties", "ev", "idx_ev_b", "idx_ev_c_a", "sqlite_autoindex_ev_1"):
        levels = conn.execute("SELECT max(length(path) - length(replace(path, '/', ''))) FROM dbstat WHERE name = ?",
                              (tree,)).fetchone()[0]
        assert levels >= 3, tree


def test_cells_of_other_rows_are_refused(tmp_path):
    table = pa.table({"a": pa.array([1, 2], pa.int64()), "b": pa.array(["x", "y"]), "r": pa.array([1.0, 2.0]),
                      "c": pa.array([5, 6], pa.int64()), "flag": pa.array([True, False])})
    with pytest.raises(ValueError, match="cells given"):
        write_pages(tmp_path / "t.db", EVENTS, [table], cells=[table_cells(EVENTS, table, 2)])


def test_the_page_sqlite_locks_is_left_unused(tmp_path):
    """The page holding the file's byte at 1 GiB is never used by SQLite (its lock byte): a tree
    written across it must skip it."""
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=65536")
    conn.execute("CREATE TABLE filler (x)")
    conn.executemany("INSERT INTO filler VALUES (zeroblob(?))", [((1 << 29) - (1 << 21),)] * 2)  # ends ~4 MiB before it
    conn.commit()
    conn.close()
    n = 200_000  # ~8 MiB of rows: across the lock-byte page
    items = pa.table({"itemid": pa.array(range(n), pa.int64()), "property": pa.array(["p"] * n),
                      "value": pa.array(["v" * 30] * n), "timestamp_ms": pa.array(range(n), pa.int64())})
    write_pages(path, ITEM_PROPERTIES, [items])
    assert path.stat().st_size > (1 << 30) + (1 << 22)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*), sum(itemid) FROM item_properties").fetchone() == (n, n * (n - 1) // 2)
    finally:
        conn.close()
        path.unlink()  # a gigabyte: not left in pytest's kept temporary directories


def test_cells_given_in_many_parts_pack_as_one(tmp_path):
    """However the rows come (parts of one row, parts smaller than a page, parts of many pages),
    the trees hold the same as from one part."""
    n = 3000
    items = pa.table({"itemid": pa.array(range(n), pa.int64()), "property": pa.array(["p"] * n),
                      "value": pa.array([str(i) * (i % 5) for i in range(n)]), "timestamp_ms": pa.array(range(n), pa.int64())})
    events = pa.table({"a": pa.array(range(n), pa.int64()), "b": pa.array([str(i % 7) for i in range(n)]),
                       "r": pa.array([i / 7 for i in range(n)]), "c": pa.array(range(n), pa.int64()),
                       "flag": pa.array([i % 3 == 0 for i in range(n)])})
    sizes = [1, 2, 5, 40, 1, 300, 7, 1000]
    def parts(table):
        out, start = [], 0
        for size in sizes * 10:
            if start < n:
                out.append(table.slice(start, size))
                start += size
        return out + ([table.slice(start)] if start < n else [])
    given = []
    start = 0
    for part in parts(events):
        given.append(table_cells(EVENTS, part, start + 1))
        start += part.num_rows
    write_pages(tmp_path / "many.db", ITEM_PROPERTIES, parts(items), page_size=512)
    write_pages(tmp_path / "many.db", EVENTS, parts(events), page_size=512, cells=given)
    write_pages(tmp_path / "one.db", ITEM_PROPERTIES, [items], page_size=512)
    write_pages(tmp_path / "one.db", EVENTS, [events], page_size=512)
    many, one = sqlite3.connect(tmp_path / "many.db"), sqlite3.connect(tmp_path / "one.db")
    assert integrity(many) == [("ok",)]
    for query in ("SELECT * FROM item_properties", "SELECT rowid, * FROM ev ORDER BY rowid",
                  "SELECT rowid FROM ev INDEXED BY idx_ev_b ORDER BY b, rowid"):
        assert many.execute(query).fetchall() == one.execute(query).fetchall()


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(st.integers(-(2**63), 2**63 - 1), unique=True, max_size=3000),
       page_size=page_sizes, big=st.sets(st.integers(0, 50), max_size=3))
def test_a_rowid_alias_key_is_the_rowid_and_stored_as_null_as_sqlite_does(tmp_path_factory, keys, page_size, big):
    """A single-column INTEGER PRIMARY KEY is the rowid: the writer uses the key's values as the
    rowids (and in the index entries) and stores NULL in the record, exactly as SQLite would;
    rows too big for a page still go in through SQLite."""
    schema_ = TableSchema("t", (("k", "INTEGER"), ("v", "TEXT"), ("n", "INTEGER")), primary_key=("k",),
                          indexes=(("v",), ("n",)))
    assert schema_.rowid_alias == "k"
    keys = sorted(keys)
    values = ["w" * 5000 if i in big else f"v{i % 5}" for i in range(len(keys))]
    table = pa.table({"k": pa.array(keys, pa.int64()), "v": pa.array(values),
                      "n": pa.array([i % 3 for i in range(len(keys))], pa.int64())})
    folder = tmp_path_factory.mktemp("alias")
    assert write_pages(folder / "w.db", schema_, [table], page_size=page_size) == len(keys)
    reference = sqlite3.connect(folder / "r.db")
    reference.execute(f"PRAGMA page_size={page_size}")
    reference.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT, n INTEGER)")
    reference.executemany("INSERT INTO t VALUES (?, ?, ?)", zip(keys, values, table.column("n").to_pylist()))
    conn = sqlite3.connect(folder / "w.db")
    assert integrity(conn) == [("ok",)]
    for sql in ("SELECT rowid, k, v, n FROM t ORDER BY rowid", "SELECT k FROM t INDEXED BY idx_t_v WHERE v = 'v3'",
                "SELECT k, n FROM t INDEXED BY idx_t_n WHERE n = 1"):
        assert conn.execute(sql).fetchall() == reference.execute(sql.replace("INDEXED BY idx_t_v ", "")
                                                                    .replace("INDEXED BY idx_t_n ", "")).fetchall()


def test_a_rowid_alias_key_out_of_order_is_refused(tmp_path):
    schema_ = TableSchema("t", (("k", "INTEGER"), ("v", "TEXT")), primary_key=("k",))
    with pytest.raises(ValueError, match="t.k"):
        write_pages(tmp_path / "t.db", schema_, [pa.table({"k": pa.array([2, 1], pa.int64()), "v": pa.array(["a", "b"])})])


# --- what the writer does not handle: refused, naming the table and the reason, before anything is written ---

@dataclass(frozen=True)
class RawSchema(TableSchema):
    """A table made by the given SQL: the writer judges what SQLite made, whatever made it."""
    sql: tuple[str, ...] = ()

    def create(self, db, *, indexes=True):
        for statement in self.sql:
            db.execute(statement)


KV = pa.table({"k": pa.array([1, 2, 3], pa.int64()), "v": pa.array(["a", "b", "c"])})


def kv_schema(*sql, without_rowid=False, primary_key=()):
    return RawSchema("kv", (("k", "INTEGER"), ("v", "TEXT")), primary_key=primary_key, without_rowid=without_rowid,
                     sql=sql)


def assert_refused(path, schema, match, rows=KV, **options):
    """write_pages refuses with NotWritable naming the table, and the file is as it was (or absent)."""
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(NotWritable, match=match) as refusal:
        write_pages(path, schema, [rows], **options)
    assert str(refusal.value).startswith(f"{schema.name}: ") and "sqlite_writer = sqlite" in str(refusal.value)
    assert (path.read_bytes() if path.exists() else None) == before
    assert not os.path.exists(f"{path}-journal")


def sqlite_file(path, *statements, page_size=4096):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={page_size}")
    for statement in statements:
        conn.execute(statement)
    conn.close()
    return path


@pytest.mark.parametrize("pragma, match", [
    ("PRAGMA auto_vacuum=FULL", "auto-vacuum"), ("PRAGMA auto_vacuum=INCREMENTAL", "auto-vacuum"),
    ("PRAGMA encoding='UTF-16le'", "UTF-16le"), ("PRAGMA encoding='UTF-16be'", "UTF-16be"),
    ("PRAGMA journal_mode=WAL", "WAL mode"),
])
def test_files_it_cannot_write_into_are_refused(tmp_path, pragma, match):
    path = sqlite_file(tmp_path / "t.db", pragma, "CREATE TABLE other (x)", "INSERT INTO other VALUES (1)")
    assert_refused(path, ITEM_PROPERTIES, match, rows=ITEM_PROPERTIES_EMPTY)
    assert_refused(path, EVENTS, match, rows=pa.table({"a": [1], "b": ["x"], "r": [1.0], "c": [1], "flag": [True]}))


def test_a_file_with_free_pages_is_refused(tmp_path):
    path = sqlite_file(tmp_path / "t.db", "CREATE TABLE other (x)", "INSERT INTO other SELECT zeroblob(3000) "
                       "FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 50) SELECT i FROM n)",
                       "DELETE FROM other")
    assert sqlite3.connect(path).execute("PRAGMA freelist_count").fetchone()[0] > 0
    assert_refused(path, kv_schema("CREATE TABLE kv (k INTEGER, v TEXT)"), "free pages")


@pytest.mark.parametrize("offset, value, match", [
    (20, b"\x08", "8 reserved bytes"),  # what a checksum or encryption extension keeps at the end of each page
    (16, b"\x03\xe8", "page size 1000"),
    (21, b"\x40\x20\x10", "payload fractions"),
    (44, b"\x00\x00\x00\x01", "schema format 1"),
    (92, b"\x00\x00\x00\x63", "page count is not valid"),
    (28, b"\x00\x00\x00\x09", "says 9 pages"),
    (18, b"\x03\x03", "file format versions 3/3"),
    (56, b"\x00\x00\x00\x07", "text encoding 7"),
])
def test_header_properties_it_does_not_handle_are_refused(tmp_path, offset, value, match):
    path = sqlite_file(tmp_path / "t.db", "CREATE TABLE other (x)")
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(value)
    assert_refused(path, ITEM_PROPERTIES, match, rows=ITEM_PROPERTIES_EMPTY)


def test_a_hot_journal_is_refused(tmp_path):
    path = sqlite_file(tmp_path / "t.db", "CREATE TABLE other (x)")
    (tmp_path / "t.db-journal").write_bytes(bytes.fromhex("d9d505f920a163d7") + bytes(504))
    before = path.read_bytes()
    with pytest.raises(NotWritable, match="hot journal"):
        write_pages(path, ITEM_PROPERTIES, [ITEM_PROPERTIES_EMPTY])
    assert path.read_bytes() == before


def test_a_new_file_with_a_page_size_sqlite_does_not_have_is_refused(tmp_path):
    assert_refused(tmp_path / "t.db", ITEM_PROPERTIES, "page size 1000", rows=ITEM_PROPERTIES_EMPTY, page_size=1000)


def test_column_types_other_than_integer_real_and_text_are_refused(tmp_path):
    for kind in ("BLOB", "NUMERIC", "", "INT", "VARCHAR(10)"):
        assert_refused(tmp_path / "t.db", TableSchema("odd", (("k", "INTEGER"), ("x", kind))), "column types other than")
        declared = RawSchema("odd", (("k", "INTEGER"), ("x", "TEXT")), sql=(f"CREATE TABLE odd (k INTEGER, x {kind})",))
        assert_refused(tmp_path / "t.db", declared, "column types other than",
                       rows=pa.table({"k": [1], "x": ["y"]}))


@pytest.mark.parametrize("sql, match", [
    (("CREATE TABLE kv (k INTEGER, v TEXT, w TEXT AS (v || 'x'))",), "generated"),
    (("CREATE TABLE kv (k INTEGER, v TEXT, w TEXT AS (v || 'x') STORED)",), "generated"),
    (("CREATE TABLE kv (k INTEGER, v TEXT) STRICT",), "STRICT"),
    (("CREATE TABLE kv (k INTEGER CHECK (k > 0), v TEXT)",), "CHECK constraint"),
    (("CREATE TABLE kv (k INTEGER, v TEXT, CHECK(length(v) < 9))",), "CHECK constraint"),
    (("CREATE TABLE kv (k INTEGER, v TEXT)", "CREATE INDEX kv_v ON kv (v DESC)"), "index kv_v orders v DESC"),
    (("CREATE TABLE kv (k INTEGER, v TEXT)", "CREATE INDEX kv_v ON kv (v COLLATE NOCASE)"), "NOCASE collation"),
    (("CREATE TABLE kv (k INTEGER, v TEXT COLLATE RTRIM)", "CREATE INDEX kv_v ON kv (v)"), "RTRIM collation"),
    (("CREATE TABLE kv (k INTEGER, v TEXT)", "CREATE INDEX kv_v ON kv (v) WHERE k > 1"), "partial"),
    (("CREATE TABLE kv (k INTEGER, v TEXT)", "CREATE INDEX kv_v ON kv (lower(v))"), "expression"),
    (("CREATE TABLE kv (k INTEGER, v TEXT)", "CREATE INDEX kv_v ON kv (k, v || 'x')"), "expression"),
    (("CREATE TABLE kv (k INTEGER, v TEXT UNIQUE COLLATE NOCASE)",), "NOCASE collation"),
    (("CREATE TABLE kv (k INTEGER, v TEXT, w TEXT)",), "SQLite's table has the columns"),
])
def test_schemas_it_does_not_handle_are_refused(tmp_path, sql, match):
    assert_refused(tmp_path / "new.db", kv_schema(*sql), match)
    existing = sqlite_file(tmp_path / "existing.db", "CREATE TABLE other (x)")
    assert_refused(existing, kv_schema(*sql), match)


def test_a_descending_index_made_through_sqlite_utils_is_refused(tmp_path):
    from sqlite_utils.db import DescIndex
    schema_ = TableSchema("kv", (("k", "INTEGER"), ("v", "TEXT")), indexes=((DescIndex("v"),),))
    assert_refused(tmp_path / "t.db", schema_, "orders v DESC")


def test_a_key_that_is_not_what_the_schema_says_is_refused(tmp_path):
    # INTEGER PRIMARY KEY DESC is not the rowid (a quirk SQLite keeps): a unique DESC index instead
    assert_refused(tmp_path / "t.db", kv_schema("CREATE TABLE kv (k INTEGER PRIMARY KEY DESC, v TEXT)",
                                                primary_key=("k",)), "not the rowid|DESC")
    assert_refused(tmp_path / "t.db", kv_schema("CREATE TABLE kv (k INTEGER, v TEXT, PRIMARY KEY (k DESC)) WITHOUT ROWID",
                                                primary_key=("k",), without_rowid=True), "primary key orders k DESC")
    assert_refused(tmp_path / "t.db", kv_schema("CREATE TABLE kv (k INTEGER, v TEXT COLLATE NOCASE, PRIMARY KEY (k, v)) "
                                                "WITHOUT ROWID", primary_key=("k", "v"), without_rowid=True),
                   "NOCASE collation")
    assert_refused(tmp_path / "t.db", kv_schema("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)"), "primary key")
    assert_refused(tmp_path / "t.db", kv_schema("CREATE TABLE kv (k INTEGER, v TEXT, PRIMARY KEY (k, v))",
                                                primary_key=("k", "v"), without_rowid=True), "a rowid table")


def test_an_older_sqlite_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    assert_refused(tmp_path / "t.db", ITEM_PROPERTIES, "older than 3.37", rows=ITEM_PROPERTIES_EMPTY)


def test_a_new_file_sqlite_makes_in_a_form_it_does_not_handle_is_removed(tmp_path, monkeypatch):
    """A build of SQLite with other defaults (reserved bytes, say) is found out once the file is
    made: the refusal then removes the new file."""
    monkeypatch.setattr(sqlite_btree, "header_problems", lambda header, size=None: ["a simulated odd build"])
    assert_refused(tmp_path / "t.db", ITEM_PROPERTIES, "a simulated odd build", rows=ITEM_PROPERTIES_EMPTY)


def test_new_files_have_no_auto_vacuum_and_utf8_whatever_the_build_defaults(tmp_path):
    write_pages(tmp_path / "t.db", ITEM_PROPERTIES, [ITEM_PROPERTIES_EMPTY])
    conn = sqlite3.connect(tmp_path / "t.db")
    assert conn.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    assert conn.execute("PRAGMA encoding").fetchone() == ("UTF-8",)


def test_null_in_a_not_null_column_is_refused(tmp_path):
    events = schema.TABLES["events_enriched"]
    rows = pa.table({c: pa.array([1, None] if c == "itemid" else ["1", "2"] if t == "TEXT" else [1, 2],
                                 pa.float64() if t == "REAL" else pa.int64() if t == "INTEGER" else pa.string())
                     for c, t in events.columns})
    with pytest.raises(ValueError, match=r"events_enriched.itemid: NULL in a NOT NULL column \(row 2\)"):
        write_pages(tmp_path / "t.db", events, [rows])
    nan = RawSchema("kv", (("k", "INTEGER"), ("r", "REAL")), sql=("CREATE TABLE kv (k INTEGER, r REAL NOT NULL)",))
    with pytest.raises(ValueError, match="kv.r: NULL"):  # SQLite stores a NaN as NULL
        write_pages(tmp_path / "u.db", nan, [pa.table({"k": [1, 2], "r": [1.0, float("nan")]})])
    keyed = pa.table({"itemid": pa.array([1, None], pa.int64()), "property": ["a", "b"], "value": ["x", "y"],
                      "timestamp_ms": pa.array([1, 2], pa.int64())})
    with pytest.raises(ValueError, match="item_properties.itemid: NULL"):  # a WITHOUT ROWID table's key is NOT NULL
        write_pages(tmp_path / "v.db", ITEM_PROPERTIES, [keyed])


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 4)), st.one_of(st.none(), st.sampled_from("abc")),
                               st.integers(-5, 5)), max_size=400),
       page_size=st.sampled_from([512, 4096]))
def test_nulls_in_a_unique_index_are_accepted_where_sqlite_puts_them(tmp_path_factory, rows, page_size):
    """SQLite takes NULLs as distinct in a UNIQUE index (and a rowid table's PRIMARY KEY): rows
    whose key has a NULL never clash, and sit among equal keys in rowid order."""
    seen, kept = set(), []
    for row in rows:
        if None in row[:2] or row[:2] not in seen:
            seen.add(row[:2])
            kept.append(row)
    ddl = ("CREATE TABLE u (a INTEGER, b TEXT, n INTEGER, PRIMARY KEY (b, a))",
           "CREATE UNIQUE INDEX u_a_b ON u (a, b)", "CREATE INDEX u_n ON u (n)")
    unique = RawSchema("u", (("a", "INTEGER"), ("b", "TEXT"), ("n", "INTEGER")), primary_key=("b", "a"), sql=ddl)
    table = pa.table({"a": pa.array([r[0] for r in kept], pa.int64()), "b": pa.array([r[1] for r in kept], pa.string()),
                      "n": pa.array([r[2] for r in kept], pa.int64())})
    folder = tmp_path_factory.mktemp("u")
    assert write_pages(folder / "w.db", unique, [table], page_size=page_size) == len(kept)
    reference = sqlite3.connect(folder / "r.db")
    for statement in ddl:
        reference.execute(statement)
    reference.executemany("INSERT INTO u VALUES (?, ?, ?)", kept)
    conn = sqlite3.connect(folder / "w.db")
    assert integrity(conn) == [("ok",)]  # every index entry in SQLite's order, NULLs and rowid ties included
    for index, columns in (("u_a_b", "a, b"), ("sqlite_autoindex_u_1", "b, a")):
        sql = f"SELECT rowid, a, b FROM u INDEXED BY {index} ORDER BY {columns}, rowid"
        assert conn.execute(sql).fetchall() == reference.execute(sql).fetchall()
    assert conn.execute("SELECT count(*) FROM u WHERE a IS NULL OR b IS NULL").fetchone() == (
        sum(None in r[:2] for r in kept),)
