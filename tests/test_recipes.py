"""The five recipes: models accept their data, training runs, baselines compute, the command line
trains one. First digits, speech and video at their real model size (FAST datasets, CPU, a few
seconds each), then shapes and weather with small models (depths 1,1,1,1) and a few samples."""
import math

import pytest
import torch
from torch.utils.data import Subset

from unirep_lite import recipes
from unirep_lite.recipes import RECIPES
from unirep_lite.recipes.images import Resize
from unirep_lite.train import TrainConfig, fit

NAMES = ["digits", "speech", "video"]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def batch(recipe, split="test", n=4):
    ds = recipe.load(split, "fast")
    xs, ys = zip(*(ds[i] for i in range(n)))
    return torch.stack(xs), torch.tensor(ys), ds


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_described(name):
    r = recipes.get(name)
    assert r.name == name and r.task == "classification" and r.metric == "accuracy"
    assert r.input_note and r.classes
    for size in ("fast", "cpu", "full"):
        assert isinstance(r.config(size), TrainConfig)
    # notebook 10 shortens FAST runs with these overrides
    TrainConfig(**{**vars(r.config("fast")), **r.tiny_config})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", ["fast", "full"])
def test_model_accepts_its_data(name, size):
    r = recipes.get(name)
    x, y, ds = batch(r)
    model = r.make_model(lk_size=13, size=size).eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (len(x), len(r.classes))
    # the backbone sees the documented input size
    seen = {}
    backbone = model[-1]
    backbone.register_forward_pre_hook(lambda m, args: seen.update(shape=args[0].shape))
    with torch.no_grad():
        model(x)
    side = r.input_size[size]
    assert seen["shape"][-2:] == (side, side)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lk_size", [3, 7, 11, 13])
def test_kernel_sizes_build(name, lk_size):
    model = recipes.get(name).make_model(lk_size=lk_size, size="fast")
    kernels = {m.kernel_size for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
    assert (lk_size, lk_size) in kernels and all(k[0] <= max(lk_size, 5) for k in kernels)


@pytest.mark.parametrize("name", NAMES)
def test_one_training_step_and_deploy(name):
    r = recipes.get(name)
    x, y, _ = batch(r, "train")
    torch.manual_seed(0)
    model = r.make_model(lk_size=7, size="fast").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    import unirep_lite

    model.eval()
    deploy = unirep_lite.reparameterize(model)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_baselines(name):
    r = recipes.get(name)
    base = r.baselines(r.load("test", "fast"))
    n_classes = len(r.classes)
    assert base["chance"] == pytest.approx(1 / n_classes)
    assert 1 / n_classes <= base["majority class"] < 0.5


def test_resize_checks_its_input():
    assert Resize(32)(torch.rand(2, 1, 28, 28)).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="B x C x H x W"):
        Resize(32)(torch.rand(28, 28))


def test_unknown_recipe():
    with pytest.raises(ValueError, match="recipe must be one of"):
        recipes.get("smells")


def test_command_line_trains_one_recipe_and_writes_json(tmp_path, capsys):
    import json

    from unirep_lite.recipes.__main__ import main

    out = main(["digits", "--fast", "--epochs", "1", "--json", str(tmp_path / "run.json")])
    assert json.loads((tmp_path / "run.json").read_text()) == out
    assert out["mode"] == "fast" and out["epochs"] == 1 and out["metric"] == "accuracy"
    assert out["test"] > out["baselines"]["majority class"]
    assert out["deploy_check"]["agreement"] == 1.0
    assert "digits (fast run) unireplknet_a K=13" in capsys.readouterr().out
    main(["list"])
    listing = capsys.readouterr().out
    assert all(name in listing for name in RECIPES)
    with pytest.raises(SystemExit):
        main(["imagenet"])
    assert "unknown recipe 'imagenet'" in capsys.readouterr().err


def test_command_line_rejects_a_json_path_in_a_missing_folder_before_training(tmp_path, capsys):
    from unirep_lite.recipes.__main__ import main

    with pytest.raises(SystemExit):
        main(["digits", "--fast", "--json", str(tmp_path / "nowhere" / "run.json")])
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------- shapes and weather, small models

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
    ds = recipe.load("val", "fast")
    x, y = _batch(ds)
    model = recipe.make_model(lk_size=lk_size, size="fast", **TINY).eval()
    with torch.no_grad():
        out = model(x)
    if recipe.task == "classification":
        assert out.shape == (4, len(recipe.classes))
    else:
        assert out.shape == y.shape == (4, 24, x.shape[-1])


def test_one_tiny_training_run(recipe):
    ds = recipe.load("train", "fast")
    small = Subset(ds, range(8))
    cfg = TrainConfig(epochs=1, batch_size=4, task=recipe.task, progress=False, device="cpu")
    torch.manual_seed(0)
    result = fit(recipe.make_model(size="fast", **TINY), small, small, cfg)
    assert len(result.history.step_loss) == 2
    assert all(math.isfinite(v) for v in result.history.step_loss)
    assert result.deploy_check is not None  # reparameterized and checked at the end


def test_fast_config_is_small(recipe):
    cfg = recipe.config("fast")
    assert cfg.task == recipe.task
    assert cfg.epochs <= recipe.config("full").epochs


def test_baselines_are_named_and_positive(recipe):
    test = recipe.load("test", "fast")
    scores = recipe.baselines(test)
    assert scores and all(math.isfinite(v) and v > 0 for v in scores.values())
    if recipe.name == "shapes":
        assert scores["majority class"] == pytest.approx(0.1)  # balanced classes
    else:
        assert set(scores) == {"persistence", "seasonal (24 h)"}


@pytest.mark.parametrize("argv, message", [
    (["digits", "--lk-size", "4"], "--lk-size 4: block kernel size must be a positive odd integer"),
    (["digits", "--lk-size", "0"], "--lk-size 0: block kernel size must be a positive odd integer"),
    (["digits", "--lk-size", "19"], "--lk-size 19: no default Dilated Reparam branches for K=19"),
    (["digits", "--variant", "bogus"], "--variant: expected one of unireplknet_a"),
    (["digits", "--epochs", "0"], "--epochs: expected a positive number of epochs, got 0"),
    (["digits", "--json", "{tmp}"], "is a folder; expected the path of a file"),
    (["digits", "--json", "{tmp}/no/x.json"], "does not exist"),
])
def test_recipes_cli_rejects_bad_arguments_before_loading(argv, message, tmp_path, monkeypatch, capsys):
    from unirep_lite.recipes import __main__ as cli

    def must_not_run(*a, **k):
        raise AssertionError("the recipe started before its arguments were checked")

    monkeypatch.setattr(cli, "run", must_not_run)
    with pytest.raises(SystemExit) as exit_:
        cli.main([a.format(tmp=tmp_path) for a in argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
