"""Time every page an analyst opens in Datasette; fail if any takes 1 s or more or shows an error.

    python scripts/page_latency.py --database /tmp/ds-full/retail.db   # starts its own server
    python scripts/page_latency.py --url http://127.0.0.1:8001         # a running `make serve`

The pages: the index, the ``retail`` database page, the glossary (``/-/glossary`` and its JSON),
the first page of every table and view, the row page of the busiest item, category and visitor
(the entity pages ids link to) and each of its "links from other tables", every canned query
with its default parameters, and each dashboard page of ``datasette/dashboards.yml`` with each of
its chart queries (what the browser fetches to draw it; an entity dashboard with its id filter
set to the busiest one). Each is requested ``--repeat`` times; the slowest
time is reported. Exits 1 if any page is slow or shows an error (a non-200 status, Datasette's
"took too long" or an error message), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import DATABASE_NAME, datasette_command  # noqa: E402

LIMIT_S = 1.0
ERROR_MARKERS = ("took too long", 'class="message-error"', "Internal Server Error")
OPTIONAL_SQL = re.compile(r"\[\[.*?\]\]", re.DOTALL)  # a dashboard filter's optional clause
# The entity tables ids link to: (table, key, column picking the busiest row to time its page).
ENTITY_PAGES = (("items", "itemid", "events"), ("categories", "categoryid", "subtree_events"),
                ("visitors", "visitorid", "events"))


def fetch(url: str, timeout: float = 30.0) -> tuple[int, str, float]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read().decode("utf-8", "replace")
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read().decode("utf-8", "replace"), error.code
    return status, body, time.perf_counter() - start


def problem(status: int, body: str, is_json: bool) -> str | None:
    if status != 200:
        return f"HTTP {status}"
    if is_json:
        document = json.loads(body)
        if isinstance(document, dict) and (document.get("ok") is False or document.get("error")):
            return f"error: {document.get('error')}"
        return None
    for marker in ERROR_MARKERS:
        if marker in body:
            return f"page shows {marker!r}"
    return None


def pages(base: str) -> list[tuple[str, str]]:
    """(label, path) of every page to time, read from the server itself."""
    database = json.loads(fetch(f"{base}/{DATABASE_NAME}.json")[1])
    metadata = json.loads(fetch(f"{base}/-/metadata.json")[1])
    found = [("index", "/"), ("database", f"/{DATABASE_NAME}")]
    for table in database["tables"]:
        found.append((f"table {table['name']}", f"/{DATABASE_NAME}/{urllib.parse.quote(table['name'])}"))
    for view in database.get("views", []):
        name = view["name"] if isinstance(view, dict) else view
        found.append((f"view {name}", f"/{DATABASE_NAME}/{urllib.parse.quote(name)}"))
    found += [("glossary", "/-/glossary"), ("glossary json", "/-/glossary.json")]
    names = {table["name"] for table in database["tables"]}
    busiest = {}
    for table, key, order in ENTITY_PAGES:
        if table not in names:
            continue
        rows = json.loads(fetch(f"{base}/{DATABASE_NAME}/{table}.json?" + urllib.parse.urlencode(
            {"_sort_desc": order, "_size": 1, "_col": order, "_shape": "objects"}))[1]).get("rows") or []
        if not rows:
            continue
        busiest[key] = rows[0][key]
        row = f"/{DATABASE_NAME}/{table}/{rows[0][key]}"
        found.append((f"row {table}/{rows[0][key]}", row))
        extras = json.loads(fetch(f"{base}{row}.json?_extras=foreign_key_tables")[1])
        for link in extras.get("foreign_key_tables") or []:
            found.append((f"  links from {link['other_table']}.{link['other_column']}", urllib.parse.urlsplit(link["link"]).path
                          + "?" + urllib.parse.urlsplit(link["link"]).query))
    for query in database.get("queries", []):
        found.append((f"query {query['name']}", f"/{DATABASE_NAME}/{urllib.parse.quote(query['name'])}"))
    dashboards = (metadata.get("plugins") or {}).get("datasette-dashboards") or {}
    for slug, dashboard in dashboards.items():
        # An entity dashboard (item, category, visitor) is opened for the busiest one of its kind.
        filters = {name: busiest[name] for name in (dashboard.get("filters") or {}) if name in busiest}
        found.append((f"dashboard {slug}", f"/-/dashboards/{slug}" + ("?" + urllib.parse.urlencode(filters) if filters else "")))
        for chart_slug, chart in (dashboard.get("charts") or {}).items():
            if "query" in chart:
                sql = OPTIONAL_SQL.sub("", chart["query"])
                params = {name: "" for name in re.findall(r"(?<!:):(\w+)", sql)}
                params.update({name: value for name, value in filters.items() if name in params})
                path = f"/{chart['db']}.json?" + urllib.parse.urlencode({"sql": sql, **params, "_shape": "objects"})
                found.append((f"  chart {chart_slug}", path))
    return found


def measure(base: str, repeat: int) -> list[tuple[str, float, str | None]]:
    results = []
    for label, path in pages(base):
        worst, issue = 0.0, None
        for _ in range(repeat):
            status, body, seconds = fetch(base + path)
            worst = max(worst, seconds)
            issue = issue or problem(status, body, ".json?" in path or path.endswith(".json"))
        results.append((label, worst, issue))
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(base: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"ERROR: datasette exited with status {process.returncode}")
        try:
            if fetch(f"{base}/-/versions.json", timeout=2)[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"ERROR: datasette did not answer on {base} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running Datasette, e.g. http://127.0.0.1:8001")
    target.add_argument("--database", help="start a Datasette on this database (as `make serve` does)")
    parser.add_argument("--state-dir", default=None, help="passed to scripts/serve.py (default var/datasette)")
    parser.add_argument("--repeat", type=int, default=3, help="requests per page; the slowest counts")
    args = parser.parse_args(argv)

    process = None
    if args.database:
        port = free_port()
        options = {"state_dir": args.state_dir} if args.state_dir else {}
        command = datasette_command(args.database, port=port, **options)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base, process)
    else:
        base = args.url.rstrip("/")
    try:
        results = measure(base, args.repeat)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)

    width = max(len(label) for label, _, _ in results)
    failed = 0
    for label, seconds, issue in results:
        slow = seconds >= LIMIT_S
        failed += bool(slow or issue)
        flag = "SLOW" if slow else "ok" if not issue else "ERROR"
        print(f"{label:<{width}}  {seconds * 1000:8.1f} ms  {flag}{'  ' + issue if issue else ''}")
    slowest = max(results, key=lambda r: r[1])
    print(f"{len(results)} pages, slowest {slowest[1] * 1000:.1f} ms ({slowest[0].strip()}), "
          f"limit {LIMIT_S * 1000:.0f} ms: {'FAIL' if failed else 'all ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
