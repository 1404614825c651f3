"""Loading and validating the three inputs.

Each load task has several outputs (tables, rejections, counts). They are all written under
temporary names first and renamed into place at the end, replacing any left by an earlier
attempt: a run killed between two renames leaves the task incomplete (not every output
exists), and the next run redoes it and overwrites what is there (the same fingerprint, so the
same content), where Luigi's ``temporary_path`` would refuse to replace an existing file.
"""

from __future__ import annotations

from retail_pipeline import stages

from .base import Progress, RetailTask, json_writer, table_writer, write_outputs
from .config import retail
from .inputs import input_files


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


class LoadItemProperties(RetailTask):
    """item_properties*.csv → latest value per (item, property), point-in-time snapshots."""

    def requires(self):
        return input_files("item_properties")

    def output(self):
        return {
            "latest": self.work_target("latest", "parquet"),
            "snapshots": self.work_target("snapshots", "parquet"),
            "rejected": self.work_target("rejected", "parquet"),
            "stats": self.work_target("stats", "json"),
        }

    def run(self):
        latest, snapshots, rejected, stats = stages.load_item_properties(
            _paths(self.requires()), progress=Progress(self, what="lines read")
        )
        self.set_status_message(f"writing {latest.num_rows:,} latest values")
        out = self.output()
        write_outputs([(out["latest"], table_writer(latest)), (out["snapshots"], table_writer(snapshots)),
                       (out["rejected"], table_writer(rejected)), (out["stats"], json_writer(stats))])


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
