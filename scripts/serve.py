"""Serve the published database in Datasette, configured from ``datasette/`` (what ``make serve`` runs).

    python scripts/serve.py [--database data/retail.db] [--host 127.0.0.1] [--port 8001]
                            [--state-dir var/datasette] [--no-follow] [--dry-run]

Datasette serves the file read-only and immutable (``-i``) under the name ``retail``, with the
descriptions and canned queries of ``datasette/metadata.yml``, the dashboards of
``datasette/dashboards.yml`` and the settings below.
Table row counts come from a ``datasette inspect`` file kept in the state dir (git-ignored) and
regenerated whenever the database is newer, so no page counts millions of rows. A database whose
file is not named ``retail.db`` is served through a symlink of that name in the state dir, so
that Datasette still calls it ``retail``. The tests start the server with ``datasette_command``.

**Republishing while serving.** The pipeline replaces the database by renaming a new file over
it. A running Datasette does not notice: each of its SQL threads keeps the file it opened, so it
goes on answering from the old database, and a thread it starts later opens the new one: the same
page can then show old or new data from one request to the next (and the row counts stay those of
the old file). So this script does not simply become Datasette: it holds the listening socket,
runs Datasette as a child serving on that socket, and checks the database file every second.
When the file is replaced it regenerates the counts, starts a second Datasette on the new file
and the same socket, and once that one is ready tells the old one to stop accepting, lets it
finish what it was answering, and stops it. Requests never fail and never see a refused
connection; from the switch on they see only the new data. ``--no-follow`` serves the file as it
is (``exec`` of plain Datasette): restart it after a republish.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "datasette"
DATABASE_NAME = "retail"
POLL_S = 1.0  # how often the database file is checked for a replacement
START_TIMEOUT_S = 120  # a Datasette that is not serving by then is given up
DRAIN_S = 1.0  # between telling the old Datasette to stop accepting and stopping it

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


METADATA_FILES = ("metadata.yml", "dashboards.yml")  # descriptions and queries; the plugins' settings


def merged_metadata(state_dir: Path) -> Path:
    """One metadata file for Datasette from ``METADATA_FILES`` (top-level keys of later files are
    added to the earlier ones), written as JSON in the state dir."""
    import yaml  # Datasette's own dependency

    merged: dict = {}
    for name in METADATA_FILES:
        document = yaml.safe_load((CONFIG / name).read_text()) or {}
        overlap = set(merged) & set(document)
        if overlap:
            raise SystemExit(f"ERROR: {CONFIG / name}: keys {sorted(overlap)} are also in an earlier metadata file")
        merged.update(document)
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "metadata.json"
    temporary = path.with_name(f".metadata-{os.getpid()}.json")
    temporary.write_text(json.dumps(merged, indent=1))
    os.replace(temporary, path)
    return path


def datasette_command(database: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8001,
                      state_dir: str | os.PathLike = REPO / "var" / "datasette") -> list[str]:
    """The ``datasette serve`` command line for ``database`` (preparing its counts file first)."""
    database = Path(database).resolve()
    if not database.is_file():
        raise SystemExit(f"ERROR: {database}: no such database; build it first with `make run`")
    state_dir = Path(state_dir).resolve()
    counts = inspect_file(database, state_dir)
    command = [sys.executable, "-m", "datasette", "serve", "-i", str(served_path(database, state_dir)),
               "--inspect-file", str(counts), "--metadata", str(merged_metadata(state_dir)),
               "--host", host, "--port", str(port)]
    for folder, option in (("templates", "--template-dir"), ("plugins", "--plugins-dir")):
        if (CONFIG / folder).is_dir():
            command += [option, str(CONFIG / folder)]
    for name, value in SETTINGS.items():
        command += ["--setting", name, str(value)]
    return command


def file_identity(path: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """What changes when the file is replaced or rewritten (following symbolic links); None if it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _stop_with_parent() -> None:
    """(In the child, before exec.) On Linux, be sent SIGTERM when serve.py dies, even by SIGKILL,
    so that no Datasette outlives it holding the port."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_datasette(database: str, listener: socket.socket, host: str, port: int, state_dir: str):
    """A Datasette child serving ``database`` on ``listener``, once it is ready; None if it did not start."""
    try:
        command = datasette_command(database, host=host, port=port, state_dir=state_dir)  # prepares the counts too
    except (SystemExit, Exception) as error:  # gone again, or not a database: say so, keep what is served
        print(f"ERROR: {database}: {error}", file=sys.stderr, flush=True)
        return None
    ready_read, ready_write = os.pipe()
    child = subprocess.Popen([sys.executable, __file__, "_serve_on_socket", str(listener.fileno()), str(ready_write),
                              *command[3:]],  # command[3:] is "serve" and its options
                             pass_fds=(listener.fileno(), ready_write), preexec_fn=_stop_with_parent)
    os.close(ready_write)
    try:
        ready, _, _ = select.select([ready_read], [], [], START_TIMEOUT_S)
        if ready and os.read(ready_read, 16) == b"ready":
            return child
    finally:
        os.close(ready_read)
    _stop_datasette(child, drain=False)
    return None


def _stop_datasette(child: subprocess.Popen, *, drain: bool = True) -> None:
    """Stop a Datasette child: first it stops accepting (others take the new connections) and
    finishes the requests it has, then it exits."""
    if child.poll() is None and drain:
        child.send_signal(signal.SIGUSR1)
        time.sleep(DRAIN_S)
    if child.poll() is None:
        child.terminate()
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def serve_following(database: str, *, host: str, port: int, state_dir: str, poll_s: float = POLL_S) -> int:
    """Serve ``database`` until interrupted, switching to the new file whenever it is replaced."""
    listener = socket.create_server((host, port))
    listener.set_inheritable(True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    identity = file_identity(database)
    current = _start_datasette(database, listener, host, port, state_dir)
    if current is None:
        print(f"ERROR: {database}: Datasette did not start", file=sys.stderr, flush=True)
        return 1
    try:
        while True:
            time.sleep(poll_s)
            if current.poll() is not None:
                print(f"ERROR: Datasette stopped (exit status {current.returncode})", file=sys.stderr, flush=True)
                return 1
            now = file_identity(database)
            if now is None or now == identity:
                continue
            identity = now
            print(f"{database} was replaced: switching to the new file", flush=True)
            fresh = _start_datasette(database, listener, host, port, state_dir)
            if fresh is None:
                print(f"ERROR: {database}: Datasette did not start on the new file; still serving the previous one",
                      file=sys.stderr, flush=True)
                continue
            _stop_datasette(current)
            current = fresh
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_datasette(current, drain=False)
        listener.close()


def _serve_on_socket(listen_fd: int, ready_fd: int, datasette_args: list[str]) -> None:
    """(In the child.) Run ``datasette <datasette_args>`` on an inherited listening socket.

    Says ``ready`` on ``ready_fd`` once it accepts connections; on SIGUSR1 it stops accepting
    (and keeps answering the connections it has) until SIGTERM stops it.
    """
    import asyncio

    import uvicorn
    from datasette import cli

    listener = socket.socket(fileno=listen_fd)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.stop_accepting)
            os.write(ready_fd, b"ready")
            os.close(ready_fd)

        def stop_accepting(self):
            for server in self.servers:
                server.close()

    def run(app, **options):  # what datasette's CLI calls to serve
        Server(uvicorn.Config(app, **options)).run(sockets=[listener])

    uvicorn.run = run
    cli.cli(datasette_args, prog_name="datasette")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve_on_socket"]:
        _serve_on_socket(int(argv[1]), int(argv[2]), argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=str(REPO / "data" / "retail.db"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--state-dir", default=str(REPO / "var" / "datasette"),
                        help="where the counts file (and a retail.db symlink, if needed) are kept")
    parser.add_argument("--no-follow", action="store_true",
                        help="serve the file as it is now, without switching when it is replaced")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    args = parser.parse_args(argv)
    command = datasette_command(args.database, host=args.host, port=args.port, state_dir=args.state_dir)
    if args.dry_run:
        print(" ".join(command))
        return
    print(f"Serving {args.database} as '{DATABASE_NAME}' on http://{args.host}:{args.port}/ "
          f"(dashboard: /-/dashboards/{DATABASE_NAME})", flush=True)
    if args.no_follow:
        os.execv(command[0], command)
    sys.exit(serve_following(args.database, host=args.host, port=args.port, state_dir=args.state_dir))


if __name__ == "__main__":
    main()
