"""``daily_cart_abandonment``: per date, the sessions with a cart, how many were abandoned, how many recovered.

Computed from the ``sessions`` table (``aggregates.sessions``), whose ``abandoned_cart`` and
``recovered`` columns already say what became of each session's cart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .columns import rate

DAILY_CART_ABANDONMENT_SCHEMA = pa.schema(
    [("date", pa.string()), ("cart_sessions", pa.int64()), ("abandoned_sessions", pa.int64()),
     ("abandonment_rate", pa.float64()), ("recovered_sessions", pa.int64()), ("recovery_rate", pa.float64())]
)


def _date_order(dates: list[str]) -> list[int]:
    """Positions of the distinct ``YYYY-MM-DD`` texts in calendar order (a year past 9999 has more
    digits, one before year 0 a minus sign, so plain text order would be wrong there)."""

    def key(position: int) -> tuple[int, str]:
        text = dates[position]
        return int(text[:-6]), text[-5:]

    return sorted(range(len(dates)), key=key)


def daily_cart_abandonment(sessions: pa.Table) -> pa.Table:
    """One row per UTC date with at least one session that has an addtocart (oldest first).

    Reads ``start_time``, ``abandoned_cart`` and ``recovered`` of the sessions table. A session
    counts on the date of its ``start_time`` (the text before its space). A cart session is one
    whose ``abandoned_cart`` is not NULL (it has an addtocart); ``abandoned_sessions`` those with
    ``abandoned_cart`` = 1, ``recovered_sessions`` those with ``recovered`` = 1;
    ``abandonment_rate`` = abandoned / cart sessions, ``recovery_rate`` = recovered / abandoned
    (NULL where that divisor is 0).
    """
    abandoned_cart = sessions.column("abandoned_cart").combine_chunks()
    cart = abandoned_cart.is_valid()
    if not pc.any(cart).as_py():
        return DAILY_CART_ABANDONMENT_SCHEMA.empty_table()
    carts = sessions.select(["start_time", "abandoned_cart", "recovered"]).filter(cart)
    start = carts.column("start_time").combine_chunks()
    date_text = pc.utf8_slice_codeunits(start, 0, 10)
    if not pc.all(pc.equal(pc.utf8_slice_codeunits(start, 10, 11), " ")).as_py():  # a year outside 0-9999
        date_text = pc.extract_regex(start, r"^(?P<date>[^ ]*)").field("date")
    day, dates = pd.factorize(date_text.to_numpy(zero_copy_only=False), sort=False)
    dates = list(dates)
    order = np.array(_date_order(dates), dtype=np.int64)
    rank = np.empty(len(dates), dtype=np.int64)
    rank[order] = np.arange(len(dates))
    day = rank[day]
    size = len(dates)
    abandoned = carts.column("abandoned_cart").to_numpy().astype(np.int64)
    recovered = carts.column("recovered").combine_chunks().fill_null(0).to_numpy(zero_copy_only=False)
    cart_sessions = np.bincount(day, minlength=size).astype(np.int64)
    abandoned_sessions = np.bincount(day, weights=abandoned, minlength=size).astype(np.int64)
    recovered_sessions = np.bincount(day, weights=recovered.astype(np.int64), minlength=size).astype(np.int64)
    return pa.table(
        {
            "date": pa.array([dates[k] for k in order], pa.string()),
            "cart_sessions": pa.array(cart_sessions),
            "abandoned_sessions": pa.array(abandoned_sessions),
            "abandonment_rate": rate(abandoned_sessions, cart_sessions),
            "recovered_sessions": pa.array(recovered_sessions),
            "recovery_rate": rate(recovered_sessions, abandoned_sessions),
        },
        schema=DAILY_CART_ABANDONMENT_SCHEMA,
    )


CART_COUNTS = ("cart_sessions", "abandoned_sessions", "recovered_sessions")


def daily_cart_abandonment_partial(sessions: pa.Table) -> pa.Table:
    """``daily_cart_abandonment``'s counts of some visitors' sessions (each visitor's sessions
    all in ``sessions``; ``recovered`` looks only at the visitor's own): ``date`` and
    ``CART_COUNTS``, one row per date with a cart session."""
    return daily_cart_abandonment(sessions).select(["date", *CART_COUNTS])


def daily_cart_abandonment_combine(partials: Sequence[pa.Table]) -> pa.Table:
    """``daily_cart_abandonment`` from the partials of all shards
    (``daily_cart_abandonment_partial``): counts summed per date, rates from the sums."""
    rows = pa.concat_tables(list(partials))
    if rows.num_rows == 0:
        return DAILY_CART_ABANDONMENT_SCHEMA.empty_table()
    grouped = rows.group_by(["date"], use_threads=False).aggregate([(name, "sum") for name in CART_COUNTS])
    dates = grouped.column("date").to_pylist()
    order = pa.array(_date_order(dates), pa.int64())
    cart, abandoned, recovered = (grouped.column(f"{name}_sum").take(order).to_numpy() for name in CART_COUNTS)
    return pa.table(
        {
            "date": grouped.column("date").take(order),
            "cart_sessions": pa.array(cart),
            "abandoned_sessions": pa.array(abandoned),
            "abandonment_rate": rate(abandoned, cart),
            "recovered_sessions": pa.array(recovered),
            "recovery_rate": rate(recovered, abandoned),
        },
        schema=DAILY_CART_ABANDONMENT_SCHEMA,
    )
