"""The training engine: `fit` a model, `evaluate` it, save and resume runs.

One loop serves every modality. Classification (image, audio, video, point cloud) trains with
cross-entropy and reports accuracy; regression/forecasting (time series) trains with MSE and
reports MSE and MAE. A front-end + backbone such as `nn.Sequential(frontend, backbone)` is just a
model to fit.

The recipe is the paper's ImageNet recipe in miniature (AdamW, weight decay 0.05, warmup then
cosine, label smoothing 0.1), plus what small runs need: per-step schedule, no weight decay on
norms, biases and scales, optional mixup, gradient clipping, and mixed precision on CUDA. At the end a UniRepLKNet is reparameterized into
its deploy structure, checked to predict the same, and saved.

Checkpoints and deploy files keep the weights under "model", so `unirep_lite.load_checkpoint(model,
path)` loads either into a fresh model (create it with deploy=True for the deploy file).

Resuming is exact: a checkpoint holds the model, optimizer, scheduler, grad scaler, epoch, step,
history and every random number generator, and the shuffling of each epoch is a function of
(seed, epoch). So 2 epochs in one go and 1 epoch + resume + 1 epoch give equal parameters.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import os
import random
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .batches import TensorBatches, device_batches
from .blocks import UniRepLKNetBlock
from .checkpoint import (
    DEPLOY_FORMAT,
    TRAIN_FORMAT,
    atomic_save,
    state_dict_digest,
    load_training_state,
    save_training_state,
)
from .env import default_device, progress_bar, seed_everything
from .paths import check_output_path
from .model import reparameterize
from .plots import plot_history

TASKS = ("classification", "regression")
AMP_MODES = ("auto", "bf16", "fp16", "off")
CHECKPOINT_FORMAT = TRAIN_FORMAT  # the name this module has always exported

# Config fields that shape the numbers of a run; a resume must keep them, or it is another run.
_RUN_FIELDS = ("epochs", "batch_size", "lr", "min_lr", "weight_decay", "warmup_fraction",
               "label_smoothing", "mixup_alpha", "grad_clip", "task", "seed")


@dataclass
class TrainConfig:
    """Everything `fit` needs to know, with defaults that suit the course's small models.

    lr is for AdamW at batch 64 (the paper's 4e-3 is for batch 4096); drop path is a model option
    (`create_model(..., drop_path_rate=...)`), not a training one.
    """
    epochs: int = 10
    batch_size: int = 64             # used when fit builds the DataLoaders itself
    lr: float = 1e-3                 # peak learning rate, reached at the end of warmup
    min_lr: float = 1e-6             # where the cosine ends
    weight_decay: float = 0.05       # AdamW; not applied to 1-D parameters (norms, biases, scales)
    warmup_fraction: float = 0.05    # share of all steps spent in the linear warmup
    label_smoothing: float = 0.1     # classification only
    mixup_alpha: float = 0.0         # 0 = off; classification only
    grad_clip: Optional[float] = 1.0  # max global gradient norm; None = no clipping
    task: str = "classification"     # or "regression"
    amp: str = "auto"                # "auto" (CUDA: bf16 if supported, else fp16; elsewhere off), "bf16", "fp16", "off"
    channels_last: bool = False      # memory layout for 4-D inputs; can be faster on GPUs
    seed: int = 0
    device: Optional[str] = None     # None = unirep_lite.env.default_device()
    num_workers: int = 0             # for DataLoaders that fit builds
    data_on_device: bool = True      # fixed splits live on the training device as tensors (see `batches`)
    progress: bool = True            # tqdm bar with live loss and metric
    checkpoint_path: Optional[str] = None  # saved (atomically) after every epoch when set
    reparameterize: Optional[bool] = None  # None = yes for UniRepLKNet models (or a given fn)
    deploy_path: Optional[str] = None      # None = "<checkpoint stem>.deploy.pt" if checkpointing
    overwrite: bool = False                # replace an existing checkpoint/deploy file (else resume_from it)

    def __post_init__(self):
        for name in ("lr", "min_lr", "weight_decay", "warmup_fraction", "label_smoothing", "mixup_alpha"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if self.grad_clip is not None and not math.isfinite(self.grad_clip):
            raise ValueError(f"grad_clip must be a finite number or None, got {self.grad_clip!r}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"expected 0 <= min_lr <= lr and lr > 0, got lr={self.lr}, min_lr={self.min_lr}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.mixup_alpha < 0:
            raise ValueError(f"mixup_alpha must be >= 0 (0 = off), got {self.mixup_alpha}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.task == "regression" and self.mixup_alpha > 0:
            raise ValueError("mixup is for classification; set mixup_alpha=0 for regression")


# ----------------------------------------------------------------------------- pure functions

def lr_at(step: int, total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> float:
    """Learning rate for update number `step` (0-based): linear warmup to lr, then cosine to min_lr."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def mixup(x: Tensor, lam: float, perm: Tensor) -> Tensor:
    """Blend every sample with another one: lam * x + (1 - lam) * x[perm] (Zhang et al., 2018)."""
    return lam * x + (1.0 - lam) * x[perm]


def regression_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Mean squared and mean absolute error over all elements."""
    _check_same_shape(pred, target)
    err = pred.float() - target.float()
    return {"mse": err.pow(2).mean().item(), "mae": err.abs().mean().item()}


def _check_same_shape(pred: Tensor, target: Tensor) -> None:
    # MSE would silently broadcast (B, 1) against (B,) into (B, B); refuse instead.
    if pred.shape != target.shape:
        raise ValueError(f"regression expects outputs and targets of the same shape, got outputs "
                         f"{tuple(pred.shape)} and targets {tuple(target.shape)}")


# ----------------------------------------------------------------------------- history

@dataclass
class History:
    """What happened, epoch by epoch (and the training loss step by step), ready to plot.

    The training loss includes label smoothing and mixup, the validation loss is plain
    cross-entropy, so the validation curve can sit below the training one. For regression the
    metric is the MAE (lower is better); for classification the accuracy.
    """
    metric_name: str = "accuracy"
    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_metric: list = field(default_factory=list)
    lr: list = field(default_factory=list)           # learning rate at the end of the epoch
    epoch_time: list = field(default_factory=list)   # seconds of training + validation
    step_loss: list = field(default_factory=list)    # training loss of every step
    step_lr: list = field(default_factory=list)      # learning rate used by every step

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def plot(self):
        """Losses, the validation metric and the learning rate, one panel each; returns the figure."""
        return plot_history(self)


@dataclass
class FitResult:
    """What `fit` returns: the trained model (the same object you passed), its history, and the
    deploy model with the numbers of its check when the run ended with reparameterization."""
    model: nn.Module
    history: History
    deploy_model: Optional[nn.Module] = None
    deploy_check: Optional[dict] = None
    checkpoint_path: Optional[Path] = None
    deploy_path: Optional[Path] = None
    finished: bool = True   # False when stopped early with stop_after (resume to continue)


# ----------------------------------------------------------------------------- data

def _seed_worker(worker_id: int) -> None:
    # Each DataLoader worker gets a distinct torch seed from the loader's generator; give
    # NumPy and Python the same one so augmentations in workers repeat too.
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def make_batches(data, batch_size: int, device: torch.device, *, shuffle: bool = False, seed: int = 0,
                 num_workers: int = 0, drop_last: bool = False, on_device: bool = True, what: str = "data"):
    """Batches of `data` for `device`: `batches.TensorBatches` where the samples are fixed tensors
    that fit on the device (and `on_device`), else a DataLoader (`make_loader`)."""
    if isinstance(data, (DataLoader, TensorBatches)):
        return data
    found = device_batches(data, batch_size, device, shuffle=shuffle, seed=seed, drop_last=drop_last) \
        if on_device else None
    if found is not None and found.dataset_size == 0:
        raise ValueError(f"the {what} is empty (no samples)")
    return found or make_loader(data, batch_size, shuffle, seed=seed, num_workers=num_workers,
                                drop_last=drop_last, what=what)


def make_loader(data, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0,
                drop_last: bool = False, what: str = "data") -> DataLoader:
    """A DataLoader from a DataLoader (returned as is), a Dataset, or a tuple (inputs, targets) of tensors."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        if len(data[0]) != len(data[1]):
            raise ValueError(f"inputs and targets must have the same length, got {len(data[0])} "
                             f"and {len(data[1])}")
        data = TensorDataset(*data)
    if not isinstance(data, Dataset):
        raise ValueError("expected a DataLoader, a Dataset, or a tuple (inputs, targets) of tensors, "
                         f"got {type(data).__name__}")
    if hasattr(data, "__len__") and len(data) == 0:
        raise ValueError(f"the {what} is empty (a {type(data).__name__} of length 0)")
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=num_workers, worker_init_fn=_seed_worker, generator=generator,
                      pin_memory=torch.cuda.is_available())


def _split_batch(batch) -> tuple[Any, Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError("every batch must be a pair (inputs, targets); got "
                     f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}")


def _to_device(x, device: torch.device, channels_last: bool):
    if isinstance(x, Tensor):
        x = x.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
    if isinstance(x, (tuple, list)):
        return type(x)(_to_device(t, device, channels_last) for t in x)
    return x


def _batch_size(x) -> int:
    return len(x[0]) if isinstance(x, (tuple, list)) else len(x)


# ----------------------------------------------------------------------------- precision

def _amp_dtype(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype, or None for plain float32: on CUDA "auto" picks bf16 where supported, else
    fp16; on other devices only an explicit "bf16" turns it on (a CPU is rarely faster in bf16)."""
    if mode == "off":
        return None
    if device.type == "cuda":
        if mode == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if mode == "bf16" else torch.float16
    return torch.bfloat16 if mode == "bf16" else None


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


# ----------------------------------------------------------------------------- evaluation

def _loss(out: Tensor, y: Tensor, task: str, label_smoothing: float = 0.0) -> Tensor:
    out = out.float()
    if task == "classification":
        if out.dim() != 2:
            raise ValueError(f"classification expects logits of shape (B, num_classes), got {tuple(out.shape)}")
        _check_labels(y, out.shape[1])
        return F.cross_entropy(out, y, label_smoothing=label_smoothing)
    _check_same_shape(out, y)
    return F.mse_loss(out, y.float())


def _check_labels(y: Tensor, num_classes: int) -> None:
    # cross_entropy would skip -100 ("ignore") silently, and an all-ignored batch gives NaN
    if y.dtype.is_floating_point or y.dim() != 1:
        raise ValueError(f"classification expects integer class labels of shape (B,), got {y.dtype} "
                         f"of shape {tuple(y.shape)}")
    lo, hi = y.aminmax()
    if lo.item() < 0 or hi.item() >= num_classes:
        raise ValueError(f"class labels must be in [0, {num_classes}) for a model with {num_classes} outputs, "
                         f"got labels from {lo.item()} to {hi.item()} (-100 'ignore' labels are not supported)")


@torch.no_grad()
def predict(model: nn.Module, data, *, device=None, batch_size: int = 256, amp: str = "off",
            channels_last: bool = False) -> tuple[Tensor, Tensor]:
    """Run `model` in eval mode over `data`; return (outputs, targets) on the CPU, in order."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loader = make_batches(data, batch_size, device)
    dtype = _amp_dtype(amp, device)
    was_training = model.training
    model.eval()
    outs, ys = [], []
    try:
        for batch in loader:
            x, y = _split_batch(batch)
            with _autocast(device, dtype):
                out = model(_to_device(x, device, channels_last))
            outs.append(out.float().cpu())
            ys.append(y.cpu())
    finally:
        model.train(was_training)
    if not outs:
        raise ValueError("the evaluation data is empty")
    return torch.cat(outs), torch.cat(ys)


def evaluate(model: nn.Module, data, task: str = "classification", *, device=None,
             batch_size: int = 256, amp: str = "off", channels_last: bool = False,
             return_predictions: bool = False) -> dict:
    """Loss and metrics of `model` on `data` (eval mode, no gradient).

    classification: {"loss" (plain cross-entropy), "accuracy", "n"};
    regression: {"loss" (= mse), "mse", "mae", "n"}.
    With return_predictions=True also "outputs" and "targets" (CPU tensors) and, for
    classification, "predictions" (argmax class per sample), e.g. for a confusion matrix.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    out, y = predict(model, data, device=device, batch_size=batch_size, amp=amp, channels_last=channels_last)
    bad = int((~torch.isfinite(out)).flatten(1).any(1).sum()) if out.dim() > 1 else int((~torch.isfinite(out)).sum())
    result: dict[str, Any] = {"loss": _loss(out, y, task).item(), "n": len(y), "nonfinite": bad}
    if task == "classification":
        pred = out.argmax(dim=1)
        result["accuracy"] = (pred == y).float().mean().item()
    else:
        result.update(regression_metrics(out, y))
    if bad:  # no metric next to a NaN loss as if it meant something
        for k in ("accuracy", "mse", "mae"):
            if k in result:
                result[k] = float("nan")
        warnings.warn(f"{bad} of {len(y)} samples got NaN/inf outputs: the model is broken (loss "
                      f"{result['loss']}); metrics are reported as NaN", RuntimeWarning, stacklevel=2)
    if return_predictions:
        result.update(outputs=out, targets=y)
        if task == "classification":
            result["predictions"] = pred
    return result


# ----------------------------------------------------------------------------- the loop

def fit(model: nn.Module, train_data, val_data=None, config: Optional[TrainConfig] = None, *,
        resume_from=None, stop_after: Optional[int] = None,
        reparameterize_fn: Optional[Callable[[nn.Module], nn.Module]] = None) -> FitResult:
    """Train `model` on `train_data`, validating on `val_data` after every epoch.

    Data: DataLoaders, Datasets or (inputs, targets) tensor tuples; batches are (inputs, targets).
        Tensors and the course's datasets are kept on the training device and batched by indexing
        (`batches`; config.data_on_device=False for DataLoaders instead), same order, same result.
    resume_from: a checkpoint written by an earlier call with the same config; training continues
        after its last epoch and ends exactly where an uninterrupted run would.
    stop_after: end this call after that many epochs in total (the schedule still spans
        config.epochs); with config.checkpoint_path set, resume later, e.g. in a new Colab session.
    reparameterize_fn: turns the trained model into its deploy structure; default
        unirep_lite.reparameterize, used automatically for UniRepLKNet models.
    Seed (unirep_lite.env.seed_everything) before creating the model so its initial weights repeat;
    fit seeds everything else from config.seed.

    Returns a FitResult: .model (trained, in eval mode), .history (.plot() it), and for a finished
    run that was reparameterized .deploy_model and .deploy_check ({"n", "max_abs_diff", "agreement"}).

        result = fit(model, (x_train, y_train), (x_val, y_val), TrainConfig(epochs=5))
        result.history.plot()
    """
    cfg = config or TrainConfig()
    if stop_after is not None and (not isinstance(stop_after, int) or stop_after < 1):
        raise ValueError(f"stop_after must be an integer >= 1 (epochs in total), got {stop_after!r}")
    device = torch.device(cfg.device) if cfg.device else default_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"config.device is {cfg.device!r} but no CUDA GPU is available; use None (automatic) or 'cpu'")
    task = cfg.task
    ckpt_path, deploy_path = _check_outputs(cfg, resume_from)  # now, not after the first epoch
    _check_finite_model(model, "before training")
    seed_everything(cfg.seed)

    train_loader = make_batches(train_data, cfg.batch_size, device, shuffle=True, seed=cfg.seed,
                                num_workers=cfg.num_workers, drop_last=_drop_last(train_data, cfg.batch_size),
                                on_device=cfg.data_on_device, what="training data")
    val_loader = None if val_data is None else make_batches(val_data, cfg.batch_size, device,
                                                            num_workers=cfg.num_workers, on_device=cfg.data_on_device,
                                                            what="validation data")
    if val_loader is not None and _length(val_loader) == 0:
        raise ValueError("the validation data gives no batches; pass val_data=None to train without validation")
    try:
        steps_per_epoch = len(train_loader)
    except TypeError:
        raise ValueError("fit needs training data with a length (a map-style Dataset or a sized loader)")
    if steps_per_epoch == 0:
        raise ValueError("the training data gives no batches (is it empty, or smaller than batch_size "
                         "with drop_last?)")
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_fraction * total_steps)

    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    # LambdaLR multiplies the base lr by this factor; the shape itself lives in lr_at.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_at(s, total_steps, warmup_steps, cfg.lr, cfg.min_lr) / cfg.lr)
    amp_dtype = _amp_dtype(cfg.amp, device)
    # bf16 has float32's range and needs no loss scaling; fp16 does.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    history = History(metric_name="accuracy" if task == "classification" else "mae")
    start_epoch, step = 0, 0

    if resume_from is not None:
        state = load_training_state(
            resume_from, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
            check=lambda saved: _check_same_run(saved, cfg, steps_per_epoch, resume_from))
        start_epoch, step = state["epoch"], state["step"]
        history = History.from_dict(state["history"])

    end_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    bar = _progress(cfg.progress, total=end_epoch * steps_per_epoch, initial=step)
    try:
        for epoch in range(start_epoch, end_epoch):
            t0 = time.perf_counter()
            _reseed_loader(train_loader, cfg.seed, epoch)
            train_loss = _train_epoch(model, train_loader, optimizer, scheduler, scaler, amp_dtype, cfg,
                                      device, history, bar, epoch)
            step += steps_per_epoch
            val_loss = val_metric = float("nan")
            if val_loader is not None:
                r = evaluate(model, val_loader, task, device=device, amp=cfg.amp, channels_last=cfg.channels_last)
                val_loss, val_metric = r["loss"], r[history.metric_name]
            history.epoch.append(epoch + 1)
            history.train_loss.append(train_loss)
            history.val_loss.append(val_loss)
            history.val_metric.append(val_metric)
            history.lr.append(optimizer.param_groups[0]["lr"])
            history.epoch_time.append(time.perf_counter() - t0)
            if bar is not None:
                bar.set_postfix(_postfix(epoch, cfg.epochs, history.step_loss[-1], history))
            if ckpt_path is not None:
                save_training_state(ckpt_path, model=model, optimizer=optimizer, scheduler=scheduler,
                                    scaler=scaler, epoch=epoch + 1, step=step, steps_per_epoch=steps_per_epoch,
                                    history=history.to_dict(), config=dataclasses.asdict(cfg))
    finally:
        if bar is not None:
            bar.close()

    model.eval()
    result = FitResult(model=model, history=history, checkpoint_path=ckpt_path,
                       finished=(history.epoch[-1] if history.epoch else 0) >= cfg.epochs)
    if not result.finished:
        return result
    want = cfg.reparameterize if cfg.reparameterize is not None else (
        reparameterize_fn is not None or _is_unireplknet(model))
    if want:
        check_data = val_loader if val_loader is not None else train_loader  # any data will do
        result.deploy_model, result.deploy_check = _deploy(model, reparameterize_fn or reparameterize,
                                                           check_data, task, device)
        if deploy_path is not None:
            sd = result.deploy_model.state_dict()
            result.deploy_path = atomic_save({"format": DEPLOY_FORMAT, "model": sd,
                                              "model_sha256": state_dict_digest(sd)}, deploy_path)
    return result


def _check_outputs(cfg: TrainConfig, resume_from) -> tuple[Optional[Path], Optional[Path]]:
    """The checkpoint and deploy paths, checked before any work: writable, and an existing file
    only replaced when this run resumes from it or `overwrite=True` says so."""
    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    deploy = Path(cfg.deploy_path) if cfg.deploy_path else (
        ckpt.with_name(ckpt.stem + ".deploy.pt") if ckpt else None)
    for what, path in (("checkpoint_path", ckpt), ("deploy_path", deploy)):
        if path is None:
            continue
        check_output_path(path, f"config.{what}", make_parents=True)
        if path.exists() and not cfg.overwrite and resume_from is None:
            raise FileExistsError(f"config.{what} {path} already exists (an earlier run's); pass "
                                  f"resume_from={str(ckpt or path)!r} to continue that run, or "
                                  "TrainConfig(overwrite=True) to replace it")
    return ckpt, deploy


def _check_finite_model(model: nn.Module, when: str) -> None:
    bad = [n for n, t in list(model.named_parameters()) + list(model.named_buffers())
           if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise FloatingPointError(f"the model has NaN/inf values {when}: {', '.join(bad[:5])}"
                                 + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))


def _length(loader) -> Optional[int]:
    try:
        return len(loader)
    except TypeError:
        return None


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # Decay only matrices and kernels; norms, biases, GRN and layer-scale vectors are left alone.
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _is_unireplknet(model: nn.Module) -> bool:
    return any(isinstance(m, UniRepLKNetBlock) for m in model.modules())


def _train_epoch(model, loader, optimizer, scheduler, scaler, amp_dtype, cfg: TrainConfig, device,
                 history: History, bar, epoch: int) -> float:
    """One pass over the training data, one optimizer step per batch; returns the mean loss."""
    model.train()
    loss_sum, n_seen = 0.0, 0
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    state = list(model.parameters()) + list(model.buffers())  # BatchNorm statistics and counters too
    floats = [t for t in state if t.is_floating_point()]
    last_good = [t.detach().clone() for t in state]  # the model after the last good step
    for batch in loader:
        x, y = _split_batch(batch)
        if has_bn and _batch_size(x) < 2:
            raise ValueError(f"a training batch of {_batch_size(x)} sample (step {len(history.step_loss) + 1}): "
                             "BatchNorm in training needs at least 2; use more data, another batch_size, "
                             "or a loader with drop_last=True")
        x, y = _to_device(x, device, cfg.channels_last), y.to(device, non_blocking=True)
        with torch.no_grad():
            torch._foreach_copy_(last_good, state)
        try:
            loss_value = _train_step(model, x, y, optimizer, scheduler, scaler, amp_dtype, cfg, history, epoch)
        except BaseException:  # nothing of a failed step stays in the model: back to the last good step
            with torch.no_grad():
                torch._foreach_copy_(state, last_good)
            raise
        with torch.no_grad():
            finite = bool(torch.isfinite(torch.stack(torch._foreach_norm(floats, float("inf")))).all())
        if not finite:
            with torch.no_grad():
                torch._foreach_copy_(state, last_good)
            history.step_lr.pop()
            raise _non_finite("the parameters became NaN/inf after the update", len(history.step_loss) + 1, epoch)
        history.step_loss.append(loss_value)
        bs = _batch_size(x)
        loss_sum, n_seen = loss_sum + loss_value * bs, n_seen + bs
        if bar is not None:
            bar.update(1)
            bar.set_postfix(_postfix(epoch, cfg.epochs, loss_value, history), refresh=False)
    return loss_sum / n_seen


def _non_finite(what: str, step: int, epoch: int) -> FloatingPointError:
    return FloatingPointError(f"{what} at step {step} (epoch {epoch + 1}); the step was not applied and the "
                              "model is as it was after the last good step; try a lower lr, grad_clip, or "
                              "check the data for NaN/inf")


def _train_step(model, x, y, optimizer, scheduler, scaler, amp_dtype, cfg: TrainConfig, history: History,
                epoch: int) -> float:
    """Forward, checks, backward, checks, update; returns the loss. Raises before the update on NaN/inf."""
    device, task = y.device, cfg.task
    smoothing = cfg.label_smoothing if task == "classification" else 0.0
    step_no = len(history.step_loss) + 1
    with _autocast(device, amp_dtype):
        if cfg.mixup_alpha > 0:
            lam = float(np.random.beta(cfg.mixup_alpha, cfg.mixup_alpha))
            perm = torch.randperm(len(y)).to(device)
            out = model(mixup(x, lam, perm))
            # Mixing the inputs mixes the targets: the loss is the same blend of both labels' losses.
            loss = lam * _loss(out, y, task, smoothing) + (1 - lam) * _loss(out, y[perm], task, smoothing)
        else:
            loss = _loss(model(x), y, task, smoothing)
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        raise _non_finite(f"the training loss became {loss_value}", step_no, epoch)
    history.step_lr.append(optimizer.param_groups[0]["lr"])
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.grad_clip is not None or not scaler.is_enabled():
        scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
        # max_norm=inf only measures; fp16 loss scaling skips non-finite steps by itself
        norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
        if not scaler.is_enabled() and not torch.isfinite(norm):
            history.step_lr.pop()
            raise _non_finite(f"the gradient norm became {norm.item()}", step_no, epoch)
    scaler.step(optimizer)
    scaler.update()
    with warnings.catch_warnings():
        # fp16 may skip a step on overflow; the schedule still advances, on purpose.
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        scheduler.step()
    return loss_value


def _drop_last(train_data, batch_size: int) -> bool:
    # A last batch of one sample breaks BatchNorm in training mode; drop the ragged batch when
    # there are full ones (only for loaders fit builds).
    try:
        return len(train_data[0] if isinstance(train_data, (tuple, list)) else train_data) > batch_size
    except TypeError:
        return False


def _reseed_loader(loader, seed: int, epoch: int) -> None:
    """Make this epoch's shuffle depend on (seed, epoch) only, so a resumed run shuffles the same.

    Loaders without a generator draw their shuffle seed from torch's global RNG, which the
    checkpoint restores, so they repeat as well.
    """
    if isinstance(loader, TensorBatches):
        loader.set_epoch(epoch)
        return
    gen = getattr(loader, "generator", None)
    if isinstance(gen, torch.Generator):
        gen.manual_seed(seed * 100_003 + epoch)


def _check_same_run(ckpt: dict, cfg: TrainConfig, steps_per_epoch: int, path) -> None:
    saved = ckpt.get("config", {})
    now = dataclasses.asdict(cfg)
    diffs = [f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in _RUN_FIELDS if saved.get(k) != now[k]]
    if ckpt.get("steps_per_epoch") != steps_per_epoch:
        diffs.append(f"steps per epoch: saved {ckpt.get('steps_per_epoch')}, now {steps_per_epoch} "
                     "(different training data or batch size)")
    if diffs:
        raise ValueError(f"cannot resume from {path}: the run's settings differ ({'; '.join(diffs)}). "
                         "Resume with the same TrainConfig, or start a new run from its weights "
                         "with unirep_lite.load_checkpoint(model, path).")


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    return progress_bar(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)


def _postfix(epoch: int, epochs: int, loss: float, history: History) -> dict:
    post = {"epoch": f"{epoch + 1}/{epochs}", "loss": f"{loss:.4f}"}
    if history.val_metric and not math.isnan(history.val_metric[-1]):
        post[f"val_{history.metric_name}"] = f"{history.val_metric[-1]:.4f}"
    return post


@torch.no_grad()
def _deploy(model: nn.Module, reparameterize_fn, loader: DataLoader, task: str,
            device: torch.device) -> tuple[nn.Module, dict]:
    """Reparameterize and check, in float32, that the deploy model predicts what the trained one does.

    Both models see each batch together, so shuffling or random augmentation in `loader` can't
    make them disagree.
    """
    model.eval()
    deploy_model = reparameterize_fn(model).to(device).eval()
    n, agree, max_abs_diff, scale = 0, 0, 0.0, 0.0
    for batch in loader:
        x, _ = _split_batch(batch)
        x = _to_device(x, device, channels_last=False)
        ref, out = model(x).float(), deploy_model(x).float()
        n += len(ref)
        diff = (out - ref).abs().max().item()
        if not (torch.isfinite(ref).all() and torch.isfinite(out).all()):
            diff = float("nan")  # max() would drop a NaN: keep it, it fails the check below
        max_abs_diff = float("nan") if math.isnan(diff) or math.isnan(max_abs_diff) else max(max_abs_diff, diff)
        scale = max(scale, ref.abs().max().item())
        if task == "classification":
            agree += (out.argmax(1) == ref.argmax(1)).sum().item()
    check = {"n": n, "max_abs_diff": max_abs_diff}
    if math.isnan(max_abs_diff):
        check["agreement"] = agree / n if task == "classification" else None
        ok = False
    elif task == "classification":
        check["agreement"] = agree / n
        ok = agree == n
    else:
        # float32 reassociation in the merged kernels moves outputs by ~1e-6 relative; allow 1e-4.
        ok = max_abs_diff <= 1e-4 * max(1.0, scale)
    if not ok:
        raise RuntimeError(f"the reparameterized model does not reproduce the trained one: {check}")
    return deploy_model, check
