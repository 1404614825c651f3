"""The analysis tables served in Datasette: headline numbers, per item, per category, per hour of day."""

from __future__ import annotations

from retail_pipeline import analytics

from .base import TABLE_SUFFIX, RetailTask, load_table, save_table
from .load import LoadCategoryTree
from .transform import EnrichEvents, _FromEnriched


class Overview(_FromEnriched):
    table_name = "overview"
    columns = ["timestamp_ms", "visitorid", "event", "itemid", "session_id", "view_to_purchase", "categoryid"]

    def compute(self, enriched):
        return analytics.overview(enriched)


class ItemStats(_FromEnriched):
    table_name = "item_stats"
    columns = ["timestamp_ms", "visitorid", "event", "itemid", "view_to_purchase", "categoryid", "root_categoryid",
               "source_line"]

    def compute(self, enriched):
        return analytics.item_stats(enriched)


class HourOfDayProfile(_FromEnriched):
    table_name = "hour_of_day_profile"
    columns = ["timestamp_ms", "visitorid", "event", "view_to_purchase"]

    def compute(self, enriched):
        return analytics.hour_of_day_profile(enriched)


class CategoryStats(RetailTask):
    """Per category, the activity of its whole subtree: needs the events and the category tree."""

    columns = ["visitorid", "event", "itemid", "view_to_purchase", "categoryid"]

    def requires(self):
        return {"enriched": EnrichEvents(), "categories": LoadCategoryTree()}

    def output(self):
        return self.work_target("category_stats", TABLE_SUFFIX)

    def run(self):
        inputs = self.input()
        self.step(0, 3, "reading events_enriched")
        enriched = load_table(inputs["enriched"], columns=self.columns)
        self.step(1, 3, f"computing category_stats from {enriched.num_rows:,} events")
        table = analytics.category_stats(enriched, load_table(inputs["categories"]["tree"]))
        self.step(2, 3, f"writing {table.num_rows:,} rows")
        save_table(self.output(), table)
        self.step(3, 3, f"{table.num_rows:,} rows")
