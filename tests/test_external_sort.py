"""Index entries put in order run by run, spilled and merged (retail_pipeline.external_sort):
the packed keys order entries as SQLite orders an index, and merging sorted runs gives the
order of sorting everything at once; the page writer built on it gives what SQLite builds."""

from __future__ import annotations

import random
import sqlite3

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_pipeline.external_sort import ColumnFacts, key_order, key_plan, merge_runs, pack_keys, write_run
from retail_pipeline.schema import TableSchema
from retail_pipeline.sqlite_btree import _plain, write_pages

texts = st.one_of(st.none(), st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
                  st.sampled_from(["", "a", "a\x01", "ab", "abcdefgh", "abcdefghi", "\u00e9"]))
integers = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.integers(-3, 3))
reals = st.one_of(st.none(), st.floats(allow_nan=False), st.sampled_from([0.0, -0.0, 1.5, -1.5]))
COLUMNS = {"INTEGER": (integers, pa.int64()), "REAL": (reals, pa.float64()), "TEXT": (texts, pa.string())}


@st.composite
def keyed_rows(draw):
    declared = draw(st.lists(st.sampled_from(sorted(COLUMNS)), min_size=1, max_size=3))
    rows = draw(st.lists(st.tuples(*(COLUMNS[d][0] for d in declared)), max_size=300))
    return declared, rows


def packed(declared, columns, rowids, runs):
    facts = [ColumnFacts(d) for d in declared]
    for run in runs:
        for fact, column in zip(facts, columns):
            fact.add(column.slice(run[0], run[1] - run[0]))
    plan = key_plan(facts, (int(rowids.min()), int(rowids.max())) if len(rowids) else (1, 1))
    return plan, pack_keys(plan, columns, rowids)


@settings(max_examples=300, deadline=None)
@given(data=keyed_rows())
def test_packed_keys_sort_entries_as_sqlite_orders_the_index(tmp_path_factory, data):
    """Sorting by the packed words gives SQLite's order of an index on the columns (NULL first,
    numbers by value, text by bytes, shorter first), ties by rowid."""
    declared, rows = data
    columns = [_plain(pa.array([r[k] for r in rows], COLUMNS[d][1]), d) for k, d in enumerate(declared)]
    rowids = np.arange(1, len(rows) + 1, dtype=np.int64)
    _, words = packed(declared, columns, rowids, [(0, len(rows))])
    ours = (key_order(words) + 1).tolist() if rows else []
    conn = sqlite3.connect(":memory:")
    names = [f"c{k}" for k in range(len(declared))]
    conn.execute(f"CREATE TABLE t ({', '.join(f'{n} {d}' for n, d in zip(names, declared))})")
    conn.executemany(f"INSERT INTO t (rowid, {', '.join(names)}) VALUES (?{', ?' * len(names)})",
                     [(i + 1, *row) for i, row in enumerate(rows)])
    conn.execute(f"CREATE INDEX i ON t ({', '.join(names)})")
    expected = [r[0] for r in conn.execute(f"SELECT rowid FROM t INDEXED BY i ORDER BY {', '.join(names)}, rowid")]
    assert ours == expected


@settings(max_examples=150, deadline=None)
@given(data=keyed_rows(), runs=st.integers(1, 6), block=st.integers(1, 50))
def test_merging_sorted_runs_gives_the_order_of_one_sort(tmp_path_factory, data, runs, block):
    """Runs sorted apart, spilled in blocks of any size and merged: every entry once, in the
    order of sorting them all at once."""
    declared, rows = data
    columns = [_plain(pa.array([r[k] for r in rows], COLUMNS[d][1]), d) for k, d in enumerate(declared)]
    rowids = np.arange(1, len(rows) + 1, dtype=np.int64)
    cuts = sorted(random.Random(len(rows) * runs).randint(0, len(rows)) for _ in range(runs - 1))
    bounds = list(zip([0, *cuts], [*cuts, len(rows)]))
    plan, words = packed(declared, columns, rowids, bounds)
    folder = tmp_path_factory.mktemp("runs")
    paths = []
    for k, (start, stop) in enumerate(bounds):
        part = [w[start:stop] for w in words]
        order = key_order(part)
        path = folder / f"run-{k}"
        write_run(path, plan, [w[order] for w in part], {"rowid": pa.array(rowids[start:stop][order])}, block)
        paths.append(path)
    merged = [r for _, table in merge_runs(paths, plan) for r in table.column("rowid").to_pylist()]
    assert merged == (key_order(words) + 1).tolist()


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(st.integers(-2**40, 2**40), unique=True, max_size=400), runs=st.integers(1, 5))
def test_a_rowid_alias_table_from_interleaved_runs_is_what_sqlite_builds(tmp_path_factory, keys, runs):
    """An INTEGER PRIMARY KEY table given as several runs, each in key order but interleaving
    (the visitors of each shard): the same table and indexes as SQLite's."""
    schema_ = TableSchema("t", (("k", "INTEGER"), ("v", "TEXT")), primary_key=("k",), indexes=(("v",),))
    shuffled = random.Random(len(keys)).sample(keys, len(keys))
    parts = [sorted(shuffled[k::runs]) for k in range(runs)]
    tables = [pa.table({"k": pa.array(p, pa.int64()), "v": pa.array([f"v{x % 7}" for x in p])}) for p in parts]
    folder = tmp_path_factory.mktemp("alias")
    assert write_pages(folder / "w.db", schema_, tables, page_size=512) == len(keys)
    conn = sqlite3.connect(folder / "w.db")
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("SELECT k, v FROM t ORDER BY rowid").fetchall() == [(k, f"v{k % 7}") for k in sorted(keys)]
    assert conn.execute("SELECT k FROM t INDEXED BY idx_t_v WHERE v = 'v3'").fetchall() == \
        [(k,) for k in sorted(keys) if k % 7 == 3]


def test_a_key_in_two_runs_of_a_rowid_alias_table_is_refused(tmp_path):
    import pytest
    schema_ = TableSchema("t", (("k", "INTEGER"), ("v", "TEXT")), primary_key=("k",))
    runs = [pa.table({"k": pa.array(p, pa.int64()), "v": pa.array(["x"] * len(p))}) for p in ([1, 3], [2, 3])]
    with pytest.raises(ValueError, match="t.k"):
        write_pages(tmp_path / "t.db", schema_, runs)
