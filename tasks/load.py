"""Loading and validating the three inputs.

Each load task has several outputs (tables, rejections, counts). They are all written under
temporary names first and renamed into place at the end, replacing any left by an earlier
attempt: a run killed between two renames leaves the task incomplete (not every output
exists), and the next run redoes it and overwrites what is there (the same fingerprint, so the
same content), where Luigi's ``temporary_path`` would refuse to replace an existing file.
"""

from __future__ import annotations

import os
import random
from typing import Callable

import luigi

from retail_pipeline import stages, storage

from .base import Progress, RetailTask
from .config import retail
from .inputs import input_files


def _paths(externals) -> tuple[str, ...]:
    return tuple(task.path for task in externals)


def write_outputs(outputs: list[tuple[luigi.LocalTarget, Callable[[str], None]]]) -> None:
    """Write every ``(target, write)``: ``write(path)`` to a temporary path each, then rename all.

    If anything fails, the temporary files written so far are removed and nothing is renamed.
    """
    written: list[tuple[str, str]] = []
    try:
        for target, write in outputs:
            target.makedirs()
            temporary = f"{target.path}-luigi-tmp-{random.randrange(10_000_000_000):010}"
            written.append((temporary, target.path))
            write(temporary)
        for temporary, final in written:
            os.replace(temporary, final)
    except BaseException:
        for temporary, _ in written:
            try:
                os.remove(temporary)
            except FileNotFoundError:
                pass
        raise


def _table(table):
    return lambda path: storage.write_table(table, path)


def _json(document):
    return lambda path: storage.write_json(document, path)


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
        write_outputs([*((target, _table(table)) for target, table in zip(out["shards"], shards)),
                       (out["rejected"], _table(rejected)), (out["stats"], _json(stats))])


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
        write_outputs([(out["latest"], _table(latest)), (out["snapshots"], _table(snapshots)),
                       (out["rejected"], _table(rejected)), (out["stats"], _json(stats))])


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
        write_outputs([(out["tree"], _table(tree)), (out["rejected"], _table(rejected)),
                       (out["stats"], _json(stats))])
