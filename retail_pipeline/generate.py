"""Synthetic Retail Rocket data in the exact format of the public download.

Usage::

    python -m retail_pipeline.generate OUTDIR --scale S --seed N [--gzip] [--dirty]

or, from Python, ``generate(outdir, scale=..., seed=..., gzip=False, dirty=False)``.

It writes ``events.csv``, ``item_properties_part1.csv``, ``item_properties_part2.csv`` and
``category_tree.csv`` (``*.csv.gz`` with ``gzip=True``) with the headers, field layout and
value styles of the real files (LF line endings, no quoting, ``transactionid`` empty except on
transactions, rows shuffled).  At ``scale=1.0`` the published shape is reproduced: 2,756,101
event rows (2,664,312 views, 69,332 addtocarts, 22,457 transactions, 460 of them exact
duplicates), 1,407,580 visitors, 235,061 items with events, 17,672 transactions, 20,275,902
item-property rows over 417,053 items and 1,104 properties, and a 1,669-category forest with
25 roots.  Counts scale linearly with ``scale`` (the category tree is always complete).

The edge cases that ../shared/SPEC.md and docs/decisions.md care about are planted at every
scale (see ``EDGE CASES`` below and tests/test_generate.py): ties, gaps of exactly 1,800,000
and 1,800,001 ms, empty hours, snapshots later than the first event, same-timestamp
snapshots with different values, non-integer and unknown ``categoryid`` values,
``14418.0``-style transaction ids, exact duplicate event rows, and views both before and after
a purchase of the same item.  ``dirty=True`` adds a handful of malformed lines to every file.

Everything is vectorised with numpy; CSV text is produced by ``pyarrow.csv.write_csv`` in
chunks.  The output is a pure function of ``(scale, seed, gzip, dirty)``; the clean rows do
not depend on ``dirty`` (the malformed lines are only inserted between them).

Streaming, so that ``--scale 10`` fits in bounded memory: a small global plan (the tree, the
clock, the item ids, transaction ids, per-item and per-property parameters) is drawn first;
the rows are then made in fixed units of ``UNIT_VISITORS`` visitors / ``UNIT_ITEMS`` property
items, each unit with its own random stream and its exact share of every global count (so the
totals above are still exact).  The rows of each file are shuffled externally: every row gets
a random bucket (about ``BUCKET_ROWS`` rows each), pieces of ``piece_rows`` rows are spilled
to a temporary directory inside OUTDIR, and each bucket is then read back, permuted with its
own stream and written.  Peak memory is set by these sizes, not by ``scale``, and the output
does not depend on ``piece_rows``.
"""
from __future__ import annotations

import argparse
import gzip as gzip_module
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

# --------------------------------------------------------------------------------------------
# The published shape of the real data set (scale 1.0)
# --------------------------------------------------------------------------------------------
FULL_EVENTS = 2_756_101
FULL_VIEWS = 2_664_312
FULL_ADDTOCARTS = 69_332
FULL_TRANSACTION_ROWS = 22_457
FULL_DUPLICATES = 460
FULL_VISITORS = 1_407_580
FULL_EVENT_ITEMS = 235_061
FULL_TRANSACTIONS = 17_672
FULL_PROPERTY_ROWS = 20_275_902
FULL_PROPERTY_ITEMS = 417_053
FULL_PART1_ROWS = 11_000_000  # the real part1/part2 split
N_CATEGORIES = 1_669
CATEGORY_ID_SPACE = 1_699  # real ids are 0..1698
CATEGORY_LEVELS = (25, 174, 702, 665, 90, 13)  # categories per depth in the real tree
ITEM_ID_SPACE = 466_868  # real itemids are 0..466867
N_NUMERIC_PROPERTIES = 1_102  # "0".."1101", plus categoryid and available: 1,104 properties

EVENT_START_MS = 1_430_622_000_000  # 2015-05-03 03:00:00 UTC
EVENT_END_MS = 1_442_545_200_000  # 2015-09-18 03:00:00 UTC (exclusive)
HOUR_MS = 3_600_000
SNAPSHOT_START_MS = 1_431_226_800_000  # Sunday 2015-05-10 03:00:00 UTC
WEEK_MS = 604_800_000
N_WEEKS = 18  # 2015-05-10 .. 2015-09-13
SESSION_GAP_MS = 1_800_000

EVENTS_HEADER = "timestamp,visitorid,event,itemid,transactionid"
PROPERTIES_HEADER = "timestamp,itemid,property,value"
CATEGORY_HEADER = "categoryid,parentid"
EVENT_TYPES = ("view", "addtocart", "transaction")
FILES = ("events.csv", "item_properties_part1.csv", "item_properties_part2.csv", "category_tree.csv")

# Relative activity per UTC hour of day (shape of the real events: low around 10-11 UTC,
# highest in the (European/American) evening, 17-21 UTC).
HOUR_PROFILE = np.array(
    [1.25, 1.30, 1.30, 1.25, 1.15, 0.95, 0.70, 0.50, 0.38, 0.30, 0.25, 0.28,
     0.40, 0.60, 0.80, 1.00, 1.15, 1.30, 1.40, 1.45, 1.45, 1.40, 1.35, 1.30]
)
WEEKDAY_PROFILE = np.array([1.05, 1.05, 1.02, 1.00, 0.94, 0.88, 0.98])  # Monday .. Sunday

# Named properties: (name, value kind, share of property items having it, mean rows per item)
# kinds: A available 0/1, C categoryid, P price "n68280.000", N small number "n48.000",
#        S single token "769062", M token list "543080 702002 n48.000"
NAMED_PROPERTIES = (
    ("888", "M", 0.98, 7.34),
    ("790", "P", 0.98, 4.38),
    ("available", "A", 0.985, 3.66),
    ("categoryid", "C", 0.995, 1.90),
    ("6", "M", 0.90, 1.68),
    ("283", "M", 0.95, 1.51),
    ("776", "S", 0.80, 1.22),
    ("678", "S", 0.70, 1.08),
    ("364", "S", 0.70, 1.05),
    ("202", "S", 0.65, 1.07),
    ("839", "S", 0.60, 1.11),
    ("917", "S", 0.55, 1.10),
    ("159", "S", 0.55, 1.05),
    ("112", "S", 0.55, 1.03),
    ("764", "S", 0.56, 1.01),
)
# Streaming: rows are made in fixed units (each with its own random stream, so that the output
# does not depend on how many units are held at once), spilled in pieces of DEFAULT_PIECE_ROWS
# rows, and shuffled bucket by bucket (BUCKET_ROWS rows per bucket on average).
UNIT_VISITORS = 16_384
UNIT_ITEMS = 4_096
BUCKET_ROWS = 1 << 20
DEFAULT_PIECE_ROWS = 2_000_000

KIND_CODES = {"A": 0, "C": 1, "P": 2, "N": 3, "S": 4, "M": 5}


class _Rng:
    """Independent, reproducible random streams per component."""

    def __init__(self, seed: int):
        root = np.random.SeedSequence([int(seed), 0x5EED])
        names = ("tree", "events", "properties", "dirty")
        self._streams = dict(zip(names, root.spawn(len(names))))

    def __getitem__(self, name: str) -> np.random.Generator:
        return np.random.default_rng(self._streams[name])


def _r(x: float, scale: float) -> int:
    return int(round(x * scale))


def _adjust_total(rng, n, target, lo, hi=None, up_weight=None):
    """Add/remove units to/from ``n`` (elementwise within ``lo``..``hi``) until it sums to
    ``target``; the units are spread at random (multinomial), weighted by the room left."""
    n = n.astype(np.int64, copy=True)
    lo = np.broadcast_to(np.asarray(lo, dtype=np.int64), n.shape)
    for _ in range(200):
        diff = int(target - n.sum())
        if diff == 0:
            return n
        if diff > 0:
            room = (np.full(n.shape, 1 << 40, dtype=np.int64) if hi is None else hi - n)
            w = room.astype(np.float64) if up_weight is None else np.where(room > 0, up_weight, 0.0)
        else:
            room = n - lo
            w = room.astype(np.float64)
        tot = w.sum()
        if tot <= 0:
            raise ValueError("cannot reach the requested total")
        step = np.minimum(rng.multinomial(abs(diff), w / tot), room)
        n = n + step if diff > 0 else n - step
    raise RuntimeError("_adjust_total did not converge")


def _segment_starts(counts):
    return np.cumsum(counts) - counts


# --------------------------------------------------------------------------------------------
# Category tree
# --------------------------------------------------------------------------------------------
def _category_tree(rng):
    ids = rng.choice(CATEGORY_ID_SPACE, N_CATEGORIES, replace=False)
    parent = np.full(N_CATEGORIES, -1, dtype=np.int64)
    depth = np.zeros(N_CATEGORIES, dtype=np.int64)
    start = 0
    prev = None
    for level, size in enumerate(CATEGORY_LEVELS):
        idx = np.arange(start, start + size)
        depth[idx] = level
        if prev is not None:
            # heavy-tailed number of children; every node of the level above the first
            # few levels gets a random popularity
            w = rng.pareto(1.2, len(prev)) + 0.05
            if level > 1:
                w[rng.random(len(prev)) < 0.45] = 0.0  # many inner categories stay leaves
            choice = prev[np.searchsorted(np.cumsum(w) / w.sum(), rng.random(size), side="right").clip(0, len(prev) - 1)]
            if level == 1:  # every root has children
                choice[: len(prev)] = prev
            parent[idx] = ids[choice]
        prev = idx
        start += size
    has_child = np.isin(ids, parent)
    missing = np.setdiff1d(np.arange(CATEGORY_ID_SPACE), ids)
    order = rng.permutation(N_CATEGORIES)  # the real file is not sorted
    return {
        "ids": ids,
        "parent": parent,
        "depth": depth,
        "leaves": ids[~has_child],
        "inner": ids[has_child],
        "missing": missing,
        "order": order,
    }


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------
def _event_plan(scale):
    T = max(2, _r(FULL_TRANSACTIONS, scale))
    n_tx = max(T + 2, _r(FULL_TRANSACTION_ROWS, scale))
    n_cart = max(n_tx + 2, _r(FULL_ADDTOCARTS, scale))
    n_dup = max(2, _r(FULL_DUPLICATES, scale))
    E = max(_r(FULL_EVENTS, scale), n_tx + n_cart + 4 * n_dup + 200)
    n_view = E - n_cart - n_tx
    dup_tx = max(1, int(round(0.02 * n_dup)))
    dup_cart = int(round(0.05 * n_dup))
    dup_view = n_dup - dup_tx - dup_cart
    E_u = E - n_dup
    V = min(max(20, _r(FULL_VISITORS, scale)), int(E_u / 1.5))
    I = min(max(20, _r(FULL_EVENT_ITEMS, scale)), n_view // 4)
    P = max(I, _r(FULL_PROPERTY_ITEMS, scale))
    return dict(
        events=E, views=n_view, addtocarts=n_cart, transaction_rows=n_tx, transactions=T,
        duplicates=n_dup, dup_view=dup_view, dup_cart=dup_cart, dup_tx=dup_tx,
        unique_events=E_u, visitors=V, event_items=I, property_items=P,
    )


def _outages(rng, n_hours):
    """A few windows of whole hours (1-3 h) with no events at all: a tracker outage."""
    lengths = (1, 1, 2, 3)
    lo, hi = 7 * 24, n_hours - 7 * 24
    starts = []
    while len(starts) < len(lengths):
        s = int(rng.integers(lo, hi))
        if all(abs(s - o) > 48 for o in starts):
            starts.append(s)
    mask = np.zeros(n_hours, dtype=bool)
    for s, L in zip(sorted(starts), lengths):
        mask[s : s + L] = True
    return mask


class _Clock:
    """Maps 'activity units' to wall-clock ms: the daily/weekly cycle, and no time at all in
    the outage hours (which therefore stay empty)."""

    def __init__(self, outage_mask):
        n_hours = len(outage_mask)
        self.outage = outage_mask
        self.active = np.flatnonzero(~outage_mask)  # real hour index of each compressed hour
        self.n_active = len(self.active)
        abs_hour = EVENT_START_MS // HOUR_MS + self.active
        hod = abs_hour % 24
        dow = (abs_hour // 24 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        trend = 1.0 + 0.12 * np.sin(np.arange(self.n_active) / self.n_active * 2.6 * np.pi)
        lam = HOUR_PROFILE[hod] * WEEKDAY_PROFILE[dow] * trend
        self.lam = lam * self.n_active / lam.sum()
        self.cum = np.concatenate([[0.0], np.cumsum(self.lam)])
        self.total_units = float(self.cum[-1])
        self.n_hours = n_hours

    def compressed_ms(self, u):
        idx = np.clip(np.searchsorted(self.cum, u, side="right") - 1, 0, self.n_active - 1)
        frac = np.clip((u - self.cum[idx]) / self.lam[idx], 0.0, 0.999999)
        return ((idx + frac) * HOUR_MS).astype(np.int64)

    def real_ms(self, c):
        h = np.clip(c // HOUR_MS, 0, self.n_active - 1)
        return EVENT_START_MS + self.active[h] * HOUR_MS + (c - h * HOUR_MS)

    def in_outage(self, t):
        h = (np.asarray(t) - EVENT_START_MS) // HOUR_MS
        h = np.clip(h, 0, self.n_hours - 1)
        return self.outage[h]


def _visitor_counts(rng, V, total, cap_visitors):
    """Heavy-tailed events per visitor (Zipf 2.5: ~73 % have one event, a few thousands; the
    cap follows the number of visitors in the whole data set, ``cap_visitors``)."""
    cap = max(20, int((cap_visitors / 2) ** (1 / 1.5)))
    c = np.minimum(rng.zipf(2.5, V), cap).astype(np.int64)
    return _adjust_total(rng, c, total, lo=1, up_weight=c.astype(np.float64))


def _visitor_times(rng, counts, clock):
    """Timestamps (real ms) per visitor: sessions of events seconds-to-minutes apart,
    separated by hours or days.  Returned sorted by (visitor, time)."""
    V = len(counts)
    E = int(counts.sum())
    vis = np.repeat(np.arange(V, dtype=np.int64), counts)
    first = _segment_starts(counts)
    pos = np.arange(E) - first[vis]
    p_new = np.where(counts <= 5, 0.45, np.where(counts <= 50, 0.25, 0.07))[vis]
    new = (rng.random(E) < p_new) | (pos == 0)
    sess = np.cumsum(new) - 1
    sess_first = np.flatnonzero(new)
    sess_vis = vis[sess_first]
    n_sess = len(sess_first)
    # within-session offsets (ms)
    gap = np.clip(rng.lognormal(np.log(40_000), 1.1, E), 500, 25 * 60_000).astype(np.int64)
    gap[new] = 0
    cg = np.cumsum(gap)
    offset = cg - cg[sess_first][sess]
    # session starts, in activity units (hours): come back the same day or days later
    sgap = np.where(
        rng.random(n_sess) < 0.4,
        rng.lognormal(np.log(2.0), 0.9, n_sess),
        1.0 + rng.exponential(96.0, n_sess),
    )
    vfirst_sess = np.flatnonzero(np.concatenate([[True], sess_vis[1:] != sess_vis[:-1]]))
    sgap[vfirst_sess] = 0.0
    scum = np.cumsum(sgap)
    rel = scum - scum[vfirst_sess][sess_vis]
    span = np.maximum.reduceat(rel, vfirst_sess)
    limit = 0.9 * clock.total_units
    factor = np.minimum(1.0, limit / np.maximum(span, 1e-9))
    rel = rel * factor[sess_vis]
    u0 = rng.random(V) * (clock.total_units - span * factor)
    u = u0[sess_vis] + rel
    c = clock.compressed_ms(u)[sess] + offset
    # keep everything inside the range: shift a visitor back if a session runs past the end
    end_c = clock.n_active * HOUR_MS - 1
    over = np.maximum.reduceat(c, first) - end_c
    over = np.where(over > 0, over + (rng.random(V) * 2 * HOUR_MS).astype(np.int64), 0)
    c = np.maximum(c - over[vis], 0)
    t = clock.real_ms(c)
    order = np.lexsort((t, vis))
    return t[order]


def _popularity_sampler(rng, items, exponent=0.95, k0=100.0):
    ranked = rng.permutation(items)
    w = (np.arange(len(ranked)) + k0) ** -exponent
    cdf = np.cumsum(w)
    cdf /= cdf[-1]

    def pick(n, rng):
        return ranked[np.searchsorted(cdf, rng.random(n), side="right").clip(0, len(ranked) - 1)]

    return ranked, pick


def _events_unit(rng, sub, pick, own_items, clock, cap_visitors, T_total, tx_off, dot0, mixed_dup):
    """The events of one unit of visitors (their own random stream): unique rows in
    (visitor, time) order followed by the unit's exact duplicate rows.  ``sub`` gives the
    unit's share of every count; ``own_items`` are event items this unit must use at least
    once; transactions are numbered from ``tx_off`` in the global list."""
    V, E_u, T = sub["visitors"], sub["unique_events"], sub["transactions"]
    n_tx_u, n_cart_u, n_view_u = sub["tx_rows"], sub["cart_rows"], sub["view_rows"]

    # ---- transactions: sizes, funnel flags ------------------------------------------------
    extra_w = rng.lognormal(0.0, 1.5, T)
    k = 1 + rng.multinomial(n_tx_u - T, extra_w / extra_w.sum())
    tx_of_row = np.repeat(np.arange(T), k)
    j_in_tx = np.arange(n_tx_u) - np.repeat(_segment_starts(k), k)
    row_item = pick(n_tx_u, rng)
    for _ in range(20):  # the items of one transaction are distinct
        key = tx_of_row.astype(np.int64) * (1 << 32) + row_item
        _, first_idx = np.unique(key, return_index=True)
        dup = np.ones(n_tx_u, dtype=bool)
        dup[first_idx] = False
        if not dup.any():
            break
        row_item[dup] = pick(int(dup.sum()), rng)
    has_cart = rng.random(n_tx_u) < 0.96
    has_view = rng.random(n_tx_u) < 0.93
    post_view = rng.random(n_tx_u) < 0.05
    has_cart[0] = has_view[0] = post_view[0] = True  # a view before and after a purchase
    if has_cart.sum() > n_cart_u:
        on = np.flatnonzero(has_cart)[1:]
        has_cart[rng.choice(on, int(has_cart.sum()) - n_cart_u, replace=False)] = False
    n_co = n_cart_u - int(has_cart.sum())
    co_view = rng.random(n_co) < 0.9
    n_funnel_views = int(has_view.sum() + post_view.sum() + co_view.sum())
    n_filler = n_view_u - n_funnel_views
    if n_filler < 0:
        raise ValueError("scale too small")

    # ---- visitors: event counts, who buys ------------------------------------------------
    counts = _visitor_counts(rng, V, E_u, cap_visitors)
    tx_tokens = np.bincount(tx_of_row, weights=1 + has_cart + has_view + post_view, minlength=T).astype(np.int64)
    w = np.where(counts >= 3, counts ** 0.8, 0.0)
    tx_vis = rng.choice(V, T, p=w / w.sum())
    w = np.where(counts >= 2, counts ** 0.8, 0.0)
    co_vis = rng.choice(V, n_co, p=w / w.sum())
    demand = np.bincount(tx_vis, weights=tx_tokens, minlength=V).astype(np.int64)
    demand += np.bincount(co_vis, weights=1 + co_view, minlength=V).astype(np.int64)
    raised = np.maximum(counts, demand)
    counts = _adjust_total(rng, raised, E_u, lo=np.maximum(demand, 1))

    # ---- tokens: what each visitor does, in a valid order ---------------------------------
    tx_key = 0.1 + 0.85 * rng.beta(2.0, 1.0, T)
    base = tx_key[tx_of_row]
    rvis = tx_vis[tx_of_row]
    cart_key = base * (0.35 + 0.6 * rng.random(n_tx_u))
    view_key = np.where(has_cart, cart_key, base) * (0.2 + 0.75 * rng.random(n_tx_u))
    post_key = base + (1.0 - base) * (0.05 + 0.9 * rng.random(n_tx_u))
    co_key = rng.random(n_co)
    co_item = pick(n_co, rng)
    filler_per_vis = counts - np.bincount(tx_vis, weights=tx_tokens, minlength=V).astype(np.int64) \
        - np.bincount(co_vis, weights=1 + co_view, minlength=V).astype(np.int64)
    assert filler_per_vis.min() >= 0 and filler_per_vis.sum() == n_filler
    parts = [
        # (visitor, order key within the visitor, event type, item, transaction index)
        (rvis, base + j_in_tx * 1e-9, 2, row_item, tx_of_row),
        (rvis[has_cart], cart_key[has_cart], 1, row_item[has_cart], None),
        (rvis[has_view], view_key[has_view], 0, row_item[has_view], None),
        (rvis[post_view], post_key[post_view], 0, row_item[post_view], None),
        (co_vis, co_key, 1, co_item, None),
        (co_vis[co_view], co_key[co_view] * rng.random(int(co_view.sum())), 0, co_item[co_view], None),
    ]
    f_vis = np.repeat(np.arange(V), filler_per_vis)
    tok_vis = np.concatenate([p[0] for p in parts] + [f_vis]).astype(np.int64)
    tok_key = np.concatenate([p[1] for p in parts] + [rng.random(n_filler)])
    tok_type = np.concatenate([np.full(len(p[0]), p[2], np.int8) for p in parts] + [np.zeros(n_filler, np.int8)])
    tok_item = np.concatenate([p[3] for p in parts] + [np.full(n_filler, -1)]).astype(np.int64)
    tok_tx = np.concatenate([tx_of_row] + [np.full(len(p[0]), -1) for p in parts[1:]] + [np.full(n_filler, -1)]).astype(np.int64)
    tok_jtx = np.concatenate([j_in_tx] + [np.zeros(len(p[0]), np.int64) for p in parts[1:]] + [np.zeros(n_filler, np.int64)])
    filler = np.zeros(E_u, dtype=bool)
    filler[E_u - n_filler:] = True
    order = np.lexsort((tok_key, tok_vis))
    vis, typ, item, txi, jtx, filler = (a[order] for a in (tok_vis, tok_type, tok_item, tok_tx, tok_jtx, filler))
    assert np.array_equal(np.bincount(vis, minlength=V), counts)

    # ---- timestamps ----------------------------------------------------------------------
    t = _visitor_times(rng, counts, clock)
    vstart = np.zeros(E_u, dtype=bool)
    vstart[_segment_starts(counts)] = True

    # ---- items of the plain views: popular items, often the same item again ---------------
    repeat = filler & ~vstart & (rng.random(E_u) < 0.3)
    fresh = np.flatnonzero(filler & ~repeat)
    n_sampled = len(fresh) - len(own_items)
    if n_sampled >= 0:  # every event item is used at least once
        fresh_items = np.concatenate([rng.permutation(own_items), pick(n_sampled, rng)])
        fresh_items = fresh_items[rng.permutation(len(fresh_items))]
    else:
        fresh_items = pick(len(fresh), rng)
    item[fresh] = fresh_items
    src = np.where(repeat, -1, np.arange(E_u))
    src = np.maximum.accumulate(src)
    item = item[src]

    # ---- the items of one transaction are bought together (ms apart) ----------------------
    is_tx = typ == 2
    first_pos = np.empty(T, dtype=np.int64)
    m0 = is_tx & (jtx == 0)
    first_pos[txi[m0]] = np.flatnonzero(m0)
    later = np.flatnonzero(is_tx & (jtx > 0))
    step = rng.integers(5, 400, T)
    cand = np.minimum(t[first_pos[txi[later]]] + jtx[later] * step[txi[later]], t[later])
    ok = ~clock.in_outage(cand)
    t[later[ok]] = cand[ok]
    order = np.lexsort((t, vis))  # stable; vis is already sorted
    t, typ, item, txi, filler = t[order], typ[order], item[order], txi[order], filler[order]

    # ---- EDGE CASES: ties, 30-min gaps ------------------------------------------------------
    touched = np.zeros(E_u + 2, dtype=bool)
    same_next = np.zeros(E_u, dtype=bool)
    same_next[:-1] = vis[1:] == vis[:-1]

    def choose(mask, n):
        cands = np.flatnonzero(mask)
        cands = cands[~(touched[cands] | touched[cands + 1] | touched[cands + 2] | touched[np.maximum(cands - 1, 0)])]
        if len(cands) == 0 or n == 0:
            return cands[:0]
        picked = np.sort(rng.choice(cands, min(n, len(cands)), replace=False))
        # keep the chosen pairs apart from each other
        keep = np.concatenate([[True], np.diff(picked) > 3])
        picked = picked[keep]
        touched[picked] = touched[picked + 1] = True
        return picked

    gap = np.diff(t)
    tie_mask = same_next[:-1] & filler[:-1] & filler[1:] & (item[:-1] != item[1:]) & (gap < 600_000) & (gap > 0)
    ties = choose(tie_mask, sub["ties"])
    t[ties + 1] = t[ties]
    exact = {}
    for g in (SESSION_GAP_MS, SESSION_GAP_MS + 1):
        gap = np.diff(t)
        m = same_next[:-1] & filler[1:] & (gap > SESSION_GAP_MS + 2)
        m &= ~clock.in_outage(t[:-1] + g)
        picked = choose(m, sub["gaps"])
        t[picked + 1] = t[picked] + g
        exact[g] = len(picked)

    assert not clock.in_outage(t).any()
    assert t.min() >= EVENT_START_MS and t.max() < EVENT_END_MS
    # no accidental exact duplicates among the unique rows (visitors are disjoint across units)
    o = np.lexsort((txi, item, typ, t, vis))
    cols = [a[o] for a in (vis, t, typ, item, txi)]
    same_row = np.ones(E_u - 1, dtype=bool)
    for a in cols:
        same_row &= a[1:] == a[:-1]
    if same_row.any():  # pragma: no cover - astronomically rare
        raise RuntimeError("accidental duplicate rows")
    del o, cols, same_row

    # ---- transaction ids: mostly integers, some written like 14418.0 -----------------------
    gtx = tx_off + np.maximum(txi, 0)
    txstr = np.where(txi >= 0, 1 + gtx + T_total * dot0[gtx], 0)

    # ---- exact duplicate rows --------------------------------------------------------------
    dups = []
    for code, n in ((0, sub["dup_view"]), (1, sub["dup_cart"]), (2, sub["dup_tx"])):
        if n:
            dups.append(rng.choice(np.flatnonzero(typ == code), n, replace=False))
    dups = np.concatenate(dups) if dups else np.zeros(0, np.int64)
    dup_txstr = txstr[dups].copy()
    # one duplicated transaction row (in the whole file) writes its id the other way (14418
    # vs 14418.0): the same value, so still a duplicate for the reader
    mixed = np.flatnonzero(typ[dups] == 2)[:1] if mixed_dup else np.zeros(0, np.int64)
    for m in mixed:
        gt = tx_off + txi[dups[m]]
        dup_txstr[m] = 1 + gt + T_total * (not dot0[gt])
    sel = np.concatenate([np.arange(E_u), dups])
    stats = dict(
        exact_gap_1800000=exact[SESSION_GAP_MS],
        exact_gap_1800001=exact[SESSION_GAP_MS + 1],
        ties=len(ties),
        mixed_form_duplicates=len(mixed),
    )
    return dict(
        timestamp=t[sel], visitor=vis[sel], event=typ[sel], itemid=item[sel],
        txstr=np.concatenate([txstr, dup_txstr]), stats=stats,
    )


# --------------------------------------------------------------------------------------------
# Item properties
# --------------------------------------------------------------------------------------------
def _value_pools(rng, scale):
    """All distinct value strings, as one pyarrow array, and the offsets of each kind."""
    pools = {}
    pools["A"] = pa.array(["0", "1"])
    cat_ids = np.arange(CATEGORY_ID_SPACE + 200)
    cat_str = pc.cast(pa.array(cat_ids), pa.string())
    pools["C"] = pa.concat_arrays([cat_str, pc.binary_join_element_wise("n", cat_str, ".000", "")])
    n_price = 30_000
    pools["P"] = pc.binary_join_element_wise(
        "n", pc.cast(pa.array(np.arange(n_price) * 120), pa.string()), ".000", ""
    )
    n_num = 4_000
    pools["N"] = pc.binary_join_element_wise(
        "n", pc.cast(pa.array(np.arange(n_num) * 12), pa.string()), ".000", ""
    )
    n_tok = 200_000
    tok_num = np.sort(rng.choice(1_400_000, n_tok, replace=False))
    tok_num = rng.permutation(tok_num)
    pools["S"] = pc.cast(pa.array(tok_num), pa.string())
    # token lists: mostly ids (some far more common than others), some numbers
    n_multi = max(5_000, _r(700_000, scale))
    n_tokens = np.minimum(1 + rng.geometric(0.31, n_multi), 40)
    long_ = rng.random(n_multi) < 0.01
    n_tokens[long_] = rng.integers(10, 60, int(long_.sum()))
    total = int(n_tokens.sum())
    tok_idx = np.minimum((rng.pareto(1.1, total) * 50).astype(np.int64), n_tok - 1)
    is_num = rng.random(total) < 0.15
    num_idx = np.minimum((rng.pareto(1.3, int(is_num.sum())) * 4).astype(np.int64) + 1, n_num - 1)
    # an index into concat(S, N)
    combined = pa.concat_arrays([pools["S"], pools["N"]])
    cidx = tok_idx.copy()
    cidx[is_num] = n_tok + num_idx
    flat = pc.take(combined, pa.array(cidx))
    offsets = np.concatenate([[0], np.cumsum(n_tokens)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), flat)
    pools["M"] = pc.unique(pc.binary_join(lists, " "))  # distinct strings per kind
    order = ["A", "C", "P", "N", "S", "M"]
    off = {}
    pos = 0
    for k in order:
        off[k] = pos
        pos += len(pools[k])
    value_pool = pa.concat_arrays([pools[k].cast(pa.string()) for k in order])
    sizes = {k: len(pools[k]) for k in order}
    return value_pool, off, sizes


def _property_specs(rng):
    named = {n for n, *_ in NAMED_PROPERTIES}
    rest = [str(i) for i in range(N_NUMERIC_PROPERTIES) if str(i) not in named]
    rest = list(rng.permutation(np.array(rest, dtype=object)))
    names = [n for n, *_ in NAMED_PROPERTIES] + rest
    kinds = [k for _, k, *_ in NAMED_PROPERTIES]
    cover = [c for *_, c, _ in NAMED_PROPERTIES]
    rpp = [m for *_, m in NAMED_PROPERTIES]
    named_rows = sum(c * m for *_, c, m in NAMED_PROPERTIES)
    rest_rows = FULL_PROPERTY_ROWS / FULL_PROPERTY_ITEMS - named_rows  # rows per item
    w = (np.arange(len(rest)) + 20.0) ** -1.3
    w /= w.sum()
    rest_kind = rng.choice(np.array(["S", "M", "N"]), len(rest), p=[0.45, 0.35, 0.20])
    for i in range(len(rest)):
        kind = str(rest_kind[i])
        m = {"S": 1.05, "M": 1.25, "N": 1.6}[kind] * (1.0 + 0.3 * rng.random())
        c = rest_rows * w[i] / m
        if c > 0.95:
            m *= c / 0.95
            c = 0.95
        kinds.append(kind)
        cover.append(c)
        rpp.append(m)
    return names, np.array([KIND_CODES[k] for k in kinds], np.int8), np.array(cover), np.array(rpp)


def _property_model(rng, scale, prop_items, tree, special_items):
    """Everything about the item properties that is not per row: the property specs, the value
    pools, per-item attributes (first snapshot week, categories) and per-property value
    parameters.  Its size grows with the number of items and values, not with the rows."""
    P = len(prop_items)
    names, kinds, cover, rpp = _property_specs(rng)
    n_props = len(names)
    value_pool, voff, vsize = _value_pools(rng, scale)

    # item-level attributes
    item_start = np.where(rng.random(P) < 0.6, 0, rng.integers(1, N_WEEKS, P)).astype(np.int8)
    cat_w_leaf = rng.pareto(1.0, len(tree["leaves"])) + 0.02
    leaf_cdf = np.cumsum(cat_w_leaf) / cat_w_leaf.sum()

    def pick_cat(n):
        c = tree["leaves"][np.searchsorted(leaf_cdf, rng.random(n), side="right").clip(0, len(tree["leaves"]) - 1)]
        inner = rng.random(n) < 0.08
        c[inner] = rng.choice(tree["inner"], int(inner.sum()))
        return c

    base_cat = pick_cat(P)
    alt_cat = pick_cat(P)
    same = alt_cat == base_cat
    alt_cat[same] = rng.choice(tree["leaves"], int(same.sum()))
    same = alt_cat == base_cat
    alt_cat[same] = np.where(base_cat[same] == tree["leaves"][0], tree["leaves"][1], tree["leaves"][0])
    # EDGE CASE: some items have a category id that is not in the tree
    unknown = rng.random(P) < 0.0005
    item_pos = np.searchsorted(prop_items, special_items)  # prop_items is sorted
    unknown[item_pos[1]] = True
    base_cat[unknown] = rng.choice(tree["missing"], int(unknown.sum()))
    alt_cat[unknown] = tree["missing"][(np.searchsorted(tree["missing"], base_cat[unknown]) + 1) % len(tree["missing"])]

    # chance of each further weekly snapshot, from the expected weeks left after the first
    f = np.arange(N_WEEKS)
    pf = np.where(f == 0, 0.6, 0.4 / (N_WEEKS - 1))
    left = N_WEEKS - 1 - f
    room = np.where(np.isin(kinds, [KIND_CODES["A"], KIND_CODES["C"]]),
                    (pf * left).sum(), (pf * (left - 0.25 * left / 2)).sum())
    q = np.clip((rpp - 1.0) / room, 0.0, 1.0)

    prop_mu = rng.normal(np.log(20), 1.5, n_props)
    vs_s = np.clip(rng.lognormal(np.log(30), 1.6, n_props), 2, vsize["S"] - 1).astype(np.int64)
    vst_s = (rng.random(n_props) * (vsize["S"] - vs_s)).astype(np.int64)
    vs_m = np.clip(rng.lognormal(np.log(2000), 1.5, n_props), 2, vsize["M"]).astype(np.int64)
    vs_m[names.index("888")] = vsize["M"]
    vs_m[names.index("6")] = vsize["M"] // 3
    vs_m[names.index("283")] = vsize["M"] // 3
    gam = np.full(n_props, 2.0)
    gam[names.index("888")] = 1.0
    vst_m = (rng.random(n_props) * (vsize["M"] - vs_m + 1)).astype(np.int64)
    return dict(
        names=names, kinds=kinds, cover=cover.astype(np.float32), q=q, value_pool=value_pool,
        voff=voff, vsize=vsize, item_start=item_start, base_cat=base_cat, alt_cat=alt_cat,
        item_pos=item_pos, prop_mu=prop_mu, vs_s=vs_s, vst_s=vst_s, vs_m=vs_m, gam=gam,
        vst_m=vst_m, tree=tree,
    )


def _property_unit(rng, model, a, b, quota, n_extra_conflicts):
    """Rows (week, item index, property, value, flag) of the weekly snapshots of the property
    items a..b-1 (their own random stream): ``quota`` rows plus ``n_extra_conflicts`` planted
    same-timestamp conflicts (plus the two special ones if their items are in the range).
    flag: 0 a plain row, 1/2 the original/copy of special conflict 0 (categoryid),
    3/4 the original/copy of special conflict 1 (available)."""
    kinds, names, voff, vsize = model["kinds"], model["names"], model["voff"], model["vsize"]
    tree, base_cat, alt_cat, item_pos = model["tree"], model["base_cat"], model["alt_cat"], model["item_pos"]
    n_props = len(names)
    pC, pA = names.index("categoryid"), names.index("available")
    U = b - a

    # pairs (item, property): who has what, first snapshot week, number of snapshots
    has = rng.random((U, n_props), dtype=np.float32) < model["cover"][None, :]
    for s in item_pos:  # special items must have categoryid and available
        if a <= s < b:
            has[s - a, pC] = has[s - a, pA] = True
    pair_item, pair_prop = np.nonzero(has)
    del has
    pair_item = (pair_item + a).astype(np.int64)
    pair_prop = pair_prop.astype(np.int16)
    npairs = len(pair_item)
    f = model["item_start"][pair_item].astype(np.int64)
    late = ~np.isin(kinds[pair_prop], [KIND_CODES["A"], KIND_CODES["C"]]) & (rng.random(npairs) < 0.25)
    f[late] = f[late] + (rng.random(int(late.sum())) * (N_WEEKS - f[late])).astype(np.int64)
    pair_first = f
    n = 1 + rng.binomial(N_WEEKS - 1 - f, model["q"][pair_prop])
    n = _adjust_total(rng, n, max(npairs, quota), lo=1, hi=N_WEEKS - f)
    pair_n = n

    # expand to rows: the first snapshot at pair_first, the others at random later weeks
    multi = np.flatnonzero(pair_n > 1)
    keys = rng.random((len(multi), N_WEEKS - 1), dtype=np.float32)
    cols = np.arange(1, N_WEEKS, dtype=np.int8)
    keys[cols[None, :] <= pair_first[multi][:, None]] = 2.0
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    chosen = rank < (pair_n[multi] - 1)[:, None]
    r_, c_ = np.nonzero(chosen)
    del keys, rank, chosen
    row_pair = np.concatenate([np.arange(npairs), multi[r_]])
    row_week = np.concatenate([pair_first.astype(np.int8), cols[c_]])
    o = np.lexsort((row_week, row_pair))
    row_pair = row_pair[o]
    row_week = row_week[o]
    del o, r_, c_
    R = len(row_pair)
    first_row = _segment_starts(pair_n)
    row_r = np.arange(R) - first_row[row_pair]

    # values
    p_of_row = pair_prop[row_pair]
    k_of_row = kinds[p_of_row]
    it_of_row = pair_item[row_pair]
    val = np.zeros(R, dtype=np.int64)
    m = k_of_row == KIND_CODES["A"]
    v0 = (rng.random(npairs) < 0.45).astype(np.int64)
    val[m] = voff["A"] + (v0[row_pair[m]] + row_r[m]) % 2
    m = k_of_row == KIND_CODES["C"]
    cat = np.where(row_r[m] % 2 == 0, base_cat[it_of_row[m]], alt_cat[it_of_row[m]])
    # EDGE CASE: categoryid written as a decimal (n1338.000): not an integer
    nonint = rng.random(int(m.sum())) < 0.0005
    nonint |= it_of_row[m] == item_pos[0]
    val[m] = voff["C"] + cat + np.where(nonint, CATEGORY_ID_SPACE + 200, 0)
    m = k_of_row == KIND_CODES["P"]
    base_price = np.clip(rng.lognormal(np.log(350), 1.1, npairs), 1, vsize["P"] - 1)
    pr = base_price[row_pair[m]] * np.where(row_r[m] == 0, 1.0, np.exp(rng.normal(0, 0.12, int(m.sum()))))
    val[m] = voff["P"] + np.clip(np.round(pr), 1, vsize["P"] - 1).astype(np.int64)
    m = k_of_row == KIND_CODES["N"]
    nv = rng.lognormal(model["prop_mu"][p_of_row[m]], 1.0)
    val[m] = voff["N"] + np.clip(np.round(nv), 0, vsize["N"] - 1).astype(np.int64)
    m = k_of_row == KIND_CODES["S"]
    pm = p_of_row[m]
    val[m] = voff["S"] + model["vst_s"][pm] + (model["vs_s"][pm] * rng.random(int(m.sum())) ** 2.5).astype(np.int64)
    m = k_of_row == KIND_CODES["M"]
    pm = p_of_row[m]
    vs_m, vst_m, gam = model["vs_m"], model["vst_m"], model["gam"]
    val[m] = voff["M"] + np.minimum(vst_m[pm] + (vs_m[pm] * rng.random(int(m.sum())) ** gam[pm]).astype(np.int64), vsize["M"] - 1)
    # a property with several snapshots changes value from one snapshot to the next
    # (within a kind, different pool indices are different strings)
    kind_off = np.array([voff[k] for k in "ACPNSM"], np.int64)
    kind_size = np.array([vsize[k] for k in "ACPNSM"], np.int64)
    for _ in range(50):
        same = np.flatnonzero((row_r[1:] > 0) & (val[1:] == val[:-1])) + 1
        if len(same) == 0:
            break
        ko = kind_off[k_of_row[same]]
        val[same] = ko + (val[same] - ko + 1) % kind_size[k_of_row[same]]
    del k_of_row, row_r

    # EDGE CASE: two snapshots of one (item, property) at the same timestamp, different values
    conf_rows, conf_flags = [], []
    for p, it, flag in ((pC, item_pos[2], 1), (pA, item_pos[3], 3)):
        if a <= it < b:
            pr_ = np.flatnonzero((pair_prop == p) & (pair_item == it))
            conf_rows.append(first_row[pr_[0]])
            conf_flags.append(flag)
    special_pairs = row_pair[np.array(conf_rows, np.int64)]
    eligible = np.flatnonzero(np.isin(kinds[pair_prop], [KIND_CODES["A"], KIND_CODES["C"], KIND_CODES["P"]]))
    eligible = np.setdiff1d(eligible, special_pairs)
    more = rng.choice(eligible, min(n_extra_conflicts, len(eligible)), replace=False)
    conf_rows = np.concatenate([np.array(conf_rows, np.int64), first_row[more] + (rng.random(len(more)) * pair_n[more]).astype(np.int64)])
    cv = val[conf_rows].copy()
    ck = kinds[p_of_row[conf_rows]]
    new_v = np.where(ck == KIND_CODES["A"], voff["A"] + (1 - (cv - voff["A"])),
                     np.where(ck == KIND_CODES["C"], voff["C"] + alt_cat[it_of_row[conf_rows]],
                              np.where(cv + 7 < voff["P"] + vsize["P"], cv + 7, cv - 7)))
    same_c = (ck == KIND_CODES["C"]) & (new_v == cv)
    new_v[same_c] = voff["C"] + base_cat[it_of_row[conf_rows[same_c]]]
    new_v[(ck == KIND_CODES["C"]) & (new_v == cv)] = voff["C"] + tree["leaves"][0]
    assert (new_v != cv).all()

    out = np.empty(R + len(conf_rows), dtype=_PROPERTY_RECORD)
    out["w"] = np.concatenate([row_week, row_week[conf_rows]])
    out["i"] = np.concatenate([it_of_row, it_of_row[conf_rows]])
    out["p"] = np.concatenate([p_of_row, p_of_row[conf_rows]])
    out["v"] = np.concatenate([val, new_v])
    flags = np.zeros(len(out), np.int8)
    for k, flag in enumerate(conf_flags):
        flags[conf_rows[k]] = flag
        flags[R + k] = flag + 1
    out["f"] = flags
    stats = dict(pairs=npairs, conflicts=len(conf_rows),
                 items=int(len(np.unique(pair_item))),
                 properties=np.bincount(pair_prop, minlength=n_props) > 0)
    return out, stats


# --------------------------------------------------------------------------------------------
# Streaming: fixed units, pieces, and an external shuffle
# --------------------------------------------------------------------------------------------
_EVENT_RECORD = np.dtype([("t", "<i8"), ("vis", "<i8"), ("e", "i1"), ("i", "<i8"), ("x", "<i8")])
_PROPERTY_RECORD = np.dtype([("w", "i1"), ("i", "<i4"), ("p", "<i2"), ("v", "<i4"), ("f", "i1")])


def _apportion(total, weights):
    """Split the integer ``total`` over ``weights`` (integers) in proportion, exactly."""
    w = np.asarray(weights, dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(w)])
    cuts = (int(total) * cum) // max(int(cum[-1]), 1)  # exact integer arithmetic
    return np.diff(cuts)


def _units(n, unit):
    """Bounds of about-``unit``-sized consecutive ranges covering 0..n-1 (never a tiny one)."""
    k = max(1, int(round(n / unit)))
    return np.concatenate([[0], np.cumsum(_apportion(n, np.ones(k, np.int64)))])


def _unit_rng(seed, tag, u):
    return np.random.default_rng([int(seed), 0x5EED, tag, int(u)])


class _Shuffle:
    """An external shuffle in bounded memory.  Rows arrive in batches, each row with a random
    bucket; pieces of about ``piece_rows`` rows are written to a temporary file, grouped by
    bucket.  ``buckets()`` then reads one bucket at a time (its rows in arrival order, from
    every piece) and permutes it with the bucket's own random stream.  The result does not
    depend on ``piece_rows``: only on the rows, their buckets and the seed."""

    def __init__(self, tmpdir, name, dtype, n_buckets, seed, tag, piece_rows):
        self.tmpdir, self.name, self.dtype = Path(tmpdir), name, dtype
        self.n_buckets, self.seed, self.tag, self.piece_rows = n_buckets, seed, tag, piece_rows
        self.batches, self.n_batched, self.pieces = [], 0, []

    def add(self, records, bucket):
        self.batches.append((records, bucket.astype(np.int32)))
        self.n_batched += len(records)
        if self.n_batched >= self.piece_rows:
            self._flush()

    def _flush(self):
        if not self.batches:
            return
        rec = np.concatenate([r for r, _ in self.batches])
        bkt = np.concatenate([b for _, b in self.batches])
        self.batches, self.n_batched = [], 0
        order = np.argsort(bkt, kind="stable")
        offsets = np.concatenate([[0], np.cumsum(np.bincount(bkt, minlength=self.n_buckets))])
        path = self.tmpdir / f"{self.name}-{len(self.pieces)}.bin"
        rec[order].tofile(path)
        self.pieces.append((path, offsets))

    def buckets(self):
        self._flush()
        size = self.dtype.itemsize
        for b in range(self.n_buckets):
            parts = [np.fromfile(path, self.dtype, count=int(off[b + 1] - off[b]), offset=int(off[b]) * size)
                     for path, off in self.pieces if off[b + 1] > off[b]]
            rec = np.concatenate(parts) if parts else np.zeros(0, self.dtype)
            rng = _unit_rng(self.seed, self.tag + 1, b)
            yield b, rec[rng.permutation(len(rec))], rng
        for path, _ in self.pieces:
            path.unlink()
        self.pieces = []


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
class _Sink:
    """A CSV file written in chunks, with optional malformed lines spliced in between rows."""

    def __init__(self, path: Path, header: str, compress: bool, inserts=(), crlf_rows=()):
        self.path = path
        self.raw = open(path, "wb")
        if compress:
            self.fh = gzip_module.GzipFile(
                filename=path.name[:-3], mode="wb", fileobj=self.raw, compresslevel=5, mtime=0
            )
        else:
            self.fh = self.raw
        self.fh.write(header.encode() + b"\n")
        self.inserts = sorted(inserts, key=lambda x: x[0])  # (before data row k, line bytes)
        self.crlf = set(int(x) for x in crlf_rows)
        self.rows = 0

    def write(self, table: pa.Table):
        buf = pa.BufferOutputStream()
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="none"))
        data = buf.getvalue().to_pybytes()
        a, b = self.rows, self.rows + table.num_rows
        todo = [(k - a, 0, line) for k, line in self.inserts if a <= k < b]
        todo += [(k - a, 1, b"") for k in self.crlf if a <= k < b]
        if todo:
            ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
            out, pos = [], 0
            for k, kind, line in sorted(todo, key=lambda x: (x[0], x[1])):
                row_start = 0 if k == 0 else int(ends[k - 1]) + 1
                out.append(data[pos:row_start])
                pos = row_start
                if kind == 0:  # a malformed line before data row k
                    out.append(line + b"\n")
                else:  # data row k ends in CRLF
                    e = int(ends[k])
                    out.append(data[pos:e] + b"\r\n")
                    pos = e + 1
            out.append(data[pos:])
            data = b"".join(out)
        self.fh.write(data)
        self.rows = b

    def close(self):
        for k, line in self.inserts:
            if k >= self.rows:
                self.fh.write(line + b"\n")
        if self.fh is not self.raw:
            self.fh.close()
        self.raw.close()


def _dirty_plan(rng, n_rows, lines):
    """Positions (before data row k) for malformed lines: one right after the header, one at
    the very end, the others spread over the file; plus one valid row ending in CRLF."""
    n = len(lines)
    pos = [0, n_rows] + sorted(int(x) for x in rng.integers(1, max(n_rows, 2), n - 2))
    order = rng.permutation(n)
    inserts = [(pos[i], lines[order[i]]) for i in range(n)]
    # no blank line at the very end (a file ending "\n\n"); keep it in the middle
    for i, (k, line) in enumerate(inserts):
        if line == b"" and k == n_rows:
            j = next(j for j, (kk, ll) in enumerate(inserts) if kk != n_rows)
            inserts[i], inserts[j] = (k, inserts[j][1]), (inserts[j][0], line)
            break
    crlf = [int(rng.integers(1, max(n_rows, 2)))] if n_rows > 1 else []
    return inserts, crlf


def _event_dirty_lines(rng, ev):
    i = int(rng.integers(len(ev["timestamp"])))
    ts, vid, item = int(ev["timestamp"][i]), int(ev["visitorid"][i]), int(ev["itemid"][i])
    lines = [
        "",  # blank line
        f"{ts},{vid},view,{item}",  # 4 fields
        f"{ts},{vid},view,{item},,1",  # 6 fields
        f"{ts}.5,{vid},view,{item},",  # non-integer timestamp
        f"{ts},v{vid},view,{item},",  # non-integer visitorid
        f"{ts},{vid},View,{item},",  # unknown event type
        f"{ts},{vid},transaction,{item},",  # transaction without transactionid
        f"{ts},{vid},view,{item}x,",  # non-integer itemid
        f"{ts},{vid},transaction,{item},17238.5",  # non-integer transactionid
    ]
    return [x.encode() for x in lines]


def _property_dirty_lines(rng, props, part):
    i = int(rng.integers(len(props["week"])))
    ts = int(props["ts_pool"][props["week"][i]])
    item = int(props["item"][i])
    lines = [
        "",
        f"{ts},{item},790",  # 3 fields
        f"{ts},{item},888,1 2,3",  # 5 fields
        f"{ts}.5,{item},available,1",  # non-integer timestamp
        f"{ts},item{item},available,1",  # non-integer itemid
    ]
    if part == 2:
        lines.append(f",{item},categoryid,1")  # empty timestamp
    return [x.encode() for x in lines]


def _tree_dirty_lines(rng, tree):
    a, b = (int(x) for x in rng.choice(tree["ids"], 2, replace=False))
    lines = [
        "",
        f"{a},{b},1",  # 3 fields
        f"c{a},{b}",  # non-integer categoryid
        f"{a},p{b}",  # non-integer parentid
        f"{a},{b}",  # duplicate categoryid (the first row is kept)
    ]
    return [x.encode() for x in lines]


def _out_name(name, compress):
    return name + ".gz" if compress else name


def _write_rows(sink, table_of, rec, chunk=1_000_000):
    for c in range(0, len(rec), chunk):
        sink.write(table_of(rec[c : c + chunk]))


def _place_conflicts(rec, rng, off, n_part1):
    """Put the special conflict rows of a bucket (starting at global row ``off``) where the
    edge cases need them: the original of conflict 0 in part 1 and its copy in part 2; both
    rows of conflict 1 in part 2, the copy after the original."""
    flags = rec["f"]
    flagged = np.flatnonzero(flags)
    if len(flagged) == 0:
        return rec
    L = len(rec)
    cut = min(L, max(0, n_part1 - off))
    flagged = flagged[np.argsort(flags[flagged], kind="stable")]
    fl = flags[flagged]
    pos = np.empty(len(flagged), np.int64)
    first = fl == 1
    if first.any():
        pos[first] = rng.integers(0, cut)  # rows 0..cut-1 of this bucket are in part 1
    rest = ~first
    if rest.any():
        pos[rest] = np.sort(cut + rng.choice(L - cut, int(rest.sum()), replace=False))
    taken = np.zeros(L, bool)
    taken[pos] = True
    out = np.empty_like(rec)
    out[pos] = rec[flagged]
    out[~taken] = rec[flags == 0]
    return out


def generate(outdir, scale: float = 1.0, seed: int = 0, gzip: bool = False, dirty: bool = False,
             progress: bool = True, piece_rows: int = DEFAULT_PIECE_ROWS) -> dict:
    """Write the four Retail Rocket files into ``outdir``; return what was written.

    The result has ``files`` (file name -> ``rows``: data rows, ``malformed_lines``: lines
    added by ``dirty``), ``events`` (counts per event type, duplicates, visitors, items,
    transactions, ``outage_hours``: start of each hour left empty on purpose, and how many
    ties / exact 30-minute gaps were planted) and ``item_properties`` (rows, items, properties,
    planted same-timestamp conflicts, the items given a non-integer / unknown categoryid).
    The other variant of each output file (``events.csv.gz`` when writing ``events.csv`` and
    vice versa) is removed, so that a reader never finds both.

    Memory is bounded by ``piece_rows`` (rows held before they are spilled to a temporary
    directory inside ``outdir``) and the fixed unit / bucket sizes, not by ``scale``; the
    output does not depend on ``piece_rows``.
    """
    if not scale > 0:
        raise ValueError("scale must be > 0")
    if piece_rows < 1:
        raise ValueError("piece_rows must be >= 1")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for name in FILES:  # never leave both events.csv and events.csv.gz behind
        other = outdir / _out_name(name, not gzip)
        if other.exists():
            other.unlink()
    rngs = _Rng(seed)
    drng = rngs["dirty"]
    result = {"outdir": str(outdir), "scale": scale, "seed": seed, "gzip": gzip, "dirty": dirty,
              "files": {}}

    def log(name, rows, extra, t0):
        if progress:
            print(f"{name}: {rows:,} rows{extra} in {time.perf_counter() - t0:.1f}s", flush=True)

    # ---- category tree ---------------------------------------------------------------------
    t0 = time.perf_counter()
    tree = _category_tree(rngs["tree"])
    name = _out_name("category_tree.csv", gzip)
    ins, crlf = _dirty_plan(drng, N_CATEGORIES, _tree_dirty_lines(drng, tree)) if dirty else ([], [])
    sink = _Sink(outdir / name, CATEGORY_HEADER, gzip, ins, crlf)
    o = tree["order"]
    parent = tree["parent"][o]
    sink.write(pa.table({
        "categoryid": pa.array(tree["ids"][o]),
        "parentid": pa.array(parent, mask=parent < 0),
    }))
    sink.close()
    result["files"][name] = {"rows": N_CATEGORIES, "malformed_lines": len(ins)}
    log(name, N_CATEGORIES, f" (+{len(ins)} malformed)" if dirty else "", t0)

    with tempfile.TemporaryDirectory(dir=outdir, prefix=".generate-") as tmp:
        # ---- events: global plan (small), then visitor units -> shuffle -> file -----------
        t0 = time.perf_counter()
        erng = rngs["events"]
        plan = _event_plan(scale)
        clock = _Clock(_outages(erng, (EVENT_END_MS - EVENT_START_MS) // HOUR_MS))
        id_space = max(ITEM_ID_SPACE, int((plan["property_items"] + plan["event_items"]) * 1.2))
        n_noprop = max(1, int(round(0.05 * plan["event_items"])))
        ids = erng.choice(id_space, plan["property_items"] + n_noprop, replace=False)
        prop_items = np.sort(ids[: plan["property_items"]])
        noprop_items = ids[plan["property_items"]:]
        event_items = np.concatenate([
            erng.choice(prop_items, plan["event_items"] - n_noprop, replace=False), noprop_items,
        ])
        del ids
        ranked_items, pick = _popularity_sampler(erng, event_items, k0=max(5.0, 100.0 * scale))
        V, T = plan["visitors"], plan["transactions"]
        tx_ids = erng.choice(max(FULL_TRANSACTIONS, T), T, replace=False)
        dot0 = erng.random(T) < 0.03
        dot0[erng.integers(T)] = True
        vis_ids = np.sort(erng.choice(max(FULL_VISITORS, V), V, replace=False))
        item_order = erng.permutation(event_items)
        # special items, chosen among moderately popular items with properties:
        # [non-integer categoryid, unknown categoryid, categoryid conflict, available conflict]
        has_props = np.isin(ranked_items, prop_items)
        popular = ranked_items[has_props][: max(40, len(ranked_items) // 50)]
        special = erng.choice(popular, 4, replace=False)
        del has_props, popular

        vb = _units(V, UNIT_VISITORS)
        nv = np.diff(vb)
        tx_u = _apportion(T, nv)
        shares = dict(
            visitors=nv, transactions=tx_u,
            tx_rows=tx_u + _apportion(plan["transaction_rows"] - plan["dup_tx"] - T, nv),
            cart_rows=_apportion(plan["addtocarts"] - plan["dup_cart"], nv),
            unique_events=_apportion(plan["unique_events"], nv),
            dup_view=_apportion(plan["dup_view"], nv), dup_cart=_apportion(plan["dup_cart"], nv),
            dup_tx=_apportion(plan["dup_tx"], nv),
            ties=_apportion(max(2, int(round(0.0004 * plan["unique_events"]))), nv),
            gaps=_apportion(max(2, int(round(300 * scale))), nv),
        )
        shares["view_rows"] = shares["unique_events"] - shares["tx_rows"] - shares["cart_rows"]
        tx_off = _segment_starts(tx_u)
        item_off = np.concatenate([[0], np.cumsum(_apportion(len(item_order), nv))])
        mixed_unit = int(np.flatnonzero(shares["dup_tx"])[0])
        E = plan["events"]
        shuffle = _Shuffle(tmp, "events", _EVENT_RECORD, max(1, -(-E // BUCKET_ROWS)), seed, 20, piece_rows)
        used = np.zeros(id_space, bool)
        type_counts = np.zeros(3, np.int64)
        ev_stats = dict(exact_gap_1800000=0, exact_gap_1800001=0, ties=0, mixed_form_duplicates=0)
        ev_sample = None
        for u in range(len(nv)):
            urng = _unit_rng(seed, 10, u)
            sub = {k: int(v[u]) for k, v in shares.items()}
            ev = _events_unit(urng, sub, pick, item_order[item_off[u] : item_off[u + 1]], clock,
                              V, T, int(tx_off[u]), dot0, u == mixed_unit)
            rec = np.empty(len(ev["timestamp"]), _EVENT_RECORD)
            rec["t"], rec["vis"] = ev["timestamp"], vis_ids[vb[u] + ev["visitor"]]
            rec["e"], rec["i"], rec["x"] = ev["event"], ev["itemid"], ev["txstr"]
            used[ev["itemid"]] = True
            type_counts += np.bincount(ev["event"], minlength=3)
            for k in ev_stats:
                ev_stats[k] += ev["stats"][k]
            if ev_sample is None:
                ev_sample = dict(timestamp=rec["t"][:1000], visitorid=rec["vis"][:1000], itemid=rec["i"][:1000])
            shuffle.add(rec, urng.integers(0, shuffle.n_buckets, len(rec)))
            del ev, rec
        assert int(type_counts.sum()) == E
        txid_pool = pa.array(
            [""] + [str(int(x)) for x in tx_ids] + [f"{int(x)}.0" for x in tx_ids], pa.string()
        )
        etypes = pa.array(EVENT_TYPES)

        def event_table(r):
            return pa.table({
                "timestamp": pa.array(r["t"]),
                "visitorid": pa.array(r["vis"]),
                "event": pc.take(etypes, pa.array(r["e"])),
                "itemid": pa.array(r["i"]),
                "transactionid": pc.take(txid_pool, pa.array(r["x"])),
            })

        name = _out_name("events.csv", gzip)
        ins, crlf = _dirty_plan(drng, E, _event_dirty_lines(drng, ev_sample)) if dirty else ([], [])
        sink = _Sink(outdir / name, EVENTS_HEADER, gzip, ins, crlf)
        for _, rec, _ in shuffle.buckets():
            _write_rows(sink, event_table, rec)
        sink.close()
        result["files"][name] = {"rows": E, "malformed_lines": len(ins)}
        result["events"] = {
            "rows": E, "view": int(type_counts[0]), "addtocart": int(type_counts[1]),
            "transaction": int(type_counts[2]),
            "duplicates": plan["duplicates"], "visitors": plan["visitors"],
            "items": int(used.sum()), "transactions": plan["transactions"],
            "outage_hours": [int(EVENT_START_MS + h * HOUR_MS) for h in np.flatnonzero(clock.outage)],
            **ev_stats, "transactions_dot0": int(dot0.sum()),
        }
        log(name, E, f" (+{len(ins)} malformed)" if dirty else "", t0)
        del used, vis_ids, item_order, shuffle

        # ---- item properties: item units -> shuffle -> part1 / part2 ----------------------
        t0 = time.perf_counter()
        n_conflicts = max(2, _r(300, scale))
        model = _property_model(rngs["properties"], scale, prop_items, tree, special)
        ib = _units(len(prop_items), UNIT_ITEMS)
        ni = np.diff(ib)
        target = _r(FULL_PROPERTY_ROWS, scale) - n_conflicts
        quota = _apportion(target, ni)
        extra = _apportion(n_conflicts - 2, ni)
        n_buckets = max(1, -(-(target + n_conflicts) // BUCKET_ROWS))
        shuffle = _Shuffle(tmp, "properties", _PROPERTY_RECORD, n_buckets, seed, 40, piece_rows)
        total = pairs = conflicts = items_with = 0
        seen_props = np.zeros(len(model["names"]), bool)
        pr_sample = None
        for u in range(len(ni)):
            urng = _unit_rng(seed, 30, u)
            rec, st = _property_unit(urng, model, int(ib[u]), int(ib[u + 1]), int(quota[u]), int(extra[u]))
            rec["i"] = prop_items[rec["i"]]
            bucket = urng.integers(0, n_buckets, len(rec))
            bucket[rec["f"] == 1] = 0
            bucket[rec["f"] >= 2] = n_buckets - 1
            total += len(rec)
            pairs += st["pairs"]
            conflicts += st["conflicts"]
            items_with += st["items"]
            seen_props |= st["properties"]
            if pr_sample is None:
                pr_sample = dict(week=rec["w"][:1000], item=rec["i"][:1000])
            shuffle.add(rec, bucket)
            del rec
        n_part1 = int(round(total * FULL_PART1_ROWS / FULL_PROPERTY_ROWS))
        ts_pool = SNAPSHOT_START_MS + np.arange(N_WEEKS, dtype=np.int64) * WEEK_MS
        pr_sample["ts_pool"] = ts_pool
        names = pa.array(model["names"], pa.string())
        value_pool = model["value_pool"]

        def property_table(r):
            return pa.table({
                "timestamp": pa.array(ts_pool[r["w"]]),
                "itemid": pa.array(r["i"].astype(np.int64)),
                "property": pc.take(names, pa.array(r["p"].astype(np.int32))),
                "value": pc.take(value_pool, pa.array(r["v"])),
            })

        sinks = []
        for part, nrows in ((1, n_part1), (2, total - n_part1)):
            name = _out_name(f"item_properties_part{part}.csv", gzip)
            ins, crlf = _dirty_plan(drng, nrows, _property_dirty_lines(drng, pr_sample, part)) if dirty else ([], [])
            sinks.append((name, nrows, ins, crlf))
        name, nrows, ins, crlf = sinks[0]
        sink = _Sink(outdir / name, PROPERTIES_HEADER, gzip, ins, crlf)
        pos = 0
        for _, rec, brng in shuffle.buckets():
            rec = _place_conflicts(rec, brng, pos, n_part1)
            cut = min(len(rec), max(0, n_part1 - pos))
            if sink is not None and cut:
                _write_rows(sink, property_table, rec[:cut])
            if cut < len(rec):
                if sinks[0] is not None:  # part 1 is complete: close it, open part 2
                    sink.close()
                    result["files"][name] = {"rows": nrows, "malformed_lines": len(ins)}
                    log(name, nrows, f" (+{len(ins)} malformed)" if dirty else "", t0)
                    t0 = time.perf_counter()
                    sinks[0] = None
                    name, nrows, ins, crlf = sinks[1]
                    sink = _Sink(outdir / name, PROPERTIES_HEADER, gzip, ins, crlf)
                _write_rows(sink, property_table, rec[cut:])
            pos += len(rec)
        if sinks[0] is not None:  # (only if part 2 is empty)
            sink.close()
            result["files"][name] = {"rows": nrows, "malformed_lines": len(ins)}
            name, nrows, ins, crlf = sinks[1]
            sink = _Sink(outdir / name, PROPERTIES_HEADER, gzip, ins, crlf)
        sink.close()
        result["files"][name] = {"rows": nrows, "malformed_lines": len(ins)}
        log(name, nrows, f" (+{len(ins)} malformed)" if dirty else "", t0)
        item_pos = model["item_pos"]
        result["item_properties"] = dict(
            rows=total, pairs=pairs, conflicts=conflicts, items_with_properties=items_with,
            properties=int(seen_props.sum()),
            noninteger_categoryid_item=int(prop_items[item_pos[0]]),
            unknown_categoryid_item=int(prop_items[item_pos[1]]),
        )
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m retail_pipeline.generate",
        description="Write synthetic Retail Rocket CSVs (events, item properties, category tree).",
    )
    ap.add_argument("outdir", help="directory to write the four files into")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="1.0 reproduces the published size (2,756,101 events); counts scale linearly")
    ap.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic)")
    ap.add_argument("--gzip", action="store_true", help="write *.csv.gz instead of *.csv")
    ap.add_argument("--dirty", action="store_true", help="also insert a few malformed lines in every file")
    ap.add_argument("--piece-rows", type=int, default=DEFAULT_PIECE_ROWS,
                    help="rows held in memory before spilling to a temporary directory in OUTDIR "
                         "(bounds the memory; the output does not depend on it)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    generate(args.outdir, scale=args.scale, seed=args.seed, gzip=args.gzip, dirty=args.dirty,
             piece_rows=args.piece_rows)
    print(f"done in {time.perf_counter() - t0:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
