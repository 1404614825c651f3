#!/usr/bin/env python3
"""Check a published Retail Rocket database on its own, against the rules of SPEC.md.

    python verify_results.py [--database FILE]

Without ``--database`` the file is ``[retail] database`` of ``luigi.cfg`` in the repository root,
else ``data/retail.db`` (a relative path is taken from the repository root). Every check prints one
line, ``PASS name: detail`` or ``FAIL name: detail``; the exit status is 0 only when all pass.

The checks recompute what can be recomputed from the published tables themselves (counts per hour,
rolling averages, per-visitor ordering columns, sessions, the daily funnel, the category tree, the
data_quality conservation rules of docs/decisions.md, and the analyst tables of SPEC.md: visitors,
the sessions' cart columns, daily_cart_abandonment, purchase_timing, cohort_retention,
category_daily_funnel, item_pairs, item_property_history) with SQL, so they run in seconds on the
full data set. A check of a table that is not there fails with "table missing"; the declared
foreign keys are checked with ``PRAGMA foreign_key_check``. The database is opened read-only.
Only the standard library is used.

Memory is bounded, whatever the size of the database: no check holds more than a fixed number of
rows in Python (where a check needs Python, rows are streamed one at a time), and SQLite's own
memory is capped per connection (one per lane of checks, see ``Verifier.LANES``): a page cache of
``--cache-mib`` MiB (default 32; 4x for the integrity check's lane) for the file, which also caps
each sorter of ORDER BY / GROUP BY, half of it for the TEMP schema, ``temp_store = FILE`` so that
TEMP tables and the temporary b-trees of DISTINCT, IN, window partitions and the like spill to
temporary files, and no memory map (``open_read_only``). The peak resident memory is about
0.5 GB at the defaults, the same at any scale (tests/test_verify_results.py pins that it does not
grow with the data). The scratch tables take disk space instead, in SQLite's temporary directory
(``SQLITE_TMPDIR``, else ``TMPDIR``, else /var/tmp or /tmp): some 0.4 GB at once at full scale
(2.76 M events), growing with the data.
"""

from __future__ import annotations

import argparse
import configparser
import sqlite3
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_DATABASE = "data/retail.db"
SESSION_GAP_MS = 1_800_000
TOLERANCE = 1e-9
CACHE_MIB = 32  # SQLite page cache of each connection (see open_read_only)

SPEC_COLUMNS = {
    "events": ["timestamp_ms", "visitorid", "event", "itemid", "transactionid"],
    "events_enriched": [
        "timestamp_ms", "visitorid", "event", "itemid", "transactionid", "event_time", "event_date",
        "event_hour", "hour_of_day", "prev_event", "seconds_since_prev_event", "session_id",
        "view_to_purchase", "categoryid", "available", "parent_categoryid", "root_categoryid",
    ],
    "item_properties": ["itemid", "property", "value", "timestamp_ms"],
    "category_tree": ["categoryid", "parentid", "root_categoryid", "depth"],
    "event_type_counts": ["hour", "view", "addtocart", "transaction", "total_events"],
    "hourly_trend": ["hour", "total_events", "rolling_avg_24h", "rolling_avg_168h"],
    "sessions": [
        "visitorid", "session_id", "start_time", "end_time", "duration_s", "events", "views",
        "addtocarts", "transactions", "converted",
    ],
    "daily_funnel": [
        "date", "visitors", "viewers", "carters", "buyers", "view_to_cart_rate",
        "cart_to_purchase_rate", "view_to_purchase_rate",
    ],
    "rejected_rows": ["source_file", "line_number", "reason", "raw"],
    "data_quality": ["check_name", "value", "detail"],
    # SPEC "Analyst tables"
    "visitors": [
        "visitorid", "first_event_time", "last_event_time", "events", "views", "addtocarts", "transactions",
        "sessions", "orders", "segment",
    ],
    "daily_cart_abandonment": [
        "date", "cart_sessions", "abandoned_sessions", "abandonment_rate", "recovered_sessions", "recovery_rate",
    ],
    "purchase_timing": [
        "visitorid", "itemid", "transactionid", "purchase_time", "first_view_time", "first_cart_time",
        "seconds_view_to_purchase", "seconds_cart_to_purchase", "sessions_to_purchase",
    ],
    "cohort_retention": [
        "cohort_week", "week_number", "visitors", "active_visitors", "buyers", "retention_rate", "purchase_rate",
    ],
    "category_daily_funnel": [
        "date", "root_categoryid", "visitors", "viewers", "carters", "buyers", "view_to_cart_rate",
        "cart_to_purchase_rate", "view_to_purchase_rate",
    ],
    "item_pairs": ["itemid", "rank", "other_itemid", "together", "lift"],
    "item_property_history": [
        "itemid", "property", "value", "valid_from_ms", "valid_to_ms", "valid_from", "valid_to",
    ],
}
SPEC_COLUMNS["sessions"] += ["cart_items", "abandoned_cart", "recovered"]
MAX_ITEMS_OF_A_SHOPPING_SESSION = 50  # item_pairs: a session with more distinct viewed items is a crawl
MAX_PAIRS_PER_ITEM = 20
HISTORY_PROPERTIES = ("categoryid", "available")
SMALLEST_INTEGER = -9_223_372_036_854_775_808
SINGLE_CHECK_NAMES = [
    "rows_rejected", "duplicate_events_dropped", "events_without_categoryid", "events_published",
    "events_outside_expected_range",
]
FIXED_REASONS = {
    "undecodable bytes", "blank line", "unknown event type", "transaction without transactionid",
    "duplicate categoryid", "line too long",
}
# The expected range of event times (docs/decisions.md): the hour-by-hour tables cover only the
# events inside it; the others are kept in events_enriched and counted in data_quality.
EXPECTED_FIRST_MS = 946_684_800_000  # 2000-01-01 00:00:00 UTC
EXPECTED_END_MS = 4_102_444_800_000  # 2100-01-01 00:00:00 UTC, excluded
IN_RANGE = f"(timestamp_ms >= {EXPECTED_FIRST_MS} AND timestamp_ms < {EXPECTED_END_MS})"
INTEGER_COLUMNS = {"timestamp", "visitorid", "itemid", "transactionid", "categoryid", "parentid"}

# Seconds of 0000-01-01 00:00:00 and 9999-12-31 23:59:59: SQLite formats times in between.
SQLITE_FIRST_SECOND = -62_167_219_200
SQLITE_LAST_SECOND = 253_402_300_799

# SQL pieces: floor division of a millisecond timestamp (SQLite's / and % truncate toward zero).
MS_PART = "(((timestamp_ms % 1000) + 1000) % 1000)"
SECONDS = f"((timestamp_ms - {MS_PART}) / 1000)"
HOUR_NUMBER_OF_TEXT = "(CAST(strftime('%s', {x}) AS INTEGER) / 3600)"


class CheckFailed(Exception):
    """A check found the database wrong; the message says how."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --------------------------------------------------------------------------- time text in Python


def civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day number (0 = 1970-01-01), any integer."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


def time_texts(timestamp_ms: int) -> tuple[str, str, str, int]:
    """(event_time, event_date, event_hour, hour_of_day) of a timestamp outside SQLite's years.
    Years are written with at least four digits, a minus sign before year 0."""
    seconds, millisecond = divmod(timestamp_ms, 1000)
    days, second_of_day = divmod(seconds, 86400)
    year, month, day = civil_from_days(days)
    hour, rest = divmod(second_of_day, 3600)
    minute, second = divmod(rest, 60)
    year_text = f"{year:04d}" if year >= 0 else f"-{-year:04d}"
    date = f"{year_text}-{month:02d}-{day:02d}"
    return (f"{date} {hour:02d}:{minute:02d}:{second:02d}.{millisecond:03d}", date,
            f"{date} {hour:02d}:00:00", hour)


def sql_as_integer(column: str) -> str:
    """SQL reading a text column as SPEC reads an integer (``-?[0-9]{1,18}(\\.0+)?``), else NULL."""
    unsigned = f"(CASE WHEN substr({column}, 1, 1) = '-' THEN substr({column}, 2) ELSE {column} END)"
    dot = f"instr({unsigned}, '.')"
    whole = f"(CASE WHEN {dot} > 0 THEN substr({unsigned}, 1, {dot} - 1) ELSE {unsigned} END)"
    fraction = f"(CASE WHEN {dot} > 0 THEN substr({unsigned}, {dot} + 1) END)"
    is_integer = (f"(length({whole}) BETWEEN 1 AND 18 AND {whole} NOT GLOB '*[^0-9]*'"
                  f" AND ({fraction} IS NULL OR ({fraction} <> '' AND {fraction} NOT GLOB '*[^0]*')))")
    sign = f"(CASE WHEN substr({column}, 1, 1) = '-' THEN -1 ELSE 1 END)"
    return f"(CASE WHEN {is_integer} THEN {sign} * CAST({whole} AS INTEGER) END)"


# --------------------------------------------------------------------------- the checker


class Verifier:
    """Runs the checks on one open database; scratch tables are built once and shared."""

    def __init__(self, connection: sqlite3.Connection):
        self.db = connection
        self._built: dict[str, object] = {}
        self.columns = {table: self.table_columns(table) for table in SPEC_COLUMNS}
        self.tiebreak = "source_line" if "source_line" in self.columns["events_enriched"] else "rowid"

    # helpers
    def table_columns(self, table: str) -> list[str]:
        return [row[1] for row in self.db.execute(f'PRAGMA main.table_info("{table}")')]

    def scalar(self, sql: str, *params):
        return self.db.execute(sql, params).fetchone()[0]

    def once(self, key: str, build):
        if key not in self._built:
            self._built[key] = build()
        return self._built[key]

    def event_count(self) -> int:
        return self.once("event_count", lambda: self.scalar("SELECT count(*) FROM events_enriched"))

    def event_hour_range(self):
        """First and last hour (hours since the epoch) of the events inside the expected range of
        times, which the hourly tables cover; or (None, None)."""
        def build():
            low, high = self.db.execute(
                f"SELECT min(timestamp_ms), max(timestamp_ms) FROM events_enriched WHERE {IN_RANGE}").fetchone()
            if low is None:
                return None, None
            return low // 3_600_000, high // 3_600_000
        return self.once("event_hour_range", build)

    def ordered_events(self) -> None:
        """TEMP table ``ev``: events_enriched in per-visitor order, ``rn`` numbering that order."""
        def build():
            self.db.executescript(f"""
                CREATE TEMP TABLE ev(
                    rn INTEGER PRIMARY KEY, visitorid INTEGER, timestamp_ms INTEGER, event TEXT,
                    itemid INTEGER, prev_event TEXT, secs REAL, session_id INTEGER, event_time TEXT);
                INSERT INTO ev(visitorid, timestamp_ms, event, itemid, prev_event, secs, session_id,
                               event_time)
                SELECT visitorid, timestamp_ms, event, itemid, prev_event, seconds_since_prev_event,
                       session_id, event_time
                FROM main.events_enriched ORDER BY visitorid, timestamp_ms, {self.tiebreak};
            """)
            return True
        self.once("ev", build)

    def per_visitor_faults(self) -> dict:
        """Counts (and one example) of rows whose prev_event / seconds_since_prev_event /
        session_id disagree with the visitor's previous event."""
        def build():
            self.ordered_events()
            faults = {
                "prev_event": "CASE WHEN p.rn IS NULL THEN e.prev_event IS NOT NULL"
                              " ELSE e.prev_event IS NOT p.event END",
                "seconds": "CASE WHEN p.rn IS NULL THEN e.secs IS NOT NULL"
                           " ELSE e.secs IS NULL OR e.secs < 0"
                           f" OR abs(e.secs - (e.timestamp_ms - p.timestamp_ms) / 1000.0) > {TOLERANCE}"
                           " END",
                "session": "CASE WHEN p.rn IS NULL THEN e.session_id IS NOT 1"
                           " ELSE e.session_id IS NOT p.session_id"
                           f" + (e.timestamp_ms - p.timestamp_ms > {SESSION_GAP_MS}) END",
            }
            select = ", ".join(f"sum({sql}), min(CASE WHEN {sql} THEN e.rn END)" for sql in faults.values())
            row = self.db.execute(f"""
                SELECT {select}
                FROM temp.ev e LEFT JOIN temp.ev p ON p.rn = e.rn - 1 AND p.visitorid = e.visitorid
            """).fetchone()
            result = {}
            for index, name in enumerate(faults):
                count, first_rn = row[2 * index] or 0, row[2 * index + 1]
                example = None
                if first_rn is not None:
                    example = self.db.execute(
                        "SELECT e.visitorid, e.timestamp_ms, e.event, e.prev_event, e.secs, e.session_id,"
                        " p.event, p.timestamp_ms, p.session_id"
                        " FROM temp.ev e LEFT JOIN temp.ev p ON p.rn = e.rn - 1 AND p.visitorid = e.visitorid"
                        " WHERE e.rn = ?", (first_rn,)).fetchone()
                result[name] = (count, example)
            return result
        return self.once("per_visitor", build)

    def unique_index(self, table: str, columns: set[str]) -> str | None:
        """The name of a unique index (or primary key) of ``table`` on some of ``columns``, which
        makes SQLite itself guarantee that ``columns`` are unique together; else None."""
        for index in self.db.execute(f'PRAGMA main.index_list("{table}")').fetchall():
            name, unique = index[1], index[2]
            indexed = {row[2] for row in self.db.execute(f'PRAGMA main.index_info("{name}")')}
            if unique and indexed and indexed <= columns:
                return name
        return None

    def data_quality_values(self) -> dict[str, list]:
        def build():
            values: dict[str, list] = {}
            for name, value in self.db.execute("SELECT check_name, value FROM data_quality"):
                values.setdefault(name, []).append(value)
            return values
        return self.once("data_quality", build)

    # ------------------------------------------------------------------ the checks, in order

    integrity_pragma = "integrity_check"  # or "quick_check" (--quick): no index compared with its table

    def check_file_integrity(self) -> str:
        # Parts of the file are written straight in SQLite's format (retail_pipeline/sqlite_btree.py):
        # SQLite's own check of every page, cell and key order, and (integrity_check, the default)
        # of every index entry against its table's row: what the writer builds by hand.
        problems = [row[0] for row in self.db.execute(f"PRAGMA main.{self.integrity_pragma}(20)")]
        expect(problems == ["ok"], "; ".join(problems))
        return f"PRAGMA {self.integrity_pragma}: ok"

    def check_schema(self) -> str:
        missing = []
        kinds = dict(self.db.execute("SELECT name, type FROM main.sqlite_master WHERE type IN ('table', 'view')"))
        for table, columns in SPEC_COLUMNS.items():
            if table not in kinds:
                missing.append(f"table {table}")
                continue
            missing += [f"{table}.{column}" for column in columns if column not in self.columns[table]]
        expect(not missing, "missing " + ", ".join(missing))
        return f"{len(SPEC_COLUMNS)} tables, {sum(map(len, SPEC_COLUMNS.values()))} columns present"

    def check_events_values(self) -> str:
        events = self.scalar("SELECT count(*) FROM events")
        expect(events == self.event_count(),
               f"events has {events} rows, events_enriched {self.event_count()}")
        bad_type, no_id, nulls = self.db.execute("""
            SELECT coalesce(sum(event IS NULL OR event NOT IN ('view', 'addtocart', 'transaction')), 0),
                   coalesce(sum(event = 'transaction' AND transactionid IS NULL), 0),
                   coalesce(sum(timestamp_ms IS NULL OR visitorid IS NULL OR itemid IS NULL), 0)
            FROM events_enriched""").fetchone()
        expect(bad_type == 0, f"{bad_type} rows with an event type other than view/addtocart/transaction")
        expect(no_id == 0, f"{no_id} transactions without transactionid")
        expect(nulls == 0, f"{nulls} rows with a NULL timestamp_ms, visitorid or itemid")
        return f"{events} events, types and transaction ids valid"

    def check_event_time_columns(self) -> str:
        """event_time, event_date, event_hour and hour_of_day agree with timestamp_ms."""
        in_range = f"timestamp_ms BETWEEN {SQLITE_FIRST_SECOND * 1000} AND {SQLITE_LAST_SECOND * 1000 + 999}"
        expected_time = (f"strftime('%Y-%m-%d %H:%M:%S', {SECONDS}, 'unixepoch')"
                         f" || '.' || substr('00' || {MS_PART}, -3)")
        # Once event_time is right (four-digit years here), the others are pieces of it.
        wrong = f"""
            event_time IS NOT {expected_time}
            OR event_date IS NOT substr(event_time, 1, 10)
            OR event_hour IS NOT substr(event_time, 1, 13) || ':00:00'
            OR hour_of_day IS NOT CAST(substr(event_time, 12, 2) AS INTEGER)"""
        count = self.scalar(f"SELECT count(*) FROM events_enriched WHERE {in_range} AND ({wrong})")
        if count:
            example = self.db.execute(f"""
                SELECT timestamp_ms, event_time, event_date, event_hour, hour_of_day FROM events_enriched
                WHERE {in_range} AND ({wrong}) LIMIT 1""").fetchone()
            raise CheckFailed(f"{count} rows disagree with timestamp_ms, e.g. timestamp_ms={example[0]}:"
                              f" {tuple(example[1:])}")
        far = 0
        for row in self.db.execute(f"""
                SELECT timestamp_ms, event_time, event_date, event_hour, hour_of_day
                FROM events_enriched WHERE NOT ({in_range})"""):
            far += 1
            expected = time_texts(row[0])
            expect(tuple(row[1:]) == expected,
                   f"timestamp_ms={row[0]}: found {tuple(row[1:])}, expected {expected}")
        return f"{self.event_count()} rows agree" + (f" ({far} outside years 0000-9999)" if far else "")

    def hours_of(self, table: str) -> str:
        """Check that ``table``'s hours are canonical, unique and contiguous from the first to the
        last event hour; returns a short description."""
        first, last = self.event_hour_range()
        rows, distinct, not_canonical, low, high = self.db.execute(f"""
            SELECT count(*), count(DISTINCT hour),
                   sum(hour IS NOT strftime('%Y-%m-%d %H:00:00', hour)),
                   min({HOUR_NUMBER_OF_TEXT.format(x='hour')}), max({HOUR_NUMBER_OF_TEXT.format(x='hour')})
            FROM {table}""").fetchone()
        if first is None:
            expect(rows == 0, f"{rows} rows but events_enriched has no event in the expected range")
            return "no events in the expected range, no hours"
        expect(not not_canonical, f"{not_canonical} hours not written as 'YYYY-MM-DD HH:00:00'")
        expect(rows == distinct, f"{rows - distinct} repeated hours")
        expect(low == first and high == last,
               f"hours run from {low} to {high} (hour numbers), events from {first} to {last}")
        expect(rows == last - first + 1,
               f"{rows} hours between the first and the last event hour, expected {last - first + 1} (gaps)")
        return f"{rows} hours, unique and contiguous"

    def check_event_type_counts_hours(self) -> str:
        return self.hours_of("event_type_counts")

    def check_hourly_trend_hours(self) -> str:
        detail = self.hours_of("hourly_trend")
        only_one = self.scalar("""
            SELECT count(*) FROM (
                SELECT hour FROM hourly_trend EXCEPT SELECT hour FROM event_type_counts
                UNION ALL
                SELECT hour FROM event_type_counts EXCEPT SELECT hour FROM hourly_trend)""")
        expect(only_one == 0, f"{only_one} hours in only one of hourly_trend and event_type_counts")
        return detail + ", same hours as event_type_counts"

    def check_event_type_counts_totals(self) -> str:
        # Counts per hour in cheap passes: all events (an index on event_hour answers that alone,
        # in its order, without reading a row: a filter on timestamp_ms would look up each row at
        # random), less those outside the expected range of times (usually none), then the few
        # events that are not views (views are the rest). Only events inside the expected range
        # count (the same hours as the whole range: an event outside it is in an hour of its own,
        # outside the range too).
        self.db.executescript(f"""
            DROP TABLE IF EXISTS temp.hour_every;
            CREATE TEMP TABLE hour_every AS
            SELECT event_hour AS hour, count(*) AS total FROM main.events_enriched GROUP BY event_hour;
            DROP TABLE IF EXISTS temp.hour_outside;
            CREATE TEMP TABLE hour_outside AS
            SELECT +event_hour AS hour, count(*) AS total FROM main.events_enriched
            WHERE {IN_RANGE} IS NOT 1 GROUP BY +event_hour;
            DROP TABLE IF EXISTS temp.hour_all;
            CREATE TEMP TABLE hour_all AS
            SELECT e.hour, e.total - coalesce(o.total, 0) AS total
            FROM temp.hour_every e LEFT JOIN temp.hour_outside o ON o.hour IS e.hour
            WHERE e.total > coalesce(o.total, 0);
            DROP TABLE IF EXISTS temp.hour_other;
            CREATE TEMP TABLE hour_other AS
            SELECT +event_hour AS hour, sum(event = 'addtocart') AS carts, sum(event = 'transaction') AS transactions,
                   count(*) AS others
            FROM main.events_enriched WHERE event IS NOT 'view' AND {IN_RANGE} GROUP BY +event_hour;
            DROP TABLE IF EXISTS temp.hour_calc;
            CREATE TEMP TABLE hour_calc AS
            SELECT a.hour, a.total - coalesce(o.others, 0) AS views, coalesce(o.carts, 0) AS carts,
                   coalesce(o.transactions, 0) AS transactions, a.total
            FROM temp.hour_all a LEFT JOIN temp.hour_other o ON o.hour = a.hour;
        """)
        inconsistent = self.scalar("""SELECT count(*) FROM event_type_counts
            WHERE total_events IS NOT "view" + addtocart + "transaction" """)
        expect(inconsistent == 0, f"{inconsistent} hours where view + addtocart + transaction != total_events")
        wrong = self.db.execute("""
            SELECT t.hour, t."view", t.addtocart, t."transaction", t.total_events,
                   coalesce(c.views, 0), coalesce(c.carts, 0), coalesce(c.transactions, 0), coalesce(c.total, 0)
            FROM event_type_counts t LEFT JOIN temp.hour_calc c ON c.hour = t.hour
            WHERE t."view" IS NOT coalesce(c.views, 0) OR t.addtocart IS NOT coalesce(c.carts, 0)
               OR t."transaction" IS NOT coalesce(c.transactions, 0) OR t.total_events IS NOT coalesce(c.total, 0)
            LIMIT 1""").fetchone()
        expect(wrong is None, f"hour {wrong and wrong[0]}: table says {wrong and wrong[1:5]},"
                              f" events_enriched gives {wrong and wrong[5:]}")
        missing = self.scalar("""SELECT count(*) FROM temp.hour_calc
            WHERE hour NOT IN (SELECT hour FROM event_type_counts)""")
        expect(missing == 0, f"{missing} event hours of events_enriched missing from event_type_counts")
        summed = self.scalar("SELECT sum(total_events) FROM event_type_counts") or 0
        in_range = self.scalar(f"SELECT count(*) FROM events_enriched WHERE {IN_RANGE}")
        expect(summed == in_range,
               f"total_events sum to {summed}, events_enriched has {in_range} events in the expected range")
        return f"{in_range} events over {self.scalar('SELECT count(*) FROM temp.hour_calc')} busy hours"

    def check_hourly_trend_totals(self) -> str:
        wrong = self.scalar("""
            SELECT count(*) FROM hourly_trend h LEFT JOIN event_type_counts t ON t.hour = h.hour
            WHERE h.total_events IS NOT t.total_events""")
        expect(wrong == 0, f"{wrong} hours where hourly_trend.total_events != event_type_counts.total_events")
        return "total_events equal to event_type_counts"

    def check_rolling_averages(self) -> str:
        first, _ = self.event_hour_range()
        if first is None:
            return "no hours"
        hour_number = HOUR_NUMBER_OF_TEXT.format(x="hour")
        averages = []
        for column, width in (("rolling_avg_24h", 24), ("rolling_avg_168h", 168)):
            averages.append(f"""
                abs({column} - sum(total_events) OVER (ORDER BY hn RANGE BETWEEN {width - 1} PRECEDING AND CURRENT ROW)
                    * 1.0 / min({width}, hn - {first} + 1)) AS diff_{width},
                {column} AS value_{width}""")
        count, example = self.db.execute(f"""
            SELECT count(*), min(hour) FROM (
                SELECT hour, {", ".join(averages)}
                FROM (SELECT hour, total_events, rolling_avg_24h, rolling_avg_168h, {hour_number} AS hn
                      FROM hourly_trend))
            WHERE value_24 IS NULL OR value_168 IS NULL OR diff_24 IS NULL OR diff_168 IS NULL
               OR diff_24 > {TOLERANCE} * max(1.0, abs(value_24))
               OR diff_168 > {TOLERANCE} * max(1.0, abs(value_168))""").fetchone()
        expect(count == 0, f"{count} hours whose rolling averages differ from the recomputed ones, e.g. {example}")
        return "rolling_avg_24h and rolling_avg_168h recomputed over spans of hours"

    def per_visitor_check(self, name: str, what: str) -> str:
        count, example = self.per_visitor_faults()[name]
        if count:
            keys = ("visitorid", "timestamp_ms", "event", "prev_event", "seconds_since_prev_event",
                    "session_id", "previous event", "previous timestamp_ms", "previous session_id")
            raise CheckFailed(f"{count} rows wrong, e.g. " + ", ".join(f"{k}={v}" for k, v in zip(keys, example)))
        return f"{what} (order: visitorid, timestamp_ms, {self.tiebreak})"

    def check_prev_event(self) -> str:
        return self.per_visitor_check("prev_event", "NULL exactly on first events, else the previous type")

    def check_seconds_since_prev_event(self) -> str:
        return self.per_visitor_check("seconds", "NULL exactly on first events, else the gap / 1000.0")

    def check_session_id(self) -> str:
        return self.per_visitor_check("session", "starts at 1, +1 exactly after gaps over 30 minutes")

    def session_aggregates(self) -> None:
        def build():
            self.ordered_events()
            self.db.executescript("""
                CREATE TEMP TABLE sess_calc(
                    visitorid INTEGER, session_id INTEGER, first_rn INTEGER, last_rn INTEGER,
                    events INTEGER, views INTEGER, addtocarts INTEGER, transactions INTEGER,
                    PRIMARY KEY (visitorid, session_id)) WITHOUT ROWID;
                INSERT INTO sess_calc
                SELECT visitorid, session_id, min(rn), max(rn), count(*), sum(event = 'view'),
                       sum(event = 'addtocart'), sum(event = 'transaction')
                FROM temp.ev GROUP BY visitorid, session_id;
            """)
            return True
        self.once("sess_calc", build)

    def check_sessions_totals(self) -> str:
        self.session_aggregates()
        sessions, events, views, carts, transactions = self.db.execute(
            "SELECT count(*), sum(events), sum(views), sum(addtocarts), sum(transactions) FROM sessions").fetchone()
        expected = self.db.execute(
            "SELECT count(*), sum(events), sum(views), sum(addtocarts), sum(transactions)"
            " FROM temp.sess_calc").fetchone()
        found = (sessions, events or 0, views or 0, carts or 0, transactions or 0)
        expected = tuple(value or 0 for value in expected)
        expect(found == expected,
               "(sessions, events, views, addtocarts, transactions) = "
               f"{found} in sessions, {expected} from events_enriched")
        return f"{sessions} sessions, {events or 0} events"

    def check_sessions_match_events(self) -> str:
        self.session_aggregates()
        if self.unique_index("sessions", {"visitorid", "session_id"}) is None:
            repeated = self.scalar("""SELECT count(*) FROM (
                SELECT 1 FROM sessions GROUP BY visitorid, session_id HAVING count(*) > 1)""")
            expect(repeated == 0, f"{repeated} (visitorid, session_id) repeated in sessions")
        count, example = self.db.execute(f"""
            SELECT count(*), min(s.visitorid || '/' || s.session_id)
            FROM sessions s
            LEFT JOIN temp.sess_calc c ON c.visitorid = s.visitorid AND c.session_id = s.session_id
            LEFT JOIN temp.ev f ON f.rn = c.first_rn
            LEFT JOIN temp.ev l ON l.rn = c.last_rn
            WHERE c.visitorid IS NULL
               OR s.start_time IS NOT f.event_time OR s.end_time IS NOT l.event_time
               OR s.duration_s IS NULL
               OR abs(s.duration_s - (l.timestamp_ms - f.timestamp_ms) / 1000.0) > {TOLERANCE}
               OR s.events IS NOT c.events OR s.views IS NOT c.views OR s.addtocarts IS NOT c.addtocarts
               OR s.transactions IS NOT c.transactions OR s.converted IS NOT (c.transactions > 0)
        """).fetchone()
        expect(count == 0, f"{count} sessions disagree with their events (or have none),"
                           f" e.g. visitor/session {example}")
        calc = self.scalar("SELECT count(*) FROM temp.sess_calc")
        rows = self.scalar("SELECT count(*) FROM sessions")
        expect(rows == calc, f"{rows} sessions, {calc} distinct (visitorid, session_id) in events_enriched")
        return f"{rows} sessions: start/end/duration/counts/converted agree with events_enriched"

    def check_view_to_purchase(self) -> str:
        self.db.executescript("""
            DROP TABLE IF EXISTS temp.last_purchase;
            CREATE TEMP TABLE last_purchase(visitorid INTEGER, itemid INTEGER, last_ms INTEGER,
                                        PRIMARY KEY (visitorid, itemid)) WITHOUT ROWID;
            INSERT INTO last_purchase
            SELECT visitorid, itemid, max(timestamp_ms) FROM main.events_enriched
            WHERE event = 'transaction' GROUP BY visitorid, itemid;
        """)
        wrong = """CASE WHEN e.event = 'view'
                        THEN e.view_to_purchase IS NOT (p.last_ms IS NOT NULL AND p.last_ms >= e.timestamp_ms)
                        ELSE e.view_to_purchase IS NOT NULL END"""
        count, example = self.db.execute(f"""
            SELECT count(*), min(e.visitorid || '/' || e.itemid || '/' || e.timestamp_ms)
            FROM events_enriched e
            LEFT JOIN temp.last_purchase p ON p.visitorid = e.visitorid AND p.itemid = e.itemid
            WHERE {wrong}""").fetchone()
        expect(count == 0, f"{count} rows wrong (NULL off views, 0/1 on views by a later-or-equal "
                           f"transaction), e.g. visitor/item/timestamp {example}")
        return "NULL off views; on views 1 exactly when a transaction of the item follows (>=)"

    def check_daily_funnel(self) -> str:
        self.db.executescript("""
            DROP TABLE IF EXISTS temp.funnel_calc;
            CREATE TEMP TABLE funnel_calc AS
            SELECT event_date AS date, count(DISTINCT visitorid) AS visitors,
                   count(DISTINCT CASE WHEN event = 'view' THEN visitorid END) AS viewers,
                   count(DISTINCT CASE WHEN event = 'addtocart' THEN visitorid END) AS carters,
                   count(DISTINCT CASE WHEN event = 'transaction' THEN visitorid END) AS buyers
            FROM main.events_enriched GROUP BY event_date;
        """)
        rows, distinct = self.db.execute("SELECT count(*), count(DISTINCT date) FROM daily_funnel").fetchone()
        expected = self.scalar("SELECT count(*) FROM temp.funnel_calc")
        expect(rows == distinct, f"{rows - distinct} repeated dates")
        expect(rows == expected, f"{rows} rows, {expected} dates with events")

        def rate(column: str, numerator: str, denominator: str) -> str:
            return f"""(CASE WHEN c.{denominator} = 0 THEN f.{column} IS NOT NULL
                        ELSE f.{column} IS NULL
                          OR abs(f.{column} - c.{numerator} * 1.0 / c.{denominator}) > {TOLERANCE} END)"""

        wrong = self.db.execute(f"""
            SELECT f.date FROM daily_funnel f LEFT JOIN temp.funnel_calc c ON c.date = f.date
            WHERE c.date IS NULL OR f.visitors IS NOT c.visitors OR f.viewers IS NOT c.viewers
               OR f.carters IS NOT c.carters OR f.buyers IS NOT c.buyers
               OR {rate("view_to_cart_rate", "carters", "viewers")}
               OR {rate("cart_to_purchase_rate", "buyers", "carters")}
               OR {rate("view_to_purchase_rate", "buyers", "viewers")}
            LIMIT 1""").fetchone()
        expect(wrong is None, f"date {wrong and wrong[0]}: counts or rates differ from events_enriched")
        return f"{rows} dates: visitors/viewers/carters/buyers and rates recomputed"

    def check_data_quality_names(self) -> str:
        values = self.data_quality_values()
        problems = [f"{name} appears {len(v)} times" for name, v in values.items() if len(v) > 1]
        problems += [f"{name} missing" for name in SINGLE_CHECK_NAMES if name not in values]
        files = [name[len("data_lines "):] for name in values if name.startswith("data_lines ")]
        for stem in ("events.csv", "category_tree.csv"):
            if sum(1 for f in files if f in (stem, stem + ".gz")) != 1:
                problems.append(f"not exactly one 'data_lines {stem}[.gz]'")
        if not any(f.startswith("item_properties") for f in files):
            problems.append("no 'data_lines item_properties*'")
        expect(not problems, "; ".join(problems))
        return f"{len(values)} check names, one row each"

    def single_value(self, name: str):
        values = self.data_quality_values().get(name)
        expect(values is not None and len(values) == 1, f"data_quality has no single row {name!r}")
        return values[0]

    def check_data_quality_counts(self) -> str:
        published = self.single_value("events_published")
        expect(published == self.event_count(),
               f"events_published = {published}, events_enriched has {self.event_count()}")
        rejected = self.single_value("rows_rejected")
        rows = self.scalar("SELECT count(*) FROM rejected_rows")
        expect(rejected == rows, f"rows_rejected = {rejected}, rejected_rows has {rows}")
        without = self.single_value("events_without_categoryid")
        nulls = self.scalar("SELECT count(*) FROM events_enriched WHERE categoryid IS NULL")
        expect(without == nulls, f"events_without_categoryid = {without}, events_enriched has {nulls} NULL categoryid")
        duplicates = self.single_value("duplicate_events_dropped")
        expect(duplicates is not None and duplicates >= 0, f"duplicate_events_dropped = {duplicates}")
        outside = self.single_value("events_outside_expected_range")
        counted = self.scalar(f"SELECT count(*) FROM events_enriched WHERE NOT {IN_RANGE}")
        expect(outside == counted,
               f"events_outside_expected_range = {outside}, events_enriched has {counted} outside the range")
        return (f"events_published={published}, rows_rejected={rejected}, "
                f"events_without_categoryid={without}, duplicate_events_dropped={duplicates}, "
                f"events_outside_expected_range={outside}")

    def check_data_lines(self) -> str:
        values = self.data_quality_values()
        rejected = dict(self.db.execute("SELECT source_file, count(*) FROM rejected_rows GROUP BY source_file"))
        lines_of = {name[len("data_lines "):]: v[0] for name, v in values.items() if name.startswith("data_lines ")}
        problems = []
        unknown = sorted(set(rejected) - set(lines_of))
        if unknown:
            problems.append(f"rejected rows of files without data_lines: {unknown}")
        property_loaded = 0
        for file, lines in sorted(lines_of.items()):
            file_rejected = rejected.get(file, 0)
            if file in ("events.csv", "events.csv.gz"):
                loaded = self.single_value("events_published") + self.single_value("duplicate_events_dropped")
                if lines != loaded + file_rejected:
                    problems.append(f"{file}: {lines} lines != {loaded} loaded (published + duplicates)"
                                    f" + {file_rejected} rejected")
            elif file in ("category_tree.csv", "category_tree.csv.gz"):
                loaded = self.scalar("SELECT count(*) FROM category_tree")
                if lines != loaded + file_rejected:
                    problems.append(f"{file}: {lines} lines != {loaded} categories + {file_rejected} rejected")
            elif file.startswith("item_properties"):
                if lines < file_rejected:
                    problems.append(f"{file}: {lines} lines < {file_rejected} rejected")
                property_loaded += lines - file_rejected
            else:
                problems.append(f"data_lines of an unexpected file {file!r}")
        latest = self.scalar("SELECT count(*) FROM item_properties")
        if latest > property_loaded:
            problems.append(f"item_properties has {latest} rows, more than the {property_loaded}"
                            " loaded snapshot lines")
        expect(not problems, "; ".join(problems))
        return "lines = loaded + rejected for " + ", ".join(sorted(lines_of))

    def check_rejected_rows(self) -> str:
        problems = []
        for file, line, reason in self.db.execute("SELECT source_file, line_number, reason FROM rejected_rows"):
            known = reason in FIXED_REASONS
            if isinstance(reason, str) and reason.startswith("wrong number of fields: expected "):
                known = True
            if isinstance(reason, str) and reason.endswith(" is not an integer"):
                known = reason[: -len(" is not an integer")] in INTEGER_COLUMNS
            if not known:
                problems.append(f"{file}:{line}: unknown reason {reason!r}")
            if not isinstance(line, int) or line < 2:
                problems.append(f"{file}:{line}: line number before the first data line")
            if len(problems) >= 3:
                break
        repeated = self.scalar("""SELECT count(*) FROM (
            SELECT 1 FROM rejected_rows GROUP BY source_file, line_number HAVING count(*) > 1)""")
        if repeated:
            problems.append(f"{repeated} (source_file, line_number) rejected twice")
        expect(not problems, "; ".join(problems))
        return f"{self.scalar('SELECT count(*) FROM rejected_rows')} rows with known reasons and data line numbers"

    def check_item_properties_unique(self) -> str:
        index = self.unique_index("item_properties", {"itemid", "property"})
        if index is not None:
            return f"enforced by unique index {index}"
        rows, distinct = self.db.execute("""SELECT (SELECT count(*) FROM item_properties),
            (SELECT count(*) FROM (SELECT DISTINCT itemid, property FROM item_properties))""").fetchone()
        expect(rows == distinct, f"{rows - distinct} rows repeat an earlier (itemid, property)")
        return "no (itemid, property) repeated"

    def check_category_tree(self) -> str:
        rows, distinct = self.db.execute("SELECT count(*), count(DISTINCT categoryid) FROM category_tree").fetchone()
        expect(rows == distinct, f"{rows - distinct} repeated categoryid")
        roots = self.scalar("""SELECT count(*) FROM category_tree
            WHERE depth IS NULL OR (depth = 0) IS NOT (categoryid = root_categoryid)
               OR (depth = 0) IS NOT (parentid IS NULL)""")
        expect(roots == 0, f"{roots} categories where depth = 0, categoryid = root_categoryid and"
                           " parentid IS NULL do not go together")
        wrong = self.db.execute("""
            SELECT c.categoryid FROM category_tree c LEFT JOIN category_tree p ON p.categoryid = c.parentid
            WHERE c.parentid IS NOT NULL AND CASE WHEN p.categoryid IS NULL
                THEN c.root_categoryid IS NOT c.parentid OR c.depth IS NOT 1
                ELSE c.root_categoryid IS NOT p.root_categoryid OR c.depth IS NOT p.depth + 1 END
            LIMIT 1""").fetchone()
        expect(wrong is None, f"category {wrong and wrong[0]}: root/depth disagree with its parent's")
        return f"{rows} categories, roots at depth 0, root and depth follow the parents"

    def check_events_category_columns(self) -> str:
        self.db.executescript("""
            DROP TABLE IF EXISTS temp.category;
            CREATE TEMP TABLE category(categoryid INTEGER PRIMARY KEY, parentid INTEGER,
                                   root_categoryid INTEGER) WITHOUT ROWID;
            INSERT OR IGNORE INTO category SELECT categoryid, parentid, root_categoryid
            FROM main.category_tree WHERE categoryid IS NOT NULL;
        """)
        count, example = self.db.execute("""
            SELECT count(*), min(e.categoryid) FROM events_enriched e
            LEFT JOIN temp.category c ON c.categoryid = e.categoryid
            WHERE e.parent_categoryid IS NOT c.parentid OR e.root_categoryid IS NOT c.root_categoryid""").fetchone()
        expect(count == 0, f"{count} events whose parent/root differ from category_tree, e.g. categoryid {example}")
        return "parent_categoryid/root_categoryid from category_tree, NULL outside it"

    def check_point_in_time_attributes(self) -> str:
        """Where item_properties can tell: a non-NULL attribute needs a snapshot of (item, property),
        and an event at or after the latest snapshot carries that snapshot's value read as an
        integer (NULL if it is not one)."""
        as_integer = sql_as_integer("value")

        def latest(prop: str, what: str) -> str:
            return f"max(CASE WHEN property = '{prop}' THEN {what} END)"

        self.db.executescript(f"""
            DROP TABLE IF EXISTS temp.latest_attribute;
            CREATE TEMP TABLE latest_attribute(
                itemid INTEGER PRIMARY KEY, category_ms INTEGER, category INTEGER,
                available_ms INTEGER, available INTEGER);
            INSERT INTO latest_attribute
            SELECT itemid, {latest('categoryid', 'timestamp_ms')}, {latest('categoryid', as_integer)},
                   {latest('available', 'timestamp_ms')}, {latest('available', as_integer)}
            FROM main.item_properties
            WHERE property IN ('categoryid', 'available') AND itemid IN (SELECT itemid FROM main.events_enriched)
            GROUP BY itemid;
        """)

        def contradicts(column: str) -> str:
            return f"""CASE WHEN a.{column}_ms IS NULL THEN e.{column} IS NOT NULL
                            WHEN e.timestamp_ms >= a.{column}_ms THEN e.{column} IS NOT a.{column}
                            ELSE 0 END"""

        row = self.db.execute(f"""
            SELECT coalesce(sum({contradicts("category")}), 0),
                   min(CASE WHEN {contradicts("category")} THEN e.itemid || '@' || e.timestamp_ms END),
                   coalesce(sum({contradicts("available")}), 0),
                   min(CASE WHEN {contradicts("available")} THEN e.itemid || '@' || e.timestamp_ms END)
            FROM (SELECT itemid, timestamp_ms, categoryid AS category, available FROM events_enriched) e
            LEFT JOIN temp.latest_attribute a ON a.itemid = e.itemid""").fetchone()
        for column, count, example in (("categoryid", row[0], row[1]), ("available", row[2], row[3])):
            expect(count == 0, f"{count} events whose {column} contradicts item_properties"
                               f" (none known, or not the latest value after its snapshot), e.g. item@time {example}")
        return "categoryid and available agree with item_properties where it can tell"

    # ------------------------------------------------------------------ SPEC "Analyst tables"

    def require(self, *tables: str) -> None:
        """FAIL with "table missing" (or the SPEC columns missing) unless every table is there."""
        present = {row[0] for row in self.db.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}
        missing = [table for table in tables if table not in present]
        expect(not missing, "table missing: " + ", ".join(missing))
        columns = [f"{table}.{column}" for table in tables for column in SPEC_COLUMNS[table]
                   if column not in self.columns[table]]
        expect(not columns, "column missing: " + ", ".join(columns))

    def repeated_keys(self, table: str, key: list[str]) -> int:
        """How many rows of ``table`` repeat an earlier row's ``key`` (0 when a unique index says so)."""
        if self.unique_index(table, set(key)) is not None:
            return 0
        columns = ", ".join(key)
        return self.scalar(f"SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT {columns} FROM {table}))"
                           f" FROM {table}")

    def check_visitors(self) -> str:
        self.require("visitors")
        self.session_aggregates()
        self.db.executescript("""
            CREATE TEMP TABLE vis_calc(
                visitorid INTEGER PRIMARY KEY, first_rn INTEGER, last_rn INTEGER, events INTEGER,
                views INTEGER, addtocarts INTEGER, transactions INTEGER, sessions INTEGER);
            INSERT INTO vis_calc
            SELECT visitorid, min(first_rn), max(last_rn), sum(events), sum(views), sum(addtocarts),
                   sum(transactions), max(session_id)
            FROM temp.sess_calc GROUP BY visitorid;
            CREATE TEMP TABLE vis_orders(visitorid INTEGER PRIMARY KEY, orders INTEGER);
            INSERT INTO vis_orders SELECT visitorid, count(DISTINCT transactionid) FROM main.events_enriched
            WHERE event = 'transaction' GROUP BY visitorid;
        """)
        segment = """CASE WHEN {t} > 0 THEN 'buyer' WHEN {a} > 0 THEN 'carter' WHEN {e} > 1 THEN 'browser'
                          ELSE 'bounce' END"""
        faults = {
            "not a visitor of events_enriched": "c.visitorid IS NULL",
            "first/last_event_time": "v.first_event_time IS NOT f.event_time OR v.last_event_time IS NOT l.event_time",
            "events/views/addtocarts/transactions": "v.events IS NOT c.events OR v.views IS NOT c.views"
                " OR v.addtocarts IS NOT c.addtocarts OR v.transactions IS NOT c.transactions",
            "sessions (the largest session_id)": "v.sessions IS NOT c.sessions",
            "orders": "v.orders IS NOT coalesce(o.orders, 0)",
            "segment": f"v.segment IS NOT {segment.format(t='v.transactions', a='v.addtocarts', e='v.events')}"
                       f" OR v.segment IS NOT {segment.format(t='c.transactions', a='c.addtocarts', e='c.events')}",
        }
        select = ", ".join(f"coalesce(sum({sql}), 0), min(CASE WHEN {sql} THEN v.visitorid END)" for sql in faults.values())
        row = self.db.execute(f"""
            SELECT {select} FROM main.visitors v
            LEFT JOIN temp.vis_calc c ON c.visitorid = v.visitorid
            LEFT JOIN temp.vis_orders o ON o.visitorid = v.visitorid
            LEFT JOIN temp.ev f ON f.rn = c.first_rn
            LEFT JOIN temp.ev l ON l.rn = c.last_rn""").fetchone()
        problems = [f"{row[2 * k]} rows wrong in {name}, e.g. visitorid {row[2 * k + 1]}"
                    for k, name in enumerate(faults) if row[2 * k]]
        repeated = self.repeated_keys("visitors", ["visitorid"])
        if repeated:
            problems.append(f"{repeated} rows repeat a visitorid")
        rows, expected = self.scalar("SELECT count(*) FROM visitors"), self.scalar("SELECT count(*) FROM temp.vis_calc")
        if rows != expected:
            problems.append(f"{rows} rows, {expected} distinct visitorid in events_enriched")
        expect(not problems, "; ".join(problems))
        return f"{rows} visitors: times, counts, sessions, orders and segment agree with events_enriched"

    def check_sessions_cart_columns(self) -> str:
        self.require("sessions")
        self.session_aggregates()
        # The rules the columns follow among themselves...
        faults = {
            "abandoned_cart NULL exactly when addtocarts = 0": "(abandoned_cart IS NULL) IS NOT (addtocarts = 0)",
            "abandoned_cart = 1 exactly without a transaction":
                "abandoned_cart IS NOT NULL AND abandoned_cart IS NOT (transactions = 0)",
            "recovered NULL unless abandoned_cart = 1, else 0 or 1":
                "CASE WHEN abandoned_cart = 1 THEN recovered IS NULL OR recovered NOT IN (0, 1)"
                " ELSE recovered IS NOT NULL END",
            "cart_items between 1 and addtocarts in cart sessions, else 0":
                "CASE WHEN addtocarts > 0 THEN cart_items IS NULL OR cart_items < 1 OR cart_items > addtocarts"
                " ELSE cart_items IS NOT 0 END",
        }
        select = ", ".join(f"coalesce(sum({sql}), 0), min(CASE WHEN {sql} THEN visitorid || '/' || session_id END)"
                           for sql in faults.values())
        row = self.db.execute(f"""
            SELECT {select}, coalesce(sum(addtocarts > 0), 0), coalesce(sum(abandoned_cart = 1), 0),
                   coalesce(sum(addtocarts > 0 AND converted = 1), 0)
            FROM main.sessions""").fetchone()
        problems = [f"{row[2 * k]} sessions break '{name}', e.g. visitor/session {row[2 * k + 1]}"
                    for k, name in enumerate(faults) if row[2 * k]]
        carts, abandoned, converted = row[-3:]
        if carts != abandoned + converted:
            problems.append(f"{carts} cart sessions != {abandoned} abandoned + {converted} converted")
        expect(not problems, "; ".join(problems))
        # ...and recomputed from the events: the distinct carted items, and whether one of them is
        # bought by the visitor in a later session.
        self.db.executescript("""
            DROP TABLE IF EXISTS temp.cart_item;
            CREATE TEMP TABLE cart_item(visitorid INTEGER, session_id INTEGER, itemid INTEGER,
                                        PRIMARY KEY (visitorid, session_id, itemid)) WITHOUT ROWID;
            INSERT OR IGNORE INTO cart_item SELECT visitorid, session_id, itemid FROM temp.ev WHERE event = 'addtocart';
            DROP TABLE IF EXISTS temp.last_bought;
            CREATE TEMP TABLE last_bought(visitorid INTEGER, itemid INTEGER, session_id INTEGER,
                                          PRIMARY KEY (visitorid, itemid)) WITHOUT ROWID;
            INSERT INTO last_bought SELECT visitorid, itemid, max(session_id) FROM temp.ev
            WHERE event = 'transaction' GROUP BY visitorid, itemid;
            DROP TABLE IF EXISTS temp.cart_calc;
            CREATE TEMP TABLE cart_calc(visitorid INTEGER, session_id INTEGER, cart_items INTEGER,
                                        bought_later INTEGER, PRIMARY KEY (visitorid, session_id)) WITHOUT ROWID;
            INSERT INTO cart_calc
            SELECT c.visitorid, c.session_id, count(*), max(coalesce(b.session_id > c.session_id, 0))
            FROM temp.cart_item c LEFT JOIN temp.last_bought b ON b.visitorid = c.visitorid AND b.itemid = c.itemid
            GROUP BY c.visitorid, c.session_id;
        """)
        count, example = self.db.execute("""
            SELECT count(*), min(c.visitorid || '/' || c.session_id)
            FROM temp.cart_calc c
            LEFT JOIN main.sessions s ON s.visitorid = c.visitorid AND s.session_id = c.session_id
            WHERE s.cart_items IS NOT c.cart_items
               OR (s.abandoned_cart = 1 AND s.recovered IS NOT c.bought_later)""").fetchone()
        expect(count == 0, f"{count} cart sessions whose cart_items or recovered differ from events_enriched,"
                           f" e.g. visitor/session {example}")
        expected = self.scalar("SELECT count(*) FROM temp.cart_calc")
        expect(carts == expected, f"{carts} sessions with addtocarts > 0, {expected} with an addtocart in events_enriched")
        return f"{carts} cart sessions = {abandoned} abandoned + {converted} converted; cart_items, recovered recomputed"

    def check_daily_cart_abandonment(self) -> str:
        self.require("daily_cart_abandonment", "sessions")
        self.db.executescript("""
            DROP TABLE IF EXISTS temp.abandon_calc;
            CREATE TEMP TABLE abandon_calc AS
            SELECT substr(start_time, 1, instr(start_time, ' ') - 1) AS date, count(*) AS carts,
                   count(CASE WHEN abandoned_cart = 1 THEN 1 END) AS abandoned,
                   count(CASE WHEN recovered = 1 THEN 1 END) AS recovered
            FROM main.sessions WHERE addtocarts > 0 GROUP BY 1;
        """)

        def rate(column: str, numerator: str, denominator: str) -> str:
            return f"""(CASE WHEN c.{denominator} = 0 THEN d.{column} IS NOT NULL
                        ELSE d.{column} IS NULL
                          OR abs(d.{column} - c.{numerator} * 1.0 / c.{denominator}) > {TOLERANCE} END)"""

        count, example = self.db.execute(f"""
            SELECT count(*), min(d.date) FROM main.daily_cart_abandonment d
            LEFT JOIN temp.abandon_calc c ON c.date = d.date
            WHERE c.date IS NULL OR d.cart_sessions IS NOT c.carts OR d.abandoned_sessions IS NOT c.abandoned
               OR d.recovered_sessions IS NOT c.recovered
               OR {rate("abandonment_rate", "abandoned", "carts")} OR {rate("recovery_rate", "recovered", "abandoned")}
        """).fetchone()
        expect(count == 0, f"{count} dates whose counts or rates differ from the sessions started that date, e.g. {example}")
        rows, expected = self.scalar("SELECT count(*) FROM daily_cart_abandonment"), self.scalar(
            "SELECT count(*) FROM temp.abandon_calc")
        repeated = self.repeated_keys("daily_cart_abandonment", ["date"])
        expect(repeated == 0, f"{repeated} repeated dates")
        expect(rows == expected, f"{rows} rows, {expected} dates with a cart session")
        return f"{rows} dates: totals and rates equal the sessions' by date of start_time"

    def check_purchase_timing(self) -> str:
        self.require("purchase_timing")
        self.db.executescript("""
            DROP TABLE IF EXISTS temp.bought_pair;
            CREATE TEMP TABLE bought_pair(visitorid INTEGER, itemid INTEGER, PRIMARY KEY (visitorid, itemid)) WITHOUT ROWID;
            INSERT OR IGNORE INTO bought_pair SELECT visitorid, itemid FROM main.events_enriched WHERE event = 'transaction';
            DROP TABLE IF EXISTS temp.pair_event;
            CREATE TEMP TABLE pair_event AS
            SELECT e.visitorid, e.itemid, e.event, e.timestamp_ms, e.session_id, e.event_time, e.transactionid
            FROM main.events_enriched e
            WHERE EXISTS (SELECT 1 FROM temp.bought_pair p WHERE p.visitorid = e.visitorid AND p.itemid = e.itemid);
            CREATE INDEX temp.pair_event_key ON pair_event(visitorid, itemid, event, timestamp_ms);
            DROP TABLE IF EXISTS temp.purchase_first;
            CREATE TEMP TABLE purchase_first AS
            SELECT t.visitorid, t.itemid, t.transactionid, t.event_time AS purchase_time, t.timestamp_ms,
                   t.session_id,
                   (SELECT min(v.timestamp_ms) FROM temp.pair_event v WHERE v.visitorid = t.visitorid
                      AND v.itemid = t.itemid AND v.event = 'view' AND v.timestamp_ms <= t.timestamp_ms) AS view_ms,
                   (SELECT min(c.timestamp_ms) FROM temp.pair_event c WHERE c.visitorid = t.visitorid
                      AND c.itemid = t.itemid AND c.event = 'addtocart' AND c.timestamp_ms <= t.timestamp_ms) AS cart_ms
            FROM temp.pair_event t WHERE t.event = 'transaction';
            DROP TABLE IF EXISTS temp.purchase_calc;
            CREATE TEMP TABLE purchase_calc AS
            SELECT p.visitorid, p.itemid, p.transactionid, p.purchase_time,
                   v.event_time AS first_view_time, c.event_time AS first_cart_time,
                   (p.timestamp_ms - p.view_ms) / 1000.0 AS view_s, (p.timestamp_ms - p.cart_ms) / 1000.0 AS cart_s,
                   p.session_id - v.session_id + 1 AS sessions
            FROM temp.purchase_first p
            LEFT JOIN temp.pair_event v ON v.visitorid = p.visitorid AND v.itemid = p.itemid AND v.event = 'view'
                 AND v.timestamp_ms = p.view_ms AND v.rowid = (SELECT min(x.rowid) FROM temp.pair_event x
                     WHERE x.visitorid = p.visitorid AND x.itemid = p.itemid AND x.event = 'view' AND x.timestamp_ms = p.view_ms)
            LEFT JOIN temp.pair_event c ON c.visitorid = p.visitorid AND c.itemid = p.itemid AND c.event = 'addtocart'
                 AND c.timestamp_ms = p.cart_ms AND c.rowid = (SELECT min(x.rowid) FROM temp.pair_event x
                     WHERE x.visitorid = p.visitorid AND x.itemid = p.itemid AND x.event = 'addtocart' AND x.timestamp_ms = p.cart_ms);
            CREATE INDEX temp.purchase_calc_key ON purchase_calc(visitorid, itemid, transactionid, purchase_time);
        """)

        def seconds(column: str, expected: str) -> str:
            return (f"(CASE WHEN c.{expected} IS NULL THEN p.{column} IS NOT NULL ELSE p.{column} IS NULL"
                    f" OR abs(p.{column} - c.{expected}) > {TOLERANCE} * max(1.0, abs(c.{expected})) END)")

        faults = {
            "not a transaction row": "c.visitorid IS NULL",
            "first_view_time": "p.first_view_time IS NOT c.first_view_time",
            "first_cart_time": "p.first_cart_time IS NOT c.first_cart_time",
            "seconds_view_to_purchase": seconds("seconds_view_to_purchase", "view_s"),
            "seconds_cart_to_purchase": seconds("seconds_cart_to_purchase", "cart_s"),
            "sessions_to_purchase": "p.sessions_to_purchase IS NOT c.sessions",
        }
        select = ", ".join(f"coalesce(sum({sql}), 0),"
                           f" min(CASE WHEN {sql} THEN p.visitorid || '/' || p.itemid || '/' || p.purchase_time END)"
                           for sql in faults.values())
        row = self.db.execute(f"""
            SELECT {select} FROM main.purchase_timing p
            LEFT JOIN temp.purchase_calc c ON c.visitorid = p.visitorid AND c.itemid = p.itemid
                 AND c.transactionid = p.transactionid AND c.purchase_time = p.purchase_time""").fetchone()
        problems = [f"{row[2 * k]} rows wrong in {name}, e.g. visitor/item/purchase_time {row[2 * k + 1]}"
                    for k, name in enumerate(faults) if row[2 * k]]
        rows, expected = self.scalar("SELECT count(*) FROM purchase_timing"), self.scalar(
            "SELECT count(*) FROM temp.purchase_calc")
        unmatched = self.scalar("""SELECT count(*) FROM temp.purchase_calc c WHERE NOT EXISTS (
            SELECT 1 FROM main.purchase_timing p WHERE c.visitorid = p.visitorid AND c.itemid = p.itemid
                 AND c.transactionid = p.transactionid AND c.purchase_time = p.purchase_time)""")
        if rows != expected or unmatched:
            problems.append(f"{rows} rows for {expected} transaction rows of events_enriched,"
                            f" {unmatched} of them without a row")
        expect(not problems, "; ".join(problems))
        return f"{rows} purchases, one per transaction row: first view/cart times, seconds and sessions recomputed"

    def check_cohort_retention(self) -> str:
        self.require("cohort_retention")
        self.ordered_events()
        day = "(timestamp_ms / 86400000)"  # events in the expected range: positive, so / is floor
        # temp.ev is in (visitorid, time) order, so the rows arrive in key order (cheap upserts)
        self.db.executescript(f"""
            DROP TABLE IF EXISTS temp.visitor_week;
            CREATE TEMP TABLE visitor_week(visitorid INTEGER, week INTEGER, bought INTEGER,
                                           PRIMARY KEY (visitorid, week)) WITHOUT ROWID;
            INSERT INTO visitor_week
            SELECT visitorid, {day} - ({day} + 3) % 7, event = 'transaction'
            FROM temp.ev WHERE {IN_RANGE} ORDER BY rn
            ON CONFLICT (visitorid, week) DO UPDATE SET bought = max(bought, excluded.bought);
            DROP TABLE IF EXISTS temp.cohort_of;
            CREATE TEMP TABLE cohort_of(visitorid INTEGER PRIMARY KEY, cohort INTEGER);
            INSERT INTO cohort_of SELECT visitorid, min(week) FROM temp.visitor_week GROUP BY visitorid;
            DROP TABLE IF EXISTS temp.cohort_calc;
            CREATE TEMP TABLE cohort_calc(cohort INTEGER, week_number INTEGER, active INTEGER, buyers INTEGER,
                                          PRIMARY KEY (cohort, week_number)) WITHOUT ROWID;
            INSERT INTO cohort_calc
            SELECT c.cohort, (w.week - c.cohort) / 7, count(*), sum(w.bought)
            FROM temp.visitor_week w JOIN temp.cohort_of c ON c.visitorid = w.visitorid GROUP BY 1, 2;
            DROP TABLE IF EXISTS temp.cohort_size;
            CREATE TEMP TABLE cohort_size AS SELECT cohort, count(*) AS size FROM temp.cohort_of GROUP BY cohort;
        """)
        last_week = self.scalar("SELECT max(week) FROM temp.visitor_week")
        in_range_visitors = self.scalar("SELECT count(*) FROM temp.cohort_of")
        # What the table must say about itself...
        problems = []
        cohorts, sizes = self.db.execute("""SELECT count(*), coalesce(sum(visitors), 0)
            FROM cohort_retention WHERE week_number = 0""").fetchone()
        if sizes != in_range_visitors:
            problems.append(f"cohort sizes sum to {sizes}, {in_range_visitors} visitors have an event in the"
                            " expected range")
        week0 = self.scalar("SELECT count(*) FROM cohort_retention WHERE week_number = 0 AND active_visitors IS NOT visitors")
        if week0:
            problems.append(f"{week0} cohorts whose week 0 active_visitors != visitors")
        above = self.scalar("""SELECT count(*) FROM cohort_retention WHERE NOT (active_visitors <= visitors
            AND buyers <= active_visitors AND buyers >= 0)""")
        if above:
            problems.append(f"{above} rows not 0 <= buyers <= active_visitors <= visitors")
        if last_week is not None:
            gaps = self.scalar(f"""SELECT count(*) FROM (
                SELECT cohort_week, count(*) AS weeks, min(week_number) AS low, max(week_number) AS high,
                       count(DISTINCT week_number) AS distinct_weeks,
                       CAST(julianday(cohort_week) - 2440587.5 AS INTEGER) AS cohort_day
                FROM cohort_retention GROUP BY cohort_week)
                WHERE low IS NOT 0 OR weeks IS NOT distinct_weeks OR weeks IS NOT high + 1
                   OR high IS NOT ({last_week} - cohort_day) / 7""")
            if gaps:
                problems.append(f"{gaps} cohorts whose weeks are not 0 .. the week of the last event, each once")
        expect(not problems, "; ".join(problems))
        # ...and every row recomputed.
        week = "date(s.cohort * 86400, 'unixepoch')"
        grid = f"""
            WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k < 10000)
            SELECT {week} AS cohort_week, n.k AS week_number, s.size, coalesce(c.active, 0) AS active,
                   coalesce(c.buyers, 0) AS buyers
            FROM temp.cohort_size s JOIN n ON n.k <= ({last_week if last_week is not None else 0} - s.cohort) / 7
            LEFT JOIN temp.cohort_calc c ON c.cohort = s.cohort AND c.week_number = n.k"""
        self.db.executescript(f"""
            DROP TABLE IF EXISTS temp.cohort_grid;
            CREATE TEMP TABLE cohort_grid(cohort_week TEXT, week_number INTEGER, size INTEGER, active INTEGER,
                                          buyers INTEGER, PRIMARY KEY (cohort_week, week_number)) WITHOUT ROWID;
            INSERT INTO cohort_grid {grid};
        """)

        def rate(column: str, numerator: str) -> str:
            return f"(r.{column} IS NULL OR abs(r.{column} - g.{numerator} * 1.0 / g.size) > {TOLERANCE})"

        count, example = self.db.execute(f"""
            SELECT count(*), min(r.cohort_week || ' +' || r.week_number) FROM cohort_retention r
            LEFT JOIN temp.cohort_grid g ON g.cohort_week = r.cohort_week AND g.week_number = r.week_number
            WHERE g.cohort_week IS NULL OR r.visitors IS NOT g.size OR r.active_visitors IS NOT g.active
               OR r.buyers IS NOT g.buyers OR {rate("retention_rate", "active")} OR {rate("purchase_rate", "buyers")}
        """).fetchone()
        expect(count == 0, f"{count} rows differ from the recomputed cohorts (or should not exist), e.g. {example}")
        rows, expected = self.scalar("SELECT count(*) FROM cohort_retention"), self.scalar(
            "SELECT count(*) FROM temp.cohort_grid")
        expect(rows == expected, f"{rows} rows, {expected} (cohort, week) expected")
        return f"{cohorts} cohorts of {in_range_visitors} visitors, {rows} rows recomputed (every week present)"

    def check_category_daily_funnel(self) -> str:
        self.require("category_daily_funnel", "daily_funnel")
        problems = []
        repeated = self.scalar("""SELECT count(*) - (SELECT count(*) FROM (
            SELECT DISTINCT date, coalesce(root_categoryid, 'NULL') FROM category_daily_funnel))
            FROM category_daily_funnel""")
        if repeated:
            problems.append(f"{repeated} rows repeat a (date, root_categoryid)")
        inside = self.scalar(f"""SELECT count(*) FROM category_daily_funnel WHERE NOT (visitors >= 1
            AND viewers BETWEEN 0 AND visitors AND carters BETWEEN 0 AND visitors AND buyers BETWEEN 0 AND visitors)
            OR (CASE WHEN viewers = 0 THEN view_to_cart_rate IS NOT NULL
                     ELSE abs(view_to_cart_rate - carters * 1.0 / viewers) > {TOLERANCE} IS NOT 0 END)
            OR (CASE WHEN carters = 0 THEN cart_to_purchase_rate IS NOT NULL
                     ELSE abs(cart_to_purchase_rate - buyers * 1.0 / carters) > {TOLERANCE} IS NOT 0 END)
            OR (CASE WHEN viewers = 0 THEN view_to_purchase_rate IS NOT NULL
                     ELSE abs(view_to_purchase_rate - buyers * 1.0 / viewers) > {TOLERANCE} IS NOT 0 END)""")
        if inside:
            problems.append(f"{inside} rows whose counts are not 0 <= viewers/carters/buyers <= visitors, visitors >= 1,"
                            " or whose rates differ from their counts")
        # Per date, against daily_funnel: no group has more of a count than the whole day, and the
        # groups together have at least as many (a visitor can be in several groups).
        measures = ("visitors", "viewers", "carters", "buyers")
        per_date = ", ".join(f"max({m}) AS max_{m}, sum({m}) AS sum_{m}" for m in measures)
        wrong = " OR ".join(f"g.max_{m} > d.{m} OR g.sum_{m} < d.{m}" for m in measures)
        count, example = self.db.execute(f"""
            SELECT count(*), min(coalesce(g.date, d.date)) FROM
                (SELECT date, {per_date} FROM category_daily_funnel GROUP BY date) g
                FULL JOIN daily_funnel d ON d.date = g.date
            WHERE g.date IS NULL OR d.date IS NULL OR {wrong}""").fetchone()
        if count:
            problems.append(f"{count} dates where the groups disagree with daily_funnel (a group above the day,"
                            f" the groups together below it, or a date in only one table), e.g. {example}")
        expect(not problems, "; ".join(problems))
        rows = self.scalar("SELECT count(*) FROM category_daily_funnel")
        return f"{rows} (date, root) groups: consistent with daily_funnel, rates recomputed from the counts"

    def check_item_pairs(self) -> str:
        self.require("item_pairs")
        self.db.executescript("""
            DROP TABLE IF EXISTS temp.pair;
            CREATE TEMP TABLE pair(itemid INTEGER, rank INTEGER, other_itemid INTEGER, together INTEGER, lift REAL,
                                   PRIMARY KEY (itemid, rank)) WITHOUT ROWID;
            INSERT OR IGNORE INTO pair SELECT itemid, rank, other_itemid, together, lift FROM main.item_pairs;
            CREATE INDEX temp.pair_other ON pair(itemid, other_itemid);
        """)
        problems = []
        repeated = self.scalar("SELECT count(*) FROM item_pairs") - self.scalar("SELECT count(*) FROM temp.pair")
        if repeated:
            problems.append(f"{repeated} rows repeat an (itemid, rank)")
        ranks = self.scalar(f"""SELECT count(*) FROM (SELECT itemid, count(*) AS n, min(rank) AS low, max(rank) AS high
            FROM temp.pair GROUP BY itemid) WHERE low IS NOT 1 OR high IS NOT n OR n > {MAX_PAIRS_PER_ITEM}""")
        if ranks:
            problems.append(f"{ranks} items whose ranks are not 1, 2, ... (at most {MAX_PAIRS_PER_ITEM})")
        rows = self.scalar("""SELECT count(*) FROM temp.pair
            WHERE together IS NULL OR together < 2 OR other_itemid IS NULL OR other_itemid = itemid""")
        if rows:
            problems.append(f"{rows} rows with together < 2 or an item paired with itself")
        twice = self.scalar("SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT itemid, other_itemid FROM temp.pair))"
                            " FROM temp.pair")
        if twice:
            problems.append(f"{twice} rows repeat an (itemid, other_itemid)")
        # best first: together descending, then the smaller other_itemid
        order = self.scalar("""SELECT count(*) FROM temp.pair p JOIN temp.pair q ON q.itemid = p.itemid AND q.rank = p.rank + 1
            WHERE NOT (p.together > q.together OR (p.together = q.together AND p.other_itemid < q.other_itemid))""")
        if order:
            problems.append(f"{order} consecutive ranks out of order (together descending, then smaller other_itemid)")
        # together is symmetric: b's list has a with the same count, or is full of better pairs
        asymmetric, example = self.db.execute(f"""
            SELECT count(*), min(p.itemid || '/' || p.other_itemid) FROM temp.pair p
            LEFT JOIN temp.pair q ON q.itemid = p.other_itemid AND q.other_itemid = p.itemid
            LEFT JOIN temp.pair w ON w.itemid = p.other_itemid AND w.rank = {MAX_PAIRS_PER_ITEM}
            WHERE CASE WHEN q.itemid IS NOT NULL THEN q.together IS NOT p.together
                            OR abs(q.lift - p.lift) > {TOLERANCE} * max(1.0, abs(p.lift)) IS NOT 0
                       ELSE w.itemid IS NULL OR w.together < p.together
                            OR (w.together = p.together AND w.other_itemid > p.itemid) END""").fetchone()
        if asymmetric:
            problems.append(f"{asymmetric} pairs (a, b) whose together/lift differ from (b, a), or missing from b's"
                            f" list where they would rank, e.g. {example}")
        expect(not problems, "; ".join(problems))
        # lift = together x N / (sessions(a) x sessions(b)), N and sessions() from the eligible sessions
        self.db.executescript(f"""
            DROP TABLE IF EXISTS temp.session_view;
            CREATE TEMP TABLE session_view(visitorid INTEGER, session_id INTEGER, itemid INTEGER,
                                           PRIMARY KEY (visitorid, session_id, itemid)) WITHOUT ROWID;
            INSERT OR IGNORE INTO session_view SELECT visitorid, session_id, itemid FROM main.events_enriched
            WHERE event = 'view';
            DROP TABLE IF EXISTS temp.eligible;
            CREATE TEMP TABLE eligible(visitorid INTEGER, session_id INTEGER, PRIMARY KEY (visitorid, session_id))
            WITHOUT ROWID;
            INSERT INTO eligible SELECT visitorid, session_id FROM temp.session_view GROUP BY visitorid, session_id
            HAVING count(*) <= {MAX_ITEMS_OF_A_SHOPPING_SESSION};
            DROP TABLE IF EXISTS temp.paired_item;
            CREATE TEMP TABLE paired_item(itemid INTEGER PRIMARY KEY, sessions INTEGER);
            INSERT INTO paired_item(itemid) SELECT itemid FROM temp.pair UNION SELECT other_itemid FROM temp.pair;
            DROP TABLE IF EXISTS temp.item_sessions;
            CREATE TEMP TABLE item_sessions(itemid INTEGER PRIMARY KEY, sessions INTEGER);
            INSERT INTO item_sessions
            SELECT v.itemid, count(*) FROM temp.session_view v JOIN temp.eligible e
                 ON e.visitorid = v.visitorid AND e.session_id = v.session_id
            WHERE v.itemid IN (SELECT itemid FROM temp.paired_item) GROUP BY v.itemid;
        """)
        n = self.scalar("SELECT count(*) FROM temp.eligible")
        count, example = self.db.execute(f"""
            SELECT count(*), min(p.itemid || '/' || p.other_itemid) FROM temp.pair p
            LEFT JOIN temp.item_sessions a ON a.itemid = p.itemid
            LEFT JOIN temp.item_sessions b ON b.itemid = p.other_itemid
            WHERE p.lift IS NULL OR a.sessions IS NULL OR b.sessions IS NULL OR p.together > min(a.sessions, b.sessions)
               OR abs(p.lift - p.together * {n}.0 / (a.sessions * b.sessions)) > {TOLERANCE} * max(1.0, abs(p.lift))
        """).fetchone()
        expect(count == 0, f"{count} rows whose lift is not together x N / (sessions(a) x sessions(b)) with N = {n}"
                           f" eligible sessions (or together exceeds the sessions of an item), e.g. {example}")
        return (f"{self.scalar('SELECT count(*) FROM temp.pair')} rows: ranks 1.. <= {MAX_PAIRS_PER_ITEM} in order,"
                f" together >= 2 and symmetric, lift recomputed over {n} eligible sessions")

    def history(self) -> None:
        """TEMP table ``hist``: item_property_history of the items with events, keyed by (itemid,
        property, lo), ``lo`` the run's valid_from_ms except for each first run, which also covers the
        times before it."""
        def build():
            self.db.executescript(f"""
                CREATE TEMP TABLE hist(itemid INTEGER, property TEXT, lo INTEGER, valid_from_ms INTEGER,
                                       value TEXT, as_integer INTEGER, PRIMARY KEY (itemid, property, lo)) WITHOUT ROWID;
                INSERT OR IGNORE INTO hist
                SELECT itemid, property,
                       CASE WHEN row_number() OVER (PARTITION BY itemid, property ORDER BY valid_from_ms) = 1
                            THEN {SMALLEST_INTEGER} ELSE valid_from_ms END,
                       valid_from_ms, value, {sql_as_integer("value")}
                FROM main.item_property_history WHERE itemid IN (SELECT itemid FROM main.events_enriched);
            """)
            return True
        self.once("hist", build)

    def check_item_property_history(self) -> str:
        self.require("item_property_history", "item_properties")
        problems = []
        repeated = self.repeated_keys("item_property_history", ["itemid", "property", "valid_from_ms"])
        if repeated:
            problems.append(f"{repeated} rows repeat an (itemid, property, valid_from_ms)")
        names = ", ".join(f"'{name}'" for name in HISTORY_PROPERTIES)
        other = self.scalar(f"""SELECT count(*) FROM item_property_history WHERE property IS NULL
            OR property NOT IN ({names}) OR itemid IS NULL OR valid_from_ms IS NULL OR value IS NULL""")
        if other:
            problems.append(f"{other} rows of another property or with a NULL key or value")
        chained, example = self.db.execute("""
            SELECT count(*), min(itemid || '/' || property || '@' || valid_from_ms) FROM (
                SELECT itemid, property, value, valid_from_ms, valid_to_ms, valid_to,
                       lead(valid_from_ms) OVER w AS next_from, lead(valid_from) OVER w AS next_from_text,
                       lead(value) OVER w AS next_value
                FROM item_property_history WINDOW w AS (PARTITION BY itemid, property ORDER BY valid_from_ms))
            WHERE valid_to_ms IS NOT next_from OR valid_to IS NOT next_from_text OR value IS next_value""").fetchone()
        if chained:
            problems.append(f"{chained} runs whose valid_to_ms/valid_to is not the next run's valid_from_ms/valid_from"
                            f" (NULL for the last) or whose value equals the next run's, e.g. {example}")
        in_range = f"BETWEEN {SQLITE_FIRST_SECOND * 1000} AND {SQLITE_LAST_SECOND * 1000 + 999}"

        def text_of(ms: str) -> str:
            part = f"((({ms} % 1000) + 1000) % 1000)"
            return (f"strftime('%Y-%m-%d %H:%M:%S', ({ms} - {part}) / 1000, 'unixepoch')"
                    f" || '.' || substr('00' || {part}, -3)")

        texts = self.scalar(f"""SELECT count(*) FROM item_property_history
            WHERE valid_from_ms {in_range} AND valid_from IS NOT {text_of("valid_from_ms")}""")
        for ms, text in self.db.execute(f"""
                SELECT valid_from_ms, valid_from FROM item_property_history WHERE NOT valid_from_ms {in_range}"""):
            texts += text != time_texts(ms)[0]
        if texts:
            problems.append(f"{texts} rows whose valid_from text differs from valid_from_ms")
        # The latest run is item_properties' latest value, for the same (item, property) pairs.
        self.db.executescript(f"""
            DROP TABLE IF EXISTS temp.last_run;
            CREATE TEMP TABLE last_run(itemid INTEGER, property TEXT, value TEXT, valid_from_ms INTEGER,
                                       PRIMARY KEY (itemid, property)) WITHOUT ROWID;
            INSERT OR IGNORE INTO last_run SELECT itemid, property, value, valid_from_ms
            FROM main.item_property_history WHERE valid_to_ms IS NULL AND itemid IS NOT NULL AND property IS NOT NULL;
            DROP TABLE IF EXISTS temp.latest_value;
            CREATE TEMP TABLE latest_value(itemid INTEGER, property TEXT, value TEXT, timestamp_ms INTEGER,
                                           PRIMARY KEY (itemid, property)) WITHOUT ROWID;
            INSERT OR IGNORE INTO latest_value SELECT itemid, property, value, timestamp_ms
            FROM main.item_properties WHERE property IN ({names}) AND itemid IS NOT NULL;
        """)
        latest, example = self.db.execute("""
            SELECT count(*), min(itemid || '/' || property) FROM (
                SELECT h.itemid, h.property FROM temp.last_run h
                LEFT JOIN temp.latest_value p ON p.itemid = h.itemid AND p.property = h.property
                WHERE p.itemid IS NULL OR h.value IS NOT p.value OR h.valid_from_ms > p.timestamp_ms
                UNION ALL
                SELECT p.itemid, p.property FROM temp.latest_value p
                WHERE NOT EXISTS (SELECT 1 FROM temp.last_run h WHERE h.itemid = p.itemid AND h.property = p.property))
        """).fetchone()
        if latest:
            problems.append(f"{latest} (item, property) whose last run is not item_properties' latest value"
                            f" (or that only one of them has), e.g. {example}")
        expect(not problems, "; ".join(problems))
        rows = self.scalar("SELECT count(*) FROM item_property_history")
        return f"{rows} runs: contiguous, one per change of value, the last one the latest value"

    def check_history_matches_events(self) -> str:
        """Every event's categoryid / available is the value of the run in effect at its time (the
        first run before it) read as an integer; NULL where the item has no history."""
        self.require("item_property_history")
        self.history()

        def in_effect(prop: str) -> str:
            return f"""(SELECT h.as_integer FROM temp.hist h WHERE h.itemid = e.itemid AND h.property = '{prop}'
                        AND h.lo <= e.timestamp_ms ORDER BY h.lo DESC LIMIT 1)"""

        row = self.db.execute(f"""
            SELECT coalesce(sum(category_wrong), 0), min(CASE WHEN category_wrong THEN item_at END),
                   coalesce(sum(available_wrong), 0), min(CASE WHEN available_wrong THEN item_at END)
            FROM (SELECT e.categoryid IS NOT {in_effect("categoryid")} AS category_wrong,
                         e.available IS NOT {in_effect("available")} AS available_wrong,
                         e.itemid || '@' || e.timestamp_ms AS item_at
                  FROM main.events_enriched e)""").fetchone()
        for column, count, example in (("categoryid", row[0], row[1]), ("available", row[2], row[3])):
            expect(count == 0, f"{count} events whose {column} is not the history's value at their time,"
                               f" e.g. item@time {example}")
        return f"{self.event_count()} events: categoryid and available are the history's values at their time"

    def check_foreign_keys(self) -> str:
        declared = self.scalar("SELECT count(*) FROM main.sqlite_master m, pragma_foreign_key_list(m.name) f"
                               " WHERE m.type = 'table'")
        rows = self.db.execute("PRAGMA main.foreign_key_check").fetchmany(1000)
        if rows:
            tables = sorted({f"{row[0]} -> {row[2]}" for row in rows})
            raise CheckFailed(f"{len(rows)}{'+' if len(rows) == 1000 else ''} rows name a missing parent row:"
                              f" {', '.join(tables)}; e.g. {rows[0][0]} rowid {rows[0][1]}")
        return f"PRAGMA foreign_key_check: clean ({declared} foreign keys declared)"

    # Every check in the order of the report, with its lane: a thread with a connection of its
    # own. The per-visitor checks share TEMP tables, so they run on one connection.
    CHECKS = [
        ("file_integrity", check_file_integrity, "integrity"),
        ("schema", check_schema, "tables"),
        ("events_values", check_events_values, "tables"),
        ("event_time_columns", check_event_time_columns, "hours"),
        ("event_type_counts_hours", check_event_type_counts_hours, "hours"),
        ("hourly_trend_hours", check_hourly_trend_hours, "hours"),
        ("event_type_counts_totals", check_event_type_counts_totals, "hours"),
        ("hourly_trend_totals", check_hourly_trend_totals, "hours"),
        ("rolling_averages", check_rolling_averages, "hours"),
        ("prev_event", check_prev_event, "visitors"),
        ("seconds_since_prev_event", check_seconds_since_prev_event, "visitors"),
        ("session_id", check_session_id, "visitors"),
        ("sessions_totals", check_sessions_totals, "visitors"),
        ("sessions_match_events", check_sessions_match_events, "visitors"),
        ("view_to_purchase", check_view_to_purchase, "tables"),
        ("daily_funnel", check_daily_funnel, "hours"),
        ("data_quality_names", check_data_quality_names, "tables"),
        ("data_quality_counts", check_data_quality_counts, "tables"),
        ("data_lines", check_data_lines, "tables"),
        ("rejected_rows", check_rejected_rows, "tables"),
        ("item_properties_unique", check_item_properties_unique, "tables"),
        ("category_tree", check_category_tree, "tables"),
        ("events_category_columns", check_events_category_columns, "tables"),
        ("point_in_time_attributes", check_point_in_time_attributes, "tables"),
        ("visitors", check_visitors, "visitors"),
        ("sessions_cart_columns", check_sessions_cart_columns, "visitors"),
        ("daily_cart_abandonment", check_daily_cart_abandonment, "analyst"),
        ("purchase_timing", check_purchase_timing, "analyst"),
        ("cohort_retention", check_cohort_retention, "visitors"),
        ("category_daily_funnel", check_category_daily_funnel, "hours"),
        ("item_pairs", check_item_pairs, "pairs"),
        ("item_property_history", check_item_property_history, "pairs"),
        ("history_matches_events", check_history_matches_events, "history"),
        ("foreign_keys", check_foreign_keys, "integrity"),
    ]
    LANES = ("visitors", "hours", "tables", "integrity", "analyst", "pairs", "history")
    # integrity_check looks every row up in each of its table's indexes, in row order: with a
    # cache too small for the indexes each lookup rereads a page from the file.
    LANE_CACHE_SHARES = {"integrity": 4}

    def run_one(self, name: str, method, timings: bool = False) -> tuple[str, bool]:
        """The report line of one check and whether it passed."""
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            line, passed = f"PASS {name}: {method(self)}", True
        except CheckFailed as failure:
            line, passed = f"FAIL {name}: {failure}", False
        except sqlite3.Error as error:
            line, passed = f"FAIL {name}: SQLite error: {error}", False
        except Exception as error:  # a check that cannot finish has not passed
            line, passed = f"FAIL {name}: {type(error).__name__}: {error}", False
        if timings:
            line += f" [{time.perf_counter() - started:.2f}s, CPU {time.thread_time() - cpu:.2f}s]"
        return line, passed


def run_checks(path: Path, out=sys.stdout, timings: bool = False, cache_mib: int = CACHE_MIB) -> bool:
    """Run every check, one thread and connection per lane, and print the report lines in the
    order of ``Verifier.CHECKS`` as they become available. True when all pass."""
    results: dict[str, Future] = {name: Future() for name, _, _ in Verifier.CHECKS}

    def run_lane(lane: str) -> None:
        mine = [(name, method) for name, method, where in Verifier.CHECKS if where == lane]
        try:
            connection = open_read_only(path, cache_mib * Verifier.LANE_CACHE_SHARES.get(lane, 1))
            try:
                verifier = Verifier(connection)
                for name, method in mine:
                    results[name].set_result(verifier.run_one(name, method, timings))
            finally:
                connection.close()
        except BaseException as error:  # never leave the report waiting
            for name, _ in mine:
                if not results[name].done():
                    results[name].set_result((f"FAIL {name}: {type(error).__name__}: {error}", False))

    threads = [threading.Thread(target=run_lane, args=(lane,), daemon=True) for lane in Verifier.LANES]
    for thread in threads:
        thread.start()
    all_passed = True
    for name, _, _ in Verifier.CHECKS:
        line, passed = results[name].result()
        print(line, file=out, flush=True)
        all_passed = all_passed and passed
    for thread in threads:
        thread.join()
    return all_passed


def default_database() -> Path:
    database = DEFAULT_DATABASE
    config_file = REPO_ROOT / "luigi.cfg"
    if config_file.is_file():
        config = configparser.ConfigParser(interpolation=None)
        config.read(config_file)
        database = config.get("retail", "database", fallback=DEFAULT_DATABASE)
    path = Path(database).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def open_read_only(path: Path, cache_mib: int = CACHE_MIB) -> sqlite3.Connection:
    """A read-only connection whose memory does not grow with the database: a page cache of
    ``cache_mib`` MiB for the file (which also caps each sorter), half that for the TEMP schema,
    TEMP tables and temporary b-trees in a temporary file, and no memory map (mapped pages of the
    file would count in the process's resident memory, up to the file's size)."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    connection.execute("PRAGMA temp_store = FILE")
    connection.execute(f"PRAGMA main.cache_size = {-1024 * cache_mib}")  # negative: KiB
    connection.execute(f"PRAGMA temp.cache_size = {-512 * cache_mib}")
    connection.execute("PRAGMA mmap_size = 0")
    return connection


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", type=Path, default=None,
                        help="the published SQLite file (default: [retail] database in luigi.cfg, else data/retail.db)")
    parser.add_argument("--timings", action="store_true",
                        help="append each check's run time (and the CPU time of its thread)")
    parser.add_argument("--cache-mib", type=int, default=CACHE_MIB, metavar="MIB",
                        help=f"SQLite page cache of each of the {len(Verifier.LANES)} connections, in MiB (default"
                             f" {CACHE_MIB}; the integrity check's connection gets"
                             f" {Verifier.LANE_CACHE_SHARES['integrity']}x): what bounds the memory used")
    parser.add_argument("--quick", action="store_true",
                        help="SQLite's quick_check instead of integrity_check: skips comparing each index with its "
                             "table (the whole verification at full scale: ~39 s instead of ~63 s)")
    args = parser.parse_args(argv)
    if args.cache_mib < 1:
        parser.error("--cache-mib must be at least 1")
    Verifier.integrity_pragma = "quick_check" if args.quick else "integrity_check"
    path = args.database if args.database is not None else default_database()
    if not path.is_file():
        print(f"FAIL database: {path} does not exist")
        return 2
    try:
        connection = open_read_only(path)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as error:
        print(f"FAIL database: cannot read {path}: {error}")
        return 2
    return 0 if run_checks(path, timings=args.timings, cache_mib=args.cache_mib) else 1


if __name__ == "__main__":
    sys.exit(main())
