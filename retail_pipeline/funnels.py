"""``category_daily_funnel``: the daily funnel (``daily_funnel``'s columns) of each root category."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .aggregates import funnel_columns
from .columns import event_codes
from .timefmt import day_index, format_days


def category_daily_funnel(enriched: pa.Table) -> pa.Table:
    """One row per (date, ``root_categoryid``) with events: ``date``, ``root_categoryid``, then
    ``daily_funnel``'s counts and rates over the events whose point-in-time ``root_categoryid``
    is that root. Events with a NULL ``root_categoryid`` form one group of their own (NULL).

    Reads ``timestamp_ms``, ``visitorid``, ``event`` and ``root_categoryid`` of
    ``events_enriched`` (rows in any order). Sorted by date, then ``root_categoryid`` with the
    NULL group first (as SQLite orders NULL).
    """
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
    return pa.table(
        {
            "date": format_days(group_day + first_day),
            "root_categoryid": pa.array(np.where(null_root, 0, root_ids).astype(np.int64), pa.int64(), mask=null_root),
            **columns,
        }
    )
