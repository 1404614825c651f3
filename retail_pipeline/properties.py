"""Item properties: the latest value table, and the snapshots behind point-in-time attributes.

Input order across files is the order of the concatenated rows (files sorted by name, then
line order), so "last in input order" is simply "largest row index".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .records import INT_PATTERN

POINT_IN_TIME_PROPERTIES = ("categoryid", "available")

LATEST_SCHEMA = pa.schema(
    [
        pa.field("itemid", pa.int64()),
        pa.field("property", pa.string()),
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
    """One table of all property files' rows, given in file-name order."""
    if not tables:
        raise ValueError("no item property tables")
    return pa.concat_tables(tables).combine_chunks()


def _sorted_property_codes(property_column: pa.Array) -> np.ndarray:
    """Codes of the property strings that sort like the strings (byte order, as SQLite does)."""
    encoded = pc.dictionary_encode(property_column).combine_chunks()
    dictionary = encoded.dictionary.to_pylist()
    rank = np.empty(len(dictionary), dtype=np.int64)
    rank[np.argsort(np.array([s.encode("utf-8") for s in dictionary], dtype=object), kind="stable")] = np.arange(
        len(dictionary)
    )
    return rank[encoded.indices.to_numpy(zero_copy_only=False)]


def _last_per_group(keys: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Row indices of the latest row of each key, ties going to the later row; in key order.

    Two stable sorts give the order (key, timestamp, row index); the last row of each key
    run is the one wanted.
    """
    by_time = np.argsort(timestamps, kind="stable")
    order = by_time[np.argsort(keys[by_time], kind="stable")]
    sorted_keys = keys[order]
    is_last = np.ones(len(order), dtype=bool)
    is_last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    return order[is_last]


def latest_item_properties(rows: pa.Table) -> pa.Table:
    """``item_properties``: per (itemid, property) the value of the latest snapshot.

    Rows are returned sorted by (itemid, property), the table's primary key.
    """
    if rows.num_rows == 0:
        return LATEST_SCHEMA.empty_table()
    items = rows.column("itemid").to_numpy()
    item_codes, _ = pd.factorize(items, sort=True)
    property_codes = _sorted_property_codes(rows.column("property"))
    keys = item_codes.astype(np.int64) * (int(property_codes.max()) + 1) + property_codes
    chosen = pa.array(_last_per_group(keys, rows.column("timestamp").to_numpy()))
    picked = rows.take(chosen)
    return pa.Table.from_arrays(
        [picked.column("itemid"), picked.column("property"), picked.column("value"), picked.column("timestamp")],
        schema=LATEST_SCHEMA,
    )


def value_as_int(values: pa.Array) -> pa.Array:
    """Each text value read as a contract integer, NULL where it is not one."""
    values = pc.cast(values, pa.string())
    is_int = pc.match_substring_regex(values, "^" + INT_PATTERN + "$")
    digits = pc.replace_substring_regex(values, r"\.0+$", "")
    digits = pc.if_else(is_int, digits, pa.scalar(None, pa.string()))
    return pc.cast(digits, pa.int64())


def point_in_time_snapshots(rows: pa.Table, properties=POINT_IN_TIME_PROPERTIES) -> pa.Table:
    """The snapshots of ``properties``: one per (itemid, property, timestamp), the last in
    input order, with its value read as an integer (NULL if it is not one).

    Sorted by (property, itemid, timestamp_ms).
    """
    wanted = pc.is_in(rows.column("property"), value_set=pa.array(list(properties), pa.string()))
    subset = rows.filter(wanted)
    frame = pd.DataFrame(
        {
            "itemid": subset.column("itemid").to_numpy(),
            "property": subset.column("property").to_numpy(zero_copy_only=False),
            "timestamp_ms": subset.column("timestamp").to_numpy(),
        }
    )
    keep = ~frame.duplicated(["itemid", "property", "timestamp_ms"], keep="last").to_numpy()
    subset = subset.filter(pa.array(keep))
    table = pa.Table.from_arrays(
        [
            subset.column("itemid"),
            subset.column("property"),
            subset.column("timestamp"),
            value_as_int(subset.column("value")),
        ],
        schema=SNAPSHOT_SCHEMA,
    )
    return table.sort_by([("property", "ascending"), ("itemid", "ascending"), ("timestamp_ms", "ascending")])
