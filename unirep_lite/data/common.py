"""What the dataset modules share: the split check, .npy loading, folder checks, fixed samples."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..env import progress_bar


def check_folder(root, layout: str, on_error: str | None = None) -> None:
    """The checks every real-benchmark folder loader starts with: a valid on_error and an existing
    root, the error showing the layout the loader expects."""
    if on_error is not None and on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{root} does not exist; {layout}")


def drop_unreadable(items: Sequence, read: Callable, desc: str = "checking files"):
    """Folder loaders' on_error="skip": read every item once, keep those that read without ValueError.

    Returns (kept items, error messages: list[str]); the messages, which name each file, also go to a warning.
    """
    kept, skipped = [], []
    for item in progress_bar(items, desc=desc, leave=False):
        try:
            read(item)
            kept.append(item)
        except ValueError as e:
            skipped.append(str(e))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable file(s):\n  " + "\n  ".join(skipped))
    return kept, skipped


SPLITS = ("train", "val", "test")  # every offline dataset's splits


def check_split(split: str, splits: Sequence[str] = SPLITS) -> str:
    """`split` when it is one of `splits`; else a ValueError that names the valid ones."""
    if split not in splits:
        raise ValueError(f"split must be one of {tuple(splits)}, got {split!r}")
    return split


REBUILD = "rebuild the dataset with `python -m unirep_lite.data build --force`"


def load_npy(path, fix: str = REBUILD, **kwargs):
    """np.load that names the file and the fix (by default: rebuild the cached dataset) when the file
    is truncated, pickled or not an .npy; keyword arguments go to np.load (mmap_mode=...)."""
    try:
        return np.load(path, **kwargs)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"{path}: not a readable .npy file ({type(e).__name__}: {e}); {fix}") from e


class FixedSamples:
    """For datasets whose samples never change: `to_tensors()` stacks a whole split once, so `fit`
    keeps it on the training device and batches it by indexing (`unirep_lite.batches`). A dataset
    with a `transform` (which may draw a random augmentation per sample) declines: None."""

    def to_tensors(self):
        if getattr(self, "transform", None) is not None or len(self) == 0:
            return None
        bar = progress_bar(range(len(self)), desc="to tensors", leave=False, disable=len(self) < 10_000)
        xs, ys = zip(*(self[i] for i in bar))
        if not all(isinstance(x, torch.Tensor) for x in xs):
            return None
        y = torch.stack(ys) if isinstance(ys[0], torch.Tensor) else torch.as_tensor(ys)
        return torch.stack(xs), y
