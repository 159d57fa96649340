"""One training step, exactly as `fit` takes it, and what it needs (optimizer, schedule, scaler).

`prepare` builds the state, `train_step` takes one step on a batch; `fit` loops over them, and the
benchmark times the same call:

    state = prepare(model, config, total_steps, device)
    loss = train_step(model, x, y, state)   # x, y already on the device

On several processes `model` is the DistributedDataParallel copy and x, y this process's part of the
global batch; the step weighs each part by its size, so the update is the one-process update.
"""
from __future__ import annotations

import math
import re
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from .amp import autocast, autocast_dtype
from .config import TrainConfig
from .distributed import World, all_sum, collective
from .evaluation import task_loss


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


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's groups: decay only matrices and kernels; norms, biases, GRN and layer-scale vectors
    are left alone."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


@dataclass
class StepState:
    """What a training step updates besides the model, and the settings it follows."""
    config: TrainConfig
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: Optional[torch.dtype]   # autocast dtype; None = float32
    world: World = field(default_factory=World)  # the processes that take each step together
    samples: int = 0                   # samples of the last step's global batch

    @property
    def lr(self) -> float:
        """The learning rate the next step will use."""
        return self.optimizer.param_groups[0]["lr"]


def prepare(model: nn.Module, config: TrainConfig, total_steps: int, device,
            world: Optional[World] = None) -> StepState:
    """Move `model` to `device` (channels-last if configured) and build AdamW, the warmup + cosine
    schedule over `total_steps`, the fp16 grad scaler and the autocast dtype, as `fit` does;
    `world`: the processes that train together (default: this one alone)."""
    device = torch.device(device)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr)
    warmup_steps = round(config.warmup_fraction * total_steps)
    # LambdaLR multiplies the base lr by this factor; the shape itself lives in lr_at.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_at(s, total_steps, warmup_steps, config.lr, config.min_lr) / config.lr)
    amp_dtype = autocast_dtype(config.amp, device)
    # bf16 has float32's range and needs no loss scaling; fp16 does.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    return StepState(config, optimizer, scheduler, scaler, amp_dtype, world or World())


def non_finite(what: str, step: int, epoch: int) -> FloatingPointError:
    """The error for a step that went NaN/inf, saying where and what to try."""
    return FloatingPointError(f"{what} at step {step} (epoch {epoch + 1}); the step was not applied and the "
                              "model is as it was after the last good step; try a lower lr, grad_clip, or "
                              "check the data for NaN/inf")


def train_step(model: nn.Module, x, y: Tensor, state: StepState, *, step: int = 1, epoch: int = 0) -> float:
    """Forward, checks, backward, checks, update; returns the loss.

    The model must be in training mode and x, y on its device. Mixed precision, label smoothing,
    mixup and gradient clipping follow `state.config`. Raises a FloatingPointError (naming `step`
    and `epoch`) before the update when the loss or the gradient norm is NaN/inf.
    """
    cfg, optimizer, scaler = state.config, state.optimizer, state.scaler
    device, task = y.device, cfg.task
    smoothing = cfg.label_smoothing if task == "classification" else 0.0
    with autocast(device, state.amp_dtype):
        if cfg.mixup_alpha > 0:
            lam = float(np.random.beta(cfg.mixup_alpha, cfg.mixup_alpha))
            perm = torch.randperm(len(y)).to(device)
            out = model(mixup(x, lam, perm))
            # Mixing the inputs mixes the targets: the loss is the same blend of both labels' losses.
            loss = lam * task_loss(out, y, task, smoothing) + (1 - lam) * task_loss(out, y[perm], task, smoothing)
        else:
            loss = task_loss(model(x), y, task, smoothing)
    n = len(y)
    if state.world.distributed:
        # The global batch's mean loss, so every process logs it and agrees on a NaN; DDP averages
        # the processes' gradients, so weigh each part's mean by its share of the global batch.
        with collective(f"taking step {step}"):
            loss_sum, total = all_sum([loss.item() * n, n], device)
        loss_value, state.samples, share = loss_sum / total, int(total), n * state.world.size / total
    else:
        loss_value, state.samples, share = loss.item(), n, 1.0
    if not math.isfinite(loss_value):
        raise non_finite(f"the training loss became {loss_value}", step, epoch)
    optimizer.zero_grad(set_to_none=True)
    with collective(f"averaging the gradients of step {step}") if state.world.distributed else nullcontext():
        scaler.scale(loss * share if share != 1.0 else loss).backward()
    if cfg.grad_clip is not None or not scaler.is_enabled():
        scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
        # max_norm=inf only measures; fp16 loss scaling skips non-finite steps by itself
        norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
        if not scaler.is_enabled() and not torch.isfinite(norm):
            raise non_finite(f"the gradient norm became {norm.item()}", step, epoch)
    scaler.step(optimizer)
    scaler.update()
    with warnings.catch_warnings():
        # fp16 may skip a step on overflow; the schedule still advances, on purpose.
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        state.scheduler.step()
    return loss_value
