"""``data_quality``: the counts that account for every input line (docs/decisions.md).

Also the *expected range* of event times. An event outside it (a timestamp of 0, a year
9999 typo) is kept in ``events_enriched`` and counted here, but the hour-by-hour tables
(``event_type_counts``, ``hourly_trend``), which list every hour from the first event to the
last, leave it out: one such event would otherwise add millions of empty hours.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

EXPECTED_FIRST_MS = 946_684_800_000  # 2000-01-01 00:00:00 UTC, included
EXPECTED_END_MS = 4_102_444_800_000  # 2100-01-01 00:00:00 UTC, excluded
EXPECTED_RANGE_TEXT = "2000-01-01 00:00 (included) to 2100-01-01 00:00 UTC (excluded)"

QUALITY_SCHEMA = pa.schema(
    [pa.field("check_name", pa.string()), pa.field("value", pa.int64()), pa.field("detail", pa.string())]
)


def in_expected_range(timestamp_ms: np.ndarray) -> np.ndarray:
    """Boolean mask of the millisecond timestamps inside the expected range of event times."""
    timestamp_ms = np.asarray(timestamp_ms, dtype=np.int64)
    return (timestamp_ms >= EXPECTED_FIRST_MS) & (timestamp_ms < EXPECTED_END_MS)


def data_quality(
    *,
    data_lines: dict[str, int],
    rejected_per_file: dict[str, int],
    duplicates_dropped: int,
    events_published: int,
    events_without_categoryid: int,
    events_outside_expected_range: int,
) -> pa.Table:
    rows: list[tuple[str, int, str]] = []
    for name, lines in data_lines.items():
        rejected = rejected_per_file.get(name, 0)
        rows.append(
            (f"data_lines {name}", lines,
             f"lines after the header in {name}: {lines - rejected} loaded, {rejected} rejected")
        )
    total_rejected = sum(rejected_per_file.values())
    rows.append(("rows_rejected", total_rejected, "input rows not loaded; see the rejected_rows table"))
    rows.append(
        ("duplicate_events_dropped", duplicates_dropped,
         "event rows equal in all five fields to an earlier row; the first is kept")
    )
    rows.append(("events_published", events_published, "rows of events_enriched"))
    rows.append(
        ("events_without_categoryid", events_without_categoryid,
         "events whose item has no integer categoryid in effect at the event's time")
    )
    rows.append(
        ("events_outside_expected_range", events_outside_expected_range,
         f"events kept in events_enriched whose time is outside {EXPECTED_RANGE_TEXT};"
         " event_type_counts and hourly_trend leave them out")
    )
    return pa.Table.from_pylist([dict(zip(QUALITY_SCHEMA.names, r)) for r in rows], schema=QUALITY_SCHEMA)
