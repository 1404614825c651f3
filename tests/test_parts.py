"""Work split into parts so that memory follows a part, not the data: results do not depend
on how many parts there are, or where they are cut.

- the events read part by part into visitor shards, each de-duplicated on its own: the same
  clean events (and counts) as de-duplicating the whole file;
- the snapshots and the property history made one itemid range at a time from the files'
  parts: the same tables as made from all rows at once;
- tables sorted by a key cut into ranges: every row once, in order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retail_pipeline import stages
from retail_pipeline.events import drop_duplicate_events
from retail_pipeline.load import load_file
from retail_pipeline.property_history import item_property_history
from retail_pipeline.records import EVENTS
from retail_pipeline.sharding import sorted_tables_by_range
from retail_pipeline.storage import read_arrow_file
from test_item_tables import file_table, property_file

T0 = 1_433_000_000_000


def parts_of(files):
    """Each file's parts as the loader leaves them: the point-in-time rows, by itemid."""
    return [stages.in_item_order(stages.point_in_time_rows(file_table([part])))
            for parts in files for part in parts]


@settings(max_examples=150, deadline=None)
@given(files=st.lists(property_file, min_size=1, max_size=3), ranges=st.integers(1, 6))
def test_snapshots_made_range_by_range_are_the_snapshots_of_all_rows(files, ranges):
    whole = stages.item_property_snapshots([file_table(parts) for parts in files])
    pieces = list(stages.item_property_snapshots_by_range(parts_of(files), ranges))
    assert pa.concat_tables(pieces).to_pylist() == whole.to_pylist()


@settings(max_examples=150, deadline=None)
@given(files=st.lists(property_file, min_size=1, max_size=3), ranges=st.integers(1, 6))
def test_history_made_range_by_range_is_the_history_of_all_rows(files, ranges):
    whole = item_property_history([file_table(parts) for parts in files])
    opened = []

    def open_parts():  # (as the task does: the parts opened anew for each range)
        opened.append(1)
        return parts_of(files)
    pieces = list(stages.item_property_history_by_range(open_parts, ranges))
    assert pa.concat_tables(pieces).to_pylist() == whole.to_pylist()
    assert len(opened) == ranges + 1  # once to place the cuts, once per range


@settings(max_examples=200, deadline=None)
@given(tables=st.lists(st.lists(st.integers(-5, 30), max_size=40).map(sorted), min_size=1, max_size=4),
       parts=st.integers(1, 7), samples=st.integers(1, 10), chunk=st.integers(1, 9))
def test_sorted_tables_cut_into_ranges_give_every_row_once_in_order(tables, parts, samples, chunk):
    given_tables = [pa.Table.from_batches(pa.table({"k": pa.array(t, pa.int64()), "row": pa.array(range(len(t)))})
                                          .to_batches(max_chunksize=chunk), schema=pa.schema([("k", pa.int64()),
                                                                                              ("row", pa.int64())]))
                    for t in tables]
    ranges = list(sorted_tables_by_range(given_tables, "k", parts, samples))
    assert len(ranges) == parts
    for k, table in enumerate(given_tables):
        rows = [r for piece in ranges for r in piece[k].to_pylist()]
        assert rows == table.to_pylist()
    # a key value is in one range only
    owners = {}
    for number, piece in enumerate(ranges):
        for table in piece:
            for key in table.column("k").to_pylist():
                assert owners.setdefault(key, number) == number


event_line = st.tuples(st.integers(0, 3), st.integers(1, 6), st.sampled_from(["view", "addtocart", "transaction"]),
                       st.integers(1, 4), st.booleans())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(event_line, max_size=80).flatmap(lambda rows: st.permutations(rows + rows[: len(rows) // 3])),
       shards=st.integers(1, 5), part_bytes=st.integers(1, 400))
def test_events_split_into_shards_part_by_part_are_the_whole_file_deduplicated(tmp_path, lines, shards, part_bytes):
    """Duplicates (the same five fields) anywhere in the file, the file read in parts of any
    size: each shard de-duplicated on its own holds exactly its visitors' clean events, and
    the counts add up to those of the whole file."""
    body = "".join(f"{T0 + t * 1000},{v},{e},{i},{'7' if e == 'transaction' and tx else ''}\n"
                   for t, v, e, i, tx in lines)
    path = tmp_path / "events.csv"
    path.write_text(EVENTS.header + "\n" + body)
    files = [str(tmp_path / f"shard-{k}") for k in range(shards)]
    rejected, counts = stages.split_events((str(path),), files, part_bytes=part_bytes, threads=1)
    cleaned = [stages.clean_event_shard(read_arrow_file(f)) for f in files]
    stats = stages.event_counts(counts, [c for _, c in cleaned])
    whole = load_file(EVENTS, path)
    expected, dropped = drop_duplicate_events(whole.rows)
    got = sorted(r for events, _ in cleaned for r in map(lambda d: tuple(d.values()), events.to_pylist()))
    assert got == sorted(tuple(d.values()) for d in expected.to_pylist())
    for events, _ in cleaned:  # each shard in line order
        line = events.column("line").to_numpy()
        assert np.all(line[1:] > line[:-1])
    assert stats["duplicates_dropped"] == dropped
    assert stats["files"]["events.csv"]["data_lines"] == whole.data_lines == len(lines)
    assert rejected.num_rows == whole.rejected.num_rows
