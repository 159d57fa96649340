"""The digits, speech and video recipes: models accept their data, one training step runs,
baselines compute (FAST datasets, CPU, a few seconds each)."""
import pytest
import torch

from unirep_lite import recipes
from unirep_lite.recipes.images import Resize
from unirep_lite.train import TrainConfig

NAMES = ["digits", "speech", "video"]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def batch(recipe, split="test", n=4):
    ds = recipe.load(split, fast=True)
    xs, ys = zip(*(ds[i] for i in range(n)))
    return torch.stack(xs), torch.tensor(ys), ds


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_described(name):
    r = recipes.get(name)
    assert r.name == name and r.task == "classification" and r.metric == "accuracy"
    assert r.input_note and r.extras["classes"]
    for fast in (True, False):
        assert isinstance(r.config(fast), TrainConfig)
    # notebook 10 shortens FAST runs with these overrides
    TrainConfig(**{**vars(r.config(True)), **r.extras["tiny_config"]})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fast", [True, False])
def test_model_accepts_its_data(name, fast):
    r = recipes.get(name)
    x, y, ds = batch(r)
    model = r.make_model(lk_size=13, fast=fast).eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (len(x), len(r.extras["classes"]))
    # the backbone sees the documented input size
    seen = {}
    backbone = model[-1]
    backbone.register_forward_pre_hook(lambda m, args: seen.update(shape=args[0].shape))
    with torch.no_grad():
        model(x)
    size = r.extras["input_size"]["fast" if fast else "full"]
    assert seen["shape"][-2:] == (size, size)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lk_size", [3, 7, 11, 13])
def test_kernel_sizes_build(name, lk_size):
    model = recipes.get(name).make_model(lk_size=lk_size, fast=True)
    kernels = {m.kernel_size for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
    assert (lk_size, lk_size) in kernels and all(k[0] <= max(lk_size, 5) for k in kernels)


@pytest.mark.parametrize("name", NAMES)
def test_one_training_step_and_deploy(name):
    r = recipes.get(name)
    x, y, _ = batch(r, "train")
    torch.manual_seed(0)
    model = r.make_model(lk_size=7, fast=True).train()
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
    base = r.baselines(r.load("test", fast=True))
    n_classes = len(r.extras["classes"])
    assert base["chance"] == pytest.approx(1 / n_classes)
    assert 1 / n_classes <= base["majority class"] < 0.5


def test_resize_checks_its_input():
    assert Resize(32)(torch.rand(2, 1, 28, 28)).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="B x C x H x W"):
        Resize(32)(torch.rand(28, 28))


def test_unknown_recipe():
    with pytest.raises(ValueError, match="unknown recipe"):
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
    assert all(name in listing for name in recipes.MODULES)
    with pytest.raises(SystemExit):
        main(["imagenet"])
    assert "unknown recipe 'imagenet'" in capsys.readouterr().err


def test_command_line_rejects_a_json_path_in_a_missing_folder_before_training(tmp_path, capsys):
    from unirep_lite.recipes.__main__ import main

    with pytest.raises(SystemExit):
        main(["digits", "--fast", "--json", str(tmp_path / "nowhere" / "run.json")])
    assert "does not exist" in capsys.readouterr().err
