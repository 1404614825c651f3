"""The tables computed from events_enriched and the catalogue: the analysis tables (counts by
hour, the daily funnels, profiles, cohorts), the entity tables ids link to (visitors, items,
categories) with the tables about them; the item property history; the hourly trend."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa

from retail_pipeline import aggregates, analytics, carts, funnels, item_pairs, profiles, purchases, visitors
from retail_pipeline.columns import unique
from retail_pipeline import storage
from retail_pipeline.property_history import HISTORY_SCHEMA
from retail_pipeline.stages import item_property_history_by_range
from retail_pipeline.schema import TABLES
from retail_pipeline.sqlite_out import write_sqlite_part

from .base import CRITICAL_PATH, TABLE_SUFFIX, RetailTask, load_table, save_table, table_writer, write_outputs
from .load import LoadCategoryTree, PropertySnapshots, point_in_time_parts, property_files
from .parts import shard_count
from .transform import EnrichEvents, EnrichEventsShard


class Sources:
    """What the analyses read, each loaded once, when first asked for; and the tables computed
    so far (``computed``), for the tables built from others."""

    def __init__(self, inputs: dict, event_columns: list[str]):
        self._inputs, self._event_columns, self._loaded = inputs, event_columns, {}
        self.computed: dict[str, pa.Table] = {}

    def _once(self, name: str, load: Callable[[], object]):
        if name not in self._loaded:
            self._loaded[name] = load()
        return self._loaded[name]

    @property
    def events(self) -> pa.Table:
        return self._once("events", lambda: load_table(self._inputs["enriched"], columns=self._event_columns))

    @property
    def tree(self) -> pa.Table:
        return self._once("tree", lambda: load_table(self._inputs["categories"]["tree"]))

    @property
    def snapshots(self) -> pa.Table:
        return self._once("snapshots", lambda: load_table(self._inputs["snapshots"]))

    @property
    def sessions(self) -> pa.Table:
        return self._once("sessions", lambda: load_table([shard["sessions"] for shard in self._inputs["shards"]]))

    @property
    def history(self) -> pa.Table:
        return self._once("history", lambda: load_table(self._inputs["history"]))

    @property
    def catalogue_itemids(self) -> np.ndarray:
        """The items of item_properties: of every part of every property file's latest values,
        each in (itemid, property) order, so an item's rows are together."""
        def load():
            parts = []
            for part in (part for f in self._inputs["properties"] for part in f["latest"]):
                ids = load_table(part, columns=["itemid"]).column("itemid").to_numpy()
                parts.append(ids[np.concatenate(([True], ids[1:] != ids[:-1]))] if len(ids) else ids)
            return unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        return self._once("catalogue_itemids", load)


def _categories(s: Sources) -> pa.Table:
    _, values, valid = analytics.latest_snapshot_values(s.snapshots, "categoryid")
    return analytics.categories(s.events, s.tree, values[valid])


def _purchase_timing_summary(s: Sources) -> pa.Table:
    return purchases.purchase_timing_summary(s.computed["purchase_timing"])


# table -> how it is computed; in each task's order (a table built from others comes after them)
ANALYSES: dict[str, Callable[[Sources], pa.Table]] = {
    "event_type_counts": lambda s: aggregates.event_type_counts(s.events),
    "daily_funnel": lambda s: aggregates.daily_funnel(s.events),
    "overview": lambda s: analytics.overview(s.events),
    "hour_of_day_profile": lambda s: analytics.hour_of_day_profile(s.events),
    "weekday_hour_profile": lambda s: profiles.weekday_hour_profile(s.events),
    "category_daily_funnel": lambda s: funnels.category_daily_funnel(s.events),
    "cohort_retention": lambda s: visitors.cohort_retention(s.events),
    "daily_cart_abandonment": lambda s: carts.daily_cart_abandonment(s.sessions),
    "categories": _categories,
    "items": lambda s: analytics.items(s.events, s.computed["categories"], s.snapshots, s.catalogue_itemids,
                                       s.history),
    "purchase_timing": lambda s: purchases.purchase_timing(s.events),
    "purchase_timing_summary": _purchase_timing_summary,
    "item_pairs": lambda s: item_pairs.item_pairs(s.events),
}

# The events_enriched columns the analyses read (the others stay on disk).
EVENT_COLUMNS = ["timestamp_ms", "visitorid", "event", "itemid", "transactionid", "session_id",
                 "view_to_purchase", "categoryid", "available", "root_categoryid", "source_line"]


class ComputeTables(RetailTask):
    """Some tables of ``ANALYSES``, in one process, each written as the SQLite file publishing
    copies in: the events are read once, and the memory one table's computation frees is reused
    by the next. (One task per table, at full scale, touched 2.3 GB of fresh memory, which
    costs a forked process dearly; a task more per table to write it had the publishing wait
    for them at the end.) Two such tasks split the tables, to run side by side."""

    tables: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # what its tables read, of SOURCES
    event_columns: list[str] = EVENT_COLUMNS  # what they read of events_enriched

    def requires(self):
        return {name: SOURCES[name]() for name in self.sources}

    def output(self):
        return {name: self.work_target(name, "sqlite") for name in self.tables}

    def run(self):
        out = self.output()
        steps = len(self.tables) + 1
        self.step(0, steps, "reading events_enriched")
        sources = Sources(self.input(), self.event_columns)
        written = []
        for done, name in enumerate(self.tables, start=1):
            self.step(done, steps, f"computing {name}")
            table = sources.computed[name] = ANALYSES[name](sources)
            written.append((out[name], lambda path, table=table, name=name: write_sqlite_part(path, TABLES[name], table)))
            self.extra_outputs(name, table, written)
        write_outputs(written)
        self.step(steps, steps, f"{len(self.tables)} tables written")

    def extra_outputs(self, name: str, table: pa.Table, written: list) -> None:
        """Outputs other than the tables' SQLite files (none by default)."""


class EventAnalyses(ComputeTables):
    """The analysis tables: by hour, by day, by hour of the day and weekday, cohorts, carts."""

    tables = ("event_type_counts", "daily_funnel", "overview", "hour_of_day_profile", "weekday_hour_profile",
              "category_daily_funnel", "cohort_retention", "daily_cart_abandonment")
    sources = ("enriched", "shards")
    event_columns = ["timestamp_ms", "visitorid", "event", "itemid", "session_id", "view_to_purchase", "categoryid",
                     "root_categoryid"]

    def output(self):
        return {**super().output(), "event_type_counts_table": self.work_target("event_type_counts", TABLE_SUFFIX)}

    def extra_outputs(self, name, table, written):
        if name == "event_type_counts":  # also as a table, for the hourly trend
            written.append((self.output()["event_type_counts_table"], table_writer(table)))


class EntityTables(ComputeTables):
    """The entity tables categories and items (visitors is made by the shards), and the tables
    about them: purchase timing and its summary, items viewed together."""

    tables = ("categories", "items", "purchase_timing", "purchase_timing_summary", "item_pairs")
    sources = ("enriched", "categories", "snapshots", "properties", "history")


# What the analysis tasks may read: the tasks that make it (Sources loads it).
SOURCES: dict[str, Callable[[], object]] = {
    "enriched": lambda: EnrichEvents(),
    "shards": lambda: [EnrichEventsShard(shard=k) for k in range(shard_count())],  # their sessions
    "categories": lambda: LoadCategoryTree(),
    "snapshots": lambda: PropertySnapshots(),
    "properties": property_files,  # the catalogue's items
    "history": lambda: PropertyHistory(),
}

# Which task computes each table of ANALYSES.
ANALYSIS_TASKS = (EventAnalyses, EntityTables)
assert sorted(name for task in ANALYSIS_TASKS for name in task.tables) == sorted(ANALYSES)


class PropertyHistory(RetailTask):
    """item_property_history: how each item's categoryid and available changed, as validity
    intervals, from the property files' rows of those properties; made one itemid range at a
    time (as many as shards)."""

    def requires(self):
        return property_files()

    priority = CRITICAL_PATH + 6  # WriteItemProperties writes it

    def output(self):
        return self.work_target("item_property_history", TABLE_SUFFIX)

    def run(self):
        self.set_status_message("merging the snapshots of categoryid and available into intervals, range by range")
        history = item_property_history_by_range(point_in_time_parts(self.input()), shard_count())
        write_outputs([(self.output(), lambda path: storage.write_arrow_batches(path, HISTORY_SCHEMA, history))])


class HourlyTrend(RetailTask):
    """Hourly totals with trailing 24 h and 7 day means, from the gap-filled hourly counts."""

    def requires(self):
        return EventAnalyses()

    def output(self):
        return self.work_target("hourly_trend", TABLE_SUFFIX)

    def run(self):
        self.set_status_message("rolling means over the hourly counts")
        save_table(self.output(), aggregates.hourly_trend(load_table(self.input()["event_type_counts_table"])))
