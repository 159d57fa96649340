"""Recipes: for each of the five modalities, its data, front-end + backbone and training settings.

Notebooks 05-09 each walk through one recipe and notebook 10 runs all five at several kernel sizes,
so a modality's setup is written once, in its module here. `RECIPES` is the one registry of the
five, in the course's order; every entry point (`python -m unirep_lite.recipes NAME`,
`python -m unirep_lite.data build NAME`, the benchmark, notebook 10) reads it.

    from unirep_lite import recipes
    from unirep_lite.runsize import FAST
    result = recipes.run("digits", size=FAST, lk_size=13)   # train, then test and baseline numbers
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..runs import train_runs
from ..runsize import RunSize
from ..train import evaluate
from . import audio, images, points, video, weather
from .recipe import Recipe

# in the course's order: notebooks 05 to 09
RECIPES: dict[str, Recipe] = {r.name: r for r in (
    images.RECIPE, audio.RECIPE, video.RECIPE, points.RECIPE, weather.RECIPE)}


def get(name: str) -> Recipe:
    """The recipe called `name`; a ValueError lists the valid names."""
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, got {name!r}")
    return RECIPES[name]


@dataclass
class RunResult:
    recipe: str
    variant: str
    lk_size: int
    seed: int
    size: RunSize
    fit: object          # train.FitResult (model, history, deploy model and its check; .seconds)
    test: dict           # train.evaluate on the test split
    baselines: dict      # the recipe's trivial baselines on the test split

    @property
    def score(self) -> float:
        return self.test[get(self.recipe).metric]


def run(name: str, size: RunSize | str, variant: str = "unireplknet_a", lk_size: int = 13, seed: int = 0,
        device=None, log=None, **config_overrides) -> RunResult:
    """Train one recipe at `size` on `device` (None: the config's) end to end and score it on its
    held-out test split."""
    recipe, size = get(name), RunSize.parse(size)
    cfg = dataclasses.replace(recipe.config(size), **config_overrides)
    train, val, test = (recipe.load(split, size) for split in ("train", "val", "test"))
    result = train_runs({variant: lambda: recipe.make_model(variant=variant, lk_size=lk_size, size=size)},
                        train, val, cfg, seed=seed, device=device, log=log)[variant]
    test_metrics = evaluate(result.model, test, task=recipe.task, device=next(result.model.parameters()).device,
                            batch_size=cfg.batch_size)
    return RunResult(name, variant, lk_size, seed, size, result, test_metrics, recipe.baselines(test))


__all__ = ["RECIPES", "Recipe", "RunResult", "get", "run"]
