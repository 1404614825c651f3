"""Enrichment and the aggregate tables."""

from __future__ import annotations

import luigi

from retail_pipeline import aggregates, schema, stages
from retail_pipeline.enrich import enrich_events
from retail_pipeline.properties import POINT_IN_TIME_PROPERTIES
from retail_pipeline.sqlite_btree import table_cells
from retail_pipeline.visitors import visitors

from .base import TABLE_SUFFIX, CRITICAL_PATH, RetailTask, load_json, load_table, save_table, table_writer, write_outputs
from .config import retail
from .parts import shard_count
from .load import LoadCategoryTree, LoadEvents, LoadItemProperties, PropertySnapshots


class EnrichEventsShard(RetailTask):
    """events_enriched for one visitor shard: per-visitor columns, sessions, point-in-time
    item attributes, categories; as a table (for the aggregates and the indexes), as the cells
    of the SQLite table (rowids following the shards before it; only for ``[retail]
    sqlite_writer = pages``), and the shard's rows of the sessions and visitors tables. Shards
    need nothing from each other and run side by side."""

    shard = luigi.IntParameter()
    priority = CRITICAL_PATH

    def requires(self):
        return {"events": LoadEvents(), "snapshots": PropertySnapshots(), "categories": LoadCategoryTree()}

    def output(self):
        # the cells only for the page writer: with [retail] sqlite_writer = sqlite, SQLite makes its own
        names = ("events_enriched", "events_enriched_cells", "sessions", "visitors")
        return {name: self.work_target(f"{name}-{self.shard}", TABLE_SUFFIX)
                for name in names if name != "events_enriched_cells" or retail().sqlite_writer == "pages"}

    def run(self):
        inputs = self.input()
        shard = f"shard {self.shard + 1} of {shard_count()}"
        self.step(0, 3, f"{shard}: reading events and snapshots")
        events = load_table(inputs["events"]["shards"][self.shard])
        lookups = {prop: load_table(inputs["snapshots"][prop]) for prop in POINT_IN_TIME_PROPERTIES}
        self.step(1, 3, f"{shard}: enriching {events.num_rows:,} events")
        enriched = enrich_events(events, lookups, load_table(inputs["categories"]["tree"]))
        out = self.output()
        self.step(2, 3, f"{shard}: sessions" + (f", and the SQLite cells of {enriched.num_rows:,} enriched events"
                                                 if "events_enriched_cells" in out else ""))
        sessions = aggregates.sessions(enriched)  # a visitor's sessions are all in its shard
        shard_visitors = visitors(enriched)  # ...and so are all of its events
        outputs = [(out["events_enriched"], table_writer(enriched)), (out["sessions"], table_writer(sessions)),
                   (out["visitors"], table_writer(shard_visitors))]
        if "events_enriched_cells" in out:
            # rowids number the events of all shards in shard order
            first_rowid = 1 + sum(load_table(inputs["events"]["shards"][k]).num_rows for k in range(self.shard))
            cells = table_cells(schema.TABLES["events_enriched"], enriched, first_rowid)
            outputs.append((out["events_enriched_cells"], table_writer(cells)))
        write_outputs(outputs)
        self.step(3, 3, f"{shard}: done")


class EnrichEvents(RetailTask):
    """All shards of events_enriched; its output is the list of shard files."""

    def requires(self):
        return [EnrichEventsShard(shard=k) for k in range(shard_count())]

    def output(self):
        return [shard.output()["events_enriched"] for shard in self.requires()]

    def run(self):
        """Nothing to do: complete once every shard is."""


class RejectedRows(RetailTask):
    """Every rejected input line, from all loaders."""

    def requires(self):
        return [LoadEvents(), LoadItemProperties(), LoadCategoryTree()]

    def output(self):
        return self.work_target("rejected_rows", TABLE_SUFFIX)

    def run(self):
        self.set_status_message("collecting the rejected lines of every input")
        save_table(self.output(), stages.rejected_rows([load_table(i["rejected"]) for i in self.input()]))


class DataQuality(RetailTask):
    """The accounting of every input line: lines read, rejected, duplicates, events without a category."""

    def requires(self):
        return {"loads": [LoadEvents(), LoadItemProperties(), LoadCategoryTree()], "enriched": EnrichEvents()}

    def output(self):
        return self.work_target("data_quality", TABLE_SUFFIX)

    def run(self):
        inputs = self.input()
        self.set_status_message("counting lines, rejections, duplicates and events without a category")
        stats = [load_json(i["stats"]) for i in inputs["loads"]]
        enriched = [load_table(shard, columns=["categoryid"]) for shard in inputs["enriched"]]
        save_table(self.output(), stages.quality_report(stats, enriched))
