"""The course's central experiment: when does a large kernel win? Accuracy against distance.

The task (`unirep_lite.data.reach`): one mark, a plus or a cross, lies `d` pixels from the image
centre; the model answers at the centre. The model is a UniRepLKNet's first stages with a
per-location head (`CentreReadout`: the centre cell of the last map, as a segmentation head reads
every cell), so it can only use what its convolutions reach from there: beyond that, it is at chance.
(A whole-image classifier pools every location, so it never needs reach: that is why the course's
five modality miniatures barely care about K.) We train small models that differ in one thing at a
time ("arms"):

* kernel size K = 3, 7, 13 at equal depth (one block per stage);
* the paper's Dilated Reparam Block (K = 13 with its dilated branches) against the same 13 x 13
  kernel without them (paper Table 2);
* "wide vs deep": the shallow K = 13 model against a K = 3 model made deeper to about the same
  parameters.

Each arm is trained from several seeds on the same data; we score it on held-out images per
distance, and measure the effective receptive field (`unirep_lite.erf`) of the trained models at the
very cell they answer from. `setup(run_size)` sizes it: small for 2 CPU cores (minutes), full for a GPU.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np
from torch import Tensor, nn

from . import checks
from .data import reach
from .erf import compute_erf, scale_decades
from .blocks import UniRepLKNetBlock
from .model import create_model
from .runs import train_runs
from .runsize import RunSize
from .stats import count_macs
from .train import TrainConfig, evaluate

NO_DILATION = ((), ())  # `branches=` for a Dilated Reparam Block without its dilated branches


@dataclass(frozen=True)
class Setup:
    """Data, model and schedule shared by every arm."""
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
    base = Setup(n_train=2400, n_test=1200, epochs=4, seeds=(0, 1, 2), erf_images=8) if RunSize.parse(run_size).small \
        else Setup()
    return replace(base, **overrides)


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
    Arm("K=3", 3),
    Arm("K=7", 7),
    Arm("K=13", 13),
    Arm("K=13, no dilated branches", 13, branches=NO_DILATION),
    Arm("K=3, deeper", 3, depths=(1, 2, 2, 1)),   # ~ the parameters and MACs of K=13 (checked in tests)
)


def arm(name: str) -> Arm:
    for a in ARMS:
        if a.name == name:
            return a
    raise ValueError(f"unknown arm {name!r}: expected one of {[a.name for a in ARMS]}")


def make_data(s: Setup) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    """Train and test splits (images, labels, distances), from different seeds: no image is shared."""
    return {"train": reach.make(s.n_train, s.size, s.distances, seed=1000),
            "test": reach.make(s.n_test, s.size, s.distances, seed=2000)}


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
    model: nn.Module | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "model"}


def train_arm(a: Arm, s: Setup, seed: int, data: dict) -> Run:
    """Train one arm from one seed and score it per distance."""

    xtr, ytr, _ = data["train"]
    cfg = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, label_smoothing=0.0,
                      warmup_fraction=0.1, progress=False, reparameterize=False)
    result = train_runs({a.name: lambda: a.build(s)}, (xtr, ytr), None, cfg, seed=seed, log=None)[a.name]
    acc = accuracy_by_distance(result.model, *data["test"], s.distances)
    return Run(a.name, seed, acc, result.params, count_macs(result.model, s.size), result.seconds, result.model)


@dataclass
class Results:
    setup: Setup
    runs: list[Run]
    seconds: float = 0.0

    def arms(self) -> list[str]:
        return list(dict.fromkeys(r.arm for r in self.runs))

    def accuracies(self, arm_name: str) -> np.ndarray:
        """(seeds, distances) accuracies of one arm."""
        rows = [r.accuracy for r in self.runs if r.arm == arm_name]
        if not rows:
            raise ValueError(f"no runs of arm {arm_name!r}; have {self.arms()}")
        return np.array(rows)

    def far(self, arm_name: str) -> np.ndarray:
        """Accuracy of each seed at the largest distance."""
        return self.accuracies(arm_name)[:, -1]

    def table(self) -> list[dict]:
        """One row per arm: mean accuracy (%) per distance over seeds, `spread`: the widest seed spread
        (max - min at any distance, points; plot_accuracy draws every one), parameters, seconds per run
        (the arms' MACs: notebook 10's section 2)."""
        rows = []
        for name in self.arms():
            acc = 100 * self.accuracies(name)
            run = next(r for r in self.runs if r.arm == name)
            row = {"arm": name}
            row.update({f"d={dist}": round(float(acc[:, j].mean()), 1) for j, dist in enumerate(self.setup.distances)})
            row["spread"] = round(float(np.ptp(acc, axis=0).max()), 1)
            row.update({"params (k)": round(run.params / 1e3),
                        "s/run": round(np.mean([r.seconds for r in self.runs if r.arm == name]), 1)})
            rows.append(row)
        return rows

    def compare_far(self, a: str, b: str) -> dict:
        """Far-end comparison of arm a against arm b: mean gap and the seed spread it must beat."""
        fa, fb = self.far(a), self.far(b)
        gap = fa.mean() - fb.mean()
        spread = max(np.ptp(fa), np.ptp(fb))
        return {"a": a, "b": b, "mean_a": fa.mean(), "mean_b": fb.mean(), "gap": gap, "spread": spread,
                "robust": bool(gap > spread and fa.min() > fb.max())}

    def to_dict(self) -> dict:
        return {"setup": asdict(self.setup), "runs": [r.to_dict() for r in self.runs], "seconds": self.seconds}


def run(s: Setup, arms: Sequence[Arm] = ARMS, progress: bool = True, keep_models: bool = True) -> Results:
    """Train every arm from every seed of the setup `s` (same data for all) and collect the scores."""
    start = time.perf_counter()
    data = make_data(s)
    runs = []
    for a in arms:
        for seed in s.seeds:
            r = train_arm(a, s, seed, data)
            if not keep_models:
                r.model = None
            runs.append(r)
            if progress:
                accs = " ".join(f"{100 * v:3.0f}" for v in r.accuracy)
                print(f"{a.name:26s} seed {seed}: accuracy % by distance {accs}  ({r.seconds:.0f} s)", flush=True)
    return Results(s, runs, time.perf_counter() - start)


# ------------------------------------------------------------------------------------ ERFs

def erf_inputs(s: Setup, n: int | None = None, seed: int = 3000) -> Tensor:
    """Held-out task images: the ERF is measured at the cell the models answer from."""
    return reach.make(n or s.erf_images, s.size, s.distances, seed=seed)[0]


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
    ax.legend(fontsize=8)
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
