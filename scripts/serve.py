"""Serve the published database in Datasette, configured from ``datasette/`` (what ``make serve`` runs).

    python scripts/serve.py [--database data/retail.db] [--host 127.0.0.1] [--port 8001]
                            [--state-dir var/datasette] [--dry-run]

Datasette serves the file read-only and immutable (``-i``) under the name ``retail``, with the
descriptions, canned queries and dashboard of ``datasette/metadata.yml`` and the settings below.
Table row counts come from a ``datasette inspect`` file kept in the state dir (git-ignored) and
regenerated whenever the database is newer, so no page counts millions of rows. A database whose
file is not named ``retail.db`` is served through a symlink of that name in the state dir, so
that Datasette still calls it ``retail``. The tests start the server with ``datasette_command``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "datasette"
DATABASE_NAME = "retail"

SETTINGS = {
    # Pages and canned queries answer in well under a second; ad-hoc SQL gets 3 s before it is stopped.
    "sql_time_limit_ms": 3000,
    # A facet asked for on a table of millions of rows gives up quickly instead of holding the page.
    "facet_time_limit_ms": 200,
    # Suggesting facets runs a query per column of every table page: far too slow on events_enriched.
    "suggest_facets": "off",
    "default_page_size": 100,
    # The hourly dashboard chart reads every hour of the period (about 3,300).
    "max_returned_rows": 5000,
}


def _state_folder(database: Path, state_dir: Path) -> Path:
    """A folder of its own for each database served, so switching databases keeps both count files."""
    key = hashlib.sha256(str(database).encode()).hexdigest()[:12]
    return state_dir / f"{database.stem}-{key}"


def served_path(database: Path, state_dir: Path) -> Path:
    """The path Datasette opens: the database itself if named retail.db, else a retail.db symlink to it."""
    if database.name == f"{DATABASE_NAME}.db":
        return database
    link = _state_folder(database, state_dir) / f"{DATABASE_NAME}.db"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not (link.is_symlink() and os.readlink(link) == str(database)):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(database)
    return link


def inspect_file(database: Path, state_dir: Path) -> Path:
    """The ``datasette inspect`` counts of ``database``, regenerated when missing or stale."""
    path = served_path(database, state_dir)
    counts = _state_folder(database, state_dir) / "inspect.json"
    stat = database.stat()
    if counts.exists() and counts.stat().st_mtime >= stat.st_mtime:
        try:
            recorded = json.loads(counts.read_text())[DATABASE_NAME]
            if recorded["size"] == stat.st_size and recorded["file"] == str(path):
                return counts
        except (ValueError, KeyError, TypeError):
            pass
    counts.parent.mkdir(parents=True, exist_ok=True)
    temporary = counts.with_name(f".inspect-{os.getpid()}.json")
    subprocess.run([sys.executable, "-m", "datasette", "inspect", str(path), "--inspect-file", str(temporary)],
                   check=True, stdout=subprocess.DEVNULL)
    os.replace(temporary, counts)
    return counts


def datasette_command(database: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8001,
                      state_dir: str | os.PathLike = REPO / "var" / "datasette") -> list[str]:
    """The ``datasette serve`` command line for ``database`` (preparing its counts file first)."""
    database = Path(database).resolve()
    if not database.is_file():
        raise SystemExit(f"ERROR: {database}: no such database; build it first with `make run`")
    state_dir = Path(state_dir).resolve()
    counts = inspect_file(database, state_dir)
    command = [sys.executable, "-m", "datasette", "serve", "-i", str(served_path(database, state_dir)),
               "--inspect-file", str(counts), "--metadata", str(CONFIG / "metadata.yml"),
               "--host", host, "--port", str(port)]
    for folder, option in (("templates", "--template-dir"), ("plugins", "--plugins-dir")):
        if (CONFIG / folder).is_dir():
            command += [option, str(CONFIG / folder)]
    for name, value in SETTINGS.items():
        command += ["--setting", name, str(value)]
    return command


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=str(REPO / "data" / "retail.db"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--state-dir", default=str(REPO / "var" / "datasette"),
                        help="where the counts file (and a retail.db symlink, if needed) are kept")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    args = parser.parse_args(argv)
    command = datasette_command(args.database, host=args.host, port=args.port, state_dir=args.state_dir)
    if args.dry_run:
        print(" ".join(command))
        return
    print(f"Serving {args.database} as '{DATABASE_NAME}' on http://{args.host}:{args.port}/ "
          f"(dashboard: /-/dashboards/{DATABASE_NAME})", flush=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
