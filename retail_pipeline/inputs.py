"""Finding the input files of a data directory, and fingerprinting them."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class InputLayout:
    """Paths of each input role. A role with no file holds the path that was expected
    (which does not exist); a role with both a ``.csv`` and a ``.csv.gz`` holds both."""

    events: tuple[str, ...]
    item_properties: tuple[str, ...]
    category_tree: tuple[str, ...]


def _single(data_dir: str, name: str) -> tuple[str, ...]:
    found = tuple(p for p in (os.path.join(data_dir, name), os.path.join(data_dir, name + ".gz")) if os.path.exists(p))
    return found or (os.path.join(data_dir, name),)


def find_inputs(data_dir: str | os.PathLike) -> InputLayout:
    data_dir = os.fspath(data_dir)
    pattern = os.path.join(glob.escape(data_dir), "item_properties*.csv")
    properties = sorted(glob.glob(pattern) + glob.glob(pattern + ".gz"), key=os.path.basename)
    return InputLayout(
        events=_single(data_dir, "events.csv"),
        item_properties=tuple(properties) or (os.path.join(data_dir, "item_properties*.csv"),),
        category_tree=_single(data_dir, "category_tree.csv"),
    )


def duplicate_inputs(paths: tuple[str, ...]) -> list[tuple[str, str]]:
    """Pairs of paths that are the same input given twice (``x.csv`` and ``x.csv.gz``)."""
    stems: dict[str, str] = {}
    pairs = []
    for path in paths:
        stem = path[:-3] if path.endswith(".gz") else path
        if stem in stems:
            pairs.append((stems[stem], path))
        stems[stem] = path
    return pairs


def missing_input_message(path: str | os.PathLike) -> str:
    """Why an expected input is not there, in one line that starts with its path."""
    path = os.fspath(path)
    if os.path.islink(path):
        return f"{path}: input file not found: it is a broken symbolic link to {os.readlink(path)!r}"
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        return f"{path}: input file not found: there is no directory {folder}"
    if glob.has_magic(os.path.basename(path)):
        return f"{path}: input file not found: no file matches (a .csv or .csv.gz is needed)"
    return f"{path}: input file not found"


def file_fingerprint(path: str | os.PathLike) -> str:
    """Identity of an input file's content for freshness checks: name, size, modification time.

    Replacing or editing a file changes it; so does ``touch`` (which forces a recompute).
    """
    try:
        st = os.stat(path)
    except OSError:
        return f"{os.path.basename(path)}:missing"
    return f"{os.path.basename(path)}:{st.st_size}:{st.st_mtime_ns}"
