"""scripts/compare_databases.py: the row-for-row check of a speed change at full scale."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "scripts" / "compare_databases.py"


def _database(path, rows, build="a"):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER, value)")  # no affinity: 7 and "7" stay apart
    conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
    conn.execute("CREATE TABLE _build_info (key TEXT, value TEXT)")
    conn.execute("INSERT INTO _build_info VALUES ('built_at', ?)", (build,))
    conn.commit()
    conn.close()
    return path


def _compare(old, new):
    return subprocess.run([sys.executable, str(SCRIPT), str(old), str(new)], capture_output=True, text=True)


def test_same_rows_in_another_order_and_build_are_the_same(tmp_path):
    old = _database(tmp_path / "old.db", [(1, "a"), (2, None)])
    new = _database(tmp_path / "new.db", [(2, None), (1, "a")], build="b")
    result = _compare(old, new)
    assert result.returncode == 0, result.stdout
    assert "SAME    t: 2 rows" in result.stdout


def test_a_changed_value_or_type_is_a_difference(tmp_path):
    old = _database(tmp_path / "old.db", [(1, "a"), (2, "7")])
    for changed in ([(1, "a"), (2, "8")], [(1, "a"), (2, 7)], [(1, "a")]):
        new = _database(tmp_path / f"new{len(list(tmp_path.iterdir()))}.db", changed)
        result = _compare(old, new)
        assert result.returncode == 1 and "DIFF    t" in result.stdout, (changed, result.stdout)


def test_saved_digests_stand_in_for_the_database(tmp_path):
    """A database's digests saved to a file compare as the database would: the same rows in
    another order are the same, a changed value is not."""
    old = _database(tmp_path / "old.db", [(1, "a"), (2, "7")])
    saved = tmp_path / "old.json"
    written = subprocess.run([sys.executable, str(SCRIPT), "--save", str(saved), str(old)], capture_output=True,
                             text=True)
    assert written.returncode == 0 and saved.exists(), written.stderr
    old.unlink()
    same = _compare(saved, _database(tmp_path / "same.db", [(2, "7"), (1, "a")], build="b"))
    assert same.returncode == 0 and "SAME    t: 2 rows" in same.stdout, same.stdout
    changed = _compare(saved, _database(tmp_path / "changed.db", [(1, "a"), (2, 7)]))
    assert changed.returncode == 1 and "DIFF    t" in changed.stdout, changed.stdout
