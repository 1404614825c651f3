"""The published SQLite tables: declared column types, keys, foreign keys and the indexes analysts need.

Tables are created through sqlite-utils (``create_table`` with ``pk``, ``foreign_keys``,
``not_null``; ``create_index``). Types are declared explicitly: inferring them from data (as
sqlite-utils does from its first batch) would make a mostly-NULL column like ``transactionid``
TEXT. A foreign key names the entity table an id column links to (``visitors``, ``items``,
``categories``, each keyed by its id): Datasette draws the links, their labels and each row
page's "links from other tables" from them, and every such column is indexed so that those
counts read an index, not the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, SQLite type)
    primary_key: tuple[str, ...] = ()
    without_rowid: bool = False
    indexes: tuple[tuple[str, ...], ...] = ()
    foreign_keys: tuple[tuple[str, str], ...] = ()  # (column, entity table it references by key)
    not_null: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def rowid_alias(self) -> str | None:
        """The column that is the rowid (a single-column INTEGER PRIMARY KEY of a rowid table), or None."""
        if self.without_rowid or len(self.primary_key) != 1:
            return None
        return self.primary_key[0] if dict(self.columns)[self.primary_key[0]] == "INTEGER" else None

    @property
    def all_indexes(self) -> tuple[tuple[str, ...], ...]:
        """The declared indexes, and one on each foreign-key column that no index or primary key
        starts with (a leading column serves lookups by it; an index of its own would not help)."""
        leading = {cols[0] for cols in self.indexes} | ({self.primary_key[0]} if self.primary_key else set())
        extra = tuple((column,) for column, _ in self.foreign_keys if column not in leading)
        return self.indexes + tuple(dict.fromkeys(extra))

    def create(self, db: sqlite_utils.Database, *, indexes: bool = True) -> None:
        """Create the table, empty, in ``db`` (and its indexes, unless ``indexes`` is False).

        A table its foreign keys reference that ``db`` lacks is created first, empty: SQLite
        does not need it, but sqlite-utils checks each key's target, and a published table's
        rows are copied into the table made here."""
        for _, other in self.foreign_keys:
            if other != self.name and not db[other].exists():
                TABLES[other].create(db, indexes=False)
        keys = [(column, other, TABLES[other].primary_key[0]) for column, other in self.foreign_keys]
        pk = self.primary_key[0] if len(self.primary_key) == 1 else (self.primary_key or None)
        options = dict(pk=pk, foreign_keys=keys, not_null=set(self.not_null))
        if self.without_rowid:  # sqlite-utils has no option for it
            sql = db.create_table_sql(self.name, dict(self.columns), **options).rstrip().rstrip(";")
            db.execute(sql + " WITHOUT ROWID")
        else:
            db.create_table(self.name, dict(self.columns), **options)
        if indexes:
            self.create_indexes(db)

    def create_indexes(self, db: sqlite_utils.Database) -> None:
        for columns in self.all_indexes:
            db[self.name].create_index(columns, if_not_exists=True)


def create_table(conn, schema: TableSchema, *, indexes: bool = True) -> None:
    """:meth:`TableSchema.create` on a ``sqlite3`` connection."""
    schema.create(sqlite_utils.Database(conn), indexes=indexes)


I, T, R = "INTEGER", "TEXT", "REAL"

V, IT, C = "visitors", "items", "categories"  # the entity tables ids link to

TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (
        # --- the entity tables: one row per visitor, item, category (retail_pipeline/entities.py)
        TableSchema(
            "categories",
            (
                ("categoryid", I), ("label", T), ("category_path", T), ("parentid", I), ("root_categoryid", I),
                ("depth", I), ("in_tree", I), ("children", I),
                ("items", I), ("events", I), ("views", I), ("addtocarts", I), ("transactions", I), ("visitors", I),
                ("buyers", I),
                ("subtree_items", I), ("subtree_events", I), ("subtree_views", I), ("subtree_addtocarts", I),
                ("subtree_transactions", I), ("subtree_visitors", I), ("subtree_viewers", I), ("subtree_buyers", I),
                ("subtree_purchased_views", I), ("subtree_view_to_purchase_rate", R),
                ("subtree_visitor_to_buyer_rate", R), ("subtree_purchased_view_rate", R),
            ),
            primary_key=("categoryid",),
            foreign_keys=(("parentid", C), ("root_categoryid", C)),
            indexes=(("events",), ("transactions",), ("subtree_events",)),
        ),
        TableSchema(
            "items",
            (
                ("itemid", I), ("label", T), ("category_path", T), ("categoryid", I), ("root_categoryid", I),
                ("available", I), ("views", I), ("addtocarts", I), ("transactions", I), ("viewers", I),
                ("carters", I), ("buyers", I), ("view_to_purchase_rate", R), ("purchased_view_rate", R),
                ("visitors", I), ("events", I), ("purchased_views", I), ("views_while_unavailable", I),
                ("category_changes", I), ("first_event_time", T), ("last_event_time", T),
            ),
            primary_key=("itemid",),
            foreign_keys=(("categoryid", C), ("root_categoryid", C)),
            # (a category's items in the default order, views descending, read from an index: at 10x a
            # root category has 3.3 M items, sorting them took 2.3 s)
            indexes=(("views",), ("addtocarts",), ("transactions",), ("category_changes",), ("categoryid", "views"),
                     ("root_categoryid", "views")),
        ),
        TableSchema(
            "visitors",
            (
                ("visitorid", I), ("label", T), ("segment", T), ("first_event_time", T), ("last_event_time", T),
                ("events", I), ("views", I), ("addtocarts", I), ("transactions", I), ("sessions", I), ("orders", I),
                ("suspected_bot", I),
            ),
            primary_key=("visitorid",),
            indexes=(("segment",), ("transactions",)),
        ),
        # --- the contract's tables
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
            foreign_keys=(("visitorid", V), ("itemid", IT), ("categoryid", C), ("parent_categoryid", C),
                          ("root_categoryid", C)),
            not_null=("timestamp_ms", "visitorid", "event", "itemid"),
        ),
        TableSchema(
            "item_properties",
            (("itemid", I), ("property", T), ("value", T), ("timestamp_ms", I)),
            primary_key=("itemid", "property"),
            without_rowid=True,
            foreign_keys=(("itemid", IT),),
        ),
        TableSchema(
            "category_tree",
            (("categoryid", I), ("parentid", I), ("root_categoryid", I), ("depth", I)),
            primary_key=("categoryid",),
            indexes=(("parentid",), ("root_categoryid",)),
            foreign_keys=(("categoryid", C), ("parentid", C), ("root_categoryid", C)),
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
                ("cart_items", I), ("abandoned_cart", I), ("recovered", I),
            ),
            primary_key=("visitorid", "session_id"),
            foreign_keys=(("visitorid", V),),
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
        # --- the contract's analyst tables
        TableSchema(
            "daily_cart_abandonment",
            (
                ("date", T), ("cart_sessions", I), ("abandoned_sessions", I), ("abandonment_rate", R),
                ("recovered_sessions", I), ("recovery_rate", R),
            ),
            primary_key=("date",),
        ),
        TableSchema(
            "purchase_timing",
            (
                ("visitorid", I), ("itemid", I), ("transactionid", I), ("purchase_time", T), ("first_view_time", T),
                ("first_cart_time", T), ("seconds_view_to_purchase", R), ("seconds_cart_to_purchase", R),
                ("sessions_to_purchase", I), ("root_categoryid", I), ("source_line", I),
            ),
            primary_key=("source_line",),
            foreign_keys=(("visitorid", V), ("itemid", IT), ("root_categoryid", C)),
        ),
        TableSchema(
            "purchase_timing_summary",
            (
                ("scope", T), ("root_categoryid", I), ("measure", T), ("purchases", I), ("p25_s", R),
                ("median_s", R), ("p75_s", R), ("p90_s", R),
            ),
            foreign_keys=(("root_categoryid", C),),
        ),
        TableSchema(
            "cohort_retention",
            (
                ("cohort_week", T), ("week_number", I), ("visitors", I), ("active_visitors", I), ("buyers", I),
                ("retention_rate", R), ("purchase_rate", R),
            ),
            primary_key=("cohort_week", "week_number"),
        ),
        TableSchema(
            "category_daily_funnel",
            (
                ("date", T), ("root_categoryid", I), ("visitors", I), ("viewers", I), ("carters", I), ("buyers", I),
                ("view_to_cart_rate", R), ("cart_to_purchase_rate", R), ("view_to_purchase_rate", R),
            ),
            indexes=(("date",),),
            foreign_keys=(("root_categoryid", C),),
        ),
        TableSchema(
            "item_pairs",
            (("itemid", I), ("rank", I), ("other_itemid", I), ("together", I), ("lift", R)),
            primary_key=("itemid", "rank"),
            foreign_keys=(("itemid", IT), ("other_itemid", IT)),
        ),
        TableSchema(
            "item_property_history",
            (
                ("itemid", I), ("property", T), ("value", T), ("valid_from_ms", I), ("valid_to_ms", I),
                ("valid_from", T), ("valid_to", T),
            ),
            primary_key=("itemid", "property", "valid_from_ms"),
            foreign_keys=(("itemid", IT),),
        ),
        # --- analysis tables for browsing in Datasette (retail_pipeline/analytics.py, profiles.py)
        TableSchema(
            "overview",
            (
                ("period", T), ("first_event_time", T), ("last_event_time", T), ("days", I), ("events", I),
                ("views", I), ("addtocarts", I), ("transactions", I), ("visitors", I), ("viewers", I),
                ("carters", I), ("buyers", I), ("sessions", I), ("converted_sessions", I), ("items", I),
                ("categories", I), ("purchased_views", I), ("view_to_cart_rate", R), ("cart_to_purchase_rate", R),
                ("view_to_purchase_rate", R), ("visitor_to_buyer_rate", R), ("session_conversion_rate", R),
                ("purchased_view_rate", R),
            ),
            primary_key=("period",),
        ),
        TableSchema(
            "hour_of_day_profile",
            (
                ("hour_of_day", I), ("events", I), ("views", I), ("addtocarts", I), ("transactions", I),
                ("visitors", I), ("buyers", I), ("avg_events_per_day", R), ("share_of_events", R),
                ("purchased_views", I), ("purchased_view_rate", R), ("visitor_to_buyer_rate", R),
            ),
            primary_key=("hour_of_day",),
        ),
        TableSchema(
            "weekday_hour_profile",
            (
                ("weekday", I), ("weekday_name", T), ("hour_of_day", I), ("days", I), ("events", I), ("views", I),
                ("addtocarts", I), ("transactions", I), ("visitors", I), ("buyers", I), ("avg_events_per_day", R),
                ("avg_views_per_day", R), ("avg_addtocarts_per_day", R), ("avg_transactions_per_day", R),
                ("avg_visitors_per_day", R), ("avg_buyers_per_day", R),
            ),
            primary_key=("weekday", "hour_of_day"),
        ),
    )
}

EVENTS_VIEW_SQL = (
    "CREATE VIEW [events] AS SELECT timestamp_ms, visitorid, event, itemid, transactionid FROM events_enriched"
)
BUILD_INFO_TABLE = "_build_info"
