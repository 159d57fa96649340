"""The training engine on tiny models and synthetic tensors, on the CPU (a few seconds in all)."""
import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import unirep_lite
from unirep_lite import train
from unirep_lite.checkpoint import atomic_save, read_checkpoint, state_dict_digest
from unirep_lite.reparam import fuse_bn
from unirep_lite.train import (TrainConfig, check_deploy, evaluate, fit, lr_at, make_batches, prepare,
                               regression_metrics, train_step)
from unirep_lite.train import step as step_module

CPU = dict(device="cpu", progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def blobs(n=256, seed=0):
    """Three well separated Gaussian blobs in 4-D: a problem any small model learns."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    return centers[y] + 0.5 * torch.randn(n, 4, generator=g), y


class NoisyBlobs(torch.utils.data.Dataset):
    """Adds NumPy and torch noise per sample, as a random augmentation would."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        noise = 0.1 * torch.rand(4) + 0.1 * torch.from_numpy(np.random.randn(4)).float()
        return self.x[i] + noise, self.y[i]


def mlp(seed=0, out=3, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 32), nn.BatchNorm1d(32), nn.GELU(), nn.Dropout(dropout), nn.Linear(32, out))


class ConvBN(nn.Module):
    """conv -> BN -> pool -> linear; 'deploy' folds the BN into the conv, like the real model does."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().mean((2, 3)))


def fold_bn(model: ConvBN) -> nn.Module:
    deploy = copy.deepcopy(model).eval()
    w, b = fuse_bn(deploy.conv.weight, deploy.bn, deploy.conv.bias)
    deploy.conv.weight.data, deploy.conv.bias.data = w, b
    deploy.bn = nn.Identity()
    return deploy


def images(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    return torch.randn(n, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float(), y


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


# ----------------------------------------------------------------------------- schedule

def test_schedule_warms_up_linearly_then_follows_a_cosine():
    total, warmup, lr, min_lr = 100, 10, 1e-3, 1e-5
    lrs = np.array([lr_at(s, total, warmup, lr, min_lr) for s in range(total)])
    assert np.allclose(lrs[:warmup], lr * np.arange(1, warmup + 1) / warmup)
    assert lrs[warmup - 1] == pytest.approx(lr) and lrs[warmup] == pytest.approx(lr)
    assert np.all(np.diff(lrs[warmup:]) < 0)  # strictly decreasing after the peak
    mid = warmup + (total - warmup) // 2
    assert lrs[mid] == pytest.approx((lr + min_lr) / 2, rel=1e-6)  # cosine crosses the middle halfway
    assert lr_at(total, total, warmup, lr, min_lr) == pytest.approx(min_lr)  # the cosine ends at min_lr
    assert min_lr < lrs[-1] < min_lr + 1e-3 * lr  # ... one step after the last update
    assert lr_at(0, 10, 0, lr, min_lr) == pytest.approx(lr)  # no warmup: start at the peak


def test_fit_follows_the_schedule_step_by_step():
    cfg = TrainConfig(epochs=3, batch_size=32, lr=1e-2, min_lr=1e-4, warmup_fraction=0.25, **CPU)
    h = fit(mlp(), blobs(), config=cfg).history
    total = 3 * (256 // 32)
    assert len(h.step_lr) == total
    expected = [lr_at(s, total, round(0.25 * total), 1e-2, 1e-4) for s in range(total)]
    assert np.allclose(h.step_lr, expected)


def test_train_step_is_the_step_fit_takes():
    """prepare + train_step on fit's one batch: the same loss and update as fit (mixup included)."""
    x, y = blobs(64)
    cfg = TrainConfig(epochs=1, batch_size=64, lr=1e-2, warmup_fraction=0, mixup_alpha=0.2,
                      reparameterize=False, **CPU)
    fitted = fit(mlp(), (x, y), config=cfg)
    model = mlp()
    unirep_lite.env.seed_everything(cfg.seed)  # fit seeds before its step; mixup draws from NumPy
    state = prepare(model, cfg, total_steps=1, device="cpu")
    model.train()
    xb, yb = next(iter(make_batches((x, y), 64, torch.device("cpu"), shuffle=True, seed=cfg.seed)))  # fit's batch
    loss = train_step(model, xb, yb, state)
    assert loss == pytest.approx(fitted.history.step_loss[0], rel=1e-5)
    assert state.lr == pytest.approx(fitted.history.lr[-1])
    for a, b in zip(model.parameters(), fitted.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- learning

def test_classification_learns_and_evaluates():
    x, y = blobs(320)
    res = fit(mlp(), (x[:256], y[:256]), (x[256:], y[256:]),
              TrainConfig(epochs=4, batch_size=32, lr=1e-2, **CPU))
    h = res.history
    assert h.train_loss[-1] < h.train_loss[0] and h.val_loss[-1] < h.val_loss[0]
    assert h.val_metric[-1] >= 0.95 and h.metric_name == "accuracy"
    assert res.finished and res.deploy_model is None  # not a UniRepLKNet: no reparameterization
    r = evaluate(res.model, (x[256:], y[256:]), return_predictions=True)
    assert r["n"] == 64 and r["accuracy"] == pytest.approx(h.val_metric[-1])
    assert r["predictions"].shape == (64,) and torch.equal(r["targets"], y[256:])
    assert r["accuracy"] == pytest.approx((r["predictions"] == y[256:]).float().mean().item())


@pytest.mark.parametrize("smoothing, alpha", [(0.2, 0.0), (0.1, 0.4)])
def test_label_smoothing_and_mixup_train(smoothing, alpha):
    x, y = blobs(320)
    cfg = TrainConfig(epochs=4, batch_size=32, lr=1e-2, label_smoothing=smoothing, mixup_alpha=alpha, **CPU)
    h = fit(mlp(), (x[:256], y[:256]), (x[256:], y[256:]), cfg).history
    assert all(math.isfinite(v) for v in h.step_loss)
    assert h.val_metric[-1] >= 0.9


def test_regression_learns_and_reports_mse_and_mae():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 4, generator=g)
    y = x @ torch.tensor([[1.0, -2.0], [0.5, 0.0], [0.0, 1.0], [3.0, 0.5]])  # (320, 2)
    torch.manual_seed(0)
    res = fit(nn.Linear(4, 2), (x[:256], y[:256]), (x[256:], y[256:]),
              TrainConfig(task="regression", epochs=10, batch_size=32, lr=0.1, weight_decay=0.0, **CPU))
    h = res.history
    assert h.metric_name == "mae" and h.val_metric[-1] < 0.2 * h.val_metric[0]
    r = evaluate(res.model, (x[256:], y[256:]), task="regression", return_predictions=True)
    err = r["outputs"] - y[256:]
    assert r["mse"] == pytest.approx(err.pow(2).mean().item(), rel=1e-5) and r["loss"] == pytest.approx(r["mse"])
    assert r["mae"] == pytest.approx(err.abs().mean().item(), rel=1e-5)
    assert r["mae"] == pytest.approx(h.val_metric[-1], rel=1e-5)


def test_regression_metrics_by_hand_and_shape_check():
    m = regression_metrics(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0]))
    assert m == {"mse": pytest.approx((0 + 4 + 9) / 3), "mae": pytest.approx((0 + 2 + 3) / 3)}
    with pytest.raises(ValueError, match="same shape"):  # (B, 1) vs (B,) would broadcast to (B, B)
        regression_metrics(torch.zeros(5, 1), torch.zeros(5))
    with pytest.raises(ValueError, match="same shape"):
        fit(nn.Linear(4, 1), (torch.randn(16, 4), torch.randn(16)), config=TrainConfig(task="regression", **CPU))


# ----------------------------------------------------------------------------- resume

@pytest.mark.parametrize("own_loader, workers", [(False, 0), (True, 0), (False, 2)])
def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path, own_loader, workers):
    """2 epochs in one go == 1 epoch, save, resume into a *differently initialised* model, 1 epoch.

    Dropout, BatchNorm, shuffling and mixup all draw random numbers, so this only holds if every
    RNG and the optimizer/scheduler state come back exactly.
    """
    x, y = blobs(200)

    def data():  # a loader made by the caller (no generator: shuffles from the global RNG) or by fit
        if own_loader:
            return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
        return NoisyBlobs(x, y) if workers else (x, y)  # random augmentation inside worker processes

    cfg = TrainConfig(epochs=2, batch_size=32, lr=1e-2, mixup_alpha=0.4, num_workers=workers, **CPU)
    straight = fit(mlp(dropout=0.2), data(), (x[:64], y[:64]), cfg)

    ckpt = tmp_path / "run.pt"
    cfg_ckpt = dataclasses.replace(cfg, checkpoint_path=str(ckpt))
    first = fit(mlp(dropout=0.2), data(), (x[:64], y[:64]), cfg_ckpt, stop_after=1)
    assert not first.finished and first.history.epoch == [1] and ckpt.is_file()
    torch.manual_seed(123)  # whatever the RNGs are now, resume restores them
    resumed = fit(mlp(seed=99, dropout=0.2), data(), (x[:64], y[:64]), cfg_ckpt, resume_from=ckpt)

    assert resumed.finished
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    hs, hr = straight.history.to_dict(), resumed.history.to_dict()
    hs.pop("epoch_time"), hr.pop("epoch_time")
    assert hs == hr


def test_resume_errors_are_clear(tmp_path):
    x, y = blobs(64)
    cfg = TrainConfig(epochs=2, batch_size=32, checkpoint_path=str(tmp_path / "a.pt"), **CPU)
    fit(mlp(), (x, y), config=cfg, stop_after=1)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        fit(mlp(), (x, y), config=cfg, resume_from=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="different model"):
        fit(mlp(out=5), (x, y), config=cfg, resume_from=tmp_path / "a.pt")
    with pytest.raises(ValueError, match="lr: saved 0.001, now 0.01"):
        fit(mlp(), (x, y), config=dataclasses.replace(cfg, lr=1e-2), resume_from=tmp_path / "a.pt")
    with pytest.raises(ValueError, match="steps per epoch"):
        fit(mlp(), (x[:40], y[:40]), config=cfg, resume_from=tmp_path / "a.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read"):
        fit(mlp(), (x, y), config=dataclasses.replace(cfg, checkpoint_path=None), resume_from=junk)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a 'unirep_lite.train/1' file"):
        fit(mlp(), (x, y), config=dataclasses.replace(cfg, checkpoint_path=None), resume_from=tmp_path / "other.pt")


def test_checkpoint_loads_into_a_fresh_model(tmp_path):
    x, y = blobs(64)
    res = fit(mlp(), (x, y), config=TrainConfig(epochs=1, checkpoint_path=str(tmp_path / "c.pt"), **CPU))
    fresh = unirep_lite.load_checkpoint(mlp(seed=5), tmp_path / "c.pt")
    for a, b in zip(res.model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)


def test_atomic_save_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    atomic_save({"v": torch.ones(3)}, path)
    assert torch.load(path)["v"].sum() == 3

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"v": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path)["v"].sum() == 3  # the previous checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind


def test_existing_checkpoint_needs_resume_or_overwrite(tmp_path):
    x, y = blobs(40)
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


def test_output_paths_checked_before_training(tmp_path):
    (tmp_path / "file").write_text("a regular file")
    for field in ("checkpoint_path", "deploy_path"):
        cfg = TrainConfig(epochs=1, **{field: str(tmp_path / "file" / "run.pt")}, **CPU)
        with pytest.raises(ValueError, match=f"config.{field} .*file is a file, not a folder"):
            fit(mlp(), Exploding(), config=cfg)
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(ValueError, match="is a folder; expected the path of a file"):
        fit(mlp(), Exploding(), config=TrainConfig(epochs=1, checkpoint_path=str(tmp_path / "folder.pt"), **CPU))


def _small(dims=(8, 16, 24, 32), num_classes=3, deploy=False):
    return unirep_lite.create_model("unireplknet_a", num_classes=num_classes, in_chans=1, depths=(1, 1, 1, 1),
                                    dims=dims, lk_size=7, deploy=deploy)


def test_saved_weights_carry_a_checksum(tmp_path):
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


# ----------------------------------------------------------------------------- deploy

def test_reparameterize_at_the_end_checks_and_saves_the_deploy_model(tmp_path):
    x, y = images()
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-2, checkpoint_path=str(tmp_path / "run.pt"), **CPU)
    torch.manual_seed(0)
    res = fit(ConvBN(), (x[:64], y[:64]), (x[64:], y[64:]), cfg, reparameterize_fn=fold_bn)
    assert isinstance(res.deploy_model.bn, nn.Identity)
    assert res.deploy_check["agreement"] == 1.0 and res.deploy_check["n"] == 32
    assert res.deploy_check["max_abs_diff"] < 1e-5
    assert res.deploy_path == tmp_path / "run.deploy.pt" and res.deploy_path.is_file()
    loaded = unirep_lite.load_checkpoint(fold_bn(ConvBN()), res.deploy_path)
    assert torch.equal(loaded(x), res.deploy_model(x))


def test_a_wrong_deploy_model_is_caught():
    x, y = images()

    def broken(model):
        deploy = fold_bn(model)
        deploy.fc.bias.data += 10.0 * torch.tensor([1.0, -1.0])  # always predicts class 0
        return deploy

    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="does not reproduce"):
        fit(ConvBN(), (x[:64], y[:64]), (x[64:], y[64:]),
            TrainConfig(epochs=2, batch_size=16, lr=1e-2, **CPU), reparameterize_fn=broken)


def test_a_frontend_plus_unireplknet_is_reparameterized_by_default():
    torch.manual_seed(0)
    backbone = unirep_lite.create_model("unireplknet_a", num_classes=3, in_chans=1, depths=(1, 1, 1, 1),
                                        dims=(8, 16, 24, 32), lk_size=7)
    model = nn.Sequential(nn.BatchNorm2d(1), backbone)  # a modality front-end + the backbone
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 1, 32, 32, generator=g), torch.randint(0, 3, (24,), generator=g)
    res = fit(model, (x[:16], y[:16]), (x[16:], y[16:]), TrainConfig(epochs=1, batch_size=8, **CPU))
    assert res.deploy_check["agreement"] == 1.0 and res.deploy_check["max_abs_diff"] < 1e-4
    assert sum(isinstance(m, nn.BatchNorm2d) for m in res.deploy_model.modules()) == 1  # only the front-end's


# ----------------------------------------------------------------------------- non-finite runs

def test_nan_input_stops_before_the_update_and_keeps_the_model():
    x, y = blobs(40)
    x[:] = float("nan")  # the first step's loss is NaN
    model = mlp()
    before = snapshot(model)
    with pytest.raises(FloatingPointError, match="loss became nan at step 1 .*step was not applied"):
        fit(model, (x, y), config=TrainConfig(epochs=1, batch_size=8, **CPU))
    assert same(before, snapshot(model))  # weights and BatchNorm statistics both untouched


def test_huge_lr_stops_with_a_usable_model():
    x, y = blobs(40)
    model = mlp()
    with pytest.raises(FloatingPointError, match="step was not applied.*last good step"):
        fit(model, (x, y), config=TrainConfig(epochs=20, batch_size=8, lr=1e30, grad_clip=None,
                                              warmup_fraction=0, weight_decay=0, **CPU))
    assert all_finite(model)


def test_nan_model_is_refused_and_never_passes_the_deploy_check():
    x, y = blobs(40)
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


def test_evaluate_flags_nan_outputs():
    x, y = blobs(12)
    model = mlp().eval()
    with torch.no_grad():
        model[-1].bias[1] = float("nan")
    with pytest.warns(RuntimeWarning, match="12 of 12 samples got NaN/inf outputs"):
        r = evaluate(model, (x, y), device="cpu")
    assert math.isnan(r["loss"]) and math.isnan(r["accuracy"]) and r["nonfinite"] == 12


# ----------------------------------------------------------------------------- bad input, history

def test_bad_data_is_refused():
    with pytest.raises(ValueError, match="expected a DataLoader, a Dataset"):
        fit(mlp(), [1, 2, 3], config=TrainConfig(**CPU))
    with pytest.raises(ValueError, match="same length"):
        fit(mlp(), (torch.randn(10, 4), torch.zeros(9, dtype=torch.long)), config=TrainConfig(**CPU))
    with pytest.raises(ValueError, match="stop_after"):
        fit(mlp(), blobs(), config=TrainConfig(**CPU), stop_after=0)


def test_bad_training_data_gets_our_errors():
    x, y = blobs(40)
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


def test_history_round_trips_and_plots():
    x, y = blobs(128)
    cfg = TrainConfig(epochs=2, batch_size=32, device="cpu", progress=True)  # the tqdm bar, too
    h = fit(mlp(), (x[:96], y[:96]), (x[96:], y[96:]), cfg).history
    assert train.History.from_dict(h.to_dict()) == h
    assert h.epoch == [1, 2] and len(h.train_loss) == len(h.val_loss) == len(h.val_metric) == len(h.lr) == 2
    fig = h.plot()
    assert len(fig.axes) == 3 and "best" in fig.axes[1].get_title()
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_deploy_check_without_validation_data_uses_the_shuffled_training_data():
    x, y = images()
    torch.manual_seed(0)
    res = fit(ConvBN(), (x, y), config=TrainConfig(epochs=1, batch_size=16, **CPU), reparameterize_fn=fold_bn)
    assert res.deploy_check["agreement"] == 1.0 and res.deploy_check["n"] == 96


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_mixed_precision_path_runs_with_cpu_autocast(dtype, monkeypatch):
    """fit uses autocast only on CUDA; forcing it on the CPU exercises the same code (and fp16's
    GradScaler) where CI can run it."""
    monkeypatch.setattr(step_module, "autocast_dtype", lambda mode, device: dtype)
    x, y = blobs(320)
    res = fit(mlp(), (x[:256], y[:256]), (x[256:], y[256:]), TrainConfig(epochs=3, batch_size=32, lr=1e-2, **CPU))
    assert all(math.isfinite(v) for v in res.history.step_loss) and res.history.val_metric[-1] >= 0.9


def test_resume_is_exact_for_a_tiny_unireplknet_with_drop_path(tmp_path):
    def model(seed):
        torch.manual_seed(seed)
        return unirep_lite.create_model("unireplknet_a", num_classes=3, in_chans=1, depths=(1, 1, 1, 1),
                                        dims=(8, 16, 24, 32), lk_size=7, drop_path_rate=0.2)

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 32, 32, generator=g), torch.randint(0, 3, (32,), generator=g)
    cfg = TrainConfig(epochs=2, batch_size=8, reparameterize=False, **CPU)
    straight = fit(model(0), (x, y), config=cfg)
    cfg = dataclasses.replace(cfg, checkpoint_path=str(tmp_path / "run.pt"))
    fit(model(0), (x, y), config=cfg, stop_after=1)
    resumed = fit(model(1), (x, y), config=cfg, resume_from=tmp_path / "run.pt")
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_two_outputs_never_share_a_path_and_another_runs_file_is_kept(tmp_path):
    x, y = blobs(64)
    same = TrainConfig(epochs=1, checkpoint_path=str(tmp_path / "a.pt"), deploy_path=str(tmp_path / "a.pt"), **CPU)
    with pytest.raises(ValueError, match="must be two files"):
        fit(mlp(), (x, y), config=same)
    assert not (tmp_path / "a.pt").exists()
    fit(mlp(), (x, y), config=TrainConfig(epochs=2, checkpoint_path=str(tmp_path / "a.pt"), **CPU), stop_after=1)
    fit(mlp(), (x, y), config=TrainConfig(epochs=1, checkpoint_path=str(tmp_path / "b.pt"), **CPU))
    before = (tmp_path / "b.pt").read_bytes()
    # resuming from a while naming b (another run's file) as the checkpoint: refused, b untouched
    cfg = TrainConfig(epochs=2, checkpoint_path=str(tmp_path / "b.pt"), **CPU)
    with pytest.raises(FileExistsError, match="this run resumes from .*a.pt, not from it"):
        fit(mlp(), (x, y), config=cfg, resume_from=tmp_path / "a.pt")
    assert (tmp_path / "b.pt").read_bytes() == before


def test_bad_validation_data_is_found_before_any_training():
    x, y = blobs(64)
    model = mlp()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="the validation data does not fit the model: class labels must be in"):
        fit(model, (x, y), (x, torch.full_like(y, 7)), TrainConfig(epochs=1, **CPU))
    with pytest.raises(ValueError, match="the validation data does not fit the model"):
        fit(model, (x, y), (torch.randn(64, 5), y), TrainConfig(epochs=1, **CPU))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # not trained at all
