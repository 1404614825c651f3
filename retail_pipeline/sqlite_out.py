"""Writing the published SQLite database.

Each table is first written to its own SQLite file (so big tables can be written in
parallel, by separate tasks). Publishing then assembles the database in a temporary
file beside the target: it starts from a copy of the largest part (a file copy is far
cheaper than re-inserting 13 M rows), copies the other tables in with
``ATTACH`` + ``INSERT … SELECT`` (SQLite's C speed), builds indexes, runs ``ANALYZE``,
switches to rollback-journal mode and renames the file over the target. The target
path therefore only ever holds a complete database.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlite_utils

from .schema import BUILD_INFO_TABLE, EVENTS_VIEW_SQL, TABLES, TableSchema

BATCH_ROWS = 1_000_000  # rows converted at a time
CACHE_SIZE = -2000  # SQLite's default page cache (2 MB): larger caches and in-memory sorting are slower here, their fresh memory costs more in page faults than it saves
SAMPLE_ROWS = 100_000  # rows looked at to judge how repetitive a column is
ROWS_PER_STATEMENT = 1024  # values per multi-row INSERT, over all columns


# sqlite3 binds None through its adaptation protocol (a failed adapter lookup and two
# attribute lookups per value, ~300 ns). A registered adapter makes it a dict hit and a
# C-level call returning None: a third of the cost, for columns that are mostly NULL.
sqlite3.register_adapter(type(None), {}.get)


def _fast_connection(path: str | os.PathLike) -> sqlite3.Connection:
    conn = sqlite3.connect(os.fspath(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(f"PRAGMA cache_size={CACHE_SIZE}")
    conn.execute("PRAGMA threads=2")  # helper threads for the sorts of CREATE INDEX
    return conn


def _few_distinct(values: np.ndarray) -> bool:
    """Whether a column repeats its values a lot, judged on a sample."""
    sample = values[:SAMPLE_ROWS]
    return len(pd.unique(sample)) < len(sample) // 4


def python_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column as an object array of the Python values sqlite3 binds (None for NULL).

    Repeated values share one Python object (through a dictionary for text, through the
    distinct values for integers), which makes the conversion, most of the cost of writing
    SQLite from Python, much cheaper for columns like property names or hours.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        sample = column.slice(0, SAMPLE_ROWS)
        if len(pc.unique(sample)) < len(sample) // 4:
            column = pc.dictionary_encode(column)
        else:
            return np.array(column.to_pylist(), dtype=object)
    if pa.types.is_dictionary(column.type):
        distinct = np.array(column.dictionary.to_pylist() + [None], dtype=object)
        return distinct[column.indices.fill_null(len(column.dictionary)).to_numpy()]
    values = column.fill_null(0).to_numpy(zero_copy_only=False) if column.null_count else column.to_numpy()
    if values.dtype.kind in "iu" and _few_distinct(values):
        codes, distinct = pd.factorize(values)
        out = distinct.astype(object)[codes]
    else:
        out = values.astype(object)
    if column.null_count:
        out[column.is_null().to_numpy(zero_copy_only=False)] = None
    return out


def insert_rows(
    conn: sqlite3.Connection, name: str, columns: list[np.ndarray], progress: Callable[[int], None] | None = None
) -> None:
    """Insert object-array columns with multi-row INSERT statements (one transaction is the caller's)."""
    width = len(columns)
    n = len(columns[0]) if columns else 0
    per_statement = max(1, ROWS_PER_STATEMENT // width)
    for start in range(0, n, BATCH_ROWS):
        stop = min(start + BATCH_ROWS, n)
        grid = np.empty((stop - start, width), dtype=object)
        for i, column in enumerate(columns):
            grid[:, i] = column[start:stop]
        flat = grid.ravel().tolist()
        rows = stop - start
        whole = rows - rows % per_statement
        if whole:
            sql = f"INSERT INTO [{name}] VALUES " + ",".join([f"({','.join('?' * width)})"] * per_statement)
            step = per_statement * width
            conn.executemany(sql, (flat[i: i + step] for i in range(0, whole * width, step)))
        if whole < rows:
            sql = f"INSERT INTO [{name}] VALUES ({','.join('?' * width)})"
            conn.executemany(sql, (flat[i: i + width] for i in range(whole * width, rows * width, width)))
        if progress is not None:
            progress(stop)


def write_table(
    table: pa.Table, schema: TableSchema, path: str | os.PathLike, progress: Callable[[int], None] | None = None
) -> int:
    """Write ``table`` as the only table of a new SQLite file at ``path``; return the row count.

    The columns are taken by the schema's names, in its order. ``path`` must not exist (the
    caller passes a temporary path and renames it when this returns).
    """
    if os.path.exists(path):
        os.remove(path)
    conn = _fast_connection(path)
    try:
        conn.execute(schema.create_sql())
        columns = [python_values(table.column(name)) for name in schema.column_names]
        conn.execute("BEGIN")
        insert_rows(conn, schema.name, columns, progress)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return table.num_rows


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_database(
    parts: dict[str, list[str | os.PathLike]],
    database: str | os.PathLike,
    build_info: dict,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Assemble the part files into ``database``, replacing it atomically.

    ``parts`` maps every table of ``schema.TABLES`` to the SQLite files holding its rows, in
    row order. The first part of the largest table is copied as the base file; every other
    part is appended with ``INSERT … SELECT``.
    """
    missing = set(TABLES) - set(parts)
    if missing:
        raise ValueError(f"no part file for tables: {sorted(missing)}")
    say = progress or (lambda message: None)
    database = Path(database)
    database.parent.mkdir(parents=True, exist_ok=True)
    temporary = database.with_name(f".{database.name}.building-{os.getpid()}")
    base_table = max(parts, key=lambda name: sum(os.path.getsize(p) for p in parts[name]))
    say(f"copying the first part of {base_table}")
    try:
        shutil.copyfile(parts[base_table][0], temporary)
        conn = _fast_connection(temporary)
        db = sqlite_utils.Database(conn)
        for name, files in parts.items():
            for index, part in enumerate(files):
                if name == base_table and index == 0:
                    continue
                say(f"copying {name} part {index + 1} of {len(files)}")
                conn.execute("ATTACH DATABASE ? AS part", (os.fspath(part),))
                conn.execute("BEGIN")
                if index == 0:
                    conn.execute(TABLES[name].create_sql())
                conn.execute(f"INSERT INTO main.[{name}] SELECT * FROM part.[{name}]")
                conn.execute("COMMIT")
                conn.execute("DETACH DATABASE part")
        conn.execute("BEGIN")
        for schema in TABLES.values():
            for sql in schema.index_sql():
                say(f"indexing {schema.name}")
                conn.execute(sql)
        conn.execute(EVENTS_VIEW_SQL)
        conn.execute("COMMIT")
        db[BUILD_INFO_TABLE].insert_all(
            [{"key": k, "value": v if isinstance(v, str) else json.dumps(v)} for k, v in build_info.items()],
            pk="key",
        )
        say("analyzing")
        conn.execute("PRAGMA analysis_limit=1000")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.close()
        _fsync(temporary)
        os.replace(temporary, database)
        _fsync(database.parent)
    except BaseException:
        if temporary.exists():
            temporary.unlink()
        raise


def read_build_info(database: str | os.PathLike) -> dict[str, str] | None:
    """The ``_build_info`` key/values of a published database, or None if there is none."""
    if not os.path.isfile(database):
        return None
    try:
        conn = sqlite3.connect(f"file:{os.fspath(database)}?mode=ro", uri=True)
        try:
            return dict(conn.execute(f"SELECT key, value FROM [{BUILD_INFO_TABLE}]").fetchall())
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def table_counts(database: str | os.PathLike) -> dict[str, int]:
    """Row counts of the published tables."""
    db = sqlite_utils.Database(database)
    try:
        return {name: db[name].count for name in TABLES}
    finally:
        db.close()
