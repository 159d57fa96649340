"""The steps the modality notebooks (05-08) share, so each shows only what is specific to its data.

    runs = train_variants(recipe, ["unireplknet_a"], train_set, val_set, recipe.config(SIZE), SIZE, device=DEVICE)
    test = evaluate(runs["unireplknet_a"].model, test_set, return_predictions=True)
    plot_confusion(test["targets"], test["predictions"], recipe.classes)
    check = check_deploy(runs["unireplknet_a"], test_set, test)   # the deploy model on the test split

Training, evaluation and reparameterization themselves live in `train` and `model`; this module only
times, prints and draws around them.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import checks
from .runs import train_runs
from .runsize import RunSize
from .stats import count_params
from .train import FitResult, TrainConfig, evaluate


def train_variants(recipe, variants: Sequence[str], train_data, val_data, config: TrainConfig,
                   size: RunSize | str, lk_size: int = 13, seed: int = 0, device=None,
                   **model_kwargs) -> dict[str, FitResult]:
    """Train `recipe.make_model(variant, size=size)` for each variant from the same seed (`runs.train_runs`).

    Returns variant -> `train.fit`'s result with `.seconds`, the wall time of its training (the
    notebooks compare runs by it). `model_kwargs` go to `recipe.make_model` (e.g. smaller depths).
    """
    size = RunSize.parse(size)
    builders = {v: (lambda v=v: recipe.make_model(variant=v, lk_size=lk_size, size=size, **model_kwargs))
                for v in variants}
    return train_runs(builders, train_data, val_data, config, seed=seed, device=device)


def confusion_matrix(targets, predictions, num_classes: int) -> np.ndarray:
    """counts[t, p]: how many samples of true class t were predicted as class p."""
    num_classes = checks.positive_int("num_classes", num_classes)
    targets, predictions = np.asarray(targets), np.asarray(predictions)
    if targets.shape != predictions.shape or targets.ndim != 1:
        raise ValueError(f"targets and predictions must be 1-D and of one length, got shapes {targets.shape} "
                         f"and {predictions.shape}")
    for name, labels in (("targets", targets), ("predictions", predictions)):
        if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                            or labels.max() >= num_classes):
            raise ValueError(f"{name} must be integer classes in [0, {num_classes}), got values from "
                             f"{labels.min()} to {labels.max()} ({labels.dtype})")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (targets, predictions), 1)
    return counts


def plot_confusion(targets, predictions, classes: Sequence[str], title: str = "test confusion matrix",
                   ax=None):
    """The confusion matrix as a picture: true class down, predicted class across, counts written in."""
    counts = confusion_matrix(targets, predictions, len(classes))
    if ax is None:
        side = min(5.5, 2.0 + 0.35 * len(classes))  # 10 classes: 5.5 x 5 inches, fits a book page
        _, ax = plt.subplots(figsize=(side, side - 0.5))
    ax.imshow(counts, cmap="Blues")
    for (t, p), n in np.ndenumerate(counts):
        if n:
            ax.text(p, t, n, ha="center", va="center", fontsize=9, color="w" if n > counts.max() / 2 else "k")
    slant = max(len(str(c)) for c in classes) > 2  # slant names, not digits
    ax.set_xticks(range(len(classes)), classes, rotation=45 if slant else 0, ha="right" if slant else "center",
                  fontsize=9)
    ax.set_yticks(range(len(classes)), classes, fontsize=9)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set(xlabel="predicted", ylabel="true", title=f"{title} ({accuracy:.1%} correct)")
    ax.figure.tight_layout()
    return ax.figure


def check_deploy(result: FitResult, data, trained: dict | None = None, task: str = "classification") -> dict:
    """The deploy model (`result.deploy_model`, merged by `fit`) against the trained one on `data`.

    Prints fit's own check (on the validation split), the parameter counts and, on `data`, how many
    predictions are identical and the largest output difference. `trained` is the trained model's
    `evaluate(..., return_predictions=True)` on `data` when you have it already. Returns
    {"trained", "deploy" (both evaluate dicts), "agreement", "max_abs_diff"}; the notebook asserts.
    """
    if result.deploy_model is None:
        raise ValueError("this run has no deploy model: train it with TrainConfig(reparameterize=True)")
    if trained is None:
        trained = evaluate(result.model, data, task=task, return_predictions=True)
    deploy = evaluate(result.deploy_model, data, task=task, return_predictions=True)
    diff = (deploy["outputs"] - trained["outputs"]).abs().max().item()
    if result.deploy_check:
        c = result.deploy_check
        print(f"fit's check on the validation split: {c['n']} samples, largest output difference "
              f"{c['max_abs_diff']:.1e}" + (f", {c['agreement']:.1%} identical predictions" if "agreement" in c else ""))
    print(f"parameters: trained {count_params(result.model):,} -> deploy {count_params(result.deploy_model):,}")
    check = {"trained": trained, "deploy": deploy, "max_abs_diff": diff}
    if task == "classification":
        check["agreement"] = (deploy["predictions"] == trained["predictions"]).float().mean().item()
        print(f"on {deploy['n']} samples: {check['agreement']:.1%} identical predictions, "
              f"largest logit difference {diff:.2e}")
    else:
        print(f"on {deploy['n']} samples: largest difference {diff:.2e}")
    return check
