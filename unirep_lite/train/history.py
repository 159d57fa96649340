"""History and FitResult: what a run did, epoch by epoch and step by step, and its plot.

Plotting needs only matplotlib, imported when a figure is drawn, so training never loads it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from torch import nn


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


def plot_history(history):
    """A `History` as three panels: losses, the validation metric, the learning rate."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    h = history
    # two rows, so the panels keep readable text in the book's ~7 inch column
    fig, axes = plt.subplot_mosaic([["loss", "loss"], ["metric", "lr"]], figsize=(7, 5.4))
    ax_loss, ax_metric, ax_lr = axes["loss"], axes["metric"], axes["lr"]
    # Per-step curves share the epoch axis: step i (0-based) ends at epoch (i + 1) / steps per epoch.
    steps_x = np.arange(1, len(h.step_loss) + 1) / (len(h.step_loss) / h.epoch[-1]) \
        if h.step_loss and h.epoch else np.array([])
    ax_loss.plot(steps_x, h.step_loss, color="tab:blue", alpha=0.3, lw=0.8, label="train (step)")
    ax_loss.plot(h.epoch, h.train_loss, "o-", color="tab:blue", label="train (epoch mean)")
    if _has_values(h.val_loss):
        ax_loss.plot(h.epoch, h.val_loss, "o-", color="tab:orange", label="validation")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_loss.legend(fontsize=9)
    title = f"validation {h.metric_name}"
    if _has_values(h.val_metric):
        ax_metric.plot(h.epoch, h.val_metric, "o-", color="tab:green")
        pick = np.nanargmax if h.metric_name == "accuracy" else np.nanargmin
        best = int(pick(np.array(h.val_metric, dtype=float)))
        title += f"\n(best {h.val_metric[best]:.3g} at epoch {h.epoch[best]})"  # two lines: clear of the lr panel
    else:
        ax_metric.text(0.5, 0.5, "no validation data", ha="center", va="center",
                       transform=ax_metric.transAxes, color="gray")
    ax_metric.set(title=title, xlabel="epoch")
    if h.step_lr:
        ax_lr.plot(steps_x[:len(h.step_lr)], h.step_lr, color="tab:purple")
    ax_lr.set(title="learning rate\n(per step)", xlabel="epoch")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    for ax in (ax_loss, ax_metric, ax_lr):
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    fig.tight_layout()
    return fig


def _has_values(xs: list) -> bool:
    return any(v is not None and not math.isnan(v) for v in xs)
