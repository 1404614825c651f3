"""Retail Rocket clickstream pipeline: the library.

Pure transforms and I/O helpers, independent of Luigi. The Luigi wiring lives in
the top-level ``tasks`` package; each task calls one function from here.

Importing the library has no side effects on the process. The pipeline's memory settings
(NumPy without huge pages, glibc keeping freed memory, Arrow on the system allocator) are
applied by :func:`retail_pipeline.process_tuning.tune_process`, which ``tasks`` calls.
"""
