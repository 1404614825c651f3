"""Writing the SQLite database and publishing it atomically."""

from __future__ import annotations

import datetime as dt
import os

import luigi

from retail_pipeline import schema
from retail_pipeline.sqlite_out import publish_database, read_build_info, table_counts, write_table
from retail_pipeline.stages import table_summary

from .base import RetailTask, code_version, load_table
from .config import retail
from .inputs import InputFile
from .load import LoadCategoryTree, LoadItemProperties
from .transform import DailyFunnel, DataQuality, EnrichEvents, EventTypeCounts, HourlyTrend, RejectedRows, Sessions


def _source(table: str):
    """The task (and output key, if it has several) that produces each published table."""
    return {
        "events_enriched": (EnrichEvents(), None),
        "item_properties": (LoadItemProperties(), "latest"),
        "category_tree": (LoadCategoryTree(), "tree"),
        "event_type_counts": (EventTypeCounts(), None),
        "hourly_trend": (HourlyTrend(), None),
        "sessions": (Sessions(), None),
        "daily_funnel": (DailyFunnel(), None),
        "rejected_rows": (RejectedRows(), None),
        "data_quality": (DataQuality(), None),
    }[table]


class WriteTablePart(RetailTask):
    """One published table written to its own SQLite file (parts are written in parallel)."""

    table = luigi.ChoiceParameter(choices=list(schema.TABLES))

    def requires(self):
        return _source(self.table)[0]

    def output(self):
        return self.work_target(self.table, "sqlite")

    def run(self):
        key = _source(self.table)[1]
        source = self.input()[key] if key else self.input()
        self.set_status_message(f"writing {self.table}")
        table = load_table(source)
        self.output().makedirs()
        with self.output().temporary_path() as temporary:
            write_table(table, schema.TABLES[self.table], temporary)


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
    """Assemble the parts into ``[retail] database``, replacing it atomically."""

    def requires(self):
        return {name: WriteTablePart(table=name) for name in schema.TABLES}

    def output(self):
        return PublishedDatabase(retail().database, self.fingerprint())

    def run(self):
        self.set_status_message("assembling the database")
        parts = {name: target.path for name, target in self.input().items()}
        build_info = {
            "fingerprint": self.fingerprint(),
            "code_version": code_version(),
            "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "input_files": _input_files(self),
        }
        publish_database(parts, retail().database, build_info)
        counts = table_counts(retail().database)
        print(table_summary(counts, counts["rejected_rows"], retail().database), flush=True)


class RunAll(luigi.WrapperTask):
    """Everything: load, clean, enrich, aggregate, publish."""

    def requires(self):
        return PublishDatabase()
