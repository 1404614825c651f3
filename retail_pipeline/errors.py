"""Errors that stop a run, each naming the input at fault; and the one line to print for a failure."""

from __future__ import annotations

import errno
import sqlite3


class InputError(Exception):
    """An input file (or the set of input files) cannot be used at all.

    The message is one line that names the file, e.g.
    ``data/events.csv: wrong header: expected 'timestamp,...', found 'ts,...'``.
    """


class CategoryCycleError(InputError):
    """The category tree contains a cycle; the message lists the categories in it."""


OUT_OF_SPACE = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file-size limit (ulimit -f)",
}


def describe_failure(exception: BaseException, where: str | None = None) -> str | None:
    """The one line that says what went wrong, for the failures a user can act on; else None.

    An ``InputError`` is its own message. Running out of space (a full disk, a quota, a file-size
    limit), whether Python, Arrow or SQLite hit it, becomes ``<where>: cannot write: <why>``,
    ``<where>`` being the file when the error names one, else the ``where`` given (the task).
    Anything else is a bug, for which Luigi's traceback is the right report.
    """
    if isinstance(exception, InputError):
        return str(exception)
    prefix = f"{where}: " if where else ""
    if isinstance(exception, OSError) and exception.errno in OUT_OF_SPACE:
        if exception.filename:
            prefix = f"{exception.filename}: "
        return f"{prefix}cannot write: {OUT_OF_SPACE[exception.errno]} ({exception})"
    if isinstance(exception, sqlite3.Error):
        name = getattr(exception, "sqlite_errorname", "")
        if name == "SQLITE_FULL" or "disk is full" in str(exception):
            return f"{prefix}cannot write a SQLite file: no space left on the device ({exception})"
        if name.startswith("SQLITE_IOERR_WRITE") or name == "SQLITE_IOERR":
            return (f"{prefix}cannot write a SQLite file: {exception} (a full disk or a file-size limit,"
                    " ulimit -f, are the usual causes)")
    return None
