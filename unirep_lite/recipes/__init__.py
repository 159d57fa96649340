"""Recipes: for each modality, its data, front-end + backbone and training settings in one place.

Notebooks 05-09 each walk through one recipe and notebook 10 runs all five at several kernel sizes,
so a modality's setup is written once, here. A recipe module (`recipes/<module>.py`) builds a
`Recipe` and calls `register()`; `get(name)` imports it on first use, finding it in the modality
table (`unirep_lite.modalities`).

    from unirep_lite import recipes
    result = recipes.run("digits", lk_size=13, fast=True)   # train, then test and baseline numbers
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Callable

from torch import nn
from torch.utils.data import Dataset

from ..env import epoch_factor, resolve_fast, seed_everything
from ..modalities import MODALITIES
from ..train import evaluate, fit


@dataclass(frozen=True)
class Recipe:
    name: str                                   # registry key, e.g. "digits" (a row of modalities.MODALITIES)
    task: str                                   # "classification" or "regression" (train.TrainConfig.task)
    metric: str                                 # headline test metric: "accuracy" (higher is better) or "mae"
    load: Callable[..., Dataset]                # load(split, fast=None) -> Dataset of (raw sample, target)
    make_model: Callable[..., nn.Module]        # make_model(variant="unireplknet_a", lk_size=13, fast=None, **kw)
    config: Callable[[bool], object]            # config(fast) -> train.TrainConfig
    baselines: Callable[[Dataset], dict]        # trivial baselines on a split: {"majority class": 0.1, ...}
    input_note: str = ""                        # the backbone's input size and why (shown in notebooks)
    tiny_config: dict = field(default_factory=dict)  # TrainConfig overrides for a FAST run cheaper still
    # what the notebooks show about the data, by modality (left empty where it does not apply)
    classes: tuple[str, ...] = ()               # class names, index = label (classification)
    input_size: dict = field(default_factory=dict)  # side of the square image the backbone sees: {"full": 128, "fast": 32}
    sample_rate: int = 0                        # audio: samples per second of the waveforms
    num_frames: int = 0                         # video: frames per clip
    views: tuple[str, ...] = ()                 # point clouds: the projections, one image channel each
    feature: str = ""                           # time series: the variable forecast
    unit: str = ""                              # time series: its unit, e.g. "degC"

    @property
    def modality(self) -> str:
        """The paper's modality ("image", "audio", "video", "point cloud", "time series"), from the table."""
        return MODALITIES[self.name].label

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    def train_config(self, fast: bool | None = None):
        """The TrainConfig of a run: `config(fast)`. Left to the environment (fast=None), the run size
        decides (`env.run_size`): a CPU-sized run trains `env.epoch_factor()` times FAST's epochs."""
        if fast is not None:
            return self.config(bool(fast))
        cfg = self.config(resolve_fast(None))
        return dataclasses.replace(cfg, epochs=cfg.epochs * epoch_factor())


def run_mode(fast: bool | None) -> str:
    """The key ("fast" or "full") of the recipe modules' per-mode tables and of `Recipe.input_size`."""
    return "fast" if resolve_fast(fast) else "full"


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    RECIPES[recipe.name] = recipe
    return recipe


def get(name: str) -> Recipe:
    if name not in MODALITIES:
        raise ValueError(f"unknown recipe {name!r}: expected one of {', '.join(MODALITIES)}")
    if name not in RECIPES:
        importlib.import_module(MODALITIES[name].recipe)
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
    recipe = get(name)
    cfg = dataclasses.replace(recipe.train_config(fast), seed=seed, **config_overrides)
    fast = resolve_fast(fast)
    train, val, test = (recipe.load(split, fast=fast) for split in ("train", "val", "test"))
    seed_everything(seed)
    model = recipe.make_model(variant=variant, lk_size=lk_size, fast=fast)
    result = fit(model, train, val, cfg)
    test_metrics = evaluate(result.model, test, task=recipe.task, device=cfg.device, batch_size=cfg.batch_size)
    return RunResult(name, variant, lk_size, seed, result, test_metrics, recipe.baselines(test))
