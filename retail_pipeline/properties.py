"""Item properties: the latest value table, and the snapshots behind point-in-time attributes.

Input order across files is the order of the concatenated rows (files sorted by name, then
line order), so "last in input order" is simply "largest row index".
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .records import INT_PATTERN
from .sorting import byte_order_codes, dense_codes, radix_argsort, rank_codes

POINT_IN_TIME_PROPERTIES = ("categoryid", "available")

LATEST_SCHEMA = pa.schema(
    [
        pa.field("itemid", pa.int64()),
        pa.field("property", pa.dictionary(pa.int32(), pa.string())),
        pa.field("value", pa.string()),
        pa.field("timestamp_ms", pa.int64()),
    ]
)
SNAPSHOT_SCHEMA = pa.schema(
    [
        pa.field("itemid", pa.int64()),
        pa.field("property", pa.string()),
        pa.field("timestamp_ms", pa.int64()),
        pa.field("value_int", pa.int64()),
    ]
)


def concat_in_input_order(tables: list[pa.Table]) -> pa.Table:
    """One table of all property files' rows, given in file-name order (dictionaries unified)."""
    if not tables:
        raise ValueError("no item property tables")
    # Left in chunks: combining would copy all the rows while the parts are still alive.
    tables = [t.drop_columns(["line"]) if "line" in t.column_names else t for t in tables]
    return pa.concat_tables(tables).unify_dictionaries()


def _dictionary(column) -> pa.DictionaryArray:
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)


def latest_item_properties(rows: pa.Table, *, sorted_runs: bool = False) -> pa.Table:
    """``item_properties``: per (itemid, property) the value of the latest snapshot, ties going
    to the later row in input order. Sorted by (itemid, property), the table's primary key.

    ``sorted_runs``: ``rows`` are a few runs each already in that order (earlier results
    concatenated), which a merge sort joins in linear time, where a radix sort is faster on
    rows in no order."""
    if rows.num_rows == 0:
        return LATEST_SCHEMA.empty_table()
    return _as_latest(rows.select(["itemid", "property", "value", "timestamp"]).take(
        pa.array(_latest_rows(rows, sorted_runs))))


def latest_item_properties_in_batches(rows: pa.Table, batch_rows: int = 1 << 20) -> Iterator[pa.Table]:
    """:func:`latest_item_properties` (of rows in no order) as tables of ``batch_rows`` rows,
    taken one at a time: written out as they come, each batch's copy of the strings reuses the
    memory of the one before instead of all of them being held (fresh memory is costly)."""
    if rows.num_rows == 0:
        return
    chosen = _latest_rows(rows, sorted_runs=False)
    columns = rows.select(["itemid", "property", "value", "timestamp"]).unify_dictionaries()  # one dictionary for every batch
    for start in range(0, len(chosen), batch_rows):
        yield _as_latest(columns.take(pa.array(chosen[start:start + batch_rows])))


def _latest_rows(rows: pa.Table, sorted_runs: bool) -> np.ndarray:
    """The row chosen for each (itemid, property), in key order (see :func:`latest_item_properties`)."""
    items = dense_codes(rows.column("itemid").to_numpy())
    properties, n_properties = byte_order_codes(_dictionary(rows.column("property")))
    if int(items.max()) >= (1 << 62) // max(n_properties, 1):
        items = rank_codes(items)
    keys = items * n_properties + properties
    del items, properties  # 20 M-row temporaries: free them as soon as they are used
    # by (itemid, property), input order kept within each
    order = np.argsort(keys, kind="stable") if sorted_runs else radix_argsort(keys)
    sorted_keys = keys[order]
    del keys
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    del sorted_keys
    # in each run of one key: the latest timestamp, and the last row (in input order) that has it
    times = rows.column("timestamp").to_numpy()[order]
    latest = np.maximum.reduceat(times, starts)
    at_latest = times == np.repeat(latest, np.diff(np.append(starts, len(order))))
    del times, latest
    last = np.maximum.reduceat(np.where(at_latest, np.arange(len(order)), -1), starts)
    return order[last]


def _as_latest(picked: pa.Table) -> pa.Table:
    return pa.Table.from_arrays(
        [picked.column("itemid"), _dictionary(picked.column("property")), picked.column("value"),
         picked.column("timestamp")],
        schema=LATEST_SCHEMA,
    )


def value_as_int(values) -> pa.Array:
    """Each text value read as a contract integer, NULL where it is not one."""
    encoded = _dictionary(values)
    distinct = encoded.dictionary
    is_int = pc.match_substring_regex(distinct, "^" + INT_PATTERN + "$")
    digits = pc.replace_substring_regex(distinct, r"\.0+$", "")
    numbers = pc.cast(pc.if_else(is_int, digits, pa.scalar(None, pa.string())), pa.int64())
    return numbers.take(encoded.indices)


def point_in_time_rows(rows: pa.Table, properties=POINT_IN_TIME_PROPERTIES) -> pa.Table:
    """The rows of ``properties`` (all columns, in input order): what the snapshots are made of."""
    wanted = pa.array(list(properties), pa.string())
    column = rows.column("property")
    if not pa.types.is_dictionary(column.type):
        return rows.filter(pc.is_in(column, value_set=wanted))
    # look the few dictionary words up, not every row (is_in decodes each row: 0.4 s per file)
    masks = []
    for chunk in column.chunks:
        word_wanted = pc.is_in(chunk.dictionary, value_set=wanted).to_numpy(zero_copy_only=False)
        indices = chunk.indices.fill_null(0).to_numpy(zero_copy_only=False)
        mask = word_wanted[indices] if len(word_wanted) else np.zeros(len(chunk), dtype=bool)
        if chunk.null_count:
            mask &= ~chunk.is_null().to_numpy(zero_copy_only=False)
        masks.append(mask)
    if all(mask.all() for mask in masks):
        return rows  # (the rows of a file's point-in-time rows, or none at all: no copy)
    return rows.filter(pa.chunked_array([pa.array(mask) for mask in masks], pa.bool_()))


def point_in_time_snapshots(rows: pa.Table, properties=POINT_IN_TIME_PROPERTIES) -> pa.Table:
    """The snapshots of ``properties``: one per (itemid, property, timestamp), the last in
    input order, with its value read as an integer (NULL if it is not one).

    Sorted by (property, itemid, timestamp_ms).
    """
    subset = point_in_time_rows(rows, properties)
    if subset.num_rows == 0:
        return SNAPSHOT_SCHEMA.empty_table()
    codes, _ = byte_order_codes(_dictionary(subset.column("property")))  # sorting codes sorts names
    itemid = subset.column("itemid").to_numpy()
    timestamp = subset.column("timestamp").to_numpy()
    # stable sorts, least significant key first: ties stay in input order (a 4-key lexsort was
    # 1.3 s at full scale)
    order = radix_argsort(dense_codes(timestamp))
    order = radix_argsort(dense_codes(itemid), order)
    order = radix_argsort(codes, order)
    # in (property, itemid, timestamp, input order) order: keep the last row of each triple
    last = np.ones(len(order), dtype=bool)
    same = (codes[order][1:] == codes[order][:-1]) & (itemid[order][1:] == itemid[order][:-1]) \
        & (timestamp[order][1:] == timestamp[order][:-1])
    last[:-1] = ~same
    chosen = pa.array(order[last])
    picked = subset.take(chosen)
    return pa.Table.from_arrays(
        [picked.column("itemid"), pc.cast(_dictionary(picked.column("property")), pa.string()),
         picked.column("timestamp"), value_as_int(picked.column("value"))],
        schema=SNAPSHOT_SCHEMA,
    )
