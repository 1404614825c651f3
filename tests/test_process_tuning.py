"""The pipeline's memory settings (retail_pipeline/process_tuning.py) are applied where the
pipeline's processes start (``import tasks``), and importing the library alone leaves the
process as it was: NumPy's huge pages, glibc's mmap of large blocks, Arrow's own allocator.

Each case runs in a new interpreter, since the settings are per process and cannot be undone."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

PROBE = """
import ctypes, json, os, pkgutil, importlib
{imports}
import numpy as np
import pyarrow as pa


class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
before = libc.mallinfo2().hblkhd
big = np.ones(1 << 23)  # 64 MB: glibc's default serves it with its own mmap (an "hblk")
print(json.dumps({{
    "env": {{name: os.environ.get(name) for name in ("NUMPY_MADVISE_HUGEPAGE", "ARROW_DEFAULT_MEMORY_POOL")}},
    "numpy_huge_pages": bool(np._core.multiarray._get_madvise_hugepage()),
    "arrow_pool": pa.default_memory_pool().backend_name,
    "mmapped_bytes": libc.mallinfo2().hblkhd - before,
}}))
"""

EVERY_LIBRARY_MODULE = """
import retail_pipeline
for module in pkgutil.iter_modules(retail_pipeline.__path__):
    importlib.import_module(f"retail_pipeline.{module.name}")
"""


def probe(imports: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("NUMPY_MADVISE_HUGEPAGE", "ARROW_DEFAULT_MEMORY_POOL", "RETAIL_KEEP_MALLOC_DEFAULTS")}
    completed = subprocess.run([sys.executable, "-c", PROBE.format(imports=imports)], cwd=REPO, env={**clean, **env},
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallinfo2")


def test_importing_the_library_changes_nothing_in_the_process():
    untouched = probe("")
    assert probe(EVERY_LIBRARY_MODULE) == untouched
    assert untouched["env"] == {"NUMPY_MADVISE_HUGEPAGE": None, "ARROW_DEFAULT_MEMORY_POOL": None}
    assert untouched["mmapped_bytes"] >= 64 << 20 and untouched["arrow_pool"] != "system"


def test_the_pipeline_entry_point_tunes_its_process():
    tuned = probe("import tasks")
    assert tuned["env"] == {"NUMPY_MADVISE_HUGEPAGE": "0", "ARROW_DEFAULT_MEMORY_POOL": "system"}
    assert not tuned["numpy_huge_pages"]
    assert tuned["arrow_pool"] == "system"
    assert tuned["mmapped_bytes"] == 0  # the 64 MB array came from the heap, and goes back to it


def test_the_malloc_settings_can_be_kept_at_their_defaults():
    kept = probe("import tasks", RETAIL_KEEP_MALLOC_DEFAULTS="1")
    assert not kept["numpy_huge_pages"]
    assert kept["arrow_pool"] != "system" and kept["mmapped_bytes"] >= 64 << 20
