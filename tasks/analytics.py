"""The analysis tables computed from events_enriched: event counts by hour, the daily funnel,
headline numbers, per item, per category, per hour of day; and the hourly trend."""

from __future__ import annotations

from retail_pipeline import aggregates, analytics
from retail_pipeline.schema import TABLES
from retail_pipeline.sqlite_out import write_table

from .base import TABLE_SUFFIX, RetailTask, load_table, save_table, table_writer, write_outputs
from .load import LoadCategoryTree
from .transform import EnrichEvents

# table -> (the events_enriched columns it reads, how it is computed from them and the category tree)
ANALYSES = {
    "event_type_counts": (["timestamp_ms", "event"], lambda events, tree: aggregates.event_type_counts(events)),
    "daily_funnel": (["timestamp_ms", "visitorid", "event"], lambda events, tree: aggregates.daily_funnel(events)),
    "overview": (["timestamp_ms", "visitorid", "event", "itemid", "session_id", "view_to_purchase", "categoryid"],
                 lambda events, tree: analytics.overview(events)),
    "item_stats": (["timestamp_ms", "visitorid", "event", "itemid", "view_to_purchase", "categoryid",
                    "root_categoryid", "source_line"], lambda events, tree: analytics.item_stats(events)),
    "hour_of_day_profile": (["timestamp_ms", "visitorid", "event", "view_to_purchase"],
                            lambda events, tree: analytics.hour_of_day_profile(events)),
    "category_stats": (["visitorid", "event", "itemid", "view_to_purchase", "categoryid"],
                       lambda events, tree: analytics.category_stats(events, tree)),
}


class EventAnalyses(RetailTask):
    """Every table of ``ANALYSES``, in one process, each written as the SQLite file publishing
    copies in (and event_type_counts also as a table, for the hourly trend): the events are
    read once, and the memory one table's computation frees is reused by the next. (One task
    each, at full scale, they touched 2.3 GB of fresh memory, which costs a forked process
    dearly, and slowed the core database being built beside them; a task more per table to
    write it had the publishing wait ~1 s for them at the end.)"""

    def requires(self):
        return {"enriched": EnrichEvents(), "categories": LoadCategoryTree()}

    def output(self):
        return {"event_type_counts_table": self.work_target("event_type_counts", TABLE_SUFFIX),
                **{name: self.work_target(name, "sqlite") for name in ANALYSES}}

    def run(self):
        inputs = self.input()
        out = self.output()
        self.step(0, len(ANALYSES) + 1, "reading events_enriched")
        columns = sorted({column for needed, _ in ANALYSES.values() for column in needed})
        events = load_table(inputs["enriched"], columns=columns)
        tree = load_table(inputs["categories"]["tree"])
        written = []
        for done, (name, (_, compute)) in enumerate(ANALYSES.items(), start=1):
            self.step(done, len(ANALYSES) + 1, f"computing {name} from {events.num_rows:,} events")
            table = compute(events, tree)
            written.append((out[name], lambda path, table=table, name=name: write_table(table, TABLES[name], path)))
            if name == "event_type_counts":
                written.append((out["event_type_counts_table"], table_writer(table)))
        write_outputs(written)
        self.step(len(ANALYSES) + 1, len(ANALYSES) + 1, f"{len(ANALYSES)} tables written")


class HourlyTrend(RetailTask):
    """Hourly totals with trailing 24 h and 7 day means, from the gap-filled hourly counts."""

    def requires(self):
        return EventAnalyses()

    def output(self):
        return self.work_target("hourly_trend", TABLE_SUFFIX)

    def run(self):
        self.set_status_message("rolling means over the hourly counts")
        save_table(self.output(), aggregates.hourly_trend(load_table(self.input()["event_type_counts_table"])))
