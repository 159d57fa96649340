"""The "shapes" (point cloud) and "weather" (time series) recipes: data fits the model, training runs,
baselines compute. Small models (depths 1,1,1,1) and a few samples keep this fast."""
import math

import pytest
import torch
from torch.utils.data import Subset

from unirep_lite import recipes
from unirep_lite.train import TrainConfig, fit

TINY = {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64)}


@pytest.fixture(scope="module", params=["shapes", "weather"])
def recipe(request):
    return recipes.get(request.param)


def _batch(ds, n=4):
    xs, ys = zip(*(ds[i] for i in range(n)))
    return torch.stack(xs), torch.as_tensor(ys) if not torch.is_tensor(ys[0]) else torch.stack(ys)


def test_registered(recipe):
    assert recipes.RECIPES[recipe.name] is recipe
    assert recipe.task in ("classification", "regression")
    assert recipe.input_note


@pytest.mark.parametrize("lk_size", [13, 3])
def test_model_accepts_data(recipe, lk_size):
    ds = recipe.load("val", fast=True)
    x, y = _batch(ds)
    model = recipe.make_model(lk_size=lk_size, fast=True, **TINY).eval()
    with torch.no_grad():
        out = model(x)
    if recipe.task == "classification":
        assert out.shape == (4, len(recipe.extras["classes"]))
    else:
        assert out.shape == y.shape == (4, 24, x.shape[-1])


def test_one_tiny_training_run(recipe):
    ds = recipe.load("train", fast=True)
    small = Subset(ds, range(8))
    cfg = TrainConfig(epochs=1, batch_size=4, task=recipe.task, progress=False, device="cpu")
    torch.manual_seed(0)
    result = fit(recipe.make_model(fast=True, **TINY), small, small, cfg)
    assert len(result.history.step_loss) == 2
    assert all(math.isfinite(v) for v in result.history.step_loss)
    assert result.deploy_check is not None  # reparameterized and checked at the end


def test_fast_config_is_small(recipe):
    cfg = recipe.config(True)
    assert cfg.task == recipe.task
    assert cfg.epochs <= recipe.config(False).epochs


def test_baselines(recipe):
    test = recipe.load("test", fast=True)
    scores = recipe.baselines(test)
    assert scores and all(math.isfinite(v) and v > 0 for v in scores.values())
    if recipe.name == "shapes":
        assert scores["majority class"] == pytest.approx(0.1)  # balanced classes
    else:
        assert set(scores) == {"persistence", "seasonal (24 h)"}
