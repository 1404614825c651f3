"""The published SQLite tables: declared column types, keys and the indexes analysts need.

Types are declared explicitly: inferring them from data (as sqlite-utils does from its first
batch) would make a mostly-NULL column like ``transactionid`` TEXT.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, SQLite type)
    primary_key: tuple[str, ...] = ()
    without_rowid: bool = False
    indexes: tuple[tuple[str, ...], ...] = ()
    description: str = ""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def create_sql(self) -> str:
        parts = [f"[{name}] {type_}" for name, type_ in self.columns]
        if self.primary_key:
            parts.append("PRIMARY KEY (" + ", ".join(f"[{c}]" for c in self.primary_key) + ")")
        sql = f"CREATE TABLE [{self.name}] (\n    " + ",\n    ".join(parts) + "\n)"
        return sql + (" WITHOUT ROWID" if self.without_rowid else "")

    def index_sql(self) -> list[str]:
        return [
            f"CREATE INDEX IF NOT EXISTS [idx_{self.name}_{'_'.join(cols)}] ON [{self.name}] ({', '.join(f'[{c}]' for c in cols)})"
            for cols in self.indexes
        ]


I, T, R = "INTEGER", "TEXT", "REAL"

TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (
        TableSchema(
            "events_enriched",
            (
                ("timestamp_ms", I), ("visitorid", I), ("event", T), ("itemid", I), ("transactionid", I),
                ("event_time", T), ("event_date", T), ("event_hour", T), ("hour_of_day", I),
                ("prev_event", T), ("seconds_since_prev_event", R), ("session_id", I), ("view_to_purchase", I),
                ("categoryid", I), ("available", I), ("parent_categoryid", I), ("root_categoryid", I),
                ("source_line", I),
            ),
            # The lookups an analyst makes; whole-period questions use the pre-computed tables.
            indexes=(("visitorid", "timestamp_ms"), ("itemid",), ("event_hour",), ("categoryid",)),
        ),
        TableSchema(
            "item_properties",
            (("itemid", I), ("property", T), ("value", T), ("timestamp_ms", I)),
            primary_key=("itemid", "property"),
            without_rowid=True,
        ),
        TableSchema(
            "category_tree",
            (("categoryid", I), ("parentid", I), ("root_categoryid", I), ("depth", I)),
            primary_key=("categoryid",),
            indexes=(("parentid",), ("root_categoryid",)),
        ),
        TableSchema(
            "event_type_counts",
            (("hour", T), ("view", I), ("addtocart", I), ("transaction", I), ("total_events", I)),
            primary_key=("hour",),
        ),
        TableSchema(
            "hourly_trend",
            (("hour", T), ("total_events", I), ("rolling_avg_24h", R), ("rolling_avg_168h", R)),
            primary_key=("hour",),
        ),
        TableSchema(
            "sessions",
            (
                ("visitorid", I), ("session_id", I), ("start_time", T), ("end_time", T), ("duration_s", R),
                ("events", I), ("views", I), ("addtocarts", I), ("transactions", I), ("converted", I),
            ),
            primary_key=("visitorid", "session_id"),
        ),
        TableSchema(
            "daily_funnel",
            (
                ("date", T), ("visitors", I), ("viewers", I), ("carters", I), ("buyers", I),
                ("view_to_cart_rate", R), ("cart_to_purchase_rate", R), ("view_to_purchase_rate", R),
            ),
            primary_key=("date",),
        ),
        TableSchema(
            "rejected_rows",
            (("source_file", T), ("line_number", I), ("reason", T), ("raw", T)),
            indexes=(("source_file", "line_number"),),
        ),
        TableSchema(
            "data_quality",
            (("check_name", T), ("value", I), ("detail", T)),
            primary_key=("check_name",),
        ),
        # Analysis tables for browsing in Datasette (retail_pipeline/analytics.py).
        TableSchema(
            "overview",
            (
                ("period", T), ("first_event_time", T), ("last_event_time", T), ("days", I), ("events", I),
                ("views", I), ("addtocarts", I), ("transactions", I), ("visitors", I), ("viewers", I),
                ("carters", I), ("buyers", I), ("sessions", I), ("converted_sessions", I), ("items", I),
                ("categories", I), ("purchased_views", I), ("visitor_to_buyer_rate", R),
                ("session_conversion_rate", R), ("view_to_purchase_rate", R),
            ),
            primary_key=("period",),
        ),
        TableSchema(
            "item_stats",
            (
                ("itemid", I), ("categoryid", I), ("root_categoryid", I), ("events", I), ("views", I),
                ("addtocarts", I), ("transactions", I), ("visitors", I), ("buyers", I), ("purchased_views", I),
                ("view_to_purchase_rate", R), ("first_event_time", T), ("last_event_time", T),
            ),
            primary_key=("itemid",),
            indexes=(("categoryid",), ("root_categoryid",), ("views",), ("addtocarts",), ("transactions",)),
        ),
        TableSchema(
            "category_stats",
            (
                ("categoryid", I), ("parentid", I), ("root_categoryid", I), ("depth", I), ("in_tree", I),
                ("children", I), ("items", I), ("events", I), ("views", I), ("addtocarts", I),
                ("transactions", I), ("visitors", I), ("buyers", I), ("purchased_views", I),
                ("view_to_purchase_rate", R), ("visitor_to_buyer_rate", R), ("direct_events", I),
            ),
            primary_key=("categoryid",),
            indexes=(("parentid",), ("root_categoryid",)),
        ),
        TableSchema(
            "hour_of_day_profile",
            (
                ("hour_of_day", I), ("events", I), ("views", I), ("addtocarts", I), ("transactions", I),
                ("visitors", I), ("buyers", I), ("avg_events_per_day", R), ("share_of_events", R),
                ("purchased_views", I), ("view_to_purchase_rate", R), ("visitor_to_buyer_rate", R),
            ),
            primary_key=("hour_of_day",),
        ),
    )
}

EVENTS_VIEW_SQL = (
    "CREATE VIEW [events] AS SELECT timestamp_ms, visitorid, event, itemid, transactionid FROM events_enriched"
)
BUILD_INFO_TABLE = "_build_info"
