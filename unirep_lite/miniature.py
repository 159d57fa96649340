"""The five-modality miniature: the course's recipes (notebooks 05-09) at several kernel sizes.

Notebook 10 trains UniRepLKNet-A on each modality's recipe with K = 13 and smaller kernels, scores
every run on its held-out test split next to the recipe's trivial baseline, and calls a kernel-size
difference evidence only when it beats the spread over seeds. Saved runs of the command-line
trainer (`python -m unirep_lite.recipes NAME --json FILE`) join the table.

    runs = miniature.run(["shapes"], (13, 3), [0], SIZE, DEVICE)
    rows, lines = miniature.table(runs, (13, 3), SIZE)
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import recipes
from .runsize import RunSize

TRIVIAL = {"accuracy": "majority class", "mae": "persistence"}  # the baseline each run must beat
COLOURS = {13: "#d62728", 11: "#9467bd", 7: "#ff7f0e", 5: "#8c564b", 3: "#1f77b4"}  # by K, distinct


def plan(size: RunSize | str) -> tuple[list[str], tuple[int, ...], list[int]]:
    """What a run of `size` trains: (recipe names, kernel sizes, seeds). FAST trains the point
    clouds only (the recipe where K shows soonest), the CPU-sized run all five recipes once, the
    full run all five at K = 13, 7, 3 with three seeds."""
    size = RunSize.parse(size)
    if size.name == "fast":
        return ["shapes"], (13, 3), [0]
    if size.name == "cpu":
        return list(recipes.RECIPES), (13, 3), [0]
    return list(recipes.RECIPES), (13, 7, 3), [0, 1, 2]


def run(names: Sequence[str], ks: Sequence[int], seeds: Sequence[int], size: RunSize | str, device=None,
        log: Callable[[str], None] | None = print) -> list[dict]:
    """Train every recipe at every K from every seed; one dict per run (the saved-JSON fields)."""
    size = RunSize.parse(size)
    runs = []
    for name in names:
        recipe = recipes.get(name)
        overrides = dict(recipe.tiny_config) if size.small else {}
        for K in ks:
            for seed in seeds:
                t = time.perf_counter()
                r = recipes.run(name, size, device=device, lk_size=K, seed=seed, progress=False, **overrides)
                runs.append({"recipe": name, "lk_size": K, "seed": seed, "test": r.score,
                             "trivial": r.baselines[TRIVIAL[recipe.metric]],
                             "deploy_check": r.fit.deploy_check, "mode": size.name,
                             "wall_s": time.perf_counter() - t})
                if log is not None:
                    log(f"{name:8s} K={K:2d} seed {seed}: {recipe.metric} {r.score:.4f} "
                        f"({TRIVIAL[recipe.metric]} {runs[-1]['trivial']:.4f}) in {runs[-1]['wall_s']:.0f} s")
    return runs


def load_saved(folder: str | Path = "results") -> list[dict]:
    """Runs saved by `python -m unirep_lite.recipes ... --json` in `folder` (none if it is missing)."""
    folder = Path(folder)
    out = []
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        s = json.loads(f.read_text())
        metric = recipes.get(s["recipe"]).metric
        out.append({"recipe": s["recipe"], "lk_size": s["lk_size"], "seed": s["seed"], "test": s["test"],
                    "trivial": s["baselines"][TRIVIAL[metric]], "deploy_check": s["deploy_check"],
                    "mode": s["mode"] + f" ({f.name})", "wall_s": s["wall_s"]})
    return out


def scores(runs: list[dict], name: str, K: int, mode: str) -> np.ndarray:
    """Test scores of recipe `name` at kernel size K among the runs of `mode` ("fast", ...)."""
    return np.array([r["test"] for r in runs if r["recipe"] == name and r["lk_size"] == K
                     and r["mode"].startswith(mode)])


def _cell(xs: np.ndarray, metric: str) -> str:
    if len(xs) == 0:
        return "-"
    f = (lambda v: f"{100 * v:.1f}%") if metric == "accuracy" else (lambda v: f"{v:.3f}")
    return f(xs.mean()) + (f" ({f(xs.min())}-{f(xs.max())})" if len(xs) > 1 else "")


def verdict(k13: np.ndarray, k3: np.ndarray, higher_is_better: bool) -> str:
    """K = 13 against K = 3 on one recipe, against the paper's Table 13 (K = 13 better)."""
    gap = (1 if higher_is_better else -1) * (k13.mean() - k3.mean())
    several = min(len(k13), len(k3)) > 1
    if gap > 0 and several and gap > max(np.ptp(k13), np.ptp(k3)):
        return "agrees with the paper (K=13 better than K=3, beyond the seed spread)"
    if gap > 0:
        return ("points the paper's way (K=13 better than K=3), but one seed is no evidence" if not several
                else "points the paper's way, within the seed spread: no conclusion")
    return "does not agree with the paper (K=13 not better than K=3)"


def table(runs: list[dict], ks: Sequence[int], size: RunSize | str) -> tuple[list[dict], list[str]]:
    """Rows for `unirep_lite.table.Table` (one per recipe run at `size`) and one verdict line each."""
    size = RunSize.parse(size)
    rows, lines = [], []
    for name in dict.fromkeys(r["recipe"] for r in runs if r["mode"] == size.name):
        recipe = recipes.get(name)
        by_k = {K: scores(runs, name, K, size.name) for K in ks}
        trivial = np.mean([r["trivial"] for r in runs if r["recipe"] == name])
        lines.append(f"{recipe.modality} ({name}): {verdict(by_k[13], by_k[3], recipe.higher_is_better)}")
        rows.append({"modality": recipe.modality, "metric": recipe.metric}
                    | {f"K={K}": _cell(by_k[K], recipe.metric) for K in ks}
                    | {"trivial": _cell(np.array([trivial]), recipe.metric)})
    return rows, lines


def plot(runs: list[dict], ks: Sequence[int], size: RunSize | str):
    """One panel per recipe: a bar per K (mean), a dot per seed, the trivial baseline dashed."""
    import matplotlib.pyplot as plt

    size = RunSize.parse(size)
    names = list(dict.fromkeys(r["recipe"] for r in runs if r["mode"] == size.name))
    fig, axes = plt.subplots(1, len(names), figsize=(max(3.2, 2.6 * len(names)), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        recipe = recipes.get(name)
        scale = 100 if recipe.metric == "accuracy" else 1
        for i, K in enumerate(ks):
            xs = scores(runs, name, K, size.name) * scale
            ax.bar(i, xs.mean(), color=COLOURS.get(K, "gray"), label=f"K={K}")
            ax.plot([i] * len(xs), xs, "k.", ms=7)
        trivial = np.mean([r["trivial"] for r in runs if r["recipe"] == name]) * scale
        ax.axhline(trivial, color="black", ls="--", lw=1, label="trivial")
        ax.set_xticks(range(len(ks)), [f"K={K}" for K in ks], fontsize=10)
        ax.tick_params(axis="y", labelsize=10)
        better = "accuracy %, higher" if scale == 100 else "MAE, lower"
        ax.set_title(f"{recipe.modality}\n({better} is better)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle(f"UniRepLKNet-A, {size.label} run: bars = mean, dots = seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def beats_trivial(r: dict) -> bool:
    """Whether a run beats its trivial baseline clearly: by 5 accuracy points, or 5% of the MAE."""
    if recipes.get(r["recipe"]).metric == "accuracy":
        return r["test"] > r["trivial"] + 0.05
    return r["test"] < 0.95 * r["trivial"]
