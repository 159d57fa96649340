"""Run-time switches shared by the library, the notebooks and the tests.

`UNIREP_FAST=1` makes every notebook and data build small enough for CI on 2 CPU cores; the default
is the real run. The device is chosen once, in one place, so the GPU path is the same code.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def fast_mode() -> bool:
    """True when the environment asks for the small CI-sized run (UNIREP_FAST=1)."""
    return os.environ.get("UNIREP_FAST", "0").strip().lower() in {"1", "true", "yes", "on"}


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
