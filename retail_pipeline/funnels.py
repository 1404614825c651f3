"""``category_daily_funnel``: the daily funnel (``daily_funnel``'s columns) of each root category."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from .aggregates import FUNNEL_COUNTS, funnel_columns, funnel_from_counts
from .columns import event_codes, sum_by
from .timefmt import day_index, format_days


def category_daily_funnel(enriched: pa.Table) -> pa.Table:
    """One row per (date, ``root_categoryid``) with events: ``date``, ``root_categoryid``, then
    ``daily_funnel``'s counts and rates over the events whose point-in-time ``root_categoryid``
    is that root. Events with a NULL ``root_categoryid`` form one group of their own (NULL).

    Reads ``timestamp_ms``, ``visitorid``, ``event`` and ``root_categoryid`` of
    ``events_enriched`` (rows in any order). Sorted by date, then ``root_categoryid`` with the
    NULL group first (as SQLite orders NULL).
    """
    day, root, columns = _funnel_by_day_and_root(enriched)
    return pa.table({"date": format_days(day), "root_categoryid": root, **columns})


def _funnel_by_day_and_root(enriched: pa.Table) -> tuple[np.ndarray, pa.Array, dict[str, pa.Array]]:
    """(day index, ``root_categoryid``, funnel columns) of each (day, root) group with events,
    sorted by day, then root with NULL first."""
    day = day_index(enriched.column("timestamp_ms").to_numpy())
    column = enriched.column("root_categoryid").combine_chunks()
    has_root = column.is_valid().to_numpy(zero_copy_only=False)
    root = column.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    # one int64 key per (day, root): the root's rank among the roots, 0 for NULL
    roots = np.unique(root[has_root])
    root_code = np.where(has_root, np.searchsorted(roots, root) + 1, 0).astype(np.int64)
    first_day = int(day.min()) if len(day) else 0
    width = len(roots) + 1
    groups, columns = funnel_columns((day - first_day) * width + root_code,
                                     enriched.column("visitorid").to_numpy(), event_codes(enriched))
    groups = np.asarray(groups, dtype=np.int64)
    group_day, group_root = np.divmod(groups, width)
    null_root = group_root == 0
    root_ids = roots[np.maximum(group_root - 1, 0)] if len(roots) else np.zeros(len(groups), dtype=np.int64)
    root = pa.array(np.where(null_root, 0, root_ids).astype(np.int64), pa.int64(), mask=null_root)
    return group_day + first_day, root, columns


def category_daily_funnel_partial(enriched: pa.Table) -> pa.Table:
    """``category_daily_funnel``'s distinct-visitor counts of some visitors (each visitor's
    events all in ``enriched``): ``day`` (index), ``root_categoryid`` (NULL: the events without
    one), ``visitors``, ``viewers``, ``carters``, ``buyers``; one row per group with events."""
    day, root, columns = _funnel_by_day_and_root(enriched)
    return pa.table({"day": pa.array(np.asarray(day, dtype=np.int64), pa.int64()), "root_categoryid": root,
                     **{name: columns[name] for name in FUNNEL_COUNTS}})


def category_daily_funnel_combine(partials: Sequence[pa.Table]) -> pa.Table:
    """``category_daily_funnel`` from the partials of all shards (``category_daily_funnel_partial``):
    counts summed per (day, root), rates from the sums; sorted by date, then root with NULL first."""
    counts = sum_by(partials, ["day", "root_categoryid"])
    return pa.table({
        "date": format_days(counts.column("day").to_numpy()),
        "root_categoryid": counts.column("root_categoryid").combine_chunks(),
        **funnel_from_counts(*(counts.column(name).to_numpy() for name in FUNNEL_COUNTS)),
    })
