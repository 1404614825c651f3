"""A brute-force reference implementation of ``SPEC.md`` and ``docs/decisions.md``.

This module exists so that tests can say what the pipeline *should* publish without trusting the
pipeline. It is written to be obviously correct, not fast: every rule is coded as directly as the
text states it (nested loops where the text says "for each ... the latest ..."), it uses only the
standard library, and it is meant for inputs of a few thousand rows.

``build_reference(data_dir)`` returns every published table as a list of dicts (keys in column
order); ``write_sqlite(tables, path)`` writes such tables into a SQLite file laid out like the
published database (``events`` is a view of the first five columns of ``events_enriched``).
Fatal input problems (a missing, empty or ambiguous file, a wrong header, a category cycle) raise
``ReferenceInputError`` with a message that names the file or the categories.

Two rules bound what hostile input can do: a line longer than 64 KiB is rejected (``line too
long``), and the hour-by-hour tables cover only the events of the expected range of times
(2000-01-01 to 2100-01-01 UTC); events outside it stay in ``events_enriched`` and are counted in
``data_quality`` (``events_outside_expected_range``).
"""

from __future__ import annotations

import gzip
import re
import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

EVENTS_HEADER = "timestamp,visitorid,event,itemid,transactionid"
ITEM_PROPERTIES_HEADER = "timestamp,itemid,property,value"
CATEGORY_TREE_HEADER = "categoryid,parentid"
EVENT_TYPES = ("view", "addtocart", "transaction")
SESSION_GAP_MS = 30 * 60 * 1000
UTF8_BOM = b"\xef\xbb\xbf"
INTEGER = re.compile(r"-?[0-9]{1,18}(\.0+)?")
MAX_LINE_BYTES = 65_536  # a longer line (without its line end) is rejected as "line too long"
RAW_PREFIX_BYTES = 1_024  # ...and rejected_rows.raw keeps its first 1,024 bytes
EXPECTED_FIRST_MS = 946_684_800_000  # 2000-01-01 00:00:00 UTC: the expected range of event times
EXPECTED_END_MS = 4_102_444_800_000  # 2100-01-01 00:00:00 UTC, excluded

# Column names and SQLite types of every published table, in column order; the key constraints the
# published schema declares among these tables come with the type (PRAGMA table_info shows the type).
SCHEMA: dict[str, dict[str, str]] = {
    "events_enriched": {
        "timestamp_ms": "INTEGER",
        "visitorid": "INTEGER REFERENCES visitors(visitorid)",
        "event": "TEXT",
        "itemid": "INTEGER",
        "transactionid": "INTEGER",
        "event_time": "TEXT",
        "event_date": "TEXT",
        "event_hour": "TEXT",
        "hour_of_day": "INTEGER",
        "prev_event": "TEXT",
        "seconds_since_prev_event": "REAL",
        "session_id": "INTEGER",
        "view_to_purchase": "INTEGER",
        "categoryid": "INTEGER",
        "available": "INTEGER",
        "parent_categoryid": "INTEGER",
        "root_categoryid": "INTEGER",
        "source_line": "INTEGER",
    },
    "item_properties": {
        "itemid": "INTEGER",
        "property": "TEXT",
        "value": "TEXT",
        "timestamp_ms": "INTEGER",
    },
    "category_tree": {
        "categoryid": "INTEGER",
        "parentid": "INTEGER",
        "root_categoryid": "INTEGER",
        "depth": "INTEGER",
    },
    "event_type_counts": {
        "hour": "TEXT",
        "view": "INTEGER",
        "addtocart": "INTEGER",
        "transaction": "INTEGER",
        "total_events": "INTEGER",
    },
    "hourly_trend": {
        "hour": "TEXT",
        "total_events": "INTEGER",
        "rolling_avg_24h": "REAL",
        "rolling_avg_168h": "REAL",
    },
    "sessions": {
        "visitorid": "INTEGER REFERENCES visitors(visitorid)",
        "session_id": "INTEGER",
        "start_time": "TEXT",
        "end_time": "TEXT",
        "duration_s": "REAL",
        "events": "INTEGER",
        "views": "INTEGER",
        "addtocarts": "INTEGER",
        "transactions": "INTEGER",
        "converted": "INTEGER",
        "cart_items": "INTEGER",
        "abandoned_cart": "INTEGER",
        "recovered": "INTEGER",
    },
    "daily_funnel": {
        "date": "TEXT",
        "visitors": "INTEGER",
        "viewers": "INTEGER",
        "carters": "INTEGER",
        "buyers": "INTEGER",
        "view_to_cart_rate": "REAL",
        "cart_to_purchase_rate": "REAL",
        "view_to_purchase_rate": "REAL",
    },
    "rejected_rows": {
        "source_file": "TEXT",
        "line_number": "INTEGER",
        "reason": "TEXT",
        "raw": "TEXT",
    },
    "data_quality": {
        "check_name": "TEXT",
        "value": "INTEGER",
        "detail": "TEXT",
    },
    # SPEC "Analyst tables": only the SPEC's columns (the published tables may have more).
    "visitors": {
        "visitorid": "INTEGER PRIMARY KEY",
        "first_event_time": "TEXT",
        "last_event_time": "TEXT",
        "events": "INTEGER",
        "views": "INTEGER",
        "addtocarts": "INTEGER",
        "transactions": "INTEGER",
        "sessions": "INTEGER",
        "orders": "INTEGER",
        "segment": "TEXT",
    },
    "daily_cart_abandonment": {
        "date": "TEXT",
        "cart_sessions": "INTEGER",
        "abandoned_sessions": "INTEGER",
        "abandonment_rate": "REAL",
        "recovered_sessions": "INTEGER",
        "recovery_rate": "REAL",
    },
    "purchase_timing": {
        "visitorid": "INTEGER REFERENCES visitors(visitorid)",
        "itemid": "INTEGER",
        "transactionid": "INTEGER",
        "purchase_time": "TEXT",
        "first_view_time": "TEXT",
        "first_cart_time": "TEXT",
        "seconds_view_to_purchase": "REAL",
        "seconds_cart_to_purchase": "REAL",
        "sessions_to_purchase": "INTEGER",
    },
    "cohort_retention": {
        "cohort_week": "TEXT",
        "week_number": "INTEGER",
        "visitors": "INTEGER",
        "active_visitors": "INTEGER",
        "buyers": "INTEGER",
        "retention_rate": "REAL",
        "purchase_rate": "REAL",
    },
    "category_daily_funnel": {
        "date": "TEXT",
        "root_categoryid": "INTEGER",
        "visitors": "INTEGER",
        "viewers": "INTEGER",
        "carters": "INTEGER",
        "buyers": "INTEGER",
        "view_to_cart_rate": "REAL",
        "cart_to_purchase_rate": "REAL",
        "view_to_purchase_rate": "REAL",
    },
    "item_pairs": {
        "itemid": "INTEGER",
        "rank": "INTEGER",
        "other_itemid": "INTEGER",
        "together": "INTEGER",
        "lift": "REAL",
    },
    "item_property_history": {
        "itemid": "INTEGER",
        "property": "TEXT",
        "value": "TEXT",
        "valid_from_ms": "INTEGER",
        "valid_to_ms": "INTEGER",
        "valid_from": "TEXT",
        "valid_to": "TEXT",
    },
}
EVENTS_VIEW_COLUMNS = ("timestamp_ms", "visitorid", "event", "itemid", "transactionid")


class ReferenceInputError(Exception):
    """A fatal input problem: the run stops."""


# --------------------------------------------------------------------------- reading files


def parse_int(text: str) -> int | None:
    """``-?[0-9]{1,18}(\\.0+)?`` read as an integer; None for anything else."""
    if INTEGER.fullmatch(text) is None:
        return None
    return int(text.split(".")[0])


def find_single_input(data_dir: Path, name: str) -> Path:
    """``name`` or ``name.gz`` in ``data_dir``: exactly one of them must exist."""
    candidates = [data_dir / name, data_dir / (name + ".gz")]
    found = [path for path in candidates if path.is_file()]
    if not found:
        raise ReferenceInputError(f"{name}: missing input file (looked for {name} and {name}.gz in {data_dir})")
    if len(found) > 1:
        raise ReferenceInputError(f"{name}: two candidates for one input: {found[0].name} and {found[1].name}")
    return found[0]


def find_item_property_files(data_dir: Path) -> list[Path]:
    """Every ``item_properties*.csv`` / ``.csv.gz``, in lexicographic order of the name."""
    found = sorted(
        (path for path in data_dir.iterdir()
         if path.is_file() and path.name.startswith("item_properties")
         and (path.name.endswith(".csv") or path.name.endswith(".csv.gz"))),
        key=lambda path: path.name,
    )
    if not found:
        raise ReferenceInputError(f"item_properties*.csv: missing input file in {data_dir}")
    for path in data_dir.iterdir():
        if path.name.startswith("item_properties") and path.name.endswith((".csv", ".csv.gz")) and not path.is_file():
            raise ReferenceInputError(f"{path.name}: not a regular file")
    names = [path.name for path in found]
    for name in names:
        if name.endswith(".csv") and name + ".gz" in names:
            raise ReferenceInputError(f"{name}: two candidates for one input: {name} and {name}.gz")
    return found


def read_lines(path: Path) -> list[bytes]:
    """The file's lines as bytes, by the rules of docs/decisions.md ("Reading lines")."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    if data == b"":
        raise ReferenceInputError(f"{path.name}: empty file (no header line)")
    pieces = data.split(b"\n")
    if data.endswith(b"\n"):
        pieces.pop()  # a terminating newline does not start another line
    return [piece[:-1] if piece.endswith(b"\r") else piece for piece in pieces]


def read_csv_rows(path: Path, header: str, reject: list[dict]) -> list[tuple[int, list[str]]]:
    """Check the header, then return ``(line_number, fields)`` of every line that splits into the
    header's number of fields; the other lines are appended to ``reject``."""
    lines = read_lines(path)
    try:
        found_header = lines[0].decode("utf-8")
    except UnicodeDecodeError:
        found_header = lines[0].decode("utf-8", "replace")
    if found_header != header:
        raise ReferenceInputError(f"{path.name}: wrong header: expected {header!r}, found {found_header!r}")
    expected = len(header.split(","))
    rows = []
    for index in range(1, len(lines)):
        line_number = index + 1
        raw = lines[index]
        if len(raw) > MAX_LINE_BYTES:
            reject.append(rejection(path, line_number, "line too long",
                                    raw[:RAW_PREFIX_BYTES].decode("utf-8", "replace")))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            reject.append(rejection(path, line_number, "undecodable bytes", raw.decode("utf-8", "replace")))
            continue
        if text == "":
            reject.append(rejection(path, line_number, "blank line", text))
            continue
        fields = text.split(",")
        if len(fields) != expected:
            reason = f"wrong number of fields: expected {expected}, got {len(fields)}"
            reject.append(rejection(path, line_number, reason, text))
            continue
        rows.append((line_number, fields))
    return rows


def rejection(path: Path, line_number: int, reason: str, raw: str) -> dict:
    return {"source_file": path.name, "line_number": line_number, "reason": reason, "raw": raw}


def read_events(path: Path, reject: list[dict]) -> tuple[list[dict], int]:
    """Clean events in input order (first of each exact duplicate kept) and the number dropped."""
    events = []
    seen = set()
    duplicates = 0
    for line_number, fields in read_csv_rows(path, EVENTS_HEADER, reject):
        raw = ",".join(fields)
        timestamp_text, visitor_text, event, item_text, transaction_text = fields
        # Checks in column order, stopping at the first fault.
        timestamp = parse_int(timestamp_text)
        if timestamp is None:
            reject.append(rejection(path, line_number, "timestamp is not an integer", raw))
            continue
        visitorid = parse_int(visitor_text)
        if visitorid is None:
            reject.append(rejection(path, line_number, "visitorid is not an integer", raw))
            continue
        if event not in EVENT_TYPES:
            reject.append(rejection(path, line_number, "unknown event type", raw))
            continue
        itemid = parse_int(item_text)
        if itemid is None:
            reject.append(rejection(path, line_number, "itemid is not an integer", raw))
            continue
        transactionid = None
        if transaction_text != "":
            transactionid = parse_int(transaction_text)
            if transactionid is None:
                reject.append(rejection(path, line_number, "transactionid is not an integer", raw))
                continue
        if event == "transaction" and transactionid is None:
            reject.append(rejection(path, line_number, "transaction without transactionid", raw))
            continue
        key = (timestamp, visitorid, event, itemid, transactionid)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        events.append({
            "timestamp_ms": timestamp,
            "visitorid": visitorid,
            "event": event,
            "itemid": itemid,
            "transactionid": transactionid,
            "source_line": line_number,
        })
    return events, duplicates


def read_item_properties(path: Path, reject: list[dict]) -> list[dict]:
    snapshots = []
    for line_number, fields in read_csv_rows(path, ITEM_PROPERTIES_HEADER, reject):
        raw = ",".join(fields)
        timestamp_text, item_text, prop, value = fields
        timestamp = parse_int(timestamp_text)
        if timestamp is None:
            reject.append(rejection(path, line_number, "timestamp is not an integer", raw))
            continue
        itemid = parse_int(item_text)
        if itemid is None:
            reject.append(rejection(path, line_number, "itemid is not an integer", raw))
            continue
        snapshots.append({"timestamp_ms": timestamp, "itemid": itemid, "property": prop, "value": value})
    return snapshots


def read_category_rows(path: Path, reject: list[dict]) -> list[dict]:
    """Category rows in input order, the first row of each categoryid kept."""
    rows = []
    seen = set()
    for line_number, fields in read_csv_rows(path, CATEGORY_TREE_HEADER, reject):
        raw = ",".join(fields)
        category_text, parent_text = fields
        categoryid = parse_int(category_text)
        if categoryid is None:
            reject.append(rejection(path, line_number, "categoryid is not an integer", raw))
            continue
        parentid = None
        if parent_text != "":
            parentid = parse_int(parent_text)
            if parentid is None:
                reject.append(rejection(path, line_number, "parentid is not an integer", raw))
                continue
        if categoryid in seen:
            reject.append(rejection(path, line_number, "duplicate categoryid", raw))
            continue
        seen.add(categoryid)
        rows.append({"categoryid": categoryid, "parentid": parentid})
    return rows


# --------------------------------------------------------------------------- time formatting


def civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day number (0 = 1970-01-01), any integer.

    Howard Hinnant's ``civil_from_days``; only used outside the years datetime supports."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def utc_parts(timestamp_ms: int) -> tuple[int, int, int, int, int, int, int]:
    """(year, month, day, hour, minute, second, millisecond) of a Unix time in ms, UTC."""
    seconds, millisecond = divmod(timestamp_ms, 1000)  # floor: -1 ms is 23:59:59.999 the day before
    try:
        moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)
        return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
                millisecond)
    except OverflowError:
        days, second_of_day = divmod(seconds, 86400)
        year, month, day = civil_from_days(days)
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        return year, month, day, hour, minute, second, millisecond


def format_year(year: int) -> str:
    """Four digits, more when needed; a minus sign before years before year 0."""
    return f"{year:04d}" if year >= 0 else f"-{-year:04d}"


def format_date(timestamp_ms: int) -> str:
    year, month, day, *_ = utc_parts(timestamp_ms)
    return f"{format_year(year)}-{month:02d}-{day:02d}"


def format_time(timestamp_ms: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.SSS`` in UTC."""
    year, month, day, hour, minute, second, millisecond = utc_parts(timestamp_ms)
    return f"{format_year(year)}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}.{millisecond:03d}"


def format_hour(timestamp_ms: int) -> str:
    """``YYYY-MM-DD HH:00:00``: the hour bucket of the timestamp."""
    year, month, day, hour, *_ = utc_parts(timestamp_ms)
    return f"{format_year(year)}-{month:02d}-{day:02d} {hour:02d}:00:00"


def hour_number(timestamp_ms: int) -> int:
    """Hours since the epoch, rounded down (so hour buckets of negative times are right too)."""
    return timestamp_ms // 3_600_000


# --------------------------------------------------------------------------- the tables


def value_in_effect(snapshots: list[dict], t: int) -> str | None:
    """SPEC "Point-in-time item attributes": ``snapshots`` are those of one (item, property) in
    input order. The latest with timestamp <= t, else the earliest; on equal timestamps the last
    in input order."""
    chosen = None
    for snapshot in snapshots:
        if snapshot["timestamp_ms"] <= t and (chosen is None or snapshot["timestamp_ms"] >= chosen["timestamp_ms"]):
            chosen = snapshot
    if chosen is None:
        for snapshot in snapshots:
            if chosen is None or snapshot["timestamp_ms"] <= chosen["timestamp_ms"]:
                chosen = snapshot
    return None if chosen is None else chosen["value"]


def build_category_tree(rows: list[dict]) -> list[dict]:
    parent_of = {row["categoryid"]: row["parentid"] for row in rows}
    tree = []
    for row in rows:
        path = [row["categoryid"]]
        current = row["categoryid"]
        depth = 0
        while parent_of[current] is not None:
            parent = parent_of[current]
            depth += 1
            if parent not in parent_of:  # a parent that names no row is the root
                current = parent
                break
            if parent in path:
                cycle = path[path.index(parent):]
                raise ReferenceInputError(
                    "category_tree.csv: cycle among categories " + ", ".join(str(c) for c in cycle))
            path.append(parent)
            current = parent
        tree.append({"categoryid": row["categoryid"], "parentid": row["parentid"],
                     "root_categoryid": current, "depth": depth})
    return tree


def latest_item_properties(snapshots: list[dict]) -> list[dict]:
    latest: dict[tuple[int, str], dict] = {}
    for snapshot in snapshots:  # input order: a later snapshot at the same timestamp wins
        key = (snapshot["itemid"], snapshot["property"])
        if key not in latest or snapshot["timestamp_ms"] >= latest[key]["timestamp_ms"]:
            latest[key] = snapshot
    return [{"itemid": s["itemid"], "property": s["property"], "value": s["value"],
             "timestamp_ms": s["timestamp_ms"]} for s in latest.values()]


def enrich_events(events: list[dict], snapshots: list[dict], tree: list[dict]) -> list[dict]:
    snapshots_of: dict[tuple[int, str], list[dict]] = {}
    for snapshot in snapshots:
        snapshots_of.setdefault((snapshot["itemid"], snapshot["property"]), []).append(snapshot)
    category = {row["categoryid"]: row for row in tree}
    by_visitor: dict[int, list[dict]] = {}
    for event in events:
        by_visitor.setdefault(event["visitorid"], []).append(event)

    enriched = {}
    for visitor_events in by_visitor.values():
        ordered = sorted(visitor_events, key=lambda e: (e["timestamp_ms"], e["source_line"]))
        session_id = 1
        for position, event in enumerate(ordered):
            t = event["timestamp_ms"]
            previous = ordered[position - 1] if position > 0 else None
            if previous is not None and t - previous["timestamp_ms"] > SESSION_GAP_MS:
                session_id += 1
            if event["event"] == "view":
                bought = any(other["event"] == "transaction" and other["itemid"] == event["itemid"]
                             and other["timestamp_ms"] >= t for other in ordered)
                view_to_purchase = 1 if bought else 0
            else:
                view_to_purchase = None
            categoryid = parse_int_or_none(value_in_effect(snapshots_of.get((event["itemid"], "categoryid"), []), t))
            available = parse_int_or_none(value_in_effect(snapshots_of.get((event["itemid"], "available"), []), t))
            node = category.get(categoryid)
            year, month, day, hour, *_ = utc_parts(t)
            enriched[event["source_line"]] = {
                "timestamp_ms": t,
                "visitorid": event["visitorid"],
                "event": event["event"],
                "itemid": event["itemid"],
                "transactionid": event["transactionid"],
                "event_time": format_time(t),
                "event_date": format_date(t),
                "event_hour": format_hour(t),
                "hour_of_day": hour,
                "prev_event": None if previous is None else previous["event"],
                "seconds_since_prev_event": None if previous is None else (t - previous["timestamp_ms"]) / 1000.0,
                "session_id": session_id,
                "view_to_purchase": view_to_purchase,
                "categoryid": categoryid,
                "available": available,
                "parent_categoryid": None if node is None else node["parentid"],
                "root_categoryid": None if node is None else node["root_categoryid"],
                "source_line": event["source_line"],
            }
    return [enriched[line] for line in sorted(enriched)]


def parse_int_or_none(value: str | None) -> int | None:
    return None if value is None else parse_int(value)


def in_expected_range(timestamp_ms: int) -> bool:
    return EXPECTED_FIRST_MS <= timestamp_ms < EXPECTED_END_MS


def hourly_tables(enriched: list[dict]) -> tuple[list[dict], list[dict]]:
    """Every hour from the first to the last hour of the events inside the expected range
    (events outside it are left out of both tables)."""
    enriched = [event for event in enriched if in_expected_range(event["timestamp_ms"])]
    if not enriched:
        return [], []
    counts: dict[int, dict[str, int]] = {}
    for event in enriched:
        per_type = counts.setdefault(hour_number(event["timestamp_ms"]), {name: 0 for name in EVENT_TYPES})
        per_type[event["event"]] += 1
    first, last = min(counts), max(counts)
    totals = {h: sum(counts.get(h, {}).values()) for h in range(first, last + 1)}

    def rolling(h: int, width: int) -> float:
        window = [k for k in range(h - width + 1, h + 1) if k >= first]
        return sum(totals[k] for k in window) / len(window)

    type_counts, trend = [], []
    for h in range(first, last + 1):
        hour = format_hour(h * 3_600_000)
        per_type = counts.get(h, {name: 0 for name in EVENT_TYPES})
        type_counts.append({"hour": hour, "view": per_type["view"], "addtocart": per_type["addtocart"],
                            "transaction": per_type["transaction"], "total_events": totals[h]})
        trend.append({"hour": hour, "total_events": totals[h], "rolling_avg_24h": rolling(h, 24),
                      "rolling_avg_168h": rolling(h, 168)})
    return type_counts, trend


def sessions_table(enriched: list[dict]) -> list[dict]:
    grouped: dict[tuple[int, int], list[dict]] = {}
    for event in enriched:
        grouped.setdefault((event["visitorid"], event["session_id"]), []).append(event)
    sessions = []
    for (visitorid, session_id), members in sorted(grouped.items()):
        members = sorted(members, key=lambda e: (e["timestamp_ms"], e["source_line"]))
        first, last = members[0], members[-1]
        transactions = sum(1 for e in members if e["event"] == "transaction")
        carted = {e["itemid"] for e in members if e["event"] == "addtocart"}
        abandoned_cart = None if not carted else (0 if transactions > 0 else 1)
        recovered = None
        if abandoned_cart == 1:
            # a transaction of a carted item by the same visitor in a later session of theirs
            recovered = 1 if any(e["visitorid"] == visitorid and e["session_id"] > session_id
                                 and e["event"] == "transaction" and e["itemid"] in carted
                                 for e in enriched) else 0
        sessions.append({
            "visitorid": visitorid,
            "session_id": session_id,
            "start_time": first["event_time"],
            "end_time": last["event_time"],
            "duration_s": (last["timestamp_ms"] - first["timestamp_ms"]) / 1000.0,
            "events": len(members),
            "views": sum(1 for e in members if e["event"] == "view"),
            "addtocarts": sum(1 for e in members if e["event"] == "addtocart"),
            "transactions": transactions,
            "converted": 1 if transactions > 0 else 0,
            "cart_items": len(carted),
            "abandoned_cart": abandoned_cart,
            "recovered": recovered,
        })
    return sessions


def ratio(numerator: int, denominator: int) -> float | None:
    """A rate as a fraction; None (NULL) where the divisor is 0."""
    return None if denominator == 0 else numerator / denominator


def funnel_counts(events: list[dict]) -> dict:
    """visitors, viewers, carters, buyers of some events, and the three rates between them."""
    viewers = len({e["visitorid"] for e in events if e["event"] == "view"})
    carters = len({e["visitorid"] for e in events if e["event"] == "addtocart"})
    buyers = len({e["visitorid"] for e in events if e["event"] == "transaction"})
    return {
        "visitors": len({e["visitorid"] for e in events}),
        "viewers": viewers,
        "carters": carters,
        "buyers": buyers,
        "view_to_cart_rate": ratio(carters, viewers),
        "cart_to_purchase_rate": ratio(buyers, carters),
        "view_to_purchase_rate": ratio(buyers, viewers),
    }


def daily_funnel_table(enriched: list[dict]) -> list[dict]:
    funnel = []
    for day in sorted({e["event_date"] for e in enriched}):
        funnel.append({"date": day, **funnel_counts([e for e in enriched if e["event_date"] == day])})
    return funnel


# --------------------------------------------------------------------------- analyst tables


def events_of_visitors(enriched: list[dict]) -> dict[int, list[dict]]:
    """Each visitor's events in per-visitor order (timestamp, then input line)."""
    by_visitor: dict[int, list[dict]] = {}
    for event in enriched:
        by_visitor.setdefault(event["visitorid"], []).append(event)
    return {visitorid: sorted(events, key=lambda e: (e["timestamp_ms"], e["source_line"]))
            for visitorid, events in sorted(by_visitor.items())}


def visitors_table(enriched: list[dict]) -> list[dict]:
    """SPEC "visitors": one row per visitor of events_enriched (SPEC columns only)."""
    visitors = []
    for visitorid, events in events_of_visitors(enriched).items():
        counts = {kind: sum(1 for e in events if e["event"] == kind) for kind in EVENT_TYPES}
        if counts["transaction"] > 0:
            segment = "buyer"
        elif counts["addtocart"] > 0:
            segment = "carter"
        elif len(events) > 1:
            segment = "browser"
        else:
            segment = "bounce"
        visitors.append({
            "visitorid": visitorid,
            "first_event_time": events[0]["event_time"],
            "last_event_time": events[-1]["event_time"],
            "events": len(events),
            "views": counts["view"],
            "addtocarts": counts["addtocart"],
            "transactions": counts["transaction"],
            "sessions": max(e["session_id"] for e in events),
            "orders": len({e["transactionid"] for e in events
                           if e["event"] == "transaction" and e["transactionid"] is not None}),
            "segment": segment,
        })
    return visitors


def daily_cart_abandonment_table(sessions: list[dict]) -> list[dict]:
    """SPEC "daily_cart_abandonment", from the sessions table: per UTC date of start_time, of the
    dates with at least one session that has an addtocart."""
    by_date: dict[str, list[dict]] = {}
    for session in sessions:
        if session["addtocarts"] > 0:
            date = session["start_time"].split(" ")[0]  # the date part of the event_time text
            by_date.setdefault(date, []).append(session)
    rows = []
    for date, cart_sessions in sorted(by_date.items()):
        abandoned = sum(1 for s in cart_sessions if s["abandoned_cart"] == 1)
        recovered = sum(1 for s in cart_sessions if s["recovered"] == 1)
        rows.append({
            "date": date,
            "cart_sessions": len(cart_sessions),
            "abandoned_sessions": abandoned,
            "abandonment_rate": ratio(abandoned, len(cart_sessions)),
            "recovered_sessions": recovered,
            "recovery_rate": ratio(recovered, abandoned),
        })
    return rows


def purchase_timing_table(enriched: list[dict]) -> list[dict]:
    """SPEC "purchase_timing": one row per transaction row (SPEC columns only)."""
    rows = []
    for purchase in enriched:
        if purchase["event"] != "transaction":
            continue
        earlier = [e for e in enriched
                   if e["visitorid"] == purchase["visitorid"] and e["itemid"] == purchase["itemid"]
                   and e["timestamp_ms"] <= purchase["timestamp_ms"]]

        def earliest(kind: str) -> dict | None:
            of_kind = [e for e in earlier if e["event"] == kind]
            return min(of_kind, key=lambda e: (e["timestamp_ms"], e["source_line"])) if of_kind else None

        view, cart = earliest("view"), earliest("addtocart")
        rows.append({
            "visitorid": purchase["visitorid"],
            "itemid": purchase["itemid"],
            "transactionid": purchase["transactionid"],
            "purchase_time": purchase["event_time"],
            "first_view_time": None if view is None else view["event_time"],
            "first_cart_time": None if cart is None else cart["event_time"],
            "seconds_view_to_purchase":
                None if view is None else (purchase["timestamp_ms"] - view["timestamp_ms"]) / 1000.0,
            "seconds_cart_to_purchase":
                None if cart is None else (purchase["timestamp_ms"] - cart["timestamp_ms"]) / 1000.0,
            "sessions_to_purchase": None if view is None else purchase["session_id"] - view["session_id"] + 1,
        })
    return rows


def week_of(timestamp_ms: int) -> date:
    """The Monday on or before the event's UTC date (events of the expected range only)."""
    year, month, day, *_ = utc_parts(timestamp_ms)
    moment = date(year, month, day)
    return moment - timedelta(days=moment.weekday())  # weekday(): Monday 0 ... Sunday 6


def cohort_retention_table(enriched: list[dict]) -> list[dict]:
    """SPEC "cohort_retention", over the events inside the expected range of times only."""
    events = [e for e in enriched if in_expected_range(e["timestamp_ms"])]
    if not events:
        return []
    week_of_event = {e["source_line"]: week_of(e["timestamp_ms"]) for e in events}
    last_week = week_of(max(e["timestamp_ms"] for e in events))
    cohort_of: dict[int, date] = {}
    for visitorid, visitor_events in events_of_visitors(events).items():
        cohort_of[visitorid] = week_of_event[visitor_events[0]["source_line"]]  # the first event's week
    rows = []
    for cohort in sorted(set(cohort_of.values())):
        members = {v for v, c in cohort_of.items() if c == cohort}
        for week_number in range((last_week - cohort).days // 7 + 1):
            week = cohort + timedelta(days=7 * week_number)
            in_week = [e for e in events if e["visitorid"] in members and week_of_event[e["source_line"]] == week]
            active = len({e["visitorid"] for e in in_week})
            buyers = len({e["visitorid"] for e in in_week if e["event"] == "transaction"})
            rows.append({
                "cohort_week": cohort.isoformat(),
                "week_number": week_number,
                "visitors": len(members),
                "active_visitors": active,
                "buyers": buyers,
                "retention_rate": ratio(active, len(members)),
                "purchase_rate": ratio(buyers, len(members)),
            })
    return rows


def category_daily_funnel_table(enriched: list[dict]) -> list[dict]:
    """SPEC "category_daily_funnel": the daily funnel per (date, point-in-time root category),
    the events without a root category forming one group (root_categoryid NULL)."""
    groups: dict[tuple[str, int | None], list[dict]] = {}
    for e in enriched:
        groups.setdefault((e["event_date"], e["root_categoryid"]), []).append(e)
    return [{"date": day, "root_categoryid": root, **funnel_counts(members)}
            for (day, root), members in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] is not None, g[0][1] or 0))]


MAX_ITEMS_OF_A_SHOPPING_SESSION = 50  # more distinct viewed items: a crawl
MAX_PAIRS_PER_ITEM = 20


def item_pairs_table(enriched: list[dict]) -> list[dict]:
    """SPEC "item_pairs": items viewed in the same eligible session."""
    viewed: dict[tuple[int, int], set[int]] = {}
    for e in enriched:
        if e["event"] == "view":
            viewed.setdefault((e["visitorid"], e["session_id"]), set()).add(e["itemid"])
    eligible = [items for items in viewed.values() if 1 <= len(items) <= MAX_ITEMS_OF_A_SHOPPING_SESSION]
    n = len(eligible)
    sessions_of: dict[int, int] = {}
    together: dict[tuple[int, int], int] = {}
    for items in eligible:
        for a in items:
            sessions_of[a] = sessions_of.get(a, 0) + 1
            for b in items:
                if a != b:
                    together[(a, b)] = together.get((a, b), 0) + 1
    rows = []
    for a in sorted(sessions_of):
        others = [(count, b) for (first, b), count in together.items() if first == a and count >= 2]
        others.sort(key=lambda pair: (-pair[0], pair[1]))
        for rank, (count, b) in enumerate(others[:MAX_PAIRS_PER_ITEM], start=1):
            rows.append({"itemid": a, "rank": rank, "other_itemid": b, "together": count,
                         "lift": count * n / (sessions_of[a] * sessions_of[b])})
    return rows


HISTORY_PROPERTIES = ("categoryid", "available")


def item_property_history_table(snapshots: list[dict]) -> list[dict]:
    """SPEC "item_property_history": the runs of equal values of categoryid and available.
    ``snapshots`` are in input order, so a later one at the same timestamp overwrites."""
    per_key: dict[tuple[int, str], dict[int, str]] = {}
    for s in snapshots:
        if s["property"] in HISTORY_PROPERTIES:
            per_key.setdefault((s["itemid"], s["property"]), {})[s["timestamp_ms"]] = s["value"]
    rows = []
    for (itemid, prop), by_time in sorted(per_key.items()):
        runs: list[tuple[int, str]] = []  # (first timestamp, value)
        for timestamp in sorted(by_time):
            if not runs or runs[-1][1] != by_time[timestamp]:
                runs.append((timestamp, by_time[timestamp]))
        for index, (valid_from, value) in enumerate(runs):
            valid_to = runs[index + 1][0] if index + 1 < len(runs) else None
            rows.append({
                "itemid": itemid,
                "property": prop,
                "value": value,
                "valid_from_ms": valid_from,
                "valid_to_ms": valid_to,
                "valid_from": format_time(valid_from),
                "valid_to": None if valid_to is None else format_time(valid_to),
            })
    return rows


def build_reference(data_dir) -> dict[str, list[dict]]:
    """Every published table of the data directory, as lists of dicts in column order."""
    data_dir = Path(data_dir)
    events_path = find_single_input(data_dir, "events.csv")
    property_paths = find_item_property_files(data_dir)
    category_path = find_single_input(data_dir, "category_tree.csv")

    rejected: list[dict] = []
    lines_of: dict[str, int] = {}

    def data_lines(path: Path) -> None:
        lines_of[path.name] = len(read_lines(path)) - 1

    data_lines(events_path)
    events, duplicates = read_events(events_path, rejected)
    snapshots = []
    for path in property_paths:
        data_lines(path)
        snapshots.extend(read_item_properties(path, rejected))
    data_lines(category_path)
    tree = build_category_tree(read_category_rows(category_path, rejected))

    enriched = enrich_events(events, snapshots, tree)
    type_counts, trend = hourly_tables(enriched)
    without_category = sum(1 for e in enriched if e["categoryid"] is None)

    quality = [{"check_name": f"data_lines {name}", "value": count,
                "detail": f"lines after the header in {name}, rejected ones included"}
               for name, count in lines_of.items()]
    quality += [
        {"check_name": "rows_rejected", "value": len(rejected), "detail": "rows in rejected_rows (all files)"},
        {"check_name": "duplicate_events_dropped", "value": duplicates,
         "detail": "event rows dropped as exact duplicates of an earlier row"},
        {"check_name": "events_without_categoryid", "value": without_category,
         "detail": "rows of events_enriched whose categoryid is NULL"},
        {"check_name": "events_published", "value": len(enriched), "detail": "rows of events_enriched"},
        {"check_name": "events_outside_expected_range",
         "value": sum(1 for e in enriched if not in_expected_range(e["timestamp_ms"])),
         "detail": "events before 2000-01-01 or from 2100-01-01 UTC on"},
    ]
    sessions = sessions_table(enriched)
    return {
        "events_enriched": enriched,
        "item_properties": latest_item_properties(snapshots),
        "category_tree": tree,
        "event_type_counts": type_counts,
        "hourly_trend": trend,
        "sessions": sessions,
        "daily_funnel": daily_funnel_table(enriched),
        "rejected_rows": rejected,
        "data_quality": quality,
        "visitors": visitors_table(enriched),
        "daily_cart_abandonment": daily_cart_abandonment_table(sessions),
        "purchase_timing": purchase_timing_table(enriched),
        "cohort_retention": cohort_retention_table(enriched),
        "category_daily_funnel": category_daily_funnel_table(enriched),
        "item_pairs": item_pairs_table(enriched),
        "item_property_history": item_property_history_table(snapshots),
    }


def write_sqlite(tables: dict[str, list[dict]], path) -> None:
    """Write the tables of ``build_reference`` into a new SQLite database at ``path``, with
    ``events`` as a view of the first five columns of ``events_enriched``."""
    path = Path(path)
    if path.exists():
        path.unlink()
    connection = sqlite3.connect(path)
    try:
        with connection:
            for table, columns in SCHEMA.items():
                column_sql = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
                connection.execute(f'CREATE TABLE "{table}" ({column_sql})')
                placeholders = ", ".join("?" for _ in columns)
                connection.executemany(
                    f'INSERT INTO "{table}" VALUES ({placeholders})',
                    ([row[name] for name in columns] for row in tables[table]),
                )
            view_columns = ", ".join(f'"{name}"' for name in EVENTS_VIEW_COLUMNS)
            connection.execute(f"CREATE VIEW events AS SELECT {view_columns} FROM events_enriched")
    finally:
        connection.close()
