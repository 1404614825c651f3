"""snapshot_in_effect (the search behind point-in-time attributes) against its definition."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_pipeline.point_in_time import snapshot_in_effect


def brute_force(event_item, event_time, snap_item, snap_time):
    """SPEC: the latest snapshot at or before the event; else the item's earliest; else -1."""
    out = []
    for item, time in zip(event_item, event_time):
        mine = [k for k in range(len(snap_item)) if snap_item[k] == item]
        before = [k for k in mine if snap_time[k] <= time]
        if before:
            out.append(max(before, key=lambda k: snap_time[k]))
        elif mine:
            out.append(min(mine, key=lambda k: snap_time[k]))
        else:
            out.append(-1)
    return out


times = st.integers(-5, 40)


@st.composite
def cases(draw, time_values=times):
    snaps = draw(st.lists(st.tuples(st.integers(0, 5), time_values), max_size=25, unique=True))
    events = draw(st.lists(st.tuples(st.integers(0, 6), time_values), max_size=25))
    return events, snaps


def check(events, snaps):
    event_item = np.array([e[0] for e in events], dtype=np.int64)
    event_time = np.array([e[1] for e in events], dtype=np.int64)
    snap_item = np.array([s[0] for s in snaps], dtype=np.int64)
    snap_time = np.array([s[1] for s in snaps], dtype=np.int64)
    got = snapshot_in_effect(event_item, event_time, snap_item, snap_time)
    assert got.tolist() == brute_force(event_item, event_time, snap_item, snap_time)


@settings(max_examples=400, deadline=None)
@given(cases())
def test_snapshot_in_effect_matches_the_definition(case):
    check(*case)


@settings(max_examples=300, deadline=None)
@given(cases())
def test_snapshots_stored_in_item_time_order_give_the_same_answer(case):
    """The snapshots table is stored sorted by (item, time): the search then skips its sort."""
    events, snaps = case
    check(events, sorted(snaps))


@settings(max_examples=100, deadline=None)
@given(cases(st.sampled_from([-(1 << 62), -1, 0, 1, 1 << 40, (1 << 62) + 5])))
def test_times_too_far_apart_to_pack_give_the_same_answer(case):
    """Times spread so far that (item, time) cannot be packed into one int64: the as-of join."""
    check(*case)


def test_an_event_before_every_snapshot_of_its_item_gets_the_earliest_not_another_items():
    # item 2's event precedes its snapshots; the search lands in item 1's run and must not stay there
    got = snapshot_in_effect(np.array([2]), np.array([5]), np.array([1, 2, 2]), np.array([4, 9, 7]))
    assert got.tolist() == [2]


@settings(max_examples=200, deadline=None)
@given(names=st.lists(st.sampled_from(["available", "categoryid", "790", "a"]), max_size=30),
       sort=st.booleans(), cut=st.integers(0, 30), dictionary=st.booleans())
def test_one_property_s_snapshots_are_its_rows_in_order(names, sort, cut, dictionary):
    """As stored (sorted by property, in chunks) they are found as a slice; any order is filtered."""
    import pyarrow as pa

    from retail_pipeline.enrich import property_snapshots

    names = sorted(names) if sort else names
    column = pa.array(names, pa.string())
    if dictionary:
        column = column.dictionary_encode()
    table = pa.table({"property": column, "row": pa.array(range(len(names)), pa.int64())})
    table = pa.concat_tables([table.slice(0, cut), table.slice(cut)])  # two chunks, cut anywhere
    for prop in ("available", "categoryid", "nothing"):
        want = [i for i, name in enumerate(names) if name == prop]
        assert property_snapshots(table, prop).column("row").to_pylist() == want


@settings(max_examples=200, deadline=None)
@given(cases(st.one_of(times, st.sampled_from([-(1 << 62), (1 << 62) + 5]))),
       st.lists(st.one_of(st.none(), st.integers(-3, 3)), min_size=25, max_size=25))
def test_an_attribute_looked_up_from_its_stored_lookup_is_the_value_of_the_snapshot_in_effect(case, values):
    """What each shard does: one property's lookup (packed keys, or the snapshots themselves when
    times are too far apart to pack), written to a file and read back, gives every event the
    value of the snapshot the definition picks (NULL when there is none, or its value is NULL)."""
    import tempfile
    from pathlib import Path

    import pyarrow as pa

    from retail_pipeline import storage
    from retail_pipeline.enrich import attribute_in_effect, attribute_lookup
    from retail_pipeline.properties import SNAPSHOT_SCHEMA

    events, snaps = case
    snaps = sorted(snaps)  # as stored: (property, itemid, timestamp) order
    table = pa.table({"itemid": [s[0] for s in snaps], "property": ["available"] * len(snaps),
                      "timestamp_ms": [s[1] for s in snaps], "value_int": values[:len(snaps)]}, schema=SNAPSHOT_SCHEMA)
    event_item = np.array([e[0] for e in events], dtype=np.int64)
    event_time = np.array([e[1] for e in events], dtype=np.int64)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lookup.arrow"
        storage.write_arrow_file(path, attribute_lookup(table, "available"), one_batch=True)
        got = attribute_in_effect(storage.read_arrow_file(path), event_item, event_time).to_pylist()
    picks = brute_force(event_item, event_time, [s[0] for s in snaps], [s[1] for s in snaps])
    assert got == [values[k] if k >= 0 else None for k in picks]
