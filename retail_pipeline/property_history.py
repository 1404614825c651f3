"""``item_property_history``: the periods over which an item kept one ``categoryid`` / ``available`` value.

Built from the same rows as the point-in-time snapshots (each property file's rows of those
two properties, in input order), but keeping each snapshot's value as the text it was read as.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .properties import POINT_IN_TIME_PROPERTIES, concat_in_input_order, point_in_time_rows
from .sorting import byte_order_codes, dense_codes, radix_argsort
from .timefmt import format_event_time

HISTORY_SCHEMA = pa.schema(
    [
        pa.field("itemid", pa.int64()),
        pa.field("property", pa.string()),
        pa.field("value", pa.string()),
        pa.field("valid_from_ms", pa.int64()),
        pa.field("valid_to_ms", pa.int64()),
        pa.field("valid_from", pa.string()),
        pa.field("valid_to", pa.string()),
    ]
)


def _combined(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _value_codes(values: pa.Array) -> np.ndarray:
    """Equal codes for equal texts (a NULL, which the loader never produces, gets -1)."""
    encoded = pc.dictionary_encode(values.cast(pa.string()) if pa.types.is_dictionary(values.type) else values)
    return encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def item_property_history(point_in_time_per_file: list[pa.Table]) -> pa.Table:
    """``item_property_history`` (SPEC "Analyst tables") from each property file's rows of the
    point-in-time properties (``LoadItemPropertyFile``'s ``point_in_time`` output: columns
    ``timestamp``, ``itemid``, ``property``, ``value``), the files given in file-name order.

    Per (itemid, property) of ``categoryid`` and ``available``: one snapshot per timestamp (the
    last in input order: file order, then line order), in time order; each run of consecutive
    snapshots with the same value text becomes one row, valid from the run's first timestamp to
    the next run's (NULL for the last run). Values are compared and published as the text read
    (``10`` and ``10.0`` are different values here, though both read as the integer 10).
    Sorted by (itemid, property, valid_from_ms), the table's key.
    """
    if not point_in_time_per_file:
        return HISTORY_SCHEMA.empty_table()
    rows = point_in_time_rows(concat_in_input_order(point_in_time_per_file), POINT_IN_TIME_PROPERTIES)
    if rows.num_rows == 0:
        return HISTORY_SCHEMA.empty_table()
    properties = _combined(rows.column("property"))
    if not pa.types.is_dictionary(properties.type):
        properties = pc.dictionary_encode(properties)
    property_code, _ = byte_order_codes(properties)
    itemid = rows.column("itemid").to_numpy()
    timestamp = rows.column("timestamp").to_numpy()
    # stable sorts, least significant key first: (itemid, property, timestamp, input order)
    order = radix_argsort(dense_codes(timestamp))
    order = radix_argsort(property_code, order)
    order = radix_argsort(dense_codes(itemid), order)
    itemid, property_code, timestamp = itemid[order], property_code[order], timestamp[order]
    same_key = (itemid[1:] == itemid[:-1]) & (property_code[1:] == property_code[:-1])
    # one snapshot per timestamp: the last row of each (itemid, property, timestamp)
    last = np.ones(len(order), dtype=bool)
    last[:-1] = ~(same_key & (timestamp[1:] == timestamp[:-1]))
    order, itemid, property_code, timestamp = order[last], itemid[last], property_code[last], timestamp[last]
    values = _combined(rows.column("value")).take(pa.array(order))
    value_code = _value_codes(values)
    # runs of equal consecutive values within each (itemid, property)
    same_key = (itemid[1:] == itemid[:-1]) & (property_code[1:] == property_code[:-1])
    run_start = np.ones(len(order), dtype=bool)
    run_start[1:] = ~(same_key & (value_code[1:] == value_code[:-1]))
    starts = np.flatnonzero(run_start)
    valid_from = timestamp[starts]
    has_next = np.zeros(len(starts), dtype=bool)
    new_key = np.concatenate(([True], ~same_key))  # first snapshot of its (itemid, property)
    has_next[:-1] = ~new_key[starts[1:]]
    valid_to = np.zeros(len(starts), dtype=np.int64)  # 0 where there is no next run (masked)
    valid_to[has_next] = valid_from[1:][has_next[:-1]]
    return pa.Table.from_arrays(
        [
            pa.array(itemid[starts]),
            _combined(properties.take(pa.array(order[starts]))).cast(pa.string()),
            _combined(values.take(pa.array(starts))).cast(pa.string()),
            pa.array(valid_from),
            pa.array(valid_to, pa.int64(), mask=~has_next),
            format_event_time(valid_from),
            pc.if_else(pa.array(has_next), format_event_time(valid_to), pa.scalar(None, pa.string())),
        ],
        schema=HISTORY_SCHEMA,
    )
