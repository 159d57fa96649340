"""The course's central experiment: when and why does a large kernel win? Accuracy against distance.

The task (`unirep_lite.data.reach`): one mark, a plus or a cross, lies `d` pixels from the image
centre; the model answers at the centre. The model is a UniRepLKNet's first stages with a
per-location head (`CentreReadout`: the centre cell of the last map, as a segmentation head reads
every cell), so it can only use what its convolutions reach from there: beyond that, it is at chance.
We train small models that differ in one thing at a time ("arms"), in three steps:

1. the theoretical field: kernel size K = 3, 7, 13 at equal depth (one block per stage);
2. the effective field (the paper's argument, after Luo et al. 2016): arms with the *same*
   theoretical field at the answer cell, one K = 13 block against a stack of K = 3 blocks deep
   enough to cover it (`EQUAL_REACH`), scored by distance, by steps to a target accuracy, with
   little data, and by the ERF of the trained models;
3. the paper's Table 2 on a sparse task (`unirep_lite.data.pairs`): the Dilated Reparam Block
   against the same 13 x 13 kernel alone and the paper's variants A and B (`variant_a`,
   `variant_b`), with each branch's own share of the ERF (`branch_erfs`).

Each arm is trained from several seeds on the same data (`train_arm`, through
`unirep_lite.runs.train_runs`); comparisons are called robust only when the gap beats the spread
over seeds (`compare`). `setup(run_size)` sizes it: small for 2 CPU cores, full for a GPU.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .data import pairs, reach
from .erf import compute_erf, scale_decades, stage_outputs
from .blocks import DilatedReparamBlock, UniRepLKNetBlock
from .model import create_model
from .reparam import default_branches, equivalent_kernel_size
from .runs import train_runs
from .runsize import RunSize
from .stats import count_macs
from .train import TrainConfig, evaluate

NO_DILATION = ((), ())  # `branches=` for a Dilated Reparam Block without its dilated branches
TASKS = ("reach", "pairs")


def variant_a(K: int = 13) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Paper Table 2, variant A: the dilated branches' kernel sizes, without dilation.

    For K = 13 the paper lists (5, 7, 3, 3, 3); three parallel 3 x 3 conv + BN branches compute
    the same function class as one, and a block holds each (k, r) once, so we keep (5, 7, 3).
    """
    ks, _ = default_branches(K)
    ks = tuple(dict.fromkeys(ks))
    return ks, (1,) * len(ks)


def variant_b(K: int = 13) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Paper Table 2, variant B: non-dilated kernels of the dilated branches' equivalent sizes
    (k - 1) r + 1, for K = 13 (5, 13, 7, 9, 11)."""
    ks, rs = default_branches(K)
    eq = tuple(dict.fromkeys(equivalent_kernel_size(k, r) for k, r in zip(ks, rs)))  # once each (K=7: 5, 5, 7)
    return eq, (1,) * len(eq)


@dataclass(frozen=True)
class Setup:
    """Data, model and schedule shared by every arm."""
    task: str = "reach"               # "reach" (one mark) or "pairs" (are both of two marks crosses?)
    size: int = 80                    # images are size x size, one channel; a multiple of 16, so stage 2's
                                      # centre cell (the answer) sits on the image centre
    distances: tuple[int, ...] = (6, 12, 18, 24, 30, 36)  # mark-to-centre distances (pixels), the knob
    n_train: int = 20000
    n_test: int = 2000
    dims: tuple[int, int, int, int] = (16, 32, 64, 128)
    stages: int = 2               # answer at stage 2 (stride 8): K=3's field is 39 px there, K=13's 119 px
    global_paths: bool = False    # SE and GRN pool the whole map: off, so only the kernels can reach
    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    layer_scale: float = 1.0      # blocks start active (1e-6 would make each an identity at first)
    erf_images: int = 16

    def __post_init__(self):
        checks.one_of("task", self.task, TASKS)
        checks.integer("size", self.size, minimum=16)
        if self.size % 16:
            raise ValueError(f"size must be a multiple of 16 (stage 2's centre cell on the image centre), got {self.size}")
        for name in ("n_train", "n_test", "epochs", "batch_size", "erf_images"):
            checks.positive_int(name, getattr(self, name))
        checks.integer("stages", self.stages, 1, 4)
        checks.integers("dims", self.dims)
        distances = checks.integers("distances", self.distances)
        if not distances or not all(1 <= d < self.size // 2 for d in distances):
            raise ValueError(f"distances must be integers from 1 to size // 2 - 1 = {self.size // 2 - 1}, "
                             f"got {self.distances!r}")
        if not checks.integers("seeds", self.seeds, minimum=0):
            raise ValueError("seeds must name at least one seed, got none")
        checks.number("lr", self.lr, above=0.0)
        if self.layer_scale is not None:
            checks.number("layer_scale", self.layer_scale, above=0.0)
        checks.boolean("global_paths", self.global_paths)


def setup(run_size: RunSize | str, **overrides) -> Setup:
    """The experiment at run size `run_size`: small (FAST and CPU-sized runs: 2 CPU cores, a few minutes) or the
    full run (written for a GPU), with overrides."""
    # small: 64 x 64 images (K = 3 blind from d = 22, the others see every d), 150 steps in FAST
    size = RunSize.parse(run_size)
    base = Setup(size=64, distances=(5, 11, 17, 23, 29), n_train=1200, n_test=1000, epochs=size.epochs(8),
                 seeds=(0, 1, 2), erf_images=8) if size.small else Setup()
    return replace(base, **overrides)


def low_data(s: Setup, factor: int = 4) -> Setup:
    """`s` with `factor` times fewer training images and as many steps (each image seen more often)."""
    checks.positive_int("factor", factor)
    return replace(s, n_train=s.n_train // factor, epochs=s.epochs * factor)


def table2_setup(run_size: RunSize | str, **overrides) -> Setup:
    """The sparse pairs task for paper Table 2, short enough that the arms do not all saturate."""
    size = RunSize.parse(run_size)
    base = setup(size, task="pairs", n_train=480 if size.small else 2000, epochs=size.epochs(10, 12))
    return replace(base, **overrides)


def sentence(c: dict, a: str, b: str, what: str, unit: str = "points", scale: float = 100.0,
             fmt: str = ".1f") -> str:
    """One comparison from `compare`, in words and numbers: a's and b's means, the gap, the spread
    over seeds, and whether that is evidence."""
    v = lambda x: f"{scale * x:{fmt}}"  # noqa: E731
    verdict = "robust across seeds" if c["robust"] else "within the seed spread: no conclusion"
    unit = f" {unit}" if unit else ""
    return (f"{what}: {a} {v(c['mean_a'])} vs {b} {v(c['mean_b'])} (gap {scale * c['gap']:+{fmt}}{unit}, "
            f"seed spread {v(c['spread'])}): {verdict}")


class _NoSE(nn.Module):
    """Stands in for a block's SE (which scales channels by a global average): the identity."""

    def forward(self, x: Tensor, inplace: bool = False) -> Tensor:
        return x


class CentreReadout(nn.Module):
    """The first `stages` stages of a UniRepLKNet, answering from the centre cell of the last map.

    A per-location prediction (what a segmentation head makes at every cell), so the answer can only
    use what the convolutions reach from the centre. `global_paths=False` takes out the two parts of
    the block that look at the whole map: SE (replaced by the identity) and GRN's global norm (its
    gamma stays 0, leaving x + beta). With them, even K = 3 can carry a far mark's identity to the
    centre through a global average, and the experiment would no longer measure reach.
    """

    def __init__(self, net: nn.Module, stages: int, num_classes: int, global_paths: bool = False):
        super().__init__()
        dim = net.dims[stages - 1]
        net.downsample_layers, net.stages = net.downsample_layers[:stages], net.stages[:stages]
        net.norm, net.head = nn.Identity(), nn.Identity()   # the pooled head: replaced by ours
        self.net, self.in_chans = net, net.in_chans
        self.depths = tuple(len(s) for s in net.stages)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        if not global_paths:
            for block in net.stages.modules():
                if isinstance(block, UniRepLKNetBlock):
                    block.se = _NoSE()
                    block.act[1].gamma.requires_grad_(False)

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        return self.net.forward_stages(x)

    def forward(self, x: Tensor) -> Tensor:
        f = self.forward_stages(x)[-1]
        h, w = f.shape[-2:]
        return self.head(self.norm(f[:, :, h // 2, w // 2]))  # the cell compute_erf measures


@dataclass(frozen=True)
class Arm:
    """One model design: its kernel size, blocks per stage and Dilated Reparam branches."""
    name: str
    lk_size: int
    depths: tuple[int, int, int, int] = (1, 1, 1, 1)
    branches: tuple | None = None    # None: the authors' branches for this K; NO_DILATION: none

    def build(self, s: Setup) -> CentreReadout:
        extra = {} if self.branches is None else {"branches": self.branches}
        net = create_model("unireplknet_a", num_classes=2, in_chans=1, depths=self.depths, dims=s.dims,
                           lk_size=self.lk_size, layer_scale_init_value=s.layer_scale, **extra)
        return CentreReadout(net, s.stages, len(reach.CLASSES), s.global_paths)


ARMS = (
    # 1. the theoretical field: kernel size at equal depth
    Arm("K=3", 3),
    Arm("K=7", 7),
    Arm("K=13", 13),
    # 2. the effective field: the same theoretical field at the answer as K=13 (checked in tests),
    #    from wide and shallow to narrow and deep
    Arm("K=7 x2", 7, depths=(1, 2, 1, 1)),
    Arm("K=3 x6", 3, depths=(1, 6, 1, 1)),
    # 3. paper Table 2: the Dilated Reparam Block (K=13 above) against
    Arm("K=13 alone", 13, branches=NO_DILATION),
    Arm("variant A", 13, branches=variant_a(13)),
    Arm("variant B", 13, branches=variant_b(13)),
)
EQUAL_DEPTH = ("K=3", "K=7", "K=13")
EQUAL_REACH = ("K=13", "K=7 x2", "K=3 x6")
TABLE_2 = ("K=13", "K=13 alone", "variant A", "variant B")


def arm(name: str) -> Arm:
    for a in ARMS:
        if a.name == name:
            return a
    raise ValueError(f"unknown arm {name!r}: expected one of {[a.name for a in ARMS]}")


def arms(names: Sequence[str]) -> list[Arm]:
    return [arm(n) for n in names]


def make_data(s: Setup) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    """Train and test splits (images, labels, distances), from different seeds: no image is shared.

    For the pairs task the distance of an image is the larger of its two marks' distances."""
    make = reach.make if s.task == "reach" else pairs.make
    return {"train": make(s.n_train, s.size, s.distances, seed=1000),
            "test": make(s.n_test, s.size, s.distances, seed=2000)}


def accuracy_by_distance(model: nn.Module, x: Tensor, y: Tensor, d: Tensor,
                         distances: Sequence[int]) -> list[float]:
    """Held-out accuracy of `model` at each distance."""

    pred = evaluate(model, (x, y), return_predictions=True)["predictions"]
    return [(pred[d == v] == y[d == v]).float().mean().item() for v in distances]


@dataclass
class Run:
    arm: str
    seed: int
    accuracy: list[float]            # per distance of the setup
    params: int
    macs: int
    seconds: float
    curve: list[float] = field(default_factory=list)  # held-out accuracy after every epoch
    steps_per_epoch: int = 0
    model: nn.Module | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "model"}


def train_arm(a: Arm, s: Setup, seed: int, data: dict, curve_distances: Sequence[int] | None = None) -> Run:
    """Train one arm from one seed and score it per distance. With `curve_distances`, the held-out
    images at those distances are scored after every epoch too (the learning curve)."""

    xtr, ytr, _ = data["train"]
    val = None
    if curve_distances:
        x, y, d = data["test"]
        keep = torch.isin(d, torch.tensor([float(v) for v in curve_distances]))
        val = (x[keep], y[keep])
    cfg = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, label_smoothing=0.0,
                      warmup_fraction=0.1, progress=False, reparameterize=False)
    result = train_runs({a.name: lambda: a.build(s)}, (xtr, ytr), val, cfg, seed=seed, log=None)[a.name]
    acc = accuracy_by_distance(result.model, *data["test"], s.distances)
    h = result.history
    return Run(a.name, seed, acc, result.params, count_macs(result.model, s.size), result.seconds,
               curve=list(h.val_metric) if val is not None else [],
               steps_per_epoch=len(h.step_loss) // max(len(h.epoch), 1), model=result.model)


def compare(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True) -> dict:
    """a against b, one value per seed each: mean gap (a - b), and the spread over seeds it must beat.

    `robust`: a is better by more than either arm's spread, and every seed of a beats every seed of b.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    gap = a.mean() - b.mean()
    spread = max(np.ptp(a), np.ptp(b))
    sign = 1 if higher_is_better else -1
    best_a, worst_b = (a.min(), b.max()) if higher_is_better else (-a.max(), -b.min())
    return {"mean_a": a.mean(), "mean_b": b.mean(), "gap": gap, "spread": spread,
            "robust": bool(sign * gap > spread and best_a > worst_b)}


@dataclass
class Results:
    setup: Setup
    runs: list[Run]
    seconds: float = 0.0

    def arms(self) -> list[str]:
        return list(dict.fromkeys(r.arm for r in self.runs))

    def of(self, arm_name: str) -> list[Run]:
        runs = [r for r in self.runs if r.arm == arm_name]
        if not runs:
            raise ValueError(f"no runs of arm {arm_name!r}; have {self.arms()}")
        return runs

    def accuracies(self, arm_name: str) -> np.ndarray:
        """(seeds, distances) accuracies of one arm."""
        return np.array([r.accuracy for r in self.of(arm_name)])

    def far(self, arm_name: str) -> np.ndarray:
        """Accuracy of each seed at the largest distance."""
        return self.accuracies(arm_name)[:, -1]

    def mean_accuracy(self, arm_name: str) -> np.ndarray:
        """Accuracy of each seed over all distances (they are balanced)."""
        return self.accuracies(arm_name).mean(1)

    def curves(self, arm_name: str) -> np.ndarray:
        """(seeds, epochs) held-out accuracy after every epoch (runs with curve_distances)."""
        return np.array([r.curve for r in self.of(arm_name)])

    def steps_to(self, arm_name: str, target: float, never: float = np.inf) -> np.ndarray:
        """Training steps each seed took to reach `target` accuracy on the curve's images, judged
        after every epoch; `never` where it did not."""
        runs = self.of(arm_name)
        out = []
        for r in runs:
            hit = [i for i, v in enumerate(r.curve) if v >= target]
            out.append((hit[0] + 1) * r.steps_per_epoch if hit else never)
        return np.array(out, float)

    def steps(self) -> int:
        """Training steps of every run (one schedule for all)."""
        return self.runs[0].steps_per_epoch * self.setup.epochs

    def table(self) -> list[dict]:
        """One row per arm: mean accuracy (%) per distance over seeds, `spread`: the widest seed spread
        (max - min at any distance, points; plot_accuracy draws every one), parameters (k)."""
        rows = []
        for name in self.arms():
            acc = 100 * self.accuracies(name)
            row = {"arm": name}
            row.update({f"d={dist}": f"{acc[:, j].mean():.1f}" for j, dist in enumerate(self.setup.distances)})
            row["spread"] = f"{np.ptp(acc, axis=0).max():.1f}"
            row["params (k)"] = round(self.of(name)[0].params / 1e3)
            rows.append(row)
        return rows

    def compare_far(self, a: str, b: str) -> dict:
        """Far-end comparison of arm a against arm b: mean gap and the seed spread it must beat."""
        return {"a": a, "b": b, **compare(self.far(a), self.far(b))}

    def to_dict(self) -> dict:
        return {"setup": asdict(self.setup), "runs": [r.to_dict() for r in self.runs], "seconds": self.seconds}


def run(s: Setup, arms: Sequence[Arm] = ARMS, progress: bool = True, keep_models: bool = True,
        curve_distances: Sequence[int] | None = None) -> Results:
    """Train every arm from every seed of the setup `s` (same data for all) and collect the scores."""
    start = time.perf_counter()
    data = make_data(s)
    runs = []
    for a in arms:
        for seed in s.seeds:
            r = train_arm(a, s, seed, data, curve_distances)
            if not keep_models:
                r.model = None
            runs.append(r)
            if progress:  # one short line per run (fits a book column)
                accs = " ".join(f"{100 * v:3.0f}" for v in r.accuracy)
                print(f"{a.name:10.10s} seed {seed}: % by d {accs} ({r.seconds:.0f} s)", flush=True)
    return Results(s, runs, time.perf_counter() - start)


def merge(*results: Results) -> Results:
    """Several runs of the same setup as one (e.g. arms trained in different sections)."""
    if not results or any(r.setup != results[0].setup for r in results):
        raise ValueError("merge needs results of one and the same setup")
    return Results(results[0].setup, [run for r in results for run in r.runs], sum(r.seconds for r in results))


def field_at_answer(a: Arm, s: Setup) -> int:
    """The theoretical receptive field (side, px) of arm `a` at the cell it answers from."""
    from .erf import theoretical_receptive_field

    return theoretical_receptive_field(a.build(s), -1, s.size, 1)


# ------------------------------------------------------------------------------------ ERFs

def erf_inputs(s: Setup, n: int | None = None, seed: int = 3000) -> Tensor:
    """Held-out task images: the ERF is measured at the cell the models answer from."""
    make = reach.make if s.task == "reach" else pairs.make
    return make(n or s.erf_images, s.size, s.distances, seed=seed)[0]


def trained_erfs(results: Results, images: Tensor, stage: int = -1) -> dict[str, list]:
    """ERF (`unirep_lite.erf.compute_erf`) of every trained model, per arm, in seed order."""

    out: dict[str, list] = {}
    for r in results.runs:
        if r.model is None:
            raise ValueError("these results kept no models: run(..., keep_models=True)")
        out.setdefault(r.arm, []).append(
            compute_erf(r.model, images, stage=stage, progress=False, label=f"{r.arm} (seed {r.seed})"))
    return out


def mean_erf_map(erfs: Sequence) -> np.ndarray:
    """The average of several ERFs' raw maps, each normalised to sum 1 first (seeds weigh the same)."""
    return np.mean([e.raw / e.raw.sum() for e in erfs], axis=0)


def branch_name(k: int, r: int) -> str:
    return f"{k}x{k}" + (f" r={r}" if r > 1 else "")


def branch_erfs(model: nn.Module, images: Tensor, stage: int = -1) -> dict[str, np.ndarray]:
    """Each branch's share of the ERF of `model`'s one Dilated Reparam Block (RepLKNet's method).

    In eval mode the block is a sum of linear branches, and a backward pass is linear in what flows
    into it, so the input gradient g is exactly the sum of the gradients g_b that flow through one
    branch b at a time, plus g_skip, the gradient that passes the block by (its residual
    connection). The ERF sums relu(g) = g * [g > 0] = sum_b g_b * [g > 0] + g_skip * [g > 0] over
    channels and images: branch b's contribution is g_b * [g > 0], and the contributions add up to
    the ERF (a branch can also subtract, where it pulls against the others). Returns branch name ->
    map, in the block's order (the K x K kernel first), then "skip" and "all", the ERF itself
    (`compute_erf(...).raw`).
    """
    blocks = [m for m in model.modules() if isinstance(m, DilatedReparamBlock)]
    if len(blocks) != 1:
        raise ValueError(f"branch_erfs needs a model with exactly one Dilated Reparam Block, got {len(blocks)}")
    # a float64 copy: the parts are differences of gradients, and should add up to rounding
    model = copy.deepcopy(model).double().eval()
    images = images.double()
    block = next(m for m in model.modules() if isinstance(m, DilatedReparamBlock))
    branches = list(block.branches())
    names = [branch_name(conv.kernel_size[0], r) for conv, _, r in branches]
    names[0] += " (large)"             # the K x K kernel itself (variant B has a 13 x 13 branch too)
    live: list[int | None] = [None]

    def one_branch(module, inputs, output):  # the same value, with the gradient through one branch
        parts = [bn(conv(inputs[0])) for conv, bn, _ in branches]   # (live -1: through none)
        if live[0] is None:
            return sum(parts)
        return sum(p if i == live[0] else p.detach() for i, p in enumerate(parts))

    def gradient() -> Tensor:
        x = images.clone().requires_grad_(True)
        feat = stage_outputs(model, x)[stage]
        h, w = feat.shape[-2:]
        (g,) = torch.autograd.grad(F.relu(feat[:, :, h // 2, w // 2]).sum(), x)
        return g.double()

    handle = block.register_forward_hook(one_branch)
    try:
        g = gradient()
        live[0] = -1
        skip = gradient()
        parts = []
        for i in range(len(branches)):
            live[0] = i
            parts.append(gradient() - skip)
    finally:
        handle.remove()
    on = (g > 0).double()
    out = {name: (gb * on).sum((0, 1)).numpy() / len(images) for name, gb in zip(names + ["skip"], parts + [skip])}
    out["all"] = F.relu(g).sum((0, 1)).numpy() / len(images)
    return out


def far_share(maps: dict[str, np.ndarray], radius: int) -> dict[str, float]:
    """Each branch's share of the ERF beyond Chebyshev distance `radius` of the centre (the part a
    small kernel cannot give), and of the whole ERF: {name: (whole, far)}."""
    h, w = maps["all"].shape
    rows, cols = np.ogrid[:h, :w]
    outside = np.maximum(abs(rows - h // 2), abs(cols - w // 2)) > radius
    total, far_total = maps["all"].sum(), maps["all"][outside].sum()
    return {k: (m.sum() / total, m[outside].sum() / far_total if far_total > 0 else float("nan"))
            for k, m in maps.items() if k != "all"}


# ------------------------------------------------------------------------------------ plots

def plot_accuracy(results: Results, arms: Sequence[str] | None = None, ax=None, title: str | None = None):
    """Accuracy against distance, one line per arm: mean over seeds, band = min to max, dots = seeds."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
    d = np.array(results.setup.distances)
    for name in arms or results.arms():
        acc = 100 * results.accuracies(name)
        line, = ax.plot(d, acc.mean(0), "o-", label=name)
        ax.fill_between(d, acc.min(0), acc.max(0), color=line.get_color(), alpha=0.15)
        for row in acc:
            ax.plot(d, row, ".", color=line.get_color(), ms=3, alpha=0.6)
    ax.axhline(50, color="black", lw=0.8, ls="--")
    ax.set(xlabel="distance d of the mark (px)", ylabel="test accuracy (%)", ylim=(40, 101),
           xticks=d, title=title or f"{len(results.setup.seeds)} seeds: line = mean, band = min-max")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return ax


def plot_curves(results: Results, arms: Sequence[str] | None = None, ax=None, target: float | None = None,
                title: str = ""):
    """Held-out accuracy after every epoch against training steps: mean over seeds, band = min-max."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
    for name in arms or results.arms():
        acc = 100 * results.curves(name)
        steps = results.of(name)[0].steps_per_epoch * np.arange(1, acc.shape[1] + 1)
        line, = ax.plot(steps, acc.mean(0), "o-", ms=3, label=name)
        ax.fill_between(steps, acc.min(0), acc.max(0), color=line.get_color(), alpha=0.15)
    ax.axhline(50, color="black", lw=0.8, ls="--")
    if target is not None:
        ax.axhline(100 * target, color="gray", lw=0.8, ls=":")
    ax.set(xlabel="training steps", ylabel="accuracy, far marks (%)", ylim=(40, 101), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return ax


def plot_erf_overlays(maps: dict[str, np.ndarray], image: Tensor, ratios: dict[str, float],
                      threshold: float = 0.5, decades: float = 3.0):
    """Each arm's ERF over one task image (decades below its peak), with the centred square whose
    area ratio is `ratios[arm]` (e.g. the mean over seeds at t = `threshold`)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    cols = min(len(maps), 3)                       # three across: readable in a book column
    rows = -(-len(maps) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat[len(maps):]:
        ax.axis("off")
    img = image.squeeze().numpy()
    for ax, (name, m) in zip(axes.flat, maps.items()):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        heat = scale_decades(m, decades)
        ax.imshow(np.ma.masked_less_equal(heat, 0), cmap="inferno", alpha=0.65, vmin=0, vmax=1)
        h, w = m.shape
        side = np.sqrt(ratios[name] * h * w)
        ax.add_patch(Rectangle((w // 2 - side / 2, h // 2 - side / 2), side, side, fill=False, ec="cyan", lw=1.5))
        ax.set_title(f"{name}\narea ratio (t={threshold}): {ratios[name]:.3f}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_branch_maps(maps: dict[str, np.ndarray], shares: dict[str, tuple[float, float]], title: str = ""):
    """Each branch's contribution to the ERF (`branch_erfs`), on one colour scale: red adds, blue
    subtracts; the title gives its share of the whole ERF and of the part beyond a small kernel."""
    import matplotlib.pyplot as plt

    names = [k for k in maps if k != "all"]
    cols = min(len(names) + 1, 4)
    rows = -(-(len(names) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows), squeeze=False)
    # one scale for the branches (their sizes compare), the whole ERF on its own; the 99.5th
    # percentile, so that a few peak pixels do not wash the sparse dilated patterns out
    top = np.percentile(np.abs(np.stack([maps[k] for k in names])), 99.5) or 1.0
    for ax in axes.flat:
        ax.axis("off")
    for ax, name in zip(axes.flat, ["all", *names]):
        scale = (np.percentile(maps["all"], 99.5) or 1.0) if name == "all" else top
        ax.imshow(maps[name], cmap="RdBu_r", vmin=-scale, vmax=scale)
        label = "whole ERF" if name == "all" else (f"{name}\n{100 * shares[name][0]:.0f}% all, "
                                                      f"{100 * shares[name][1]:.0f}% far")
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
