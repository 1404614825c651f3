"""Make Luigi's end-of-run summary (and so the exit code) see work done by other workers.

When several workers share a run through luigid (two overlapping ``RunAll`` runs, or
``--assistant`` workers on other hosts), a worker only knows the status of the tasks it ran
itself: a task that another worker ran while this one was waiting stays "pending" in its
records, and Luigi then reports it as "being run by another worker" or "not granted run
permission" and exits non-zero, although everything is done. Before the summary is built,
this checks those still-pending tasks once more and counts the ones that are complete now
as already done. A task that is really incomplete (another worker's run failed) still
counts, so a failed run still exits non-zero.

It wraps ``luigi.execution_summary._partition_tasks``, a private function (luigi is pinned
below 4; tests/test_scheduler.py fails if the wrapping stops working).
"""

from __future__ import annotations

import luigi.execution_summary as execution_summary

_partition_tasks = execution_summary._partition_tasks
_get_run_by_other_worker = execution_summary._get_run_by_other_worker


def _complete_now(tasks) -> set:
    done = set()
    for task in tasks:
        try:
            if task.complete():
                done.add(task)
        except Exception:  # a broken complete() is reported by Luigi elsewhere
            continue
    return done


def _partition_tasks_seeing_other_workers(worker):
    task_sets = _partition_tasks(worker)
    finished_elsewhere = _complete_now(task_sets["still_pending_not_ext"])
    task_sets["still_pending_not_ext"] -= finished_elsewhere
    task_sets["already_done"] |= finished_elsewhere
    return task_sets


def _still_run_by_other_worker(worker):
    running = _get_run_by_other_worker(worker)
    return running - _complete_now(running)


def install() -> None:
    if execution_summary._partition_tasks is _partition_tasks:
        execution_summary._partition_tasks = _partition_tasks_seeing_other_workers
        execution_summary._get_run_by_other_worker = _still_run_by_other_worker
