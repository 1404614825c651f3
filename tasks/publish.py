"""Writing the SQLite database and publishing it atomically."""

from __future__ import annotations

import datetime as dt
import os
from typing import Callable

import luigi

from retail_pipeline import schema
from retail_pipeline.storage import arrow_file_batches
from retail_pipeline.sqlite_out import (build_core, publish_database, read_build_info, table_counts, write_big_table,
                                        write_sqlite_part)
from retail_pipeline.stages import item_properties_by_range, remove_stale_temporaries, table_summary

from .base import CRITICAL_PATH, Progress, RetailTask, code_version, load_table, write_outputs
from .config import retail
from .parts import shard_count
from .inputs import InputFile
from .load import LoadCategoryTree, property_files, property_parts
from .transform import DataQuality, EnrichEventsShard, RejectedRows
from .analytics import ANALYSES, ANALYSIS_TASKS, HourlyTrend, PropertyHistory


# The big tables, written straight into SQLite's format and brought together in the core file.
CORE_TABLES = ("item_properties", "visitors", "events_enriched", "sessions", "item_property_history")
# The analysis and entity tables are written by the tasks that compute them (ANALYSIS_TASKS);
# every other small table by a WriteTablePart.
SMALL_TABLES = tuple(name for name in schema.TABLES if name not in CORE_TABLES and name not in ANALYSES)


def _source(table: str):
    """The task (and output key, if it has several) that produces each small table written apart."""
    sources = {
        "category_tree": (LoadCategoryTree(), "tree"),
        "hourly_trend": (HourlyTrend(), None),
        "rejected_rows": (RejectedRows(), None),
        "data_quality": (DataQuality(), None),
    }
    return sources[table]


class WriteTablePart(RetailTask):
    """A small published table written to its own SQLite file, copied in when publishing."""

    table = luigi.ChoiceParameter(choices=list(SMALL_TABLES))

    def requires(self):
        return _source(self.table)[0]

    def output(self):
        return self.work_target(self.table, "sqlite")

    def run(self):
        key = _source(self.table)[1]
        table = load_table(self.input()[key] if key else self.input())
        progress = Progress(self, total=table.num_rows, what=f"of {table.num_rows:,} rows written")
        write_outputs([(self.output(), lambda path: write_sqlite_part(path, schema.TABLES[self.table], table, progress=progress))])
        self.step(1, 1, f"{table.num_rows:,} rows written")


class WriteItemProperties(RetailTask):
    """item_properties, range by range (each merged from the latest values of the property
    files' parts for it), into a new SQLite file, in key order: its pages written directly
    (:mod:`retail_pipeline.sqlite_btree`), or with ``[retail] sqlite_writer = sqlite`` its rows
    inserted by SQLite. It starts as soon as the property files are read (item_property_history,
    made from them too, is written by the core database, so as not to hold this one back) and
    runs beside the enriched shards, which the core database also waits for."""

    priority = CRITICAL_PATH + 5  # as soon as the property files are read: the core waits for it

    def requires(self):
        return {"files": property_files()}

    def output(self):
        return TakenOverFile(self.work_target("item_properties", "sqlite").path, lambda: BuildCoreDatabase().output())

    def run(self):
        ranges = shard_count()
        progress = Progress(self, what="rows written")

        def merged_ranges():
            for k, part in enumerate(item_properties_by_range(property_parts(self.input()["files"], "latest"), ranges)):
                self.set_progress_percentage(round(100 * k / ranges))
                yield part

        write_outputs([(self.output(), lambda path: write_big_table(
            path, schema.TABLES["item_properties"], merged_ranges(), writer=retail().sqlite_writer, progress=progress))])
        self.step(1, 1, "item_properties written")


class TakenOverFile(luigi.LocalTarget):
    """A work file that the next task takes over (moves into its own output instead of copying
    it): made while it exists, or once the output of the task that took it is made."""

    def __init__(self, path: str, taker_output: Callable[[], luigi.Target]):
        super().__init__(path)
        self.taker_output = taker_output

    def exists(self) -> bool:
        return super().exists() or self.taker_output().exists()


class CoreFile(luigi.LocalTarget):
    """The core file, which publishing takes over: it counts as made while it exists, or once the
    published database records that it was built from it (``_build_info.core``). Without the
    second rule another run sharing the scheduler would see it vanish and wait to rebuild it."""

    def __init__(self, path: str, fingerprint: str):
        super().__init__(path)
        self.fingerprint = fingerprint

    def exists(self) -> bool:
        return super().exists() or (read_build_info(retail().database) or {}).get("core") == self.fingerprint


class BuildCoreDatabase(RetailTask):
    """The core of the database: the file of item_properties, taken over, with
    item_property_history, visitors, events_enriched (from the enriched shards' cells), its
    indexes and sessions written in (with ``[retail] sqlite_writer = sqlite``: inserted by
    SQLite, then indexed by ``CREATE INDEX``). Publishing takes this file over in turn."""

    priority = CRITICAL_PATH

    def requires(self):
        return {"events": [EnrichEventsShard(shard=k) for k in range(shard_count())],
                "item_properties": WriteItemProperties(), "history": PropertyHistory()}

    def output(self):
        return CoreFile(self.work_target("core", "sqlite").path, self.fingerprint())

    def run(self):
        inputs = self.input()
        writer = retail().sqlite_writer
        # each shard's file, opened when its rows are written (one shard in memory at a time)
        shards = {name: [shard[name].path for shard in inputs["events"]]
                  for name in ("events_enriched", "events_enriched_cells", "sessions", "visitors")
                  if name != "events_enriched_cells" or writer == "pages"}
        tables = [(schema.TABLES["item_property_history"], arrow_file_batches(inputs["history"].path), None),
                  (schema.TABLES["visitors"], shards["visitors"], None),  # (each shard's in key order; merged)
                  (schema.TABLES["events_enriched"], shards["events_enriched"], shards.get("events_enriched_cells")),
                  (schema.TABLES["sessions"], shards["sessions"], None)]
        self.step(0, 1, "taking item_properties over, writing item_property_history, visitors, events_enriched, "
                        "its indexes and sessions in")
        write_outputs([(self.output(), lambda path: build_core(
            inputs["item_properties"].path, tables, path, progress=self.set_status_message, take_base=True,
            writer=writer))])
        self.step(1, 1, "core written")


def _remake_if_taken(task: RetailTask, runner: luigi.Task) -> None:
    """Run ``task`` again if its file is gone (taken over by the next task of a run that has
    since been superseded), after remaking the taken files it starts from.

    Luigi checked the file's completeness when it scheduled this run, and a taken file counts
    as made (:class:`TakenOverFile`, :class:`CoreFile`), so nothing else remakes it: why this
    hand-run, and the invariants that make it safe (a missing file only; deterministic,
    fingerprint-named outputs; written through ``write_outputs``), are in docs/decisions.md,
    "Taking work files over". ``task`` reports its progress through ``runner``, the task running
    it: not run by a Luigi worker, it has no callbacks of its own (Luigi sets them to None)."""
    if os.path.exists(task.output().path):
        return
    for dependency in luigi.task.flatten(task.requires()):
        if isinstance(dependency.output(), TakenOverFile):
            _remake_if_taken(dependency, runner)
    task.set_status_message = runner.set_status_message
    task.set_progress_percentage = runner.set_progress_percentage
    task.set_tracking_url = runner.set_tracking_url
    task.run()


class PublishedDatabase(luigi.Target):
    """The published database, complete only when it was built from the current inputs."""

    def __init__(self, path: str, fingerprint: str):
        self.path = path
        self.fingerprint = fingerprint

    def exists(self) -> bool:
        info = read_build_info(self.path)
        return bool(info) and info.get("fingerprint") == self.fingerprint


def _input_files(task) -> list[str]:
    found = set()
    stack = [task]
    while stack:
        current = stack.pop()
        if isinstance(current, InputFile):
            found.add(current.path)
        stack.extend(luigi.task.flatten(current.requires()))
    return sorted(found)


class PublishDatabase(RetailTask):
    """Assemble the core and the small tables into ``[retail] database``, replacing it atomically.

    The core file is taken over (moved, not copied): once published it is gone from the work
    directory, and a run that dies after taking it builds it again.

    Holds the ``retail_database`` resource (one unit in luigi.cfg), so with a central
    scheduler no two runs ever assemble a database at the same time.
    """

    resources = {"retail_database": 1}

    def requires(self):
        return {"core": BuildCoreDatabase(), "parts": {name: WriteTablePart(table=name) for name in SMALL_TABLES},
                "analyses": [task() for task in ANALYSIS_TASKS]}

    def output(self):
        return PublishedDatabase(retail().database, self.fingerprint())

    def run(self):
        if self.complete():  # published by another run sharing the scheduler, which took the core
            return
        _remake_if_taken(BuildCoreDatabase(), self)  # taken by a publish since replaced: make it again
        for path in remove_stale_temporaries(retail().work_dir, retail().database):
            print(f"Removed {path}, left by a run that did not finish", flush=True)
        self.step(0, 2, "assembling the database")
        inputs = self.input()
        parts = {name: [target.path] for name, target in inputs["parts"].items()}
        parts.update({name: [target.path] for analyses in inputs["analyses"] for name, target in analyses.items()
                      if name in ANALYSES})
        build_info = {
            "fingerprint": self.fingerprint(),
            "core": BuildCoreDatabase().fingerprint(),
            "code_version": code_version(),
            "sqlite_writer": retail().sqlite_writer,
            "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "input_files": _input_files(self),
        }
        publish_database(inputs["core"].path, parts, retail().database, build_info,
                         progress=self.set_status_message, take_base=True)
        self.step(1, 2, "published; counting rows")
        counts = table_counts(retail().database)
        print(table_summary(counts, counts["rejected_rows"], retail().database), flush=True)
        self.step(2, 2, f"published {retail().database}")


class RunAll(luigi.WrapperTask):
    """Everything: load, clean, enrich, aggregate, publish."""

    def requires(self):
        return PublishDatabase()
