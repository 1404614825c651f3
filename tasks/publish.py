"""Writing the SQLite database and publishing it atomically."""

from __future__ import annotations

import datetime as dt
import os

import luigi

from retail_pipeline import schema, storage
from retail_pipeline.sqlite_out import publish_database, read_build_info, table_counts, write_table
from retail_pipeline.stages import merge_item_properties, remove_stale_temporaries, table_summary

from .base import BIG_WRITE, CRITICAL_PATH, Progress, RetailTask, code_version, load_table, write_outputs
from .config import retail
from .inputs import InputFile
from .load import LoadCategoryTree, property_files
from .transform import DailyFunnel, DataQuality, EnrichEvents, EventTypeCounts, HourlyTrend, RejectedRows, Sessions
from .analytics import CategoryStats, HourOfDayProfile, ItemStats, Overview


def _source(table: str):
    """The task (and output key, if it has several) that produces each published table
    (item_properties, merged from the property files' parts, excepted)."""
    return {
        "events_enriched": (EnrichEvents(), None),
        "category_tree": (LoadCategoryTree(), "tree"),
        "event_type_counts": (EventTypeCounts(), None),
        "hourly_trend": (HourlyTrend(), None),
        "sessions": (Sessions(), None),
        "daily_funnel": (DailyFunnel(), None),
        "rejected_rows": (RejectedRows(), None),
        "data_quality": (DataQuality(), None),
        "overview": (Overview(), None),
        "item_stats": (ItemStats(), None),
        "category_stats": (CategoryStats(), None),
        "hour_of_day_profile": (HourOfDayProfile(), None),
    }[table]


def part_count(table: str) -> int:
    """How many SQLite part files a table is written as (written side by side with --workers).

    item_properties, the biggest table, is cut into ``shards`` item ranges (each merged from
    the property files' latest values for that range); the others are one part each.
    """
    return retail().shards if table == "item_properties" else 1


# The table whose part file becomes the database file: it is copied whole, indexes included,
# so its indexes are built in its own task (beside other work) and its rows are never re-inserted.
BASE_TABLE = "events_enriched"


class WriteTablePart(RetailTask):
    """One part of a published table written to its own SQLite file."""

    table = luigi.ChoiceParameter(choices=list(schema.TABLES))
    part = luigi.IntParameter(default=0)

    @property
    def priority(self):
        if self.table == BASE_TABLE:
            return CRITICAL_PATH
        return BIG_WRITE if self.table in ("item_properties", "sessions") else 0

    def requires(self):
        if self.table == "item_properties":
            return property_files()
        return _source(self.table)[0]

    def output(self):
        return self.work_target(f"{self.table}-{self.part}", "sqlite")

    def _rows(self):
        """The part's rows: a table, or for events_enriched one table per shard, read lazily."""
        if self.table == "item_properties":
            table = merge_item_properties([load_table(f["latest"][self.part]) for f in self.input()])
            return [table.num_rows], [table]
        key = _source(self.table)[1]
        source = self.input()[key] if key else self.input()
        if isinstance(source, list):
            return [storage.row_count(target.path) for target in source], (load_table(t) for t in source)
        table = load_table(source)
        return [table.num_rows], [table]

    def run(self):
        self.set_status_message(f"reading {self.table} part {self.part + 1} of {part_count(self.table)}")
        counts, tables = self._rows()
        total = sum(counts)
        progress = Progress(self, total=total, what=f"of {total:,} rows written")
        indexed = self.table == BASE_TABLE
        write_outputs([(self.output(), lambda path: write_table(
            tables, schema.TABLES[self.table], path, progress, with_indexes=indexed))])
        self.step(1, 1, f"{total:,} rows written" + (" and indexed" if indexed else ""))


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
    """Assemble the parts into ``[retail] database``, replacing it atomically.

    Holds the ``retail_database`` resource (one unit in luigi.cfg), so with a central
    scheduler no two runs ever assemble a database at the same time.
    """

    resources = {"retail_database": 1}

    def requires(self):
        return {name: [WriteTablePart(table=name, part=k) for k in range(part_count(name))] for name in schema.TABLES}

    def output(self):
        return PublishedDatabase(retail().database, self.fingerprint())

    def run(self):
        for path in remove_stale_temporaries(retail().work_dir, retail().database):
            print(f"Removed {path}, left by a run that did not finish", flush=True)
        self.step(0, 2, "assembling the database")
        parts = {name: [target.path for target in targets] for name, targets in self.input().items()}
        build_info = {
            "fingerprint": self.fingerprint(),
            "code_version": code_version(),
            "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "input_files": _input_files(self),
        }
        publish_database(parts, retail().database, build_info, progress=self.set_status_message, base=BASE_TABLE)
        self.step(1, 2, "published; counting rows")
        counts = table_counts(retail().database)
        print(table_summary(counts, counts["rejected_rows"], retail().database), flush=True)
        self.step(2, 2, f"published {retail().database}")


class RunAll(luigi.WrapperTask):
    """Everything: load, clean, enrich, aggregate, publish."""

    def requires(self):
        return PublishDatabase()
