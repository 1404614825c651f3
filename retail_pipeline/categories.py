"""The category tree: first row per category, roots and depths, cycle detection."""

from __future__ import annotations

import pyarrow as pa

from .errors import CategoryCycleError

TREE_SCHEMA = pa.schema(
    [
        pa.field("categoryid", pa.int64()),
        pa.field("parentid", pa.int64()),
        pa.field("root_categoryid", pa.int64()),
        pa.field("depth", pa.int64()),
    ]
)


def first_rows(rows: pa.Table) -> tuple[pa.Table, list[int]]:
    """Keep the first row of each categoryid; return it and the line numbers of the repeats."""
    seen: set[int] = set()
    keep, repeats = [], []
    for index, (category, line) in enumerate(zip(rows.column("categoryid").to_pylist(), rows.column("line").to_pylist())):
        if category in seen:
            repeats.append(line)
        else:
            seen.add(category)
            keep.append(index)
    return rows.take(pa.array(keep, pa.int64())), repeats


def _cycle_from(start: int, parent: dict[int, int | None]) -> list[int]:
    seen: list[int] = []
    node = start
    while node not in seen:
        seen.append(node)
        node = parent[node]
    cycle = seen[seen.index(node):]
    smallest = cycle.index(min(cycle))
    return cycle[smallest:] + cycle[:smallest]


def build_category_tree(rows: pa.Table) -> pa.Table:
    """``category_tree`` from the unique rows: each category's root and depth.

    The walk follows ``parentid`` until a category with no parent, or a parent that names no
    row (which is then the root). Raises ``CategoryCycleError`` if a walk comes back on itself.
    """
    categories = rows.column("categoryid").to_pylist()
    parent = dict(zip(categories, rows.column("parentid").to_pylist()))
    resolved: dict[int, tuple[int, int]] = {}  # category -> (root, depth)
    for start in categories:
        path: list[int] = []
        on_path: set[int] = set()
        node = start
        while node not in resolved:
            if node in on_path:
                cycle = _cycle_from(node, parent)
                raise CategoryCycleError(
                    "category_tree: cycle among categories " + " -> ".join(map(str, cycle + cycle[:1]))
                )
            up = parent.get(node)
            if node not in parent or up is None:
                # a root, or a parent id that names no row: the walk ends here
                resolved[node] = (node, 0)
                break
            path.append(node)
            on_path.add(node)
            node = up
        root, depth = resolved[node]
        for hops, child in enumerate(reversed(path), start=1):
            resolved[child] = (root, depth + hops)
    return pa.Table.from_arrays(
        [
            pa.array(categories, pa.int64()),
            rows.column("parentid"),
            pa.array([resolved[c][0] for c in categories], pa.int64()),
            pa.array([resolved[c][1] for c in categories], pa.int64()),
        ],
        schema=TREE_SCHEMA,
    )
