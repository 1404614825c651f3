"""The input files: one task per file of the data directory.

An input is not built by the pipeline, so its task has nothing to make: it is complete when
the file exists, and "running" it means the file is missing, which fails at once with a
clear error (a broken symbolic link is named as one). Whether the file can be read at all
(a directory, a FIFO, a device, no permission) is checked by the loader, before reading it.
(A plain ``luigi.ExternalTask`` would instead leave the run waiting: with
``keep_alive`` on, which overlapping runs against one luigid need, a worker keeps waiting for
someone else to produce a missing external input.)
"""

from __future__ import annotations

import luigi

from retail_pipeline.errors import InputError
from retail_pipeline.inputs import file_fingerprint, find_inputs, missing_input_message

from .config import retail


class InputFile(luigi.Task):
    """One input file of the data directory (``.csv`` or ``.csv.gz``)."""

    path = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(self.path)

    def run(self):
        raise InputError(missing_input_message(self.path))

    def fingerprint(self) -> str:
        return file_fingerprint(self.path)


def input_files(role: str) -> list[InputFile]:
    """Input tasks for one role: ``events``, ``item_properties`` or ``category_tree``."""
    return [InputFile(path=p) for p in getattr(find_inputs(retail().data_dir), role)]
