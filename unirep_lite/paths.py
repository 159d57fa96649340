"""Output paths checked before the work that fills them starts, not after an hour of training."""
from __future__ import annotations

import os
from pathlib import Path


def check_output_path(path, what: str = "output file", make_parents: bool = False) -> Path:
    """Return `path` as a Path if a file can be written there; else a ValueError that says why.

    Checks that it is not a folder, that its folder exists (or can be made, with `make_parents`) and
    is a folder, and that the folder, and the file if it exists, are writable. Nothing is written.
    """
    if path is None or str(path) == "":
        raise ValueError(f"{what}: expected a file path, got {path!r}")
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; expected the path of a file")
    parent = path.absolute().parent
    existing = parent
    while not existing.exists():  # the nearest folder that exists: where one would be made
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what} {path}: {existing} is a file, not a folder")
    if existing != parent and not make_parents:
        raise ValueError(f"{what} {path}: the folder {parent} does not exist")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: the folder {existing} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {path} exists and is not writable")
    return path
