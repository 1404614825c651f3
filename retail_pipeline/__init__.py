"""Retail Rocket clickstream pipeline: the library.

Pure transforms and I/O helpers, independent of Luigi. The Luigi wiring lives in
the top-level ``tasks`` package; each task calls one function from here.
"""

import os

# NumPy asks for transparent huge pages for every large array. Where the kernel's THP
# "defrag" setting is "madvise" (the Debian/Ubuntu default), each such page fault may stall
# in memory compaction: on the 2-core benchmark machine this doubled the system time of the
# item-properties load (12.7 s -> 6.1 s without it, 28.8 s -> 18.5 s wall). Opt out, unless
# the user has chosen otherwise.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import numpy as _numpy  # noqa: E402

if os.environ["NUMPY_MADVISE_HUGEPAGE"] == "0":
    try:  # numpy was imported before this package set the variable
        _numpy._core.multiarray._set_madvise_hugepage(False)
    except AttributeError:  # pragma: no cover - older or newer numpy without the switch
        pass
