"""What every pipeline task shares: content-derived output names, so results stay fresh.

A task's fingerprint hashes its identity (family and parameters), the pipeline's code, and
the fingerprints of everything it requires, down to the input files' name, size and
modification time. Output paths contain the fingerprint, so when an input file or the code
changes, the affected tasks' outputs have new names, are missing, and are rebuilt; nothing
has to be deleted by hand, and an unchanged re-run finds every output in place.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
from typing import Callable
from pathlib import Path

import luigi
from luigi.task import flatten

from retail_pipeline import storage
from retail_pipeline.storage import TABLE_SUFFIX  # noqa: F401 - the task modules take it from here

from .config import retail
from .parts import shard_count

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the pipeline's source: any change to a transform invalidates its results."""
    return source_digest()


def source_digest() -> str:
    """The hash of the pipeline's source files as they are on disk now (uncached)."""
    digest = hashlib.sha256()
    for package in ("retail_pipeline", "tasks"):
        for source in sorted((PROJECT_ROOT / package).glob("*.py")):
            digest.update(source.name.encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


# Scheduling priority of the longest chain (Luigi runs the runnable task of highest priority
# first; a task's dependencies inherit its priority): property files -> item_properties and
# snapshots -> enriched shards (with their sessions) -> the core database -> publishing. The
# analysis tables and the small tables' files fill the gaps.
CRITICAL_PATH = 100


class RetailTask(luigi.Task):
    """A pipeline task whose outputs live under ``[retail] work_dir``, named by fingerprint."""

    def fingerprint(self) -> str:
        """The hash naming this task's outputs; worked out once per process for each task (Luigi
        keeps one instance per task), as every ``output()`` and ``input()`` asks for it, and the
        tasks that combine all shards ask for every shard's: computed afresh each time, the
        graph's fingerprints cost O(shards²). A run takes its inputs as they were when first asked."""
        if "_fingerprint" not in self.__dict__:
            self.__dict__["_fingerprint"] = self._compute_fingerprint()
        return self.__dict__["_fingerprint"]

    def _compute_fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(self.task_id.encode())
        digest.update(code_version().encode())
        # how outputs are split, and what writes the SQLite files
        digest.update(f"shards={shard_count()} sqlite_writer={retail().sqlite_writer}".encode())
        for dependency in flatten(self.requires()):
            digest.update(dependency.fingerprint().encode())
        return digest.hexdigest()[:20]

    def step(self, done: int, of: int, message: str) -> None:
        """Report progress through a run made of ``of`` steps, ``done`` of which are done."""
        self.set_progress_percentage(round(100 * done / of))
        self.set_status_message(message)

    def work_target(self, name: str, suffix: str) -> luigi.LocalTarget:
        folder = Path(retail().work_dir) / self.task_family
        return luigi.LocalTarget(str(folder / f"{name}-{self.fingerprint()}.{suffix}"))


def temporary_path(target: luigi.LocalTarget) -> str:
    """A new temporary path beside ``target`` (removed by a later publish if left behind)."""
    target.makedirs()
    return f"{target.path}-luigi-tmp-{random.randrange(10_000_000_000):010}"


def write_outputs(outputs: list[tuple[luigi.LocalTarget, Callable[[str], None]]]) -> None:
    """Write every ``(target, write)``: ``write(path)`` to a temporary path each, then rename all.

    If anything fails, the temporary files written so far are removed and nothing is renamed.
    """
    written: list[tuple[str, str]] = []
    try:
        for target, write in outputs:
            temporary = temporary_path(target)
            written.append((temporary, target.path))
            write(temporary)
        for temporary, final in written:
            os.replace(temporary, final)
    except BaseException:
        for temporary, _ in written:
            try:
                os.remove(temporary)
            except FileNotFoundError:
                pass
        raise


def table_writer(table):
    """A writer of ``table`` as a table file, for :func:`write_outputs`."""
    return lambda path: storage.write_arrow_file(path, table)


def json_writer(document):
    """A writer of ``document`` as JSON, for :func:`write_outputs`."""
    return lambda path: storage.write_json(path, document)


def save_table(target: luigi.LocalTarget, table) -> None:
    """Write a table file through a temporary file renamed into place on success."""
    write_outputs([(target, table_writer(table))])


def load_table(target, columns=None):
    """A table target's table; for a list of targets (shards), their rows concatenated."""
    import pyarrow as pa

    if isinstance(target, (list, tuple)):
        return pa.concat_tables([storage.read_arrow_file(t.path, columns=columns) for t in target]).combine_chunks()
    return storage.read_arrow_file(target.path, columns=columns)


class Progress:
    """Reports a library callback's progress to the Luigi scheduler (the visualiser shows it)."""

    def __init__(self, task: luigi.Task, total: int | None = None, what: str = "rows"):
        self.task, self.total, self.what = task, total, what

    def __call__(self, *args) -> None:
        *label, done = args if args and isinstance(args[-1], int) else (*args, None)
        text = " ".join(str(x) for x in label)
        if done is not None:
            text = f"{text} {done:,} {self.what}".strip()
            if self.total:
                self.task.set_progress_percentage(min(100, round(100 * done / self.total)))
        self.task.set_status_message(text)


def load_json(target: luigi.LocalTarget) -> dict:
    return storage.read_json(target.path)
