"""Run the task graph with worker processes that share nothing but luigid and the work dir, as
workers on several hosts would (issue 16, "Across machines"), and check the database they publish.

    python scripts/multi_process_run.py                           # the bundled sample, 3 processes x 2 workers
    python scripts/multi_process_run.py --processes 2 --workers 2 --scale 1   # the full-scale synthetic data
    python scripts/multi_process_run.py --graph                   # how wide the graph is, stage by stage
    python scripts/multi_process_run.py -- --retail-shards 8      # after --: passed to every luigi command

Steps:

1. A real ``luigid`` on 127.0.0.1, on a free port, with a state dir and logs of its own (under
   ``OUT/luigid/``), in its own session.
2. ``--processes N`` separate ``luigi --module tasks RunAll --workers K --scheduler-host 127.0.0.1
   --scheduler-port P`` processes, started together, each in its own session (process group), in a
   folder of its own (``OUT/host-<i>/``: its working directory, ``HOME``, ``TMPDIR``, its stdout
   and stderr), with the repository's ``luigi.cfg`` (``LUIGI_CONFIG_PATH``); all with the same
   ``--retail-data-dir``, ``--retail-work-dir`` and ``--retail-database``. Each schedules the
   whole graph; luigid hands every task to one worker of one process.
3. Once all have exited: each one's exit code (all must be 0), and the tasks it ran (its
   ``TIMING`` lines, ``tasks/__init__.py``), so one sees how the work was spread; a task that
   ran in more than one process is reported (luigid should never let that happen).
4. The same graph built by one ``luigi ... --local-scheduler --workers R`` process (default
   ``R`` = 1: every task in that one process) into a work dir and database of its own
   (``OUT/single/``), and the two databases compared table by table, row for row
   (``scripts/compare_databases.py``).

Everything goes under ``--out-dir`` (default: a new folder under ``var/``, removed after a run that
succeeds unless ``--keep``; kept after a failure). ``OUT/summary.json`` holds the facts printed.
With ``--scale S`` the synthetic dataset of that scale is used, generated first if needed,
exactly as ``scripts/benchmark.py`` does (``data/full/`` at scale 1, else
``data/bench/data-scale-<S>/``).

Exit status: 0 when every process exited 0 and the databases hold the same tables; 1 otherwise;
2 on bad usage.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's bin/ (not resolved: keep the venv)
SAMPLE = REPO / "data" / "sample"
CONFIG = REPO / "luigi.cfg"
TIMING = re.compile(r"^TIMING (\S+) ([0-9.]+)s\s*$", re.M)
STARTED = re.compile(r"^STARTED (\S+) ([0-9.]+)\s*$", re.M)
MEMORY_PID = re.compile(r"^MEMORY (\S+) .* pid ([0-9]+)\s*$", re.M)


def _script(name: str):
    """A script beside this one, as a module (benchmark.py, compare_databases.py)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------
# luigid and the worker processes
# ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    """Does luigid answer on ``port``? (Any HTTP answer means it is up.)"""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/ping", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def start_luigid(folder: Path, timeout: float = 60.0) -> tuple[subprocess.Popen, int]:
    """A luigid on a free loopback port, state and logs in ``folder``, in its own session; polled
    until it answers. (Another program may take the free port first: then it tries another.)"""
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        port = free_port()
        with open(folder / "luigid.log", "a") as log:
            process = subprocess.Popen(
                [str(BIN / "luigid"), "--address", "127.0.0.1", "--port", str(port),
                 "--state-path", str(folder / "state.pickle"), "--logdir", str(folder / "logs")],
                stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True,
                env={**os.environ, "LUIGI_CONFIG_PATH": str(CONFIG)})
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if answers(port):
                return process, port
            time.sleep(0.05)
        stop(process)
    raise RuntimeError(f"luigid did not start; see {folder / 'luigid.log'}")


def stop(process: subprocess.Popen, grace: float = 30.0) -> None:
    """Stop a process started here in a session of its own, and its process group."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


def luigi_command(data_dir: Path, work_dir: Path, database: Path, workers: int, *, port: int | None,
                  extra: list[str] = ()) -> list[str]:
    """``luigi --module tasks RunAll``: against luigid on ``port``, or the local scheduler."""
    scheduler = ["--local-scheduler"] if port is None else ["--scheduler-host", "127.0.0.1",
                                                             "--scheduler-port", str(port)]
    return [str(BIN / "luigi"), "--module", "tasks", "RunAll", *scheduler, "--workers", str(workers),
            "--retail-data-dir", str(data_dir), "--retail-work-dir", str(work_dir),
            "--retail-database", str(database), *extra]


def host_environment(folder: Path) -> dict[str, str]:
    """The environment of one stand-in host: this one's, with a home and temporary directory of
    its own and the repository's luigi.cfg."""
    for name in ("home", "tmp"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key not in ("PWD", "OLDPWD")}
    env.update(HOME=str(folder / "home"), TMPDIR=str(folder / "tmp"), TMP=str(folder / "tmp"),
               TEMP=str(folder / "tmp"), LUIGI_CONFIG_PATH=str(CONFIG))
    return env


def start_host(command: list[str], folder: Path) -> subprocess.Popen:
    """One worker process in ``folder`` (its working directory, home, TMPDIR and logs), in a
    session of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "stdout.log", "wb") as out, open(folder / "stderr.log", "wb") as err:
        return subprocess.Popen(command, cwd=folder, env=host_environment(folder), stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def wait_all(processes: list[subprocess.Popen], timeout: float) -> tuple[list[int | None], list[float]]:
    """Wait for every process, at most ``timeout`` seconds in all (then stop those still running):
    their exit codes (None: stopped) and the seconds after the start each exited."""
    start, deadline = time.monotonic(), time.monotonic() + timeout
    ended: dict[int, tuple[int, float]] = {}
    while len(ended) < len(processes) and time.monotonic() < deadline:
        for i, process in enumerate(processes):
            if i not in ended and process.poll() is not None:
                ended[i] = (process.returncode, time.monotonic() - start)
        time.sleep(0.05)
    for i, process in enumerate(processes):
        if i not in ended:
            stop(process)
    return ([ended[i][0] if i in ended else None for i in range(len(processes))],
            [round(ended[i][1], 2) if i in ended else None for i in range(len(processes))])


# ----------------------------------------------------------------------------------------------
# What each process did
# ----------------------------------------------------------------------------------------------
def family(task_id: str) -> str:
    """A task id's family (``EnrichEventsShard_2_634550f2e3`` -> ``EnrichEventsShard``)."""
    return task_id.split("_", 1)[0]


def tasks_run(stderr: str) -> dict[str, dict]:
    """The tasks a process ran (a ``TIMING`` line each, ``tasks/__init__.py``), in the order they
    started: {task_id: {"seconds", "started" (Unix time or None), "pid" (the process it ran in)}}."""
    starts = {m.group(1): float(m.group(2)) for m in STARTED.finditer(stderr)}
    pids = {m.group(1): int(m.group(2)) for m in MEMORY_PID.finditer(stderr)}
    ran = {m.group(1): {"seconds": float(m.group(2)), "started": starts.get(m.group(1)), "pid": pids.get(m.group(1))}
           for m in TIMING.finditer(stderr)}
    return dict(sorted(ran.items(), key=lambda item: (item[1]["started"] or float("inf"), item[0])))


def families(task_ids) -> str:
    """``EnrichEventsShard ×2, LoadEvents`` for a list of task ids."""
    counts = Counter(family(task_id) for task_id in task_ids)
    return ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in counts.items()) or "(none)"


def spread(hosts: list[dict]) -> dict:
    """How the tasks were spread over the processes: how many ran tasks, and the tasks that ran in
    more than one."""
    runs = Counter(task_id for host in hosts for task_id in host["tasks"])
    return {"processes_that_ran_tasks": sum(1 for host in hosts if host["tasks"]),
            "tasks_run": len(runs), "tasks_run_more_than_once": sorted(t for t, n in runs.items() if n > 1)}


# ----------------------------------------------------------------------------------------------
# The width of the graph
# ----------------------------------------------------------------------------------------------
def graph_stages(data_dir: Path, extra: list[str] = ()) -> list[dict]:
    """The graph of ``RunAll`` for ``data_dir`` (and the ``--retail-*`` settings in ``extra``), as
    stages: with unlimited workers and every task taking as long, the tasks that run at once at
    each step (a task's stage is one more than its latest dependency's; input files are stage 0
    and not listed). [{"stage", "tasks" (count), "families" ({family: count})}]."""
    from luigi.cmdline_parser import CmdlineParser
    from luigi.task import flatten

    import tasks

    with CmdlineParser.global_instance(["RunAll", "--retail-data-dir", str(data_dir), *extra]):
        stage: dict[str, int] = {}
        family_of: dict[str, str] = {}

        def visit(task) -> int:
            if task.task_id not in stage:
                dependencies = flatten(task.requires())
                stage[task.task_id] = (0 if isinstance(task, tasks.InputFile)
                                       else 1 + max((visit(d) for d in dependencies), default=0))
                family_of[task.task_id] = task.task_family
            return stage[task.task_id]

        visit(tasks.RunAll())
    by_stage: dict[int, Counter] = {}
    for task_id, level in stage.items():
        if level > 0:
            by_stage.setdefault(level, Counter())[family_of[task_id]] += 1
    return [{"stage": level, "tasks": sum(counts.values()), "families": dict(sorted(counts.items()))}
            for level, counts in sorted(by_stage.items())]


def print_stages(stages: list[dict]) -> None:
    print(f"{'stage':>5}  {'tasks':>5}  families")
    for row in stages:
        names = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in row["families"].items())
        print(f"{row['stage']:>5}  {row['tasks']:>5}  {names}")
    print(f"{sum(row['tasks'] for row in stages)} tasks; at most {max(row['tasks'] for row in stages)} at once")


# ----------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="the input CSVs (default data/sample, or with --scale the benchmark's dataset of that scale)")
    ap.add_argument("--scale", type=float, default=None,
                    help="use the synthetic dataset of this scale (generated first if needed, as benchmark.py does)")
    ap.add_argument("--processes", type=int, default=3, help="separate luigi processes (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="--workers of each (default 2)")
    ap.add_argument("--reference-workers", type=int, default=1,
                    help="--workers of the single --local-scheduler run compared with (default 1)")
    ap.add_argument("--reference-digests", type=Path, default=None,
                    help="compare with these table digests (scripts/compare_databases.py --save, of a single-process "
                         "run's database) instead of running the graph in one process here: at ten times the data "
                         "both runs' files do not fit on one disk")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="where everything goes; must be empty or absent (default: a new folder under var/, "
                         "removed after a run that succeeds unless --keep)")
    ap.add_argument("--work-dir", type=Path, default=None, help="the shared work dir (default OUT/shared/work)")
    ap.add_argument("--database", type=Path, default=None,
                    help="the database the processes publish (default OUT/shared/retail.db)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="seconds to wait for the processes (default 3600); those still running are then stopped")
    ap.add_argument("--keep", action="store_true", help="keep the default --out-dir")
    ap.add_argument("--graph", action="store_true", help="print the graph's stages for the data and settings, and exit")
    ap.add_argument("extra", nargs="*", help="after --: more arguments for every luigi command (e.g. --retail-shards 8)")
    args = ap.parse_args(argv)
    if args.reference_digests is not None and not args.reference_digests.is_file():
        ap.error(f"--reference-digests {args.reference_digests}: no such file")
    if args.processes < 1 or args.workers < 1 or args.reference_workers < 1:
        ap.error("--processes, --workers and --reference-workers must be >= 1")
    if args.scale is not None and args.scale <= 0:
        ap.error("--scale must be > 0")

    data_dir = args.data_dir
    if args.scale is not None:
        bench = _script("benchmark")
        data_dir = (data_dir or bench.default_data_dir(args.scale)).resolve()
        if not bench.data_is_cached(data_dir, args.scale):
            bench.generate_data(data_dir, args.scale)
    data_dir = (data_dir or SAMPLE).resolve()
    if not data_dir.is_dir():
        ap.error(f"--data-dir {data_dir} is not a directory")
    if args.graph:
        print_stages(graph_stages(data_dir, args.extra))
        return 0

    temporary = args.out_dir is None
    if temporary:
        (REPO / "var").mkdir(exist_ok=True)
        out = Path(tempfile.mkdtemp(prefix="multi-process-", dir=REPO / "var"))
    else:
        out = args.out_dir.resolve()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            ap.error(f"--out-dir {out} is not empty")
    work_dir = (args.work_dir or out / "shared" / "work").resolve()
    database = (args.database or out / "shared" / "retail.db").resolve()
    if work_dir.exists() and any(work_dir.iterdir()) or database.exists():
        ap.error(f"the shared work dir {work_dir} must be empty and the database {database} absent")
    for folder in (out, work_dir, database.parent):
        folder.mkdir(parents=True, exist_ok=True)

    summary = {"data_dir": str(data_dir), "processes": args.processes, "workers": args.workers,
               "extra": args.extra, "out_dir": str(out), "work_dir": str(work_dir), "database": str(database)}
    ok = False
    luigid, hosts = None, []
    try:
        luigid, port = start_luigid(out / "luigid")
        summary["luigid_port"] = port
        print(f"luigid on 127.0.0.1:{port} (state and logs in {out / 'luigid'})", flush=True)
        command = luigi_command(data_dir, work_dir, database, args.workers, port=port, extra=args.extra)
        print(f"Starting {args.processes} processes, each: {' '.join(command)}", flush=True)
        started = time.monotonic()
        hosts = [start_host(command, out / f"host-{i}") for i in range(1, args.processes + 1)]
        codes, exited = wait_all(hosts, args.timeout)
        summary["wall_s"] = round(time.monotonic() - started, 2)
        stop(luigid)

        reports = []
        for i, (code, at) in enumerate(zip(codes, exited), start=1):
            stderr = (out / f"host-{i}" / "stderr.log").read_text(errors="replace")
            ran = tasks_run(stderr)
            reports.append({"host": f"host-{i}", "exit_code": code, "exited_after_s": at, "tasks": list(ran),
                            "task_processes": len({t["pid"] for t in ran.values() if t["pid"]}),
                            "task_seconds": round(sum(t["seconds"] for t in ran.values()), 2),
                            "stderr_log": str(out / f"host-{i}" / "stderr.log")})
        summary["hosts"] = reports
        summary.update(spread(reports))
        print(f"\nAll {args.processes} processes ended after {summary['wall_s']:.1f} s:")
        for report in reports:
            code = "stopped (timeout)" if report["exit_code"] is None else f"exit {report['exit_code']}"
            print(f"  {report['host']}: {code}, {len(report['tasks'])} tasks "
                  f"({report['task_seconds']:.1f} s of tasks, in {report['task_processes']} forked processes): "
                  f"{families(report['tasks'])}")
        summary["published_by"] = [r["host"] for r in reports if any(family(t) == "PublishDatabase" for t in r["tasks"])]
        print(f"{summary['tasks_run']} tasks ran, in {summary['processes_that_ran_tasks']} of the "
              f"{args.processes} processes; the database was published by {', '.join(summary['published_by']) or 'none'}")
        if summary["tasks_run_more_than_once"]:
            print(f"WARNING: tasks that ran in more than one process: {', '.join(summary['tasks_run_more_than_once'])}")
        failed = [r["host"] for r in reports if r["exit_code"] != 0]
        if failed:
            print(f"FAILED: {', '.join(failed)} did not exit 0 (see their stderr.log)", file=sys.stderr)
            return 1
        if not database.exists():
            print(f"FAILED: no database published at {database}", file=sys.stderr)
            return 1

        if args.reference_digests is not None:
            print(f"Comparing {database} with the digests {args.reference_digests}:", flush=True)
            summary["reference_digests"] = str(args.reference_digests)
            summary["same_tables"] = _script("compare_databases").compare(str(args.reference_digests), str(database))
            if not summary["same_tables"]:
                print("FAILED: the databases differ", file=sys.stderr)
                return 1
            print(f"\nOK: {args.processes} processes × {args.workers} workers published the same tables as one "
                  f"process (its digests)")
            ok = True
            return 0

        single = out / "single"
        single.mkdir()
        reference = single / "retail.db"
        command = luigi_command(data_dir, single / "work", reference, args.reference_workers, port=None,
                                extra=args.extra)
        print(f"\nThe same graph in one process: {' '.join(command)}", flush=True)
        with open(single / "stdout.log", "wb") as stdout, open(single / "stderr.log", "wb") as stderr:
            alone = subprocess.run(command, cwd=REPO, stdout=stdout, stderr=stderr, timeout=args.timeout,
                                   env={**os.environ, "LUIGI_CONFIG_PATH": str(CONFIG)})
        summary["single_exit_code"] = alone.returncode
        if alone.returncode != 0:
            print(f"FAILED: the single-process run exited {alone.returncode} (see {single / 'stderr.log'})",
                  file=sys.stderr)
            return 1
        print(f"Comparing {database} with {reference}:", flush=True)
        summary["same_tables"] = _script("compare_databases").compare(str(database), str(reference))
        if not summary["same_tables"]:
            print("FAILED: the databases differ", file=sys.stderr)
            return 1
        print(f"\nOK: {args.processes} processes × {args.workers} workers published the same tables as one process")
        ok = True
        return 0
    finally:
        for process in hosts:
            stop(process)
        if luigid is not None:
            stop(luigid)
        summary["ok"] = ok
        if out.exists():
            (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if temporary and ok and not args.keep:
            shutil.rmtree(out, ignore_errors=True)
        elif out.exists():
            print(f"Kept: {out} (summary.json, each process's logs in host-<i>/)")


if __name__ == "__main__":
    sys.exit(main())
