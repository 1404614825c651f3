"""``weekday_hour_profile``: what happens in each hour of each weekday (168 slots), over all weeks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .columns import ADDTOCART, TRANSACTION, VIEW, distinct_count, event_codes, hashed_codes, rate
from .quality import in_expected_range
from .timefmt import day_index, hour_index

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SLOTS = 7 * 24


def iso_weekday(day: np.ndarray) -> np.ndarray:
    """ISO weekday (1 = Monday ... 7 = Sunday) of day indexes (days since 1970-01-01, a Thursday)."""
    return (np.asarray(day, dtype=np.int64) + 3) % 7 + 1


def weekday_hour_profile(enriched: pa.Table) -> pa.Table:
    """168 rows, one per (ISO ``weekday``, UTC ``hour_of_day``), all present, sorted so.

    Counts only events inside the expected range of times (``quality.in_expected_range``).
    ``days``: the calendar dates with that weekday from the first to the last counted event's
    date, inclusive. ``events`` ... ``transactions``: the slot's events; ``visitors`` /
    ``buyers``: distinct visitors (with a transaction) in the slot over the whole period.
    ``avg_<count>_per_day`` = the count / ``days``; for visitors and buyers the count summed is
    each date's distinct visitors (buyers) in the slot. Averages are NULL where ``days`` is 0
    (no event in range at all).

    Reads ``timestamp_ms``, ``visitorid`` and ``event`` of ``events_enriched``.
    """
    time = enriched.column("timestamp_ms").to_numpy()
    kept = in_expected_range(time)
    time = time[kept]
    codes = event_codes(enriched)[kept]
    visitor = hashed_codes(enriched.column("visitorid").to_numpy()[kept])
    day = day_index(time)
    hour = hour_index(time)
    slot = (iso_weekday(day) - 1) * 24 + hour % 24

    days = np.zeros(SLOTS, dtype=np.int64)
    if len(time):
        first_day = int(day.min())
        per_weekday = np.bincount(iso_weekday(np.arange(first_day, int(day.max()) + 1)) - 1, minlength=7)
        days = np.repeat(per_weekday, 24).astype(np.int64)

    def count(mask: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(slot if mask is None else slot[mask], minlength=SLOTS).astype(np.int64)

    def per_date_distinct(mask: np.ndarray | None = None) -> np.ndarray:
        """Sum over dates of the slot's distinct visitors that date: distinct (hour, visitor) pairs."""
        hours, members = (hour, visitor) if mask is None else (hour[mask], visitor[mask])
        if len(hours) == 0:
            return np.zeros(SLOTS, dtype=np.int64)
        first_hour = int(hours.min())
        per_hour = distinct_count(hours - first_hour, members, int(hours.max()) - first_hour + 1)
        hour_slot = (iso_weekday(np.floor_divide(np.arange(first_hour, first_hour + len(per_hour)), 24)) - 1) * 24 \
            + np.arange(first_hour, first_hour + len(per_hour)) % 24
        return np.bincount(hour_slot, weights=per_hour, minlength=SLOTS).round().astype(np.int64)

    buy = codes == TRANSACTION
    counts = {
        "events": count(),
        "views": count(codes == VIEW),
        "addtocarts": count(codes == ADDTOCART),
        "transactions": count(buy),
        "visitors": distinct_count(slot, visitor, SLOTS),
        "buyers": distinct_count(slot[buy], visitor[buy], SLOTS),
    }
    visitor_days = {"visitors": per_date_distinct(), "buyers": per_date_distinct(buy)}
    weekday = np.repeat(np.arange(1, 8, dtype=np.int64), 24)
    columns = {
        "weekday": pa.array(weekday),
        "weekday_name": pa.array([WEEKDAY_NAMES[w - 1] for w in weekday.tolist()], pa.string()),
        "hour_of_day": pa.array(np.tile(np.arange(24, dtype=np.int64), 7)),
        "days": pa.array(days),
        **{name: pa.array(values) for name, values in counts.items()},
    }
    for name in ("events", "views", "addtocarts", "transactions"):
        columns[f"avg_{name}_per_day"] = rate(counts[name], days)
    for name in ("visitors", "buyers"):
        columns[f"avg_{name}_per_day"] = rate(visitor_days[name], days)
    return pa.table(columns)
