"""``weekday_hour_profile``: what happens in each hour of each weekday (168 slots), over all weeks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    counts, first_day, last_day = _weekday_hour_counts(enriched)
    return _weekday_hour_table(counts, first_day, last_day)


# The per-slot numbers of weekday_hour_profile that add up over visitor shards: ``visitor_days``
# and ``buyer_days`` are the sums over dates of the slot's distinct visitors (buyers) that date.
WEEKDAY_HOUR_COUNTS = ("events", "views", "addtocarts", "transactions", "visitors", "buyers", "visitor_days",
                       "buyer_days")


def _weekday_hour_counts(enriched: pa.Table) -> tuple[dict[str, np.ndarray], int | None, int | None]:
    """(``WEEKDAY_HOUR_COUNTS`` of each of the 168 slots; the first and last date, as day
    indexes, of the events in the expected range, None without any)."""
    time = enriched.column("timestamp_ms").to_numpy()
    kept = in_expected_range(time)
    time = time[kept]
    codes = event_codes(enriched)[kept]
    visitor = hashed_codes(enriched.column("visitorid").to_numpy()[kept])
    day = day_index(time)
    hour = hour_index(time)
    slot = (iso_weekday(day) - 1) * 24 + hour % 24

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
        "visitor_days": per_date_distinct(),
        "buyer_days": per_date_distinct(buy),
    }
    return counts, (int(day.min()) if len(time) else None), (int(day.max()) if len(time) else None)


def _weekday_hour_table(counts: dict[str, np.ndarray], first_day: int | None, last_day: int | None) -> pa.Table:
    days = np.zeros(SLOTS, dtype=np.int64)
    if first_day is not None:
        per_weekday = np.bincount(iso_weekday(np.arange(first_day, last_day + 1)) - 1, minlength=7)
        days = np.repeat(per_weekday, 24).astype(np.int64)
    weekday = np.repeat(np.arange(1, 8, dtype=np.int64), 24)
    columns = {
        "weekday": pa.array(weekday),
        "weekday_name": pa.array([WEEKDAY_NAMES[w - 1] for w in weekday.tolist()], pa.string()),
        "hour_of_day": pa.array(np.tile(np.arange(24, dtype=np.int64), 7)),
        "days": pa.array(days),
        **{name: pa.array(counts[name]) for name in ("events", "views", "addtocarts", "transactions", "visitors",
                                                     "buyers")},
    }
    for name in ("events", "views", "addtocarts", "transactions"):
        columns[f"avg_{name}_per_day"] = rate(counts[name], days)
    for name, summed in (("visitors", "visitor_days"), ("buyers", "buyer_days")):
        columns[f"avg_{name}_per_day"] = rate(counts[summed], days)
    return pa.table(columns)


def weekday_hour_profile_partial(enriched: pa.Table) -> pa.Table:
    """``weekday_hour_profile``'s numbers of some visitors (each visitor's events all in
    ``enriched``): 168 rows in slot order, ``WEEKDAY_HOUR_COUNTS``, and the first and last date
    (day index) of their events in the expected range (``first_day``, ``last_day``, the same on
    every row; NULL without any)."""
    counts, first_day, last_day = _weekday_hour_counts(enriched)
    return pa.table({**{name: pa.array(values, pa.int64()) for name, values in counts.items()},
                     "first_day": pa.array([first_day] * SLOTS, pa.int64()),
                     "last_day": pa.array([last_day] * SLOTS, pa.int64())})


def weekday_hour_profile_combine(partials: Sequence[pa.Table]) -> pa.Table:
    """``weekday_hour_profile`` from the partials of all shards (``weekday_hour_profile_partial``)."""
    counts = {name: np.sum([p.column(name).to_numpy() for p in partials], axis=0).astype(np.int64)
              for name in WEEKDAY_HOUR_COUNTS}
    rows = pa.concat_tables(list(partials))
    return _weekday_hour_table(counts, pc.min(rows.column("first_day")).as_py(),
                               pc.max(rows.column("last_day")).as_py())
