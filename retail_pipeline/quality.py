"""``data_quality``: the counts that account for every input line (docs/decisions.md)."""

from __future__ import annotations

import pyarrow as pa

QUALITY_SCHEMA = pa.schema(
    [pa.field("check_name", pa.string()), pa.field("value", pa.int64()), pa.field("detail", pa.string())]
)


def data_quality(
    *,
    data_lines: dict[str, int],
    rejected_per_file: dict[str, int],
    duplicates_dropped: int,
    events_published: int,
    events_without_categoryid: int,
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
    return pa.Table.from_pylist([dict(zip(QUALITY_SCHEMA.names, r)) for r in rows], schema=QUALITY_SCHEMA)
