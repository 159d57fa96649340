"""Losses and metrics: the task's loss with its label checks, `predict` and `evaluate`."""
from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..batches import make_batches, sample_shard, split_batch, to_device
from .amp import autocast, autocast_dtype
from .config import TASKS
from .distributed import World, collective, gather


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


def task_loss(out: Tensor, y: Tensor, task: str, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy (classification) or MSE (regression) in float32, after checking the targets."""
    out = out.float()
    if task == "classification":
        if out.dim() != 2:
            raise ValueError(f"classification expects logits of shape (B, num_classes), got {tuple(out.shape)}")
        check_labels(y, out.shape[1])
        return F.cross_entropy(out, y, label_smoothing=label_smoothing)
    _check_same_shape(out, y)
    return F.mse_loss(out, y.float())


def check_labels(y: Tensor, num_classes: int) -> None:
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
    """Run `model` in eval mode over `data`; return (outputs, targets) on the CPU, in order.

    Inside a process group (torchrun) every process must call it: each runs its part of `data`, and
    all get the whole.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    world = World.current()
    part = sample_shard(data, world.rank, world.size)
    loader = make_batches(part, batch_size, device) if not world.distributed or _size(part) else ()
    dtype = autocast_dtype(amp, device)
    was_training = model.training
    model.eval()
    outs, ys = [], []
    try:
        for batch in loader:
            x, y = split_batch(batch)
            with autocast(device, dtype):
                out = model(to_device(x, device, channels_last))
            outs.append(out.float().cpu())
            ys.append(y.cpu())
    finally:
        model.train(was_training)
    if world.distributed:  # a process with no samples (fewer samples than processes) sends None
        with collective("gathering the predictions"):
            parts = [p for p in gather((torch.cat(outs), torch.cat(ys)) if outs else None) if p is not None]
        outs, ys = [p[0] for p in parts], [p[1] for p in parts]
    if not outs:
        raise ValueError("the evaluation data is empty")
    return torch.cat(outs), torch.cat(ys)


def _size(part) -> int:
    """Samples in a part made by `sample_shard`: a tensor pair, a Subset or a DataLoader of one."""
    return len(part[0]) if isinstance(part, tuple) else len(getattr(part, "dataset", part))


def evaluate(model: nn.Module, data, task: str = "classification", *, device=None,
             batch_size: int = 256, amp: str = "off", channels_last: bool = False,
             return_predictions: bool = False) -> dict:
    """Loss and metrics of `model` on `data` (eval mode, no gradient).

    classification: {"loss" (plain cross-entropy), "accuracy", "n"};
    regression: {"loss" (= mse), "mse", "mae", "n"}.
    With return_predictions=True also "outputs" and "targets" (CPU tensors) and, for
    classification, "predictions" (argmax class per sample), e.g. for a confusion matrix.
    Under torchrun every process must call it: each evaluates its part, all get the whole's numbers.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    out, y = predict(model, data, device=device, batch_size=batch_size, amp=amp, channels_last=channels_last)
    bad = int((~torch.isfinite(out)).flatten(1).any(1).sum()) if out.dim() > 1 else int((~torch.isfinite(out)).sum())
    result: dict[str, Any] = {"loss": task_loss(out, y, task).item(), "n": len(y), "nonfinite": bad}
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
