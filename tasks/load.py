"""Loading and validating the three inputs.

Each load task has several outputs (tables, rejections, counts). They are all written under
temporary names first and renamed into place at the end, replacing any left by an earlier
attempt: a run killed between two renames leaves the task incomplete (not every output
exists), and the next run redoes it and overwrites what is there (the same fingerprint, so the
same content), where Luigi's ``temporary_path`` would refuse to replace an existing file.
"""

from __future__ import annotations

import os

import luigi

from retail_pipeline import stages

from .base import Progress, RetailTask, json_writer, load_json, load_table, table_writer, write_outputs
from .config import retail
from .inputs import InputFile, input_files


def _paths(externals) -> tuple[str, ...]:
    return tuple(task.path for task in externals)


class LoadEvents(RetailTask):
    """events.csv → clean, de-duplicated events split into visitor shards; rejected lines; line counts."""

    def requires(self):
        return input_files("events")

    def output(self):
        return {
            "shards": [self.work_target(f"events-{k}", "parquet") for k in range(retail().shards)],
            "rejected": self.work_target("rejected", "parquet"),
            "stats": self.work_target("stats", "json"),
        }

    def run(self):
        shards, rejected, stats = stages.load_events(
            _paths(self.requires()), retail().shards, progress=Progress(self, what="lines read")
        )
        out = self.output()
        write_outputs([*((target, table_writer(table)) for target, table in zip(out["shards"], shards)),
                       (out["rejected"], table_writer(rejected)), (out["stats"], json_writer(stats))])


class LoadItemPropertyFile(RetailTask):
    """One item_properties*.csv → its latest value per (item, property), its rows of the
    point-in-time properties, rejected lines, line counts. The files are read side by side."""

    path = luigi.Parameter()

    def requires(self):
        return InputFile(path=self.path)

    def output(self):
        name = os.path.basename(self.path)
        return {key: self.work_target(f"{name}-{key}", suffix) for key, suffix in
                (("latest", "parquet"), ("point_in_time", "parquet"), ("rejected", "parquet"), ("stats", "json"))}

    def run(self):
        stages.check_distinct_inputs(_paths(input_files("item_properties")))
        latest, point_in_time, rejected, stats = stages.load_item_property_file(
            self.path, progress=Progress(self, what="lines read"))
        out = self.output()
        write_outputs([(out["latest"], table_writer(latest)), (out["point_in_time"], table_writer(point_in_time)),
                       (out["rejected"], table_writer(rejected)), (out["stats"], json_writer(stats))])


def _property_files():
    return [LoadItemPropertyFile(path=task.path) for task in input_files("item_properties")]


class LoadItemProperties(RetailTask):
    """All item_properties*.csv → the latest value per (item, property); rejected lines; line counts."""

    def requires(self):
        return _property_files()

    def output(self):
        return {
            "latest": self.work_target("latest", "parquet"),
            "rejected": self.work_target("rejected", "parquet"),
            "stats": self.work_target("stats", "json"),
        }

    def run(self):
        parts = self.input()
        self.set_status_message(f"merging the latest values of {len(parts)} files")
        latest = stages.merge_item_properties([load_table(part["latest"]) for part in parts])
        rejected = stages.rejected_rows([load_table(part["rejected"]) for part in parts])
        stats = {"files": {name: counts for part in parts for name, counts in load_json(part["stats"])["files"].items()}}
        self.set_status_message(f"writing {latest.num_rows:,} latest values")
        out = self.output()
        write_outputs([(out["latest"], table_writer(latest)), (out["rejected"], table_writer(rejected)),
                       (out["stats"], json_writer(stats))])


class PropertySnapshots(RetailTask):
    """The snapshots of categoryid and available behind the point-in-time attributes of events."""

    def requires(self):
        return _property_files()

    def output(self):
        return self.work_target("snapshots", "parquet")

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
            "tree": self.work_target("tree", "parquet"),
            "rejected": self.work_target("rejected", "parquet"),
            "stats": self.work_target("stats", "json"),
        }

    def run(self):
        tree, rejected, stats = stages.load_category_tree(_paths(self.requires()))
        out = self.output()
        write_outputs([(out["tree"], table_writer(tree)), (out["rejected"], table_writer(rejected)),
                       (out["stats"], json_writer(stats))])
