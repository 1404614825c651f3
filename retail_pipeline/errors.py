"""Errors that stop a run, each naming the input at fault."""


class InputError(Exception):
    """An input file (or the set of input files) cannot be used at all.

    The message is one line that names the file, e.g.
    ``data/events.csv: wrong header: expected 'timestamp,...', found 'ts,...'``.
    """


class CategoryCycleError(InputError):
    """The category tree contains a cycle; the message lists the categories in it."""
