"""``item_pairs``: for each item, the items most often viewed in the same session as it.

Computed without any per-session Python: the distinct (session, item) views are sorted by
session, each eligible session's unordered pairs are expanded with repeat/offset arithmetic
(each item paired with the items after it in its session), every pair is one int64 key
``a * items + b``, and the keys are counted by sorting them.
Only the pairs seen in at least two sessions are then mirrored, ranked and cut to 20.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from .columns import VIEW, event_codes, position_lookup, reduce_in_batches, union, unique

MAX_SESSION_ITEMS = 50  # a session viewing more distinct items is a crawl, not shopping
MIN_TOGETHER = 2
TOP_PARTNERS = 20

ITEM_PAIRS_SCHEMA = pa.schema(
    [
        pa.field("itemid", pa.int64()),
        pa.field("rank", pa.int64()),
        pa.field("other_itemid", pa.int64()),
        pa.field("together", pa.int64()),
        pa.field("lift", pa.float64()),
    ]
)


def _item_codes(itemid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes 0..k-1 that order like the itemids, the itemid of each code). The offset from the
    smallest id when the ids span a small range (Retail Rocket's do), else their rank."""
    low, high = int(itemid.min()), int(itemid.max())
    if high - low < max(4 * len(itemid), 1 << 20):
        return itemid - low, np.arange(low, high + 1, dtype=np.int64)
    codes, ids = pd.factorize(itemid, sort=True)
    return codes.astype(np.int64), np.asarray(ids, dtype=np.int64)


def _session_item_keys(visitor: np.ndarray, session: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """One int64 key per view, ``session * n_items + item``, ``session`` a code of the (visitorid,
    session_id): equal keys for the same session and item, the keys of a session contiguous in
    sorted order. The ids' offsets when their ranges multiply to a small enough number (no hashing)."""
    v_low, s_low = int(visitor.min()), int(session.min())
    s_span = int(session.max()) - s_low + 1
    if (int(visitor.max()) - v_low + 1) * s_span * n_items < 1 << 62:
        return ((visitor - v_low) * s_span + (session - s_low)) * n_items + items
    visitor_code = pd.factorize(visitor, sort=False)[0].astype(np.int64)
    if s_span < (1 << 62) // len(visitor):
        sessions = pd.factorize(visitor_code * s_span + (session - s_low), sort=False)[0]
    else:
        sessions = pd.factorize(pd.MultiIndex.from_arrays([visitor_code, session]), sort=False)[0]
    return sessions.astype(np.int64) * n_items + items


def _distinct_sorted(keys: np.ndarray) -> np.ndarray:
    keys = np.sort(keys)
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys


def item_pairs(enriched: pa.Table) -> pa.Table:
    """``item_pairs`` (SPEC "Analyst tables"): per item, its top 20 items viewed in the same sessions.

    Reads the columns ``visitorid``, ``session_id``, ``event`` and ``itemid`` of ``events_enriched``
    (rows in any order). An eligible session is a (visitor, session) with at least one view and
    at most 50 distinct viewed items; a repeated view of an item in a session counts once.
    ``together`` (a, b) = eligible sessions viewing both, ``sessions(a)`` = eligible sessions
    viewing a, N = eligible sessions, ``lift`` = together × N / (sessions(a) × sessions(b)).
    Rows: for each ``itemid``, its partners with ``together`` >= 2, most together first (ties:
    smaller ``other_itemid`` first), at most 20, ``rank`` 1, 2, ...; sorted by (itemid, rank).
    """
    codes = event_codes(enriched)
    views = np.flatnonzero(codes == VIEW)
    if len(views) == 0:
        return ITEM_PAIRS_SCHEMA.empty_table()
    visitor = enriched.column("visitorid").to_numpy()[views]
    session = enriched.column("session_id").to_numpy()[views]
    itemid = enriched.column("itemid").to_numpy()[views]
    items, item_ids = _item_codes(itemid)
    n_items = len(item_ids)
    # distinct (session, item), sorted by session then item
    keys = _distinct_sorted(_session_item_keys(visitor, session, items, n_items))
    del visitor, session, itemid, items
    session_of, item_of = np.divmod(keys, n_items)
    del keys
    starts = np.flatnonzero(np.concatenate(([True], session_of[1:] != session_of[:-1])))
    sizes = np.diff(np.append(starts, len(session_of)))
    eligible = sizes <= MAX_SESSION_ITEMS
    n_sessions = int(eligible.sum())
    size_of = np.repeat(sizes, sizes)
    in_eligible = np.repeat(eligible, sizes)
    sessions_of_item = np.bincount(item_of[in_eligible], minlength=n_items).astype(np.int64)

    # each eligible item row paired with the later rows of its session (pairs a < b)
    position = np.arange(len(session_of), dtype=np.int64) - np.repeat(starts, sizes)
    later = np.where(in_eligible, size_of - 1 - position, 0)
    del session_of, size_of, in_eligible, position
    if int(later.sum()) == 0:
        return ITEM_PAIRS_SCHEMA.empty_table()
    pairs, together = _pair_counts(item_of, later, n_items)
    del later
    # keep the pairs seen in two sessions or more
    kept = together >= MIN_TOGETHER
    a, b = np.divmod(pairs[kept], n_items)
    together = together[kept]
    del pairs
    if len(together) == 0:
        return ITEM_PAIRS_SCHEMA.empty_table()

    # both directions, best first per item (ties: smaller other item code = smaller itemid)
    item = np.concatenate([a, b])
    other = np.concatenate([b, a])
    together = np.concatenate([together, together])
    order = np.lexsort((other, -together, item))
    item, other, together = item[order], other[order], together[order]
    group_start = np.flatnonzero(np.concatenate(([True], item[1:] != item[:-1])))
    rank = np.arange(len(item), dtype=np.int64) - np.repeat(group_start, np.diff(np.append(group_start, len(item))))
    top = rank < TOP_PARTNERS
    item, other, together, rank = item[top], other[top], together[top], rank[top] + 1
    lift = (together * n_sessions) / (sessions_of_item[item] * sessions_of_item[other])
    return pa.Table.from_arrays(
        [pa.array(item_ids[item]), pa.array(rank), pa.array(item_ids[other]), pa.array(together),
         pa.array(lift, pa.float64())],
        schema=ITEM_PAIRS_SCHEMA,
    )


# ------------------------------------------------------------------ from per-shard partial results
#
# A session is a visitor's, so all of it is in one visitor shard: the eligible sessions, each
# item's eligible sessions and each pair's ``together`` add up over the shards. Only the sum
# decides which pairs reach MIN_TOGETHER, so a shard keeps all of its pairs.

PAIR_COUNTS_SCHEMA = pa.schema([pa.field("itemid", pa.int64()), pa.field("other_itemid", pa.int64()),
                                pa.field("together", pa.int64())])
VIEW_SESSIONS_SCHEMA = pa.schema([pa.field("itemid", pa.int64()), pa.field("sessions", pa.int64())])
ELIGIBLE_SESSIONS = b"eligible_sessions"  # in the item_view_sessions partial's schema metadata
COMBINE_ROWS = 1 << 22  # pair rows of all shards combined at a time


def item_pairs_partial(enriched: pa.Table) -> dict[str, pa.Table]:
    """``item_pairs``'s counts of some visitors (each visitor's events all in ``enriched``):
    ``item_pairs``, every pair of items viewed in the same eligible sessions, ``itemid`` <
    ``other_itemid``, with ``together`` (>= 1), sorted by (itemid, other_itemid);
    ``item_view_sessions``, each viewed item's eligible sessions (``sessions``), with the number
    of eligible sessions in its schema metadata (``eligible_sessions``)."""
    def empty(n_sessions: int = 0) -> dict[str, pa.Table]:
        return {"item_pairs": PAIR_COUNTS_SCHEMA.empty_table(),
                "item_view_sessions": VIEW_SESSIONS_SCHEMA.empty_table().replace_schema_metadata(
                    {ELIGIBLE_SESSIONS: str(n_sessions)})}

    codes = event_codes(enriched)
    views = np.flatnonzero(codes == VIEW)
    if len(views) == 0:
        return empty()
    visitor = enriched.column("visitorid").to_numpy()[views]
    session = enriched.column("session_id").to_numpy()[views]
    items, item_ids = _item_codes(enriched.column("itemid").to_numpy()[views])
    n_items = len(item_ids)
    keys = _distinct_sorted(_session_item_keys(visitor, session, items, n_items))
    del visitor, session, items
    session_of, item_of = np.divmod(keys, n_items)
    del keys
    starts = np.flatnonzero(np.concatenate(([True], session_of[1:] != session_of[:-1])))
    sizes = np.diff(np.append(starts, len(session_of)))
    eligible = sizes <= MAX_SESSION_ITEMS
    in_eligible = np.repeat(eligible, sizes)
    sessions_of_item = np.bincount(item_of[in_eligible], minlength=n_items).astype(np.int64)
    viewed = np.flatnonzero(sessions_of_item)
    result = empty(int(eligible.sum()))
    result["item_view_sessions"] = pa.table(
        {"itemid": pa.array(item_ids[viewed]), "sessions": pa.array(sessions_of_item[viewed])},
        schema=VIEW_SESSIONS_SCHEMA.with_metadata({ELIGIBLE_SESSIONS: str(int(eligible.sum()))}))

    # each eligible item row paired with the later rows of its session (pairs a < b)
    position = np.arange(len(session_of), dtype=np.int64) - np.repeat(starts, sizes)
    later = np.where(in_eligible, np.repeat(sizes, sizes) - 1 - position, 0)
    del session_of, in_eligible, position
    if int(later.sum()) == 0:
        return result
    pairs, together = _pair_counts(item_of, later, n_items)
    del later
    a, b = np.divmod(pairs, n_items)
    result["item_pairs"] = pa.table({"itemid": pa.array(item_ids[a]), "other_itemid": pa.array(item_ids[b]),
                                     "together": pa.array(together)}, schema=PAIR_COUNTS_SCHEMA)
    return result



def _pair_counts(item_of: np.ndarray, later: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's item (code) paired with the ``later[i]`` rows after it (the later rows of its
    session): the distinct pairs, as keys ``a * n_items + b`` in increasing order, and in how
    many sessions each was seen. Counted by sorting: about 2-3x faster than hashing this many
    mostly distinct keys."""
    first = np.repeat(np.arange(len(later), dtype=np.int64), later)
    step = np.arange(int(later.sum()), dtype=np.int64) - np.repeat(np.cumsum(later) - later, later)
    pair_keys = item_of[first] * n_items + item_of[first + 1 + step]
    del first, step
    pair_keys.sort()
    pair_starts = np.flatnonzero(np.concatenate(([True], pair_keys[1:] != pair_keys[:-1])))
    together = np.diff(np.append(pair_starts, len(pair_keys))).astype(np.int64)
    return pair_keys[pair_starts], together

def _item_ranges(parts: Sequence[pa.Table], rows: int) -> list[tuple[int | None, int | None]]:
    """Consecutive itemid ranges [low, high) (None: unbounded) covering every ``itemid`` of the
    ``parts`` (each sorted by it), each range holding at most about ``rows`` of their rows in
    all (more only where one item alone has more)."""
    total = sum(part.num_rows for part in parts)
    if total <= rows:
        return [(None, None)]
    # every stride-th itemid of each part: a range between two samples (in sorted order of all
    # of them) m apart holds at most (m + number of parts) * stride rows
    stride = max(1, rows // (4 * len(parts)))
    samples = np.sort(np.concatenate([part.column("itemid").to_numpy()[::stride].copy() for part in parts]))
    step = 3 * len(parts)
    bounds = np.sort(unique(samples[step::step])).tolist()
    return list(zip([None] + bounds, bounds + [None]))


def _top_partners(item: np.ndarray, other: np.ndarray, together: np.ndarray) -> tuple[np.ndarray, ...]:
    """(item, other, together, rank) of each item's TOP_PARTNERS best rows: most together first,
    ties to the smaller other; sorted by (item, rank)."""
    order = np.lexsort((other, -together, item))
    item, other, together = item[order], other[order], together[order]
    group_start = np.flatnonzero(np.concatenate(([True], item[1:] != item[:-1])))
    rank = np.arange(len(item), dtype=np.int64) - np.repeat(group_start, np.diff(np.append(group_start, len(item))))
    top = rank < TOP_PARTNERS
    return item[top], other[top], together[top], rank[top] + 1


def item_pairs_combine(pair_partials: Sequence[pa.Table], session_partials: Sequence[pa.Table],
                       rows: int = COMBINE_ROWS) -> pa.Table:
    """``item_pairs`` from the partials of all shards (``item_pairs_partial``: ``pair_partials``
    its ``item_pairs``, ``session_partials`` its ``item_view_sessions``).

    The pair counts are summed range of itemids by range (about ``rows`` rows of the partials at
    a time, copied from each sorted partial), and only each item's best TOP_PARTNERS rows so far
    are kept (the best of all are the best of the bests of each range), so the memory is one
    range's rows plus the result's (with partials that read their file when asked for, as the
    pipeline's do, and let it go after).
    """
    n_sessions = sum(int(part.schema.metadata[ELIGIBLE_SESSIONS]) for part in session_partials)
    item_ids = union(part.column("itemid").to_numpy() for part in session_partials)
    item_at = position_lookup(item_ids)
    n_items = len(item_ids)
    sessions_of_item = np.zeros(n_items, dtype=np.int64)
    for part in session_partials:
        at = item_at(part.column("itemid").to_numpy())
        sessions_of_item[at] += part.column("sessions").to_numpy()  # (an item once per partial)

    def range_pairs():
        """Each itemid range's summed pair counts of at least MIN_TOGETHER: (item, other,
        together) codes, each pair in both directions."""
        for low, high in _item_ranges(pair_partials, rows):
            a, b, together = [], [], []
            for part in pair_partials:
                first = part.column("itemid").to_numpy()
                start = 0 if low is None else int(np.searchsorted(first, low))
                stop = len(first) if high is None else int(np.searchsorted(first, high))
                a.append(item_at(first[start:stop]))
                b.append(item_at(part.column("other_itemid").to_numpy()[start:stop]))
                together.append(part.column("together").to_numpy()[start:stop].copy())
            keys = np.concatenate(a) * n_items + np.concatenate(b)
            together = np.concatenate(together)
            del a, b
            first = part = None  # (the last partial's file, let go)
            if len(keys) == 0:
                continue
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
            together = np.add.reduceat(together[order], starts)
            kept = together >= MIN_TOGETHER
            a, b = np.divmod(keys[starts[kept]], n_items)
            together = together[kept]
            del keys, order, starts
            yield np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([together, together])

    # only each item's best TOP_PARTNERS rows so far are kept: the best of all are the best of the
    # bests of each range
    best = reduce_in_batches(
        range_pairs(), lambda parts: _top_partners(*(np.concatenate(column) for column in zip(*parts)))[:3],
        lambda part: len(part[0]))
    if best is None:
        return ITEM_PAIRS_SCHEMA.empty_table()
    item, other, together, rank = _top_partners(*best)
    if len(item) == 0:
        return ITEM_PAIRS_SCHEMA.empty_table()
    lift = (together * n_sessions) / (sessions_of_item[item] * sessions_of_item[other])
    return pa.Table.from_arrays(
        [pa.array(item_ids[item]), pa.array(rank), pa.array(item_ids[other]), pa.array(together),
         pa.array(lift, pa.float64())],
        schema=ITEM_PAIRS_SCHEMA,
    )
