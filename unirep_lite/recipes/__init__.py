"""Recipes: for each modality, its data, front-end + backbone and training settings in one place.

Notebooks 05-09 each walk through one recipe and notebook 10 runs all five at several kernel sizes,
so a modality's setup is written once, here. A recipe module (`recipes/<module>.py`) builds a
`Recipe` and calls `register()`; `get(name)` imports it on first use.

    from unirep_lite import recipes
    result = recipes.run("digits", lk_size=13, fast=True)   # train, then test and baseline numbers
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from torch import nn
from torch.utils.data import Dataset

from ..env import resolve_fast, seed_everything

# registry name -> module in this package (names match `python -m unirep_lite.data build NAME`)
MODULES = {"digits": "images", "speech": "audio", "video": "video", "shapes": "points", "weather": "weather"}


@dataclass(frozen=True)
class Recipe:
    name: str                                   # registry key, e.g. "digits"
    modality: str                               # "image", "audio", "video", "point cloud", "time series"
    task: str                                   # "classification" or "regression" (train.TrainConfig.task)
    metric: str                                 # headline test metric: "accuracy" (higher is better) or "mae"
    load: Callable[..., Dataset]                # load(split, fast=None) -> Dataset of (raw sample, target)
    make_model: Callable[..., nn.Module]        # make_model(variant="unireplknet_a", lk_size=13, fast=None, **kw)
    config: Callable[[bool], object]            # config(fast) -> train.TrainConfig
    baselines: Callable[[Dataset], dict]        # trivial baselines on a split: {"majority class": 0.1, ...}
    input_note: str = ""                        # the backbone's input size and why (shown in notebooks)
    extras: dict = field(default_factory=dict)  # anything else a notebook wants (class names, ...)

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    RECIPES[recipe.name] = recipe
    return recipe


def get(name: str) -> Recipe:
    if name not in MODULES:
        raise ValueError(f"unknown recipe {name!r}: expected one of {sorted(MODULES)}")
    if name not in RECIPES:
        importlib.import_module(f"{__name__}.{MODULES[name]}")
    return RECIPES[name]


@dataclass
class RunResult:
    recipe: str
    variant: str
    lk_size: int
    seed: int
    fit: object          # train.FitResult (model, history, deploy model and its check)
    test: dict           # train.evaluate on the test split
    baselines: dict      # the recipe's trivial baselines on the test split

    @property
    def score(self) -> float:
        return self.test[get(self.recipe).metric]


def run(name: str, variant: str = "unireplknet_a", lk_size: int = 13, fast: bool | None = None,
        seed: int = 0, **config_overrides) -> RunResult:
    """Train one recipe end to end and score it on its held-out test split."""
    import dataclasses

    from ..train import evaluate, fit

    fast = resolve_fast(fast)
    recipe = get(name)
    train, val, test = (recipe.load(split, fast=fast) for split in ("train", "val", "test"))
    cfg = dataclasses.replace(recipe.config(fast), seed=seed, **config_overrides)
    seed_everything(seed)
    model = recipe.make_model(variant=variant, lk_size=lk_size, fast=fast)
    result = fit(model, train, val, cfg)
    test_metrics = evaluate(result.model, test, task=recipe.task, device=cfg.device, batch_size=cfg.batch_size)
    return RunResult(name, variant, lk_size, seed, result, test_metrics, recipe.baselines(test))
