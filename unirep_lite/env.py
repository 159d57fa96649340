"""Run-time switches shared by the library, the notebooks and the tests: the one place that decides
how big a run is and where it runs, so the GPU path is the same code.

Three run sizes (`run_size()`), chosen from the hardware unless the environment says otherwise:
  "full"  the real run: full datasets and schedules. The default where a CUDA GPU is present, or
          asked for anywhere with UNIREP_SIZE=full (`make course-full`).
  "cpu"   the default without a GPU: FAST data and input sizes with the recipes' schedules made
          `CPU_EPOCH_FACTOR` times longer, so that the whole course fits in about an hour on 2 cores
          instead of starting a multi-day job by surprise.
  "fast"  the CI size (UNIREP_FAST=1 or UNIREP_SIZE=fast): every notebook in minutes on 2 cores.
`fast_mode()` is True for the two small sizes (small data and inputs).
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

SIZES = ("fast", "cpu", "full")
CPU_EPOCH_FACTOR = 3  # "cpu" runs train this many times the FAST schedule's epochs
_TRUE = {"1", "true", "yes", "on"}


def run_size() -> str:
    """"fast", "cpu" or "full" (see the module docstring): UNIREP_SIZE, else UNIREP_FAST, else the hardware."""
    asked = os.environ.get("UNIREP_SIZE", "").strip().lower()
    if asked:
        if asked not in SIZES:
            raise ValueError(f"UNIREP_SIZE must be one of {SIZES}, got {asked!r}")
        return asked
    if os.environ.get("UNIREP_FAST", "0").strip().lower() in _TRUE:
        return "fast"
    return "full" if default_device().type == "cuda" else "cpu"


def fast_mode() -> bool:
    """True for the small data and input sizes: the FAST (CI) and the CPU-sized runs."""
    return run_size() != "full"


def epoch_factor() -> int:
    """How many times a recipe's FAST schedule a run of this size trains (1 but for "cpu")."""
    return CPU_EPOCH_FACTOR if run_size() == "cpu" else 1


def resolve_fast(fast: bool | None) -> bool:
    """`fast` when given, else what the environment says (`fast_mode()`): the one place that decides."""
    return fast_mode() if fast is None else bool(fast)


def default_device() -> torch.device:
    """cuda if present, then Apple's mps, else cpu (override with UNIREP_DEVICE)."""
    forced = os.environ.get("UNIREP_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so that runs repeat."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress_bar(*args, **kwargs):
    """tqdm.auto's progress bar, switched off where TQDM_DISABLE says so (the book build).

    tqdm reads TQDM_DISABLE only for its console bar; its notebook bar (what tqdm.auto picks in
    Jupyter) ignores it, and an explicit `disable=False` overrides it in both.
    """
    from tqdm.auto import tqdm

    if os.environ.get("TQDM_DISABLE", "").strip().lower() in _TRUE:
        kwargs["disable"] = True
    return tqdm(*args, **kwargs)
