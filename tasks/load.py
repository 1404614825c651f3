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
from retail_pipeline.properties import LATEST_SCHEMA

from .base import TABLE_SUFFIX, CRITICAL_PATH, Progress, RetailTask, json_writer, load_json, load_table, table_writer, write_outputs
from .config import retail
from .inputs import InputFile, input_files


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


class LoadEvents(RetailTask):
    """events.csv → clean, de-duplicated events split into visitor shards; rejected lines; line counts."""

    def requires(self):
        return input_files("events")

    def output(self):
        return {
            "shards": [self.work_target(f"events-{k}", TABLE_SUFFIX) for k in range(retail().shards)],
            "rejected": self.work_target("rejected", TABLE_SUFFIX),
            "stats": self.work_target("stats", "json"),
        }

    def run(self):
        shards, rejected, stats = stages.load_events(
            _paths(self.requires()), retail().shards, progress=Progress(self, what="lines read"),
            threads=parse_threads())
        out = self.output()
        write_outputs([*((target, table_writer(table)) for target, table in zip(out["shards"], shards)),
                       (out["rejected"], table_writer(rejected)), (out["stats"], json_writer(stats))])


# Each property file is read in this many parts, one after the other in its task: a part's
# rows are reduced and let go before the next part is read (stages.item_property_file_parts).
PROPERTY_FILE_PARTS = 2


class LoadItemPropertyFile(RetailTask):
    """One item_properties*.csv → for each part of its lines, the latest value per (item,
    property), in key order; its rows of the point-in-time properties, rejected lines, line
    counts. Files load side by side."""

    path = luigi.Parameter()
    priority = CRITICAL_PATH + 10  # the longest loads: before events.csv and the category tree

    def requires(self):
        return InputFile(path=self.path)

    def output(self):
        name = os.path.basename(self.path)
        return {
            "latest": [self.work_target(f"{name}-latest-{k}", TABLE_SUFFIX) for k in range(PROPERTY_FILE_PARTS)],
            "point_in_time": self.work_target(f"{name}-point_in_time", TABLE_SUFFIX),
            "rejected": self.work_target(f"{name}-rejected", TABLE_SUFFIX),
            "stats": self.work_target(f"{name}-stats", "json"),
        }

    def run(self):
        stages.check_distinct_inputs(_paths(input_files("item_properties")))
        parts = stages.item_property_file_parts(
            self.path, PROPERTY_FILE_PARTS, progress=Progress(self, what="lines read"), threads=parse_threads())
        point_in_time, rejected, lines = [], [], 0

        def write_latest(path):
            """The next part: read, its latest values written to ``path`` (which lets its rows go)."""
            nonlocal lines
            latest, part_point_in_time, part_rejected, part_lines = next(parts)
            storage.write_arrow_batches(path, LATEST_SCHEMA, latest)
            point_in_time.append(part_point_in_time)
            rejected.append(part_rejected)
            lines += part_lines

        def stats():
            name = os.path.basename(self.path)
            return {"files": {name: {"data_lines": lines, "rejected": sum(t.num_rows for t in rejected)}}}

        out = self.output()
        # written in this order: every part's latest values (each reading its part), then the rest
        write_outputs([*((target, write_latest) for target in out["latest"]),
                       (out["point_in_time"], lambda path: storage.write_arrow_file(path, pa.concat_tables(point_in_time))),
                       (out["rejected"], lambda path: storage.write_arrow_file(path, pa.concat_tables(rejected))),
                       (out["stats"], lambda path: storage.write_json(path, stats()))])


def property_files():
    return [LoadItemPropertyFile(path=task.path) for task in input_files("item_properties")]


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
    """The snapshots of categoryid and available behind the point-in-time attributes of events."""

    priority = CRITICAL_PATH

    def requires(self):
        return property_files()

    def output(self):
        return self.work_target("snapshots", TABLE_SUFFIX)

    def run(self):
        self.set_status_message("collecting the snapshots of categoryid and available")
        snapshots = stages.item_property_snapshots([load_table(part["point_in_time"]) for part in self.input()])
        write_outputs([(self.output(), table_writer(snapshots))])


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
