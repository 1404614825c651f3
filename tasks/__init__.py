"""The Luigi task graph: ``luigi --module tasks RunAll``.

Tasks are thin: parameters, ``requires()``, ``output()``, and a ``run()`` that calls
the ``retail_pipeline`` library.

Importing this package is what starts a pipeline process (``luigi --module tasks``; Luigi's
worker processes are forked from it), so it first applies the pipeline's memory settings
(:func:`retail_pipeline.process_tuning.tune_process`), before anything imports NumPy or
allocates through Arrow.
"""

from retail_pipeline.process_tuning import tune_process

tune_process()

import resource  # noqa: E402 - after tune_process, here and below
import sys  # noqa: E402
import time  # noqa: E402

import luigi  # noqa: E402

from retail_pipeline.errors import describe_failure  # noqa: E402

from .config import retail  # noqa: E402
from .inputs import InputFile  # noqa: E402
from .load import LoadCategoryTree, LoadEvents, LoadItemProperties, LoadItemPropertyFile, PropertySnapshots  # noqa: E402
from .publish import BuildCoreDatabase, PublishDatabase, RunAll, WriteItemProperties, WriteTablePart  # noqa: E402
from .transform import DataQuality, EnrichEvents, EnrichEventsShard, RejectedRows  # noqa: E402
from .analytics import AnalysisPartials, EntityTables, EventAnalyses, HourlyTrend, PropertyHistory  # noqa: E402
from . import summary  # noqa: E402

summary.install()

__all__ = [
    "retail", "InputFile", "LoadEvents", "LoadItemProperties", "LoadItemPropertyFile", "PropertySnapshots",
    "LoadCategoryTree", "EnrichEventsShard", "EnrichEvents", "AnalysisPartials", "EventAnalyses", "EntityTables", "PropertyHistory", "HourlyTrend", "RejectedRows", "DataQuality",
    "WriteTablePart", "WriteItemProperties", "BuildCoreDatabase", "PublishDatabase", "RunAll",
]


@luigi.Task.event_handler(luigi.Event.FAILURE)
def _report_failure(task, exception):
    """Say what is wrong (an input, a full disk) in one line, after Luigi's traceback."""
    message = describe_failure(exception, where=str(task))
    if message is not None:
        print(f"ERROR: {message}", file=sys.stderr, flush=True)


_cpu_at_start: dict[str, resource.struct_rusage] = {}


@luigi.Task.event_handler(luigi.Event.START)
def _report_start(task):
    """One line per task started, with the Unix time (scripts/benchmark.py draws the timeline)."""
    _cpu_at_start[task.task_id] = resource.getrusage(resource.RUSAGE_SELF)
    print(f"STARTED {task.task_id} {time.time():.3f}", file=sys.stderr, flush=True)


@luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)
def _report_time(task, seconds):
    """One line per finished task with its wall time (scripts/benchmark.py reads these)."""
    print(f"TIMING {task.task_id} {seconds:.2f}s", file=sys.stderr, flush=True)
    start, end = _cpu_at_start.pop(task.task_id, None), resource.getrusage(resource.RUSAGE_SELF)
    if start is not None:  # the process's CPU while the task ran (its threads included)
        print(f"CPU {task.task_id} user {end.ru_utime - start.ru_utime:.2f}s system {end.ru_stime - start.ru_stime:.2f}s"
              f" page-faults {end.ru_minflt - start.ru_minflt}", file=sys.stderr, flush=True)
    memory = _process_memory_kb()
    if memory is not None:  # the process's peak and current resident memory (MB = 10^6 bytes)
        print(f"MEMORY {task.task_id} peak {memory['VmHWM'] * 1024 / 1e6:.1f}MB rss {memory['VmRSS'] * 1024 / 1e6:.1f}MB"
              f" pid {memory['Pid']}", file=sys.stderr, flush=True)


def _process_memory_kb() -> dict[str, int] | None:
    """VmHWM (peak resident memory) and VmRSS of this process, in KiB, and its Pid, from
    /proc/self/status (Linux); None elsewhere. With ``--workers`` > 1 Luigi forks one process
    per task, so the peak is the task's (from the fork on, the pages it shares with its parent
    included); with one worker every task runs in one process, and the peak is the run's so far."""
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith(("Pid:", "VmHWM:", "VmRSS:")))
        return {key: int(value.split()[0]) for key, value in fields.items()} if len(fields) == 3 else None
    except (OSError, ValueError):
        return None
