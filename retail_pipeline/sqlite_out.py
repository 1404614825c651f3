"""Writing the published SQLite database.

The big tables are written straight into SQLite's file format (:mod:`sqlite_btree`):
item_properties into its own file as soon as the property files are read; the cells of
events_enriched by each enriched shard, side by side. The "core" file joins them: the
item_properties file itself, taken over (moving it costs nothing), with events_enriched (from
the shards' cells), its indexes and sessions added. The small tables go into SQLite through
the ADBC driver (Arrow arrays bound in C), each into its own file, a part
(:func:`write_sqlite_part`). Publishing then assembles the database in a temporary file beside
the target: it takes the core over, copies the small tables in with ``ATTACH`` + ``INSERT …
SELECT`` (SQLite's C speed), builds their indexes, runs ``ANALYZE``, switches to rollback-journal
mode and renames the file over the target. The target path therefore only ever holds a complete
database.

With ``[retail] sqlite_writer = sqlite`` (``writer="sqlite"`` here) no page is written by the
pipeline: the big tables too go in through the ADBC driver (SQLite's own insert path) and their
indexes are built by ``CREATE INDEX``. It is slower, and the way out for anyone who distrusts the
page writer or runs a SQLite it refuses; ``tests/test_sqlite_writers.py`` requires both to
publish the same tables, row for row.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
import errno
import itertools
from typing import Callable, Iterable

import adbc_driver_sqlite.dbapi as adbc_sqlite
import pyarrow as pa
import sqlite_utils

from . import sqlite_btree
from .schema import BUILD_INFO_TABLE, EVENTS_VIEW_SQL, TABLES, TableSchema, create_table
from .sqlite_btree import PAGE_SIZE

BATCH_ROWS = 1_000_000  # rows handed to SQLite at a time (and between progress reports)
MMAP_SIZE = 1 << 32  # bytes of a file SQLite may map (the whole database, at full scale 1.1 GB)
WRITERS = ("pages", "sqlite")  # [retail] sqlite_writer: sqlite_btree's pages, or SQLite's own insert path
CACHE_SIZE = -2000  # SQLite's default page cache (2 MB): larger caches and in-memory sorting were slower here, their fresh memory costs more in page faults than it saves


def _fast_connection(path: str | os.PathLike) -> sqlite3.Connection:
    conn = sqlite3.connect(os.fspath(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(f"PRAGMA cache_size={CACHE_SIZE}")
    # No helper threads for the sorts of CREATE INDEX (measured when SQLite still built the four
    # events_enriched indexes: two threads took the same wall time for 1.7x the CPU, CPU the
    # other worker process needs). The indexes built here now are the small tables'.
    conn.execute("PRAGMA threads=0")
    # Read pages through a memory map, not a read() copy each: ANALYZE reads the big tables.
    conn.execute(f"PRAGMA mmap_size={MMAP_SIZE}")
    return conn


def _sqlite_ready(column: pa.ChunkedArray, declared: str) -> pa.ChunkedArray:
    """A column in an Arrow type the ADBC driver binds as the declared SQLite type."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if declared == "INTEGER" and (pa.types.is_boolean(kind) or (pa.types.is_integer(kind) and kind != pa.int64())):
        return column.cast(pa.int64())
    if declared == "REAL" and pa.types.is_integer(kind):
        return column.cast(pa.float64())
    return column


def write_sqlite_part(
    path: str | os.PathLike,
    schema: TableSchema,
    tables: pa.Table | Iterable[pa.Table],
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the rows of ``tables`` (one table, or several written one after the other) as the
    only table of a new SQLite file at ``path``; return the row count. ``path`` must not exist
    (the caller passes a temporary path and renames it when this returns).

    The columns are taken by the schema's names, in its order. Rows go in through the ADBC
    SQLite driver, which binds Arrow arrays to a prepared INSERT in C: 3-4x faster than
    Python's ``sqlite3`` with its one Python object per value. An iterable is consumed
    lazily, so a generator that reads one part at a time keeps one part in memory.
    """
    if os.path.exists(path):
        os.remove(path)
    conn = sqlite3.connect(os.fspath(path), isolation_level=None)
    try:
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        create_table(conn, schema, indexes=False)  # publishing indexes the table once it has its rows
    finally:
        conn.close()
    return _ingest(path, schema, tables, progress=progress)


def _ingest(path: str | os.PathLike, schema: TableSchema, tables: pa.Table | Iterable[pa.Table], *,
            progress: Callable[[int], None] | None = None) -> int:
    """Append the rows of ``tables`` to table ``schema`` (which exists) of the SQLite file ``path``
    through the ADBC driver; return the row count."""
    if isinstance(tables, pa.Table):
        tables = [tables]
    ready = (pa.Table.from_arrays([_sqlite_ready(table.column(name), declared) for name, declared in schema.columns],
                                  names=list(schema.column_names)) for table in tables)
    first = next(ready, None)
    written = 0

    def batches():
        nonlocal written
        for table in itertools.chain([first], ready):
            for batch in table.cast(first.schema).to_batches(max_chunksize=BATCH_ROWS):
                yield batch
                written += batch.num_rows
                if progress is not None:
                    progress(written)

    with adbc_sqlite.connect(os.fspath(path), autocommit=True) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=OFF")
            cursor.execute("PRAGMA synchronous=OFF")
            if first is not None:
                cursor.adbc_ingest(schema.name, pa.RecordBatchReader.from_batches(first.schema, batches()),
                                   mode="append")
        finally:
            cursor.close()
    return written


def write_big_table(path: str | os.PathLike, schema: TableSchema, tables: Iterable[pa.Table], *, writer: str = "pages",
                    progress: Callable[[int], None] | None = None, cells: Iterable[pa.Table] | None = None) -> int:
    """Add table ``schema``, holding the rows of ``tables``, and its indexes to the SQLite file
    ``path`` (created if missing); return the row count. ``writer`` is ``[retail] sqlite_writer``:
    ``"pages"`` writes the b-trees' pages (:func:`sqlite_btree.write_pages`, which may take the
    rows' ``cells`` already made), ``"sqlite"`` has SQLite do it all: the rows inserted through
    the ADBC driver, in the order given (so with the same rowids), then ``CREATE INDEX``."""
    if writer == "pages":
        return sqlite_btree.write_pages(path, schema, tables, progress=progress, cells=cells)
    if writer != "sqlite":
        raise ValueError(f"unknown SQLite writer {writer!r}: one of {', '.join(WRITERS)}")
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    conn = _fast_connection(path)
    try:
        if new:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("BEGIN")
        create_table(conn, schema, indexes=False)  # (and, empty, the tables its foreign keys reference)
        conn.execute("COMMIT")
    finally:
        conn.close()
    written = _ingest(path, schema, (sqlite_btree.open_run(run) for run in tables), progress=progress)
    if schema.all_indexes:
        conn = _fast_connection(path)
        try:
            conn.execute("BEGIN")
            schema.create_indexes(sqlite_utils.Database(conn))
            conn.execute("COMMIT")
        finally:
            conn.close()
    return written


def build_core(
    base: str | os.PathLike,
    tables: list[tuple[TableSchema, list[pa.Table], list[pa.Table] | None]],
    path: str | os.PathLike,
    progress: Callable[[str], None] | None = None,
    *,
    take_base: bool = False,
    writer: str = "pages",
) -> None:
    """The core database at ``path``: the SQLite file ``base`` (its tables as they are; with
    ``take_base`` the file itself, moved, see :func:`_take_or_copy`, else a copy) with each
    ``(schema, row tables, cells or None)`` of ``tables`` added, indexes and all, by
    :func:`write_big_table` with ``writer`` (the cells are used by the page writer only)."""
    if writer not in WRITERS:
        raise ValueError(f"unknown SQLite writer {writer!r}: one of {', '.join(WRITERS)}")
    say = progress or (lambda message: None)
    _take_or_copy(base, path, take_base, say)
    for schema, rows, cells in tables:
        say(f"writing {schema.name}" + (" and its indexes" if schema.all_indexes else "")
            + (" through SQLite" if writer == "sqlite" else ""))
        write_big_table(path, schema, rows, writer=writer, cells=cells)


def _copy_parts(conn: sqlite3.Connection, name: str, parts: list[str | os.PathLike], say: Callable[[str], None]) -> None:
    """Create table ``name`` in ``conn``'s main database with the rows of its part files, in order."""
    for number, part in enumerate(parts, start=1):
        say(f"copying {name} part {number} of {len(parts)}")
        _copy_table(conn, name, part, create=number == 1)


def _copy_table(conn: sqlite3.Connection, name: str, source: str | os.PathLike, create: bool = True) -> None:
    """Append table ``name`` of the SQLite file ``source`` to the same table of ``conn``'s main database."""
    conn.execute("ATTACH DATABASE ? AS part", (os.fspath(source),))
    try:
        conn.execute("BEGIN")
        if create and not sqlite_utils.Database(conn)[name].exists():  # (an entity table may be there, empty)
            create_table(conn, TABLES[name], indexes=False)
        conn.execute(f"INSERT INTO main.[{name}] SELECT * FROM part.[{name}]")
        conn.execute("COMMIT")
    finally:
        conn.execute("DETACH DATABASE part")


def _take_or_copy(source: str | os.PathLike, destination: str | os.PathLike, take: bool,
                  say: Callable[[str], None]) -> None:
    """Start ``destination`` as the file ``source``: moved if ``take`` (no copy of a gigabyte;
    the caller gives the file up) and both are on one file system, else copied."""
    if take:
        say(f"taking over {os.path.basename(source)}")
        try:
            os.replace(source, destination)
            # A rename keeps the old modification time: make it plain that the file is in use,
            # or another run's clean-up could take it for a temporary file left by a killed run.
            os.utime(destination)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    say(f"copying {os.path.basename(source)}")
    shutil.copyfile(source, destination)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_database(
    base: str | os.PathLike,
    parts: dict[str, list[str | os.PathLike]],
    database: str | os.PathLike,
    build_info: dict,
    progress: Callable[[str], None] | None = None,
    *,
    take_base: bool = False,
) -> None:
    """Assemble ``database`` from the SQLite file ``base`` and the part files, replacing it atomically.

    ``base`` holds some of the tables of ``schema.TABLES`` (with their indexes, if built);
    ``parts`` maps each of the others to the SQLite files holding its rows, in row order,
    appended with ``INSERT … SELECT`` (SQLite's C speed). Missing indexes are then built.
    The database is assembled in a temporary file beside the target, which starts as a copy
    of ``base`` or, with ``take_base``, as ``base`` itself, moved (no copy of a gigabyte; the
    caller gives up the file), unless it is on another file system: then it is copied.
    """
    say = progress or (lambda message: None)
    database = Path(database)
    database.parent.mkdir(parents=True, exist_ok=True)
    temporary = database.with_name(f".{database.name}.building-{os.getpid()}")
    try:
        _take_or_copy(base, temporary, take_base, say)
        conn = _fast_connection(temporary)
        present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = set(TABLES) - present - set(parts)
        if missing:
            raise ValueError(f"no rows for tables: {sorted(missing)}")
        db = sqlite_utils.Database(conn)
        for name, files in parts.items():
            _copy_parts(conn, name, files, say)
        conn.execute("BEGIN")
        for schema in TABLES.values():
            say(f"indexing {schema.name}")
            schema.create_indexes(db)
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
