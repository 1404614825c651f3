"""Do two published databases hold the same tables, row for row?

    python scripts/compare_databases.py OLD.db NEW.db
    python scripts/compare_databases.py --save OLD.json OLD.db   # the digests alone, to compare later
    python scripts/compare_databases.py OLD.json NEW.db

For each table of the data contract (``_build_info`` is left out: it names the build), compares
the column names and a digest of all rows in sorted order, so a change meant only to make the
pipeline faster can be checked at full scale against the database of the commit before it. Rows
are compared as SQLite returns them (type and value). Prints one line per table; exits 1 if any
table differs or is missing from either database, 0 if all are the same. A database can be
replaced by its digests saved with ``--save`` (a ``.json`` file): two ten-times databases (17 GB
each) need not be on one disk at once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
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


def digests(path: str) -> dict[str, dict]:
    """Each table's columns, row count and digest: of the database ``path``, or read from the
    digests file ``path`` (``.json``, written by :func:`save`)."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = {}
        for table in tables(conn):
            names = columns(conn, table)
            count, summary = digest(conn, table, names)
            found[table] = {"columns": names, "rows": count, "digest": summary}
        return found
    finally:
        conn.close()


def save(database: str, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(digests(database), f, indent=2, sort_keys=True)


def compare(old_path: str, new_path: str) -> bool:
    """Whether the two databases (or digests files) hold the same tables; a line per table."""
    old, new = digests(old_path), digests(new_path)
    same_everywhere = True
    for table in sorted(set(old) | set(new)):
        if table not in old or table not in new:
            print(f"MISSING {table}: only in {new_path if table not in old else old_path}")
            same_everywhere = False
            continue
        if old[table]["columns"] != new[table]["columns"]:
            print(f"DIFF    {table}: columns {old[table]['columns']} -> {new[table]['columns']}")
            same_everywhere = False
            continue
        before, after = (old[table]["rows"], old[table]["digest"]), (new[table]["rows"], new[table]["digest"])
        if before == after:
            print(f"SAME    {table}: {before[0]:,} rows")
        else:
            print(f"DIFF    {table}: {before[0]:,} rows ({before[1]}) -> {after[0]:,} rows ({after[1]})")
            same_everywhere = False
    return same_everywhere


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--save", metavar="FILE.json", help="write the digests of the one database given to FILE.json")
    parser.add_argument("old", help="a database, or a digests file (.json)")
    parser.add_argument("new", nargs="?", help="a database, or a digests file (.json)")
    args = parser.parse_args(argv)
    if args.save:
        if args.new is not None:
            parser.error("--save takes one database")
        save(args.old, args.save)
        print(f"digests of {args.old} written to {args.save}")
        return 0
    if args.new is None:
        parser.error("two databases (or digests files) to compare")
    same = compare(args.old, args.new)
    print("all tables the same" if same else "the databases differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
