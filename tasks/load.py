"""Loading and validating the three inputs."""

from __future__ import annotations

from retail_pipeline import stages

from .base import Progress, RetailTask, save_json, save_table
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
        for target, table in zip(out["shards"], shards):
            save_table(target, table)
        save_table(out["rejected"], rejected)
        save_json(out["stats"], stats)


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
        save_table(out["latest"], latest)
        save_table(out["snapshots"], snapshots)
        save_table(out["rejected"], rejected)
        save_json(out["stats"], stats)


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
        save_table(out["tree"], tree)
        save_table(out["rejected"], rejected)
        save_json(out["stats"], stats)
