"""The input files, each an external task: they exist outside the graph."""

from __future__ import annotations

import luigi

from retail_pipeline.inputs import file_fingerprint, find_inputs

from .config import retail


class InputFile(luigi.ExternalTask):
    """One input file of the data directory (``.csv`` or ``.csv.gz``)."""

    path = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(self.path)

    def fingerprint(self) -> str:
        return file_fingerprint(self.path)


def input_files(role: str) -> list[InputFile]:
    """External tasks for one input role: ``events``, ``item_properties`` or ``category_tree``."""
    return [InputFile(path=p) for p in getattr(find_inputs(retail().data_dir), role)]
