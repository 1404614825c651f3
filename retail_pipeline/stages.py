"""One function per pipeline stage: what a Luigi task's ``run()`` calls.

Each takes input paths or tables and returns tables (and small stats dicts); none knows
about Luigi or where its results are stored.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from .categories import build_category_tree, first_rows
from .errors import InputError
from .events import drop_duplicate_events
from .inputs import duplicate_inputs
from .lines import DEFAULT_CHUNK_BYTES, read_header_and_chunks, strip_line_end
from .load import REJECTED_SCHEMA, load_file, load_file_parts, parts_for, text_size
from .properties import (POINT_IN_TIME_PROPERTIES, concat_in_input_order, latest_item_properties,
                         latest_item_properties_in_batches, point_in_time_rows, point_in_time_snapshots)
from .property_history import item_property_history
from .quality import data_quality, in_expected_range
from .records import CATEGORY_TREE, EVENTS, ITEM_PROPERTIES
from .sharding import shard_of, sorted_tables_by_range
from .sorting import dense_codes, radix_argsort


def _one_input(paths: tuple[str, ...]) -> str:
    check_distinct_inputs(paths)
    (path,) = paths
    return path


def split_events(
    paths: tuple[str, ...], shard_files: list[str], *, part_bytes: int, progress=None, threads: int = 2
) -> tuple[pa.Table, dict]:
    """Read events.csv in parts of about ``part_bytes`` of its text, one after the other, and
    append each part's rows to the file of its visitor shard (``shard_files[k]``, Arrow IPC,
    rows in line order): memory holds one part. Return the rejected lines and the line counts;
    :func:`clean_event_shard` then de-duplicates each shard (a duplicate is of the same visitor,
    so in the same shard). ``threads``: parsing threads (see :func:`load.load_file`)."""
    path = _one_input(paths)
    shards = len(shard_files)
    parts = parts_for(text_size(path), part_bytes)
    rejected, lines, name = [], 0, os.path.basename(path)
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(pa.ipc.new_file(stack.enter_context(pa.OSFile(f, "wb")), EVENTS.arrow_schema))
                   for f in shard_files]
        for loaded in load_file_parts(EVENTS, path, parts=parts, progress=progress, threads=threads):
            shard = shard_of(loaded.rows.column("visitorid").to_numpy(), shards)
            for k, writer in enumerate(writers):
                writer.write_table(loaded.rows.filter(pa.array(shard == k)), max_chunksize=1 << 20)
            rejected.append(loaded.rejected)
            lines += loaded.data_lines
            name = loaded.source_file
            del loaded
    rejected_table = pa.concat_tables(rejected)
    return rejected_table, {"files": {name: {"data_lines": lines, "rejected": rejected_table.num_rows}}}


def clean_event_shard(rows: pa.Table) -> tuple[pa.Table, dict]:
    """A shard's events (in line order) de-duplicated, and its counts of duplicates dropped and
    of events outside the expected time range (summed over shards by :func:`event_counts`)."""
    events, dropped = drop_duplicate_events(rows.combine_chunks())
    outside = int((~in_expected_range(events.column("timestamp").to_numpy())).sum())
    return events, {"duplicates_dropped": dropped, "outside_expected_range": outside}


def event_counts(file_counts: dict, shard_counts: list[dict]) -> dict:
    """The load statistics of events.csv: its line counts and its shards' counts, summed."""
    return {**file_counts, **{key: sum(c[key] for c in shard_counts)
                              for key in ("duplicates_dropped", "outside_expected_range")}}


def check_distinct_inputs(paths: tuple[str, ...]) -> None:
    """Stop the run when one input is given twice (as ``.csv`` and as ``.csv.gz``)."""
    for first, second in duplicate_inputs(tuple(paths)):
        raise InputError(f"{second}: the same input is also given as {first}; keep only one of them")


def item_property_file_parts(
    path: str, parts: int, progress=None, threads: int = 2, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[tuple[Iterator[pa.Table], pa.Table, pa.Table, int]]:
    """One property file in ``parts`` runs of its lines, each reduced in turn to: its latest
    value per (itemid, property), in that order (as batches, taken as they are consumed), its
    rows of the point-in-time properties (by itemid, each item's in line order), its rejections
    and its line count.

    A part's rows are let go once its latest values are consumed, before the next part is read:
    the process holds one part's rows and their sort, not the file's (measured on an 11 M-row
    file in two parts: 0.8 GB of fresh memory instead of 1.2-1.4 GB, and less time). The
    latest over all parts and files is the latest over each part's latest
    (:func:`item_properties_by_range`); keys found in both parts are merged twice, the cost.
    """
    loading = load_file_parts(ITEM_PROPERTIES, path, parts=parts, progress=progress, threads=threads,
                              chunk_bytes=chunk_bytes)
    while (loaded := next(loading, None)) is not None:
        rows = loaded.rows.drop_columns(["line"])
        result = (latest_item_properties_in_batches(rows), in_item_order(point_in_time_rows(rows)), loaded.rejected,
                  loaded.data_lines)
        del loaded, rows  # only the batches hold the rows now
        yield result
        del result


def item_properties_by_range(latest_per_file, parts: int, samples: int = 4096) -> Iterator[pa.Table]:
    """``item_properties`` in ``parts`` itemid ranges, in key order, each merged from the latest
    values of the files' parts (given in input order: files by name, parts by line; each in key
    order; a list, or a function opening them): one range in memory at a time
    (:func:`sharding.sorted_tables_by_range`)."""
    for slices in sorted_tables_by_range(latest_per_file, "itemid", parts, samples):
        yield merge_item_properties(slices)


def merge_item_properties(latest_per_file: list[pa.Table]) -> pa.Table:
    """``item_properties`` from the files' own latest values, given in file-name order."""
    renamed = [t.rename_columns(["timestamp" if c == "timestamp_ms" else c for c in t.column_names])
               for t in latest_per_file]
    return latest_item_properties(concat_in_input_order(renamed), sorted_runs=True)


def in_item_order(rows: pa.Table) -> pa.Table:
    """``rows`` by itemid, each item's rows in their order (so a range of items is a slice)."""
    itemid = rows.column("itemid").to_numpy()
    if rows.num_rows < 2 or bool(np.all(itemid[1:] >= itemid[:-1])):
        return rows
    return rows.take(pa.array(radix_argsort(dense_codes(itemid))))


def item_property_snapshots(point_in_time_per_file: list[pa.Table]) -> pa.Table:
    """The point-in-time snapshots from the files' rows of those properties, in file-name order."""
    return point_in_time_snapshots(concat_in_input_order(point_in_time_per_file))


def item_property_snapshots_by_range(point_in_time_parts, parts: int) -> Iterator[pa.Table]:
    """:func:`item_property_snapshots` of the files' parts' point-in-time rows (in input order,
    each by itemid, :func:`in_item_order`) as tables to write one after the other, each made
    from one itemid range of the rows: by property, then itemid range. Their concatenation is
    the whole table, in its order (property, itemid, timestamp_ms). ``point_in_time_parts``: a
    list, or a function opening them (see :func:`sharding.sorted_tables_by_range`)."""
    for prop in sorted(POINT_IN_TIME_PROPERTIES):  # (names in byte order, as the whole table has them)
        for slices in sorted_tables_by_range(point_in_time_parts, "itemid", parts):
            yield point_in_time_snapshots(concat_in_input_order(slices), properties=(prop,))


def item_property_history_by_range(point_in_time_parts, parts: int) -> Iterator[pa.Table]:
    """``item_property_history`` (:func:`property_history.item_property_history`) of the files'
    parts' point-in-time rows, as :func:`item_property_snapshots_by_range` takes them, one
    itemid range at a time: their concatenation is the whole table, in key order."""
    for slices in sorted_tables_by_range(point_in_time_parts, "itemid", parts):
        yield item_property_history(slices)


def load_category_tree(paths: tuple[str, ...]) -> tuple[pa.Table, pa.Table, dict]:
    """The category tree with roots and depths, rejections (repeated ids included) and counts."""
    path = _one_input(paths)
    loaded = load_file(CATEGORY_TREE, path)
    unique, repeat_lines = first_rows(loaded.rows)
    tree = build_category_tree(unique)
    raw_by_line = _raw_lines(path, repeat_lines)
    repeats = pa.Table.from_arrays(
        [
            pa.array([loaded.source_file] * len(repeat_lines), pa.string()),
            pa.array(repeat_lines, pa.int64()),
            pa.array(["duplicate categoryid"] * len(repeat_lines), pa.string()),
            pa.array(raw_by_line, pa.string()),
        ],
        schema=REJECTED_SCHEMA,
    )
    rejected = pa.concat_tables([loaded.rejected, repeats]).sort_by([("line_number", "ascending")])
    stats = {"files": {loaded.source_file: {"data_lines": loaded.data_lines, "rejected": rejected.num_rows}}}
    return tree, rejected, stats


def _raw_lines(path: str, wanted: list[int]) -> list[str]:
    """The text of the given data lines of a file (line ends removed)."""
    wanted_set = set(wanted)
    found: dict[int, str] = {}
    _, chunks = read_header_and_chunks(path)
    for chunk in chunks:
        last = chunk.first_line + chunk.count - 1
        for line in (n for n in wanted_set if chunk.first_line <= n <= last):
            found[line] = strip_line_end(chunk.lines[line - chunk.first_line].as_py()).decode("utf-8", "replace")
    return [found[line] for line in wanted]


def rejected_rows(tables: list[pa.Table]) -> pa.Table:
    if not tables:
        return REJECTED_SCHEMA.empty_table()
    return pa.concat_tables([t.cast(REJECTED_SCHEMA) for t in tables])


def quality_report(load_stats: list[dict], enriched: list[pa.Table]) -> pa.Table:
    """The data_quality table from the loaders' counts and the enriched events' shards (their
    ``categoryid`` column is enough)."""
    files: dict[str, dict] = {}
    duplicates = outside = 0
    for stats in load_stats:
        files.update(stats["files"])
        duplicates += stats.get("duplicates_dropped", 0)
        outside += stats.get("outside_expected_range", 0)
    return data_quality(
        data_lines={name: f["data_lines"] for name, f in files.items()},
        rejected_per_file={name: f["rejected"] for name, f in files.items()},
        duplicates_dropped=duplicates,
        events_published=sum(shard.num_rows for shard in enriched),
        events_without_categoryid=sum(int(shard.column("categoryid").null_count) for shard in enriched),
        events_outside_expected_range=outside,
    )


STALE_AFTER_S = 3600  # a temporary file untouched this long belongs to no running task


def temporary_files(work_dir: str | os.PathLike, database: str | os.PathLike) -> list[Path]:
    """The temporary files of unfinished writes: ``*-luigi-tmp-*`` under ``work_dir``, and
    ``.<database name>.building-*`` beside the database."""
    found = [path for path in Path(work_dir).rglob("*-luigi-tmp-*") if path.is_file()] \
        if os.path.isdir(work_dir) else []
    database = Path(database)
    if database.parent.is_dir():
        found += [path for path in database.parent.glob(f".{database.name}.building-*") if path.is_file()]
    return sorted(found)


def remove_stale_temporaries(
    work_dir: str | os.PathLike, database: str | os.PathLike, *, stale_after_s: float = STALE_AFTER_S,
    now: float | None = None,
) -> list[Path]:
    """Delete what killed runs left behind; return the paths removed.

    Every output is written under a temporary name and renamed into place once complete, so a
    run killed mid-write (``kill -9``, a power cut, a full disk) leaves its temporary file. No
    run ever reads one, but they take space, so each publish removes those not modified for
    ``stale_after_s`` seconds: a file still being written by another run (two runs sharing a
    luigid) is modified all the time and is left alone.
    """
    cutoff = (time.time() if now is None else now) - stale_after_s
    removed = []
    for path in temporary_files(work_dir, database):
        try:
            if path.lstat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # finished or removed by another run meanwhile
            continue
    return removed


def table_summary(counts: dict[str, int], rejected: int, database: str | os.PathLike) -> str:
    width = max(len(name) for name in counts)
    lines = ["Published tables:"]
    lines += [f"  {name:<{width}}  {count:>12,}" for name, count in counts.items()]
    lines.append(f"Rows rejected: {rejected:,} (see the rejected_rows table)")
    lines.append(f"Database: {os.path.abspath(database)}")
    lines.append(f"Browse it: datasette serve {os.fspath(database)}   (or: make serve)")
    return "\n".join(lines)
