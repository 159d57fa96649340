"""Every environment variable the project reads, read here and nowhere else.

The entries (a notebook's first cell, the command lines, the course runner) call these once and pass
the values down: the run size (`run_size()`, a `runsize.RunSize`) and the device (`default_device()`)
are arguments of every library function that needs them. Each function takes the environment as an
optional mapping, so a runner can ask what a kernel started with another environment will see.

  UNIREP_SIZE     fast | cpu | full          the run size (else UNIREP_FAST=1 means fast, else the hardware)
  UNIREP_FAST     1                          the small (CI) run
  UNIREP_DEVICE   cpu | cuda | mps | ...     the device (else cuda, then mps, then cpu)
  UNIREP_DATA     a folder                   where datasets are built (else data/ of a checkout)
  UNIREP_DWCONV   auto | triton | torch      the depthwise conv kernel on CUDA
  UNIREP_PRETRAINED a folder                 where the authors' weights are cached (else torch.hub's)
  UNIREP_BOOK     1                          the static book is being built (explorers as figures)
  UNIREP_BINDER   1                          running on Binder (set by binder/start)
  TQDM_DISABLE    1                          no progress bars
  TRITON_INTERPRET 1                         Triton's interpreter (kernels on CPU tensors)
  RANK WORLD_SIZE LOCAL_RANK MASTER_ADDR MASTER_PORT   set by torchrun: this process's place in the run
"""
from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from .runsize import SIZES, RunSize

_TRUE = {"1", "true", "yes", "on"}
DWCONV_CHOICES = ("auto", "triton", "torch")


def _get(environ: Mapping[str, str] | None, name: str, default: str = "") -> str:
    return (os.environ if environ is None else environ).get(name, default) or default


def _flag(environ: Mapping[str, str] | None, name: str) -> bool:
    return _get(environ, name).strip().lower() in _TRUE


def run_size(environ: Mapping[str, str] | None = None) -> RunSize:
    """UNIREP_SIZE, else UNIREP_FAST, else the hardware: "full" with a CUDA GPU, "cpu" without."""
    asked = _get(environ, "UNIREP_SIZE").strip().lower()
    if asked:
        if asked not in SIZES:
            raise ValueError(f"UNIREP_SIZE must be one of {', '.join(SIZES)}, got {asked!r}")
        return RunSize(asked)
    if _flag(environ, "UNIREP_FAST"):
        return RunSize("fast")
    return RunSize("full" if default_device(environ).type == "cuda" else "cpu")


def default_device(environ: Mapping[str, str] | None = None) -> torch.device:
    """UNIREP_DEVICE, else cuda if present, then Apple's mps, else cpu."""
    forced = _get(environ, "UNIREP_DEVICE").strip()
    if forced:
        try:
            return torch.device(forced)
        except RuntimeError:
            raise ValueError(f"UNIREP_DEVICE must be a torch device such as cpu, cuda or mps, got {forced!r}") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def data_folder(environ: Mapping[str, str] | None = None) -> Path | None:
    """UNIREP_DATA as a folder path, or None when unset (the data cache then picks its default)."""
    value = _get(environ, "UNIREP_DATA").strip()
    return Path(value).expanduser().resolve() if value else None


def pretrained_folder(environ: Mapping[str, str] | None = None) -> Path | None:
    """UNIREP_PRETRAINED as a folder path, or None when unset (`pretrained` then uses torch.hub's)."""
    value = _get(environ, "UNIREP_PRETRAINED").strip()
    return Path(value).expanduser().resolve() if value else None


def dwconv_choice(environ: Mapping[str, str] | None = None) -> str:
    """UNIREP_DWCONV: "auto" (default), "triton" or "torch"."""
    value = _get(environ, "UNIREP_DWCONV", "auto").strip().lower() or "auto"
    if value not in DWCONV_CHOICES:
        raise ValueError(f"UNIREP_DWCONV must be one of {', '.join(DWCONV_CHOICES)}, got {value!r}")
    return value


def triton_interpret(environ: Mapping[str, str] | None = None) -> bool:
    """TRITON_INTERPRET=1: Triton runs its kernels in an interpreter, on CPU tensors."""
    return _get(environ, "TRITON_INTERPRET", "0").strip() == "1"


def static_book(environ: Mapping[str, str] | None = None) -> bool:
    """UNIREP_BOOK=1: the static book is being built (a widget there would be frozen on the page)."""
    return _get(environ, "UNIREP_BOOK").strip() == "1"


def on_binder(environ: Mapping[str, str] | None = None) -> bool:
    """UNIREP_BINDER is set (binder/start)."""
    return bool(_get(environ, "UNIREP_BINDER").strip())


def progress_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """TQDM_DISABLE=1 (the book build)."""
    return _flag(environ, "TQDM_DISABLE")


def torchrun(environ: Mapping[str, str] | None = None) -> dict | None:
    """This process's place in a torchrun launch: {"rank", "world_size", "local_rank", "master_addr",
    "master_port"} (for `unirep_lite.train.distributed.start`), or None outside one (no RANK and
    no WORLD_SIZE)."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    if not _get(environ, "RANK").strip() and not _get(environ, "WORLD_SIZE").strip():
        return None
    raw = {name: _get(environ, name).strip() for name in names}
    missing = [name for name, value in raw.items() if not value]
    if missing:
        raise ValueError(f"a torchrun launch sets {', '.join(names)}, but {', '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not set (start with torchrun)")
    values = {}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        try:
            values[name.lower()] = int(raw[name])
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {raw[name]!r}") from None
    if not 0 <= values["rank"] < values["world_size"]:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE={values['world_size']}), got {values['rank']}")
    if values["local_rank"] < 0:
        raise ValueError(f"LOCAL_RANK must be >= 0, got {values['local_rank']}")
    if not 0 < values["master_port"] < 2**16:
        raise ValueError(f"MASTER_PORT must be a port number in [1, 65535], got {values['master_port']}")
    return {**values, "master_addr": raw["MASTER_ADDR"]}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so that runs repeat."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress_bar(*args, **kwargs):
    """tqdm.auto's progress bar, switched off where TQDM_DISABLE says so (the book build).

    tqdm reads TQDM_DISABLE only for its console bar; its notebook bar (what tqdm.auto picks in
    Jupyter) ignores it, and an explicit `disable=False` overrides it in both.
    """
    from tqdm.auto import tqdm

    if progress_disabled():
        kwargs["disable"] = True
    return tqdm(*args, **kwargs)


def fast_mode() -> bool:
    """Deprecated: decide `size = run_size()` once and pass it on; `size.small` is this value."""
    warnings.warn("unirep_lite.env.fast_mode() is deprecated: use `size = unirep_lite.env.run_size()` once and "
                  "pass `size` on (`size.small` is what fast_mode() returned)", DeprecationWarning, stacklevel=2)
    return run_size().small

