"""Memory settings for the pipeline's own processes: :func:`tune_process`.

Called by ``tasks/__init__.py`` (the Luigi entry point: ``luigi --module tasks`` imports it
before any task runs, and Luigi's worker processes are forked from that process, so they inherit
the settings), before anything there imports NumPy or allocates through Arrow. Importing
``retail_pipeline`` itself changes nothing about the process: a notebook or a test that uses the
library keeps NumPy's, glibc's and Arrow's defaults unless it calls :func:`tune_process`.

Both settings were measured on the 2-core benchmark VM, where fresh memory (page faults, in
every forked task worker) is what costs most (docs/performance.md, docs/decisions.md):

- NumPy's transparent huge pages off (``NUMPY_MADVISE_HUGEPAGE=0``, unless the user set it);
- freed memory kept in glibc's heap for reuse, one malloc arena, Arrow allocating through the
  same heap (``ARROW_DEFAULT_MEMORY_POOL=system``, unless set); ``RETAIL_KEEP_MALLOC_DEFAULTS=1``
  skips this part.
"""

from __future__ import annotations

import os
import sys

_tuned = False


def tune_process() -> None:
    """Apply the pipeline's memory settings to this process (and the processes it forks from now
    on). Idempotent; best called before NumPy and pyarrow are imported."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    _no_numpy_huge_pages()
    _reuse_freed_memory()


def _no_numpy_huge_pages() -> None:
    # NumPy asks for transparent huge pages for every large array. Where the kernel's THP
    # "defrag" setting is "madvise" (the Debian/Ubuntu default), each such page fault may stall
    # in memory compaction: on the 2-core benchmark machine this doubled the system time of the
    # item-properties load (12.7 s -> 6.1 s without it, 28.8 s -> 18.5 s wall). Opt out, unless
    # the user has chosen otherwise.
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

    import numpy

    if os.environ["NUMPY_MADVISE_HUGEPAGE"] == "0":
        try:  # numpy was imported before the variable was set
            numpy._core.multiarray._set_madvise_hugepage(False)
        except AttributeError:  # pragma: no cover - older or newer numpy without the switch
            pass


# Large arrays come and go by the hundred in every task (20 M-row columns, sort permutations).
# glibc serves each allocation above 32 MB with its own mmap and unmaps it on free, so every
# one is faulted in afresh and its unmapping flushes TLBs: on the 2-core VM of the benchmark
# this was a quarter of all CPU time. Keep freed memory in the heap for reuse instead (the
# processes are short-lived task workers), and let Arrow allocate through the same heap.
def _reuse_freed_memory() -> None:
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux") or os.environ.get("RETAIL_KEEP_MALLOC_DEFAULTS"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8
    # One arena for all threads: memory that parsing threads free is then reused by the task's
    # main thread instead of being handed back from their own arenas and faulted in again
    # (measured on a property-file load: 1.9 GB of page faults -> 1.3 GB, system time halved).
    if mallopt(m_mmap_max, 0) and mallopt(m_trim_threshold, 1 << 30) and mallopt(m_arena_max, 1):
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
