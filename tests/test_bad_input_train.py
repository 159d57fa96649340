"""Issue 17's table, rows 1-3, 6, 7 and 9 for training and checkpoints: a run that goes non-finite
stops before the bad update and leaves the caller's model as it was after the last good step; no
earlier run's checkpoint is overwritten by accident; output paths are checked before any work;
bad data and bad model arguments get our errors, not torch's; saved weights carry a checksum."""
import dataclasses
import math
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import unirep_lite
from unirep_lite.checkpoint import read_checkpoint, state_dict_digest
from unirep_lite.train import TrainConfig, check_deploy, evaluate, fit

CPU = {"device": "cpu", "progress": False}


def mlp(seed=0, out=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, out))


def blobs(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    return torch.randn(n, 4, generator=g) + y[:, None].float(), y


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def all_finite(model):
    return all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())


class Exploding(Dataset):
    """Fails the test if fit reads a sample: for checks that must happen before any work."""

    def __len__(self):
        return 40

    def __getitem__(self, i):
        raise AssertionError("training started before the configuration was checked")


# ------------------------------------------------------------ rows 1 and 2: non-finite runs

def test_non_finite_numbers_in_the_config():
    for bad in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="lr must be a finite number"):
            TrainConfig(lr=bad)
    with pytest.raises(ValueError, match="weight_decay must be a finite number"):
        TrainConfig(weight_decay=float("nan"))


def test_nan_input_stops_before_the_update_and_keeps_the_model(one_thread):
    x, y = blobs()
    x[:] = float("nan")  # the first step's loss is NaN
    model = mlp()
    before = snapshot(model)
    with pytest.raises(FloatingPointError, match="loss became nan at step 1 .*step was not applied"):
        fit(model, (x, y), config=TrainConfig(epochs=1, batch_size=8, **CPU))
    assert same(before, snapshot(model))  # weights and BatchNorm statistics both untouched


def test_huge_lr_stops_with_a_usable_model(one_thread):
    x, y = blobs()
    model = mlp()
    with pytest.raises(FloatingPointError, match="step was not applied.*last good step"):
        fit(model, (x, y), config=TrainConfig(epochs=20, batch_size=8, lr=1e30, grad_clip=None,
                                              warmup_fraction=0, weight_decay=0, **CPU))
    assert all_finite(model)


def test_nan_model_is_refused_and_never_passes_the_deploy_check(one_thread):
    x, y = blobs()
    model = unirep_lite.create_model("unireplknet_a", num_classes=3, in_chans=1, depths=(1, 1, 1, 1),
                                     dims=(8, 16, 24, 32), lk_size=7)
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    data = (torch.randn(8, 1, 32, 32), torch.arange(8) % 3)
    with pytest.raises(FloatingPointError, match="NaN/inf values before training: head.weight"):
        fit(model, data, config=TrainConfig(epochs=1, batch_size=4, **CPU))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data), batch_size=4)
    with pytest.raises(RuntimeError, match="does not reproduce.*'max_abs_diff': nan"):
        check_deploy(model.eval(), unirep_lite.reparameterize, loader, "classification", torch.device("cpu"))


def test_evaluate_flags_nan_outputs(one_thread):
    x, y = blobs(12)
    model = mlp().eval()
    with torch.no_grad():
        model[3].bias[1] = float("nan")
    with pytest.warns(RuntimeWarning, match="12 of 12 samples got NaN/inf outputs"):
        r = evaluate(model, (x, y), device="cpu")
    assert math.isnan(r["loss"]) and math.isnan(r["accuracy"]) and r["nonfinite"] == 12


# ------------------------------------------------------------ row 3: no silent overwrite

def test_existing_checkpoint_needs_resume_or_overwrite(tmp_path, one_thread):
    x, y = blobs()
    cfg = TrainConfig(epochs=2, batch_size=8, checkpoint_path=str(tmp_path / "run.pt"), reparameterize=False, **CPU)
    fit(mlp(), (x, y), config=cfg)
    saved = read_checkpoint(tmp_path / "run.pt")["epoch"]
    with pytest.raises(FileExistsError, match="run.pt already exists.*resume_from=.*overwrite=True"):
        fit(mlp(), (x, y), config=dataclasses.replace(cfg, epochs=1))
    assert read_checkpoint(tmp_path / "run.pt")["epoch"] == saved == 2
    fit(mlp(), (x, y), config=dataclasses.replace(cfg, overwrite=True), stop_after=1)
    assert read_checkpoint(tmp_path / "run.pt")["epoch"] == 1
    fit(mlp(), (x, y), config=cfg, resume_from=tmp_path / "run.pt")  # continuing the run is fine
    assert read_checkpoint(tmp_path / "run.pt")["epoch"] == 2


# ------------------------------------------------------------ row 7: output paths first

def test_output_paths_checked_before_training(tmp_path):
    (tmp_path / "file").write_text("a regular file")
    for field in ("checkpoint_path", "deploy_path"):
        cfg = TrainConfig(epochs=1, **{field: str(tmp_path / "file" / "run.pt")}, **CPU)
        with pytest.raises(ValueError, match=f"config.{field} .*file is a file, not a folder"):
            fit(mlp(), Exploding(), config=cfg)
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(ValueError, match="is a folder; expected the path of a file"):
        fit(mlp(), Exploding(), config=TrainConfig(epochs=1, checkpoint_path=str(tmp_path / "folder.pt"), **CPU))


# ------------------------------------------------------------ row 9: data that torch would choke on

def test_bad_training_data_gets_our_errors(one_thread):
    x, y = blobs()
    cfg = TrainConfig(epochs=1, batch_size=8, **CPU)
    with pytest.raises(ValueError, match="the training data is empty"):
        fit(mlp(), (x[:0], y[:0]), config=cfg)
    with pytest.raises(ValueError, match="a training batch of 1 sample .*BatchNorm in training needs at least 2"):
        fit(mlp(), (x[:1], y[:1]), config=cfg)
    with pytest.raises(ValueError, match="the validation data is empty"):
        fit(mlp(), (x, y), (x[:0], y[:0]), config=cfg)
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 3\).*-100 'ignore' labels"):
        fit(mlp(), (x, torch.full_like(y, -100)), config=cfg)
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 3\).*from 1 to 7"):
        fit(mlp(), (x, y * 3 + 1), config=cfg)


# ------------------------------------------------------------ row 6: model arguments, checkpoints

@pytest.mark.parametrize("kw, message", [
    ({"lk_size": 0}, "lk_size must be a positive odd integer"),
    ({"lk_size": True}, "lk_size must be a positive odd integer"),
    ({"lk_size": 4}, "lk_size must be a positive odd integer"),
    ({"num_classes": -5}, "num_classes must be an integer >= 0"),
    ({"num_classes": 2.5}, "num_classes must be an integer >= 0"),
])
def test_create_model_rejects(kw, message):
    with pytest.raises(ValueError, match=message):
        unirep_lite.create_model("unireplknet_a", **kw)


def _small(dims=(8, 16, 24, 32), num_classes=3, deploy=False):
    return unirep_lite.create_model("unireplknet_a", num_classes=num_classes, in_chans=1, depths=(1, 1, 1, 1),
                                    dims=dims, lk_size=7, deploy=deploy)


def test_load_checkpoint_strict_false_loading_nothing_or_little(tmp_path):
    torch.save(unirep_lite.create_model("unireplknet_f").state_dict(), tmp_path / "f.pt")
    with pytest.raises(ValueError, match="no tensor of the checkpoint matches the model"):  # F into A
        unirep_lite.load_checkpoint(unirep_lite.create_model("unireplknet_a", num_classes=10), tmp_path / "f.pt",
                                    strict=False)
    torch.save(_small(num_classes=7).state_dict(), tmp_path / "head.pt")
    with pytest.warns(UserWarning, match=r"loaded \d+ of the model's \d+ tensors"):
        unirep_lite.load_checkpoint(_small(), tmp_path / "head.pt", strict=False)


def test_saved_weights_carry_a_checksum(tmp_path, one_thread):
    x, y = torch.randn(8, 1, 32, 32), torch.arange(8) % 3
    cfg = TrainConfig(epochs=1, batch_size=4, checkpoint_path=str(tmp_path / "run.pt"), **CPU)
    fit(_small(), (x, y), config=cfg)
    for name in ("run.pt", "run.deploy.pt"):
        ckpt = torch.load(tmp_path / name, weights_only=True)
        assert ckpt["model_sha256"] == state_dict_digest(ckpt["model"])
        ckpt["model"]["head.bias"][0] += 1e-3  # a flipped bit's worth of damage, the checksum kept
        torch.save(ckpt, tmp_path / f"bad-{name}")
    with pytest.raises(ValueError, match="bad-run.deploy.pt: the weights do not match the checksum"):
        unirep_lite.load_checkpoint(_small(deploy=True), tmp_path / "bad-run.deploy.pt")
    with pytest.raises(ValueError, match="bad-run.pt: the weights do not match the checksum"):
        unirep_lite.load_checkpoint(_small(), tmp_path / "bad-run.pt")
    with pytest.raises(ValueError, match="the weights do not match the checksum"):
        fit(_small(), (x, y), config=dataclasses.replace(cfg, checkpoint_path=str(tmp_path / "bad-run.pt")),
            resume_from=tmp_path / "bad-run.pt")
    unirep_lite.load_checkpoint(_small(), tmp_path / "run.pt")  # the intact file loads

