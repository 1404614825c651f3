"""The tables computed from events_enriched and the catalogue: the analysis tables (counts by
hour, the daily funnels, profiles, cohorts), the entity tables ids link to (visitors, items,
categories) with the tables about them; the item property history; the hourly trend.

The analysis and entity tables are computed in two steps: ``AnalysisPartials(shard=k)`` computes
every table's partial result from one visitor shard's events and sessions, and ``EventAnalyses``
and ``EntityTables`` combine the partials of all shards (with the catalogue) into the tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import luigi
import numpy as np
import pyarrow as pa

from retail_pipeline import aggregates, analytics, carts, funnels, item_pairs, profiles, purchases, visitors
from retail_pipeline.columns import union
from retail_pipeline import storage
from retail_pipeline.property_history import HISTORY_SCHEMA
from retail_pipeline.stages import item_property_history_by_range
from retail_pipeline.schema import TABLES
from retail_pipeline.sqlite_out import write_sqlite_part

from .base import CRITICAL_PATH, TABLE_SUFFIX, RetailTask, load_table, save_table, table_writer, write_outputs
from .load import LoadCategoryTree, PropertySnapshots, property_files, property_parts
from .parts import shard_count
from .transform import EnrichEventsShard


class LoadedOnce:
    """Things made when first asked for, then kept: ``once(name, load)``."""

    def __init__(self, inputs: dict):
        self._inputs, self._loaded = inputs, {}

    def once(self, name: str, load: Callable[[], object]):
        if name not in self._loaded:
            self._loaded[name] = load()
        return self._loaded[name]


class ShardSources(LoadedOnce):
    """What one visitor shard's partial results read, each loaded once, when first asked for;
    and the results of a partial function that makes several files at once (``once``)."""

    @property
    def events(self) -> pa.Table:
        return self.once("events", lambda: load_table(self._inputs["shard"]["events_enriched"], columns=EVENT_COLUMNS))

    @property
    def sessions(self) -> pa.Table:
        return self.once("sessions", lambda: load_table(self._inputs["shard"]["sessions"], columns=SESSION_COLUMNS))

    @property
    def tree(self) -> pa.Table:
        return self.once("tree", lambda: load_table(self._inputs["categories"]["tree"]))


def _categories_partial(s: ShardSources) -> dict[str, pa.Table]:
    return s.once("categories_partial", lambda: analytics.categories_partial(s.events, s.tree))


def _item_pairs_partial(s: ShardSources) -> dict[str, pa.Table]:
    return s.once("item_pairs_partial", lambda: item_pairs.item_pairs_partial(s.events))


# partial file -> how one shard's is computed (each function is beside its table's combine)
PARTIALS: dict[str, Callable[[ShardSources], pa.Table]] = {
    "event_type_counts": lambda s: aggregates.event_type_counts_partial(s.events),
    "daily_funnel": lambda s: aggregates.daily_funnel_partial(s.events),
    "overview": lambda s: analytics.overview_partial(s.events),
    "hour_of_day_profile": lambda s: analytics.hour_of_day_profile_partial(s.events),
    "weekday_hour_profile": lambda s: profiles.weekday_hour_profile_partial(s.events),
    "category_daily_funnel": lambda s: funnels.category_daily_funnel_partial(s.events),
    "cohort_retention": lambda s: visitors.cohort_retention_partial(s.events),
    "daily_cart_abandonment": lambda s: carts.daily_cart_abandonment_partial(s.sessions),
    "categories": lambda s: _categories_partial(s)["categories"],
    "category_items": lambda s: _categories_partial(s)["category_items"],
    "items": lambda s: analytics.items_partial(s.events),
    "purchase_timing": lambda s: purchases.purchase_timing_partial(s.events),
    "item_pairs": lambda s: _item_pairs_partial(s)["item_pairs"],
    "item_view_sessions": lambda s: _item_pairs_partial(s)["item_view_sessions"],
}

# The columns the partials read: of events_enriched (the others stay on disk), of sessions.
EVENT_COLUMNS = ["timestamp_ms", "visitorid", "event", "itemid", "transactionid", "session_id",
                 "view_to_purchase", "categoryid", "available", "root_categoryid", "source_line"]
SESSION_COLUMNS = ["start_time", "abandoned_cart", "recovered"]


class AnalysisPartials(RetailTask):
    """The partial results of every analysis table (``PARTIALS``) for one visitor shard, from
    that shard's enriched events and sessions (and the category tree) alone: its memory is
    bounded by one shard, whatever the number of shards. A visitor's events and sessions are
    all in one shard, so its distinct-visitor counts add up over the shards."""

    shard = luigi.IntParameter()

    def requires(self):
        return {"shard": EnrichEventsShard(shard=self.shard), "categories": LoadCategoryTree()}

    def output(self):
        return {name: self.work_target(f"{name}-{self.shard}", TABLE_SUFFIX) for name in PARTIALS}

    def run(self):
        out = self.output()
        shard = f"shard {self.shard + 1} of {shard_count()}"
        sources = ShardSources(self.input())
        written = []
        for done, name in enumerate(PARTIALS):
            self.step(done, len(PARTIALS) + 1, f"{shard}: partial {name}")
            written.append((out[name], table_writer(PARTIALS[name](sources))))
        write_outputs(written)
        self.step(1, 1, f"{shard}: {len(PARTIALS)} partials written")


class ShardFiles(Sequence):
    """The tables of some table targets, one per shard, each read (memory-mapped) when asked
    for and let go when no longer used: a combine that uses one at a time maps one file at a
    time, whatever the number of shards."""

    def __init__(self, targets: list):
        self._targets = targets

    def __len__(self) -> int:
        return len(self._targets)

    def __getitem__(self, k: int) -> pa.Table:
        return load_table(self._targets[k])


class Sources(LoadedOnce):
    """What the combining tasks read: the partials of every shard (``ShardFiles``); the catalogue,
    each loaded once, when first asked for; and the tables computed so far (``computed``), for
    the tables built from others."""

    def __init__(self, inputs: dict):
        super().__init__(inputs)
        self.computed: dict[str, pa.Table] = {}

    def partials(self, name: str) -> ShardFiles:
        """The partial ``name`` of every shard, in shard order."""
        return ShardFiles([shard[name] for shard in self._inputs["partials"]])

    @property
    def tree(self) -> pa.Table:
        return self.once("tree", lambda: load_table(self._inputs["categories"]["tree"]))

    @property
    def item_catalogue(self) -> analytics.ItemCatalogue:
        """The items' latest values and category runs, from the snapshots and the history, each
        mapped only while they are read (kept, their 1–3 GB at 10× would stay resident)."""
        def load():
            latest = analytics.ItemCatalogue.latest_of(load_table(self._inputs["snapshots"]["table"]))
            return analytics.ItemCatalogue(latest, *analytics.ItemCatalogue.runs_of(load_table(self._inputs["history"])))
        return self.once("item_catalogue", load)

    @property
    def catalogue_itemids(self) -> np.ndarray:
        """The items of item_properties: of every part of every property file's latest values,
        each in (itemid, property) order, so an item's rows are together."""
        def load():
            def distinct_ids(part):
                ids = load_table(part, columns=["itemid"]).column("itemid").to_numpy()
                return ids[np.concatenate(([True], ids[1:] != ids[:-1]))] if len(ids) else ids
            return union(distinct_ids(part) for f in self._inputs["properties"] for part in f["latest"])
        return self.once("catalogue_itemids", load)


def _categories(s: Sources) -> pa.Table:
    _, values, valid = s.item_catalogue.latest["categoryid"]
    return analytics.categories_combine(s.partials("categories"), s.partials("category_items"), s.tree, values[valid])


def _purchase_timing_summary(s: Sources) -> pa.Table:
    return purchases.purchase_timing_summary(s.computed["purchase_timing"])


# table -> how it is combined from the shards' partials (and the catalogue); in each task's
# order (a table built from others comes after them)
ANALYSES: dict[str, Callable[[Sources], pa.Table]] = {
    "event_type_counts": lambda s: aggregates.event_type_counts_combine(s.partials("event_type_counts")),
    "daily_funnel": lambda s: aggregates.daily_funnel_combine(s.partials("daily_funnel")),
    "overview": lambda s: analytics.overview_combine(s.partials("overview")),
    "hour_of_day_profile": lambda s: analytics.hour_of_day_profile_combine(s.partials("hour_of_day_profile")),
    "weekday_hour_profile": lambda s: profiles.weekday_hour_profile_combine(s.partials("weekday_hour_profile")),
    "category_daily_funnel": lambda s: funnels.category_daily_funnel_combine(s.partials("category_daily_funnel")),
    "cohort_retention": lambda s: visitors.cohort_retention_combine(s.partials("cohort_retention")),
    "daily_cart_abandonment": lambda s: carts.daily_cart_abandonment_combine(s.partials("daily_cart_abandonment")),
    "categories": _categories,
    "items": lambda s: analytics.items_combine(s.partials("items"), s.computed["categories"], s.item_catalogue,
                                               s.catalogue_itemids),
    "purchase_timing": lambda s: purchases.purchase_timing_combine(s.partials("purchase_timing")),
    "purchase_timing_summary": _purchase_timing_summary,
    "item_pairs": lambda s: item_pairs.item_pairs_combine(s.partials("item_pairs"),
                                                          s.partials("item_view_sessions")),
}


class ComputeTables(RetailTask):
    """Some tables of ``ANALYSES``, combined in one process from the partials of every shard
    (``AnalysisPartials``) and the catalogue, each written as the SQLite file publishing copies
    in. What it holds is output-sized or catalogue-sized (one shard's partial at a time where
    partials are catalogue-sized), never the events. Two such tasks split the tables, to run
    side by side."""

    tables: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # what its tables read, of SOURCES

    def requires(self):
        return {name: SOURCES[name]() for name in self.sources}

    def output(self):
        return {name: self.work_target(name, "sqlite") for name in self.tables}

    def run(self):
        out = self.output()
        steps = len(self.tables)
        sources = Sources(self.input())
        written = []
        for done, name in enumerate(self.tables):
            self.step(done, steps, f"combining {name}")
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
    sources = ("partials",)

    def output(self):
        return {**super().output(), "event_type_counts_table": self.work_target("event_type_counts", TABLE_SUFFIX)}

    def extra_outputs(self, name, table, written):
        if name == "event_type_counts":  # also as a table, for the hourly trend
            written.append((self.output()["event_type_counts_table"], table_writer(table)))


class EntityTables(ComputeTables):
    """The entity tables categories and items (visitors is made by the shards), and the tables
    about them: purchase timing and its summary, items viewed together."""

    tables = ("categories", "items", "purchase_timing", "purchase_timing_summary", "item_pairs")
    sources = ("partials", "categories", "snapshots", "properties", "history")
    priority = 1  # the longer of the two combines (catalogue-sized): started first, when both can run


# What the combining tasks may read: the tasks that make it (Sources loads it).
SOURCES: dict[str, Callable[[], object]] = {
    "partials": lambda: [AnalysisPartials(shard=k) for k in range(shard_count())],
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

    priority = CRITICAL_PATH + 1  # the core database writes it (after the snapshots, which the shards wait for)

    def output(self):
        return self.work_target("item_property_history", TABLE_SUFFIX)

    def run(self):
        self.set_status_message("merging the snapshots of categoryid and available into intervals, range by range")
        history = item_property_history_by_range(property_parts(self.input(), "point_in_time"), shard_count())
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
