"""Retail Rocket clickstream pipeline: the library.

Pure transforms and I/O helpers, independent of Luigi. The Luigi wiring lives in
the top-level ``tasks`` package; each task calls one function from here.
"""
