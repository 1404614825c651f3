"""Loading and validating the three inputs.

Each load task has several outputs (tables, rejections, counts). They are all written under
temporary names first and renamed into place at the end, replacing any left by an earlier
attempt: a run killed between two renames leaves the task incomplete (not every output
exists), and the next run redoes it and overwrites what is there (the same fingerprint, so the
same content), where Luigi's ``temporary_path`` would refuse to replace an existing file.
"""

from __future__ import annotations

import os
import warnings

import luigi
import luigi.interface
import pyarrow as pa

from retail_pipeline import stages, storage
from retail_pipeline.enrich import attribute_lookups
from retail_pipeline.properties import LATEST_SCHEMA, POINT_IN_TIME_PROPERTIES, SNAPSHOT_SCHEMA

from .base import (TABLE_SUFFIX, CRITICAL_PATH, Progress, RetailTask, json_writer, load_json, load_table, table_writer,
                   temporary_path, write_outputs)
from .inputs import InputFile, input_files
from .parts import property_file_parts, shard_count


def _paths(externals) -> tuple[str, ...]:
    return tuple(task.path for task in externals)


def parse_threads() -> int:
    """Threads for parsing one file: the CPUs shared out over the run's worker processes.

    With ``--workers 2`` on two cores, two loads run side by side: two threads each
    oversubscribe the cores (measured 10-15 % slower than one each); a load alone uses both.
    """
    with warnings.catch_warnings():  # reading [core] warns about its unrelated settings
        warnings.simplefilter("ignore")
        workers = luigi.interface.core().workers
    return max(1, (os.cpu_count() or 1) // max(1, workers))


# events.csv is read in parts of this much text, each split into the visitor shards' files
# before the next is read (stages.split_events).
EVENTS_BYTES_PER_PART = 128 << 20


class LoadEvents(RetailTask):
    """events.csv → clean, de-duplicated events split into visitor shards; rejected lines; line
    counts. The file is read part by part into the shards' files, then each shard is
    de-duplicated on its own: memory holds one part or one shard, never the file."""

    def requires(self):
        return input_files("events")

    def output(self):
        return {
            "shards": [self.work_target(f"events-{k}", TABLE_SUFFIX) for k in range(shard_count())],
            "rejected": self.work_target("rejected", TABLE_SUFFIX),
            "stats": self.work_target("stats", "json"),
        }

    def run(self):
        out = self.output()
        split = [temporary_path(target) for target in out["shards"]]
        try:
            rejected, file_counts = stages.split_events(
                _paths(self.requires()), split, part_bytes=EVENTS_BYTES_PER_PART,
                progress=Progress(self, what="lines read"), threads=parse_threads())
            shard_counts = []

            def clean(k):
                def write(path):
                    self.step(k, len(split), f"de-duplicating shard {k + 1} of {len(split)}")
                    events, counts = stages.clean_event_shard(storage.read_arrow_file(split[k]))
                    storage.write_arrow_file(path, events)
                    shard_counts.append(counts)
                    os.remove(split[k])
                return write

            write_outputs([*((target, clean(k)) for k, target in enumerate(out["shards"])),
                           (out["rejected"], table_writer(rejected)),
                           (out["stats"], lambda path: storage.write_json(
                               path, stages.event_counts(file_counts, shard_counts)))])
            lines = sum(f["data_lines"] for f in file_counts["files"].values())
            self.step(1, 1, f"{lines:,} lines read into {len(split)} shards, each de-duplicated")
        finally:
            for path in split:
                if os.path.exists(path):
                    os.remove(path)


class LoadItemPropertyFile(RetailTask):
    """One item_properties*.csv → for each part of its lines (their number follows the file's
    size, :func:`parts.property_file_parts`), the latest value per (item, property), in key
    order, and the part's rows of the point-in-time properties, by itemid; rejected lines, line
    counts. Files load side by side; a file's parts one after the other."""

    path = luigi.Parameter()
    priority = CRITICAL_PATH + 10  # the longest loads: before events.csv and the category tree

    def requires(self):
        return InputFile(path=self.path)

    def output(self):
        name = os.path.basename(self.path)
        parts = range(property_file_parts(self.path))
        return {
            "latest": [self.work_target(f"{name}-latest-{k}", TABLE_SUFFIX) for k in parts],
            "point_in_time": [self.work_target(f"{name}-point_in_time-{k}", TABLE_SUFFIX) for k in parts],
            "rejected": self.work_target(f"{name}-rejected", TABLE_SUFFIX),
            "stats": self.work_target(f"{name}-stats", "json"),
        }

    def run(self):
        stages.check_distinct_inputs(_paths(input_files("item_properties")))
        out = self.output()
        parts = stages.item_property_file_parts(
            self.path, len(out["latest"]), progress=Progress(self, what="lines read"), threads=parse_threads())
        point_in_time, rejected, lines = [], [], 0

        def write_latest(path):
            """The next part: read, its latest values written to ``path`` (which lets its rows go)."""
            nonlocal lines
            latest, part_point_in_time, part_rejected, part_lines = next(parts)
            storage.write_arrow_batches(path, LATEST_SCHEMA, latest)
            point_in_time.append(part_point_in_time)
            rejected.append(part_rejected)
            lines += part_lines

        def write_point_in_time(k):
            def write(path):
                storage.write_arrow_file(path, point_in_time[k])
                point_in_time[k] = None  # (written: let it go)
            return write

        def stats():
            name = os.path.basename(self.path)
            return {"files": {name: {"data_lines": lines, "rejected": sum(t.num_rows for t in rejected)}}}

        # written in this order: each part's latest values (reading the part) and its point-in-time rows, then the rest
        write_outputs([*(pair for k in range(len(out["latest"]))
                         for pair in ((out["latest"][k], write_latest), (out["point_in_time"][k], write_point_in_time(k)))),
                       (out["rejected"], lambda path: storage.write_arrow_file(path, pa.concat_tables(rejected))),
                       (out["stats"], lambda path: storage.write_json(path, stats()))])


def property_files():
    return [LoadItemPropertyFile(path=task.path) for task in input_files("item_properties")]


def property_parts(files: list[dict], output: str):
    """A function opening the ``output`` (``latest`` or ``point_in_time``) of every part of every
    property file (their outputs), in input order (files by name, parts by line): each call maps
    the files anew, so what one itemid range read is let go before the next (stages' ``*_by_range``)."""
    return lambda: [load_table(part) for f in files for part in f[output]]


class LoadItemProperties(RetailTask):
    """All item_properties*.csv: their rejected lines and line counts (the latest values stay in
    each file's parts' files, merged range by range as item_properties is written)."""

    def requires(self):
        return property_files()

    def output(self):
        return {"rejected": self.work_target("rejected", TABLE_SUFFIX), "stats": self.work_target("stats", "json")}

    def run(self):
        parts = self.input()
        self.set_status_message(f"collecting the rejected lines and line counts of {len(parts)} files")
        rejected = stages.rejected_rows([load_table(part["rejected"]) for part in parts])
        stats = {"files": {name: counts for part in parts for name, counts in load_json(part["stats"])["files"].items()}}
        out = self.output()
        write_outputs([(out["rejected"], table_writer(rejected)), (out["stats"], json_writer(stats))])


class PropertySnapshots(RetailTask):
    """The snapshots of categoryid and available behind the point-in-time attributes of events,
    made one itemid range at a time (as many as shards)."""

    priority = CRITICAL_PATH + 2  # the shards wait for it

    def requires(self):
        return property_files()

    def output(self):
        # the table, and each property's lookup (enrich.attribute_lookup), which every shard searches
        return {"table": self.work_target("snapshots", TABLE_SUFFIX),
                **{prop: self.work_target(f"lookup-{prop}", TABLE_SUFFIX) for prop in POINT_IN_TIME_PROPERTIES}}

    def run(self):
        out = self.output()
        self.set_status_message("collecting the snapshots of categoryid and available, range by range")
        snapshots = stages.item_property_snapshots_by_range(property_parts(self.input(), "point_in_time"), shard_count())
        write_outputs([(out["table"], lambda path: storage.write_arrow_batches(path, SNAPSHOT_SCHEMA, snapshots))])
        self.set_status_message("packing the snapshots' (itemid, time) keys for the shards' searches")
        lookups = attribute_lookups(load_table(out["table"]))
        write_outputs([(out[prop], lambda path, prop=prop: storage.write_arrow_file(path, lookups[prop], one_batch=True))
                       for prop in POINT_IN_TIME_PROPERTIES])


class LoadCategoryTree(RetailTask):
    """category_tree.csv → categories with root and depth (a cycle stops the run)."""

    def requires(self):
        return input_files("category_tree")

    def output(self):
        return {
            "tree": self.work_target("tree", TABLE_SUFFIX),
            "rejected": self.work_target("rejected", TABLE_SUFFIX),
            "stats": self.work_target("stats", "json"),
        }

    def run(self):
        tree, rejected, stats = stages.load_category_tree(_paths(self.requires()))
        out = self.output()
        write_outputs([(out["tree"], table_writer(tree)), (out["rejected"], table_writer(rejected)),
                       (out["stats"], json_writer(stats))])
