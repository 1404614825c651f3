"""Do two published databases hold the same tables, row for row?

    python scripts/compare_databases.py OLD.db NEW.db

For each table of the data contract (``_build_info`` is left out: it names the build), compares
the column names and a digest of all rows in sorted order, so a change meant only to make the
pipeline faster can be checked at full scale against the database of the commit before it. Rows
are compared as SQLite returns them (type and value). Prints one line per table; exits 1 if any
table differs or is missing from either database, 0 if all are the same.
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys

SKIPPED = {"_build_info"}


def tables(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        if name not in SKIPPED]


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info([{table}])")]


def digest(conn: sqlite3.Connection, table: str, names: list[str]) -> tuple[int, str]:
    """(row count, digest of the rows sorted by every column in order)."""
    listed = ", ".join(f"[{name}]" for name in names)
    summary, count = hashlib.sha256(), 0
    for row in conn.execute(f"SELECT {listed} FROM [{table}] ORDER BY {listed}"):
        summary.update(repr(row).encode())
        count += 1
    return count, summary.hexdigest()[:16]


def compare(old_path: str, new_path: str) -> bool:
    old, new = sqlite3.connect(f"file:{old_path}?mode=ro", uri=True), sqlite3.connect(f"file:{new_path}?mode=ro", uri=True)
    same_everywhere = True
    for table in sorted(set(tables(old)) | set(tables(new))):
        if table not in tables(old) or table not in tables(new):
            print(f"MISSING {table}: only in {new_path if table not in tables(old) else old_path}")
            same_everywhere = False
            continue
        old_columns, new_columns = columns(old, table), columns(new, table)
        if old_columns != new_columns:
            print(f"DIFF    {table}: columns {old_columns} -> {new_columns}")
            same_everywhere = False
            continue
        before, after = digest(old, table, old_columns), digest(new, table, new_columns)
        if before == after:
            print(f"SAME    {table}: {before[0]:,} rows")
        else:
            print(f"DIFF    {table}: {before[0]:,} rows ({before[1]}) -> {after[0]:,} rows ({after[1]})")
            same_everywhere = False
    return same_everywhere


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    args = parser.parse_args(argv)
    same = compare(args.old, args.new)
    print("all tables the same" if same else "the databases differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
