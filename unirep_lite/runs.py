"""Train a set of models the same way: seed, build, fit, time. The one path every comparison takes.

The notebooks compare variants, kernel sizes, front-ends and seeds; the recipes, the reach experiment
and the benchmark's accuracy rows do too. Each run here starts from the same seed (so models that
share a structure start from the same weights), trains with `train.fit`, and reports its size and time.

    runs = train_runs({"A": lambda: recipe.make_model("unireplknet_a", size=SIZE)}, train, val, cfg)
    runs["A"].seconds, runs["A"].history.val_metric
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Hashable, Mapping, TypeVar

import torch
from torch import nn

from .env import seed_everything
from .stats import count_params
from .train import FitResult, TrainConfig, fit

K = TypeVar("K", bound=Hashable)


def train_runs(builders: Mapping[K, Callable[[], nn.Module]], train_data, val_data, config: TrainConfig, *,
               seed: int = 0, device=None, log: Callable[[str], None] | None = print) -> dict[K, FitResult]:
    """Build and train one model per key, each from `seed` on `device` (None: the config's); returns
    key -> `train.fit`'s result.

    Each result also carries `.seconds` (wall time of its training), `.cpu_seconds`, `.seed` and
    `.params`. `log` gets one line per run (None: quiet).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not builders:
        raise ValueError("builders must name at least one model to train, got none")
    config = dataclasses.replace(config, seed=seed, device=config.device if device is None else str(device))
    runs = {}
    for key, build in builders.items():
        seed_everything(seed)  # the same initial weights for models of the same structure
        model = build()
        wall, cpu = time.perf_counter(), time.process_time()
        result = fit(model, train_data, val_data, config)
        result.seconds, result.cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        result.seed, result.params = seed, count_params(model)
        if log is not None:
            device = next(model.parameters()).device
            log(f"{key}: {result.params:,} parameters, trained in {result.seconds:.0f} s "
                f"({result.cpu_seconds:.0f} s of CPU time) on {device}"
                + (f" with {torch.get_num_threads()} threads" if device.type == "cpu" else ""))
        runs[key] = result
    return runs
