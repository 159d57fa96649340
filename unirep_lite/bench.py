"""Speed of UniRepLKNet next to ConvNeXt V2, measured side by side in one run.

    python -m unirep_lite.bench --quick          # ~30 s on 2 idle CPU cores: A vs atto
    python -m unirep_lite.bench                  # A and F vs atto and femto, eager and compiled: ~6 min
    python -m unirep_lite.bench --device cuda    # the paper's setting: batch 128 at 224 x 224, + every recipe
    python -m unirep_lite.bench --quick --recipes all    # each recipe's real training step, FAST sizes
    python -m unirep_lite.bench dwconv --model a         # the Triton depthwise conv vs cuDNN (CUDA)

Every configuration is warmed up first (torch.compile compiles there), then all of them are timed
in turns, round after round, and each reports its median over the rounds. Machines shared with
other work (CI, a busy laptop) slow everything in a round alike, so ratios of medians measured this
way are far steadier than numbers from separate runs. Speed is never asserted anywhere; this prints.

Rows: inference of the training structure in eval mode and of the deploy structure, with and
without channels_last and torch.compile; training steps (forward, backward, AdamW) of the paper's
block written straightforwardly (`model.set_reference`: Fig. 2's separate branches, the authors' permute + Linear FFN), of the library's exact block,
of the fast-training mode, and of ConvNeXt V2; and per recipe (`--recipes`) its real training step
(front-end, backbone, augmentation, loss, AdamW; bf16 autocast on CUDA) in samples/s, next to the same
pipeline with ConvNeXt V2 in the backbone's place. Memory: on a GPU the peak allocated; on a CPU the
tensors a training step saves for backward (its activation memory). On a GPU the UniRepLKNet rows run
once per `--dwconv` choice (default: auto and torch, the Triton depthwise conv where it pays and off:
see `triton_dwconv`); ConvNeXt V2 and the straightforward block don't use it (dwconv "-").
"""
from __future__ import annotations

import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, env, recipes, triton_dwconv
from .data import images
from .env import progress_bar
from .model import VARIANTS, UniRepLKNet, create_model, default_kernel_sizes, reparameterize, set_fast_train, \
    set_reference
from .paths import check_output_path
from .recipes import RECIPES
from .reparam import BRANCHES
from .runs import train_runs
from .runsize import RunSize
from .batches import to_device
from .train import TrainConfig, evaluate, prepare, train_step

BASELINE = {"a": "convnextv2_atto", "f": "convnextv2_femto", "p": "convnextv2_pico", "n": "convnextv2_nano"}
NUM_CLASSES = 10  # the course's datasets; the head is a negligible part of the cost


@dataclass
class Row:
    task: str  # "infer", "train", or "recipe" (a recipe's real training step; variant = the recipe)
    model: str  # "unireplknet_a", "convnextv2_atto", ...
    variant: str  # train-eval | deploy | reference | exact | fast-train | timm
    layout: str  # nchw | cl
    compiled: bool
    res: int
    batch: int
    ips: list[float] = field(default_factory=list)  # img/s per round
    mem_mb: float | None = None
    error: str | None = None
    dwconv: str = "auto"  # triton_dwconv.forced(...) for the row; "-": the row doesn't use it

    @property
    def median(self) -> float | None:
        return statistics.median(self.ips) if self.ips else None

    def key(self) -> str:
        return f"{self.task}:{self.model}:{self.variant}:{self.layout}:{'compiled' if self.compiled else 'eager'}:" \
               f"{self.res}:{self.dwconv}"


def build_model(row: Row, device: torch.device) -> nn.Module:
    if row.model.startswith("convnextv2"):
        import timm

        model = timm.create_model(row.model, pretrained=False, num_classes=NUM_CLASSES)
    else:
        model = create_model(row.model, num_classes=NUM_CLASSES)
        if row.variant == "deploy":
            model = reparameterize(model.eval())
        elif row.variant == "reference":
            set_reference(model)
        elif row.variant == "fast-train":
            set_fast_train(model)
    model = model.to(device)
    if row.layout == "cl":
        model = model.to(memory_format=torch.channels_last)
    return model


def make_step(row: Row, device: torch.device, recipe_size: RunSize = RunSize("fast")) -> Callable[[], None]:
    """A closure that runs one batch of `row` (built, not yet warmed up), with its depthwise-conv choice."""
    step = _make_step(row, device, recipe_size)
    if row.dwconv == "-":
        return step

    def with_choice():
        with triton_dwconv.forced(row.dwconv):
            step()
    with_choice.parts = getattr(step, "parts", None)
    return with_choice


class _PooledFeatures(nn.Module):
    """A headless timm model as a headless UniRepLKNet is used (the forecaster calls
    `forward_features` and wants the pooled, normalised features, which timm's forward returns)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.num_features = model, model.num_features

    def forward(self, x):
        return self.model(x)

    forward_features = forward


def swap_backbone(model: nn.Module, timm_name: str) -> nn.Module:
    """`model` with its UniRepLKNet replaced by a timm model of the same input channels and outputs
    (ConvNeXt V2 in a recipe's own pipeline: same front-end, same data, same head size)."""
    import timm

    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, UniRepLKNet):
                other = timm.create_model(timm_name, pretrained=False, in_chans=child.in_chans,
                                          num_classes=child.num_classes)
                setattr(parent, name, other if child.num_classes else _PooledFeatures(other))
                return model
    raise ValueError(f"no UniRepLKNet inside {type(model).__name__}")


def recipe_step(row: Row, device: torch.device, size: RunSize) -> Callable[[], None]:
    """One training step of recipe `row.variant`, the engine's own (`train.train_step`, what `fit` runs):
    front-end, backbone, its augmentation (SpecAugment inside the audio front-end, mixup), the loss
    with label smoothing, backward, clipping, AdamW and the schedule, under the config's AMP policy."""
    recipe = recipes.get(row.variant)
    cfg = recipe.config(size)
    torch.manual_seed(0)
    model = recipe.make_model(size=size)
    if row.model.startswith("convnextv2"):
        swap_backbone(model, row.model)
    state = prepare(model, cfg, total_steps=10_000, device=device)
    model.train()
    ds = recipe.load("train", size)
    xs, ys = zip(*(ds[i % len(ds)] for i in range(row.batch)))
    x = to_device(torch.stack(xs), device, cfg.channels_last)
    y = (torch.stack(ys) if torch.is_tensor(ys[0]) else torch.as_tensor(ys)).to(device)
    return lambda: train_step(model, x, y, state)


def _make_step(row: Row, device: torch.device, recipe_size: RunSize = RunSize("fast")) -> Callable[[], None]:
    if row.task == "recipe":
        return recipe_step(row, device, recipe_size)
    torch.manual_seed(0)
    model = build_model(row, device)
    x = torch.randn(row.batch, 3, row.res, row.res, device=device)
    if row.layout == "cl":
        x = x.contiguous(memory_format=torch.channels_last)
    run = torch.compile(model) if row.compiled else model
    if row.task == "infer":
        model.eval()

        def step():
            with torch.no_grad():
                run(x)
        return step
    model.train()
    y = torch.randint(0, NUM_CLASSES, (row.batch,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(run(x), y).backward()
        opt.step()
    step.parts = (model, x, y)
    return step


def saved_for_backward_mb(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """MB of distinct tensors one training forward keeps for backward (its activation memory)."""
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(model(x), y)
    del loss
    return sum(storages.values()) / 2**20


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step: Callable[[], None], n: int, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return time.perf_counter() - start


def plan(args) -> list[Row]:
    rows = []
    pairs = [(f"unireplknet_{m}", BASELINE[m]) for m in args.models]
    compiled = [False, True] if args.compile else [False]
    for comp in compiled:
        for ours, theirs in pairs:
            for layout in args.layouts:
                for variant in ("train-eval", "deploy"):
                    for dw in args.dwconv:
                        rows.append(Row("infer", ours, variant, layout, comp, args.infer_res, args.infer_batch, dwconv=dw))
                rows.append(Row("infer", theirs, "timm", layout, comp, args.infer_res, args.infer_batch, dwconv="-"))
    for res in args.train_res:
        for ours, theirs in pairs:
            rows.append(Row("train", ours, "reference", "nchw", False, res, args.train_batch, dwconv="-"))
            for dw in args.dwconv:
                for layout in args.layouts:
                    rows.append(Row("train", ours, "exact", layout, False, res, args.train_batch, dwconv=dw))
                rows.append(Row("train", ours, "fast-train", args.layouts[-1], False, res, args.train_batch, dwconv=dw))
            for layout in args.layouts:
                rows.append(Row("train", theirs, "timm", layout, False, res, args.train_batch, dwconv="-"))
    for name in args.recipes:  # the real training step of each recipe, ours and ConvNeXt V2 in its place
        r = recipes.get(name)
        size = r.input_size.get(args.recipe_size.key, 0)
        batch = r.config(args.recipe_size).batch_size
        for ours, theirs in pairs[:1]:
            rows.append(Row("recipe", ours, name, "nchw", False, size, batch, dwconv=args.dwconv[0]))
            rows.append(Row("recipe", theirs, name, "nchw", False, size, batch, dwconv="-"))
    return rows


def run(args) -> list[Row]:
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args, device)
    finally:
        torch.set_num_threads(threads)


def _run(args, device: torch.device) -> list[Row]:
    rows = plan(args)
    steps, iters = {}, {}
    for row in progress_bar(rows, desc="build + warm-up (compiles here)", file=sys.stderr):
        try:
            step = make_step(row, device, args.recipe_size)
            for _ in range(args.warmup):
                step()
            once = timed(step, 1, device)
            iters[row.key()] = max(1, math.ceil(args.min_time / max(once, 1e-6)))
            steps[row.key()] = step
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                step()
                sync(device)
                row.mem_mb = torch.cuda.max_memory_allocated() / 2**20
            elif row.task == "train" and not row.compiled and getattr(step, "parts", None):
                with triton_dwconv.forced(row.dwconv if row.dwconv != "-" else "auto"):
                    row.mem_mb = saved_for_backward_mb(*step.parts)
        except Exception as e:  # e.g. torch.compile without a working C compiler: report, go on
            row.error = f"{type(e).__name__}: {str(e).splitlines()[0][:60] if str(e) else ''}"
    live = [r for r in rows if r.key() in steps]
    bar = progress_bar(total=args.repeats * len(live), desc="timing, interleaved", file=sys.stderr)
    for rnd in range(args.repeats):
        order = live[rnd % len(live):] + live[:rnd % len(live)] if live else []  # rotate the start
        for row in order:
            n = iters[row.key()]
            row.ips.append(n * row.batch / timed(steps[row.key()], n, device))
            bar.update()
    bar.close()
    return rows


def find(rows: list[Row], **kw) -> Row | None:
    for r in rows:
        if all(getattr(r, k) == v for k, v in kw.items()) and r.median:
            return r
    return None


def ratio(a: Row | None, b: Row | None) -> float | None:
    return a.median / b.median if a and b and a.median and b.median else None


def fmt(v, spec=".2f", none="-"):
    return none if v is None else format(v, spec)


def table(rows: list[Row], args) -> str:
    lines = []
    dwcol = len(args.dwconv) > 1  # a dwconv column only when rows differ in it (a GPU run)

    def name(r):
        return f"{r.variant + (':' + r.dwconv if dwcol and r.dwconv != '-' else ''):10}"
    head = f"{'task':5} {'model':17} {'variant':10} {'layout':6} {'mode':8} {'res':>4} {'batch':>5} " \
           f"{'img/s':>8} {'min-max':>13} {'mem MB':>7} {'vs ConvNeXt':>11} {'vs straightf.':>13}"
    lines += [head, "-" * len(head)]
    for r in rows:
        mode = "compiled" if r.compiled else "eager"
        if r.error:
            lines.append(f"{r.task:5} {r.model:17} {name(r)} {r.layout:6} {mode:8} {r.res:>4} {r.batch:>5} "
                         f"  failed: {r.error}")
            continue
        vs_cnx = vs_ref = None
        if not r.model.startswith("convnextv2"):
            other = BASELINE[r.model.removeprefix("unireplknet_")]
            same = {"variant": r.variant} if r.task == "recipe" else {}  # the same recipe
            vs_cnx = ratio(r, find(rows, task=r.task, model=other, layout=r.layout, compiled=r.compiled, res=r.res,
                                   **same))
            if r.task == "train" and r.variant != "reference":
                vs_ref = ratio(r, find(rows, task="train", model=r.model, variant="reference", res=r.res))
        spread = f"{min(r.ips):.1f}-{max(r.ips):.1f}" if r.ips else "-"
        lines.append(f"{r.task:5} {r.model:17} {name(r)} {r.layout:6} {mode:8} {r.res:>4} {r.batch:>5} "
                     f"{fmt(r.median, '.1f'):>8} {spread:>13} {fmt(r.mem_mb, '.0f'):>7} "
                     f"{fmt(vs_cnx, '.2f'):>11} {fmt(vs_ref, '.2f'):>13}")
    lines.append("")
    lines.append("Ratios against their targets (the paper: 1.18 for deploy A / atto on an A100), best layout of each side:")
    for m in args.models:
        ours, theirs = f"unireplknet_{m}", BASELINE[m]

        def best(**kw):
            cands = [r for r in rows if r.median and all(getattr(r, k) == v for k, v in kw.items())]
            return max(cands, key=lambda r: r.median) if cands else None
        for comp in ([False, True] if args.compile else [False]):
            mode = "compiled" if comp else "eager"
            for dw in args.dwconv:
                q = ratio(best(task="infer", model=ours, variant="deploy", compiled=comp, dwconv=dw),
                          best(task="infer", model=theirs, compiled=comp))
                tag = f", dwconv={dw}" if dwcol else ""
                lines.append(f"  deploy {m.upper()} / {theirs} inference, {mode}{tag}: {fmt(q)} (target >= 1.18)")
        for res in args.train_res:
            q = ratio(best(task="train", model=ours, variant="exact", res=res),
                      best(task="train", model=ours, variant="reference", res=res))
            lines.append(f"  exact training block / straightforward, {res}x{res}: {fmt(q)} (target >= 1.5)")
        for res in args.train_res:
            q = ratio(best(task="train", model=ours, variant="fast-train", res=res),
                      best(task="train", model=theirs, res=res))
            lines.append(f"  fast-train {m.upper()} / {theirs} training, {res}x{res}: {fmt(q)} (target >= 0.6 at 64)")
    return "\n".join(lines)


def compare_accuracy(epochs: int, seed: int = 0, threads: int = 0) -> dict:
    """Test accuracy of UniRepLKNet-A trained on the course's MNIST digits (padded to 32 x 32) with
    the paper's block (exact, batch-statistics BN per branch) and in fast-training mode, same seed,
    same recipe (`runs.train_runs`). Returns {mode: {"accuracy", "deploy_accuracy", "seconds"}}."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if threads:
        torch.set_num_threads(threads)
    pad = lambda img: F.pad(img, (2, 2, 2, 2))  # noqa: E731  28 -> 32, the course's resolution
    train, val, test = (images.load(s, transform=pad) for s in ("train", "val", "test"))
    a = lambda: create_model("unireplknet_a", num_classes=10, in_chans=1)  # noqa: E731
    runs = train_runs({"exact": a, "fast-train": lambda: set_fast_train(a())}, train, val,
                      TrainConfig(epochs=epochs, device="cpu"), seed=seed, log=None)
    results = {}
    for mode, out in runs.items():
        deploy = out.deploy_model if out.deploy_model is not None else reparameterize(out.model.eval())
        results[mode] = {"accuracy": evaluate(out.model, test, device="cpu")["accuracy"],
                         "deploy_accuracy": evaluate(deploy, test, device="cpu")["accuracy"],
                         "seconds": out.seconds, "epochs": epochs}
    return results


def parse(argv=None):
    p = checks.ArgumentParser(prog="python -m unirep_lite.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda: the paper's batch 128 at 224)")
    p.add_argument("--models", default="a,f", help="UniRepLKNet sizes to compare, from a,f,p,n (default a,f)")
    p.add_argument("--layouts", default="nchw,cl", help="memory layouts: nchw, cl (channels_last)")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile rows")
    p.add_argument("--infer-res", type=int, default=224)
    p.add_argument("--infer-batch", type=int, default=None, help="default 32 on cpu, 128 on cuda")
    p.add_argument("--train-res", default="32,64", help="training resolutions (the course's: 32,64)")
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5, help="timing rounds (the median is reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-time", type=float, default=0.5, help="seconds per timed measurement, at least")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (default: torch's choice); 1 is far steadier on a machine shared with others")
    p.add_argument("--quick", action="store_true",
                   help="A vs atto, channels_last only, eager, batch 16 at 224, 3 rounds: ~30 s on 2 idle cores")
    p.add_argument("--accuracy", action="store_true",
                   help="instead: train A on the MNIST digits with the paper's block and in fast-training mode")
    p.add_argument("--epochs", type=int, default=None, help="--accuracy: epochs (default 5; 1 in a FAST run)")
    p.add_argument("--dwconv", default=None,
                   help="depthwise-conv choices to time UniRepLKNet with, a comma list of auto, triton, torch "
                        "(default: auto,torch on cuda, i.e. the Triton kernel where it pays and off; auto on cpu)")
    p.add_argument("--recipes", default=None,
                   help="recipes whose real training step (samples/s) to time next to ConvNeXt V2 in the same "
                        "pipeline: a comma list, 'all' or 'none' (default: all on cuda, none on cpu)")
    p.add_argument("--recipe-size", choices=("fast", "full"), default=None,
                   help="the recipes' data and input sizes (default: full on cuda, fast on cpu)")
    p.add_argument("--json", metavar="PATH", help="also write every row (all rounds) as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.layouts, args.compile, args.repeats = "a", "cl", False, 3
        args.infer_batch = args.infer_batch or 16
        args.min_time = min(args.min_time, 0.3)
        args.warmup = 1
    args.models = [m.strip().lower().removeprefix("unireplknet_") for m in args.models.split(",") if m.strip()]
    bad = [m for m in args.models if m not in BASELINE]
    if bad:
        p.error(f"--models: expected sizes from {sorted(BASELINE)} (the ones with a ConvNeXt V2 twin), got {bad}")
    args.layouts = [s.strip() for s in args.layouts.split(",") if s.strip()]
    if not args.layouts or any(s not in ("nchw", "cl") for s in args.layouts):
        p.error(f"--layouts: expected a comma list of nchw and cl, got {args.layouts}")
    try:
        args.train_res = [int(s) for s in args.train_res.split(",") if s.strip()]
    except ValueError:
        p.error(f"--train-res: expected a comma list of resolutions such as 32,64, got {args.train_res!r}")
    for name in ("infer_res", "infer_batch", "train_batch", "repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')}: expected a positive integer, got {value}")
    if not args.train_res or min(args.train_res) < 1:
        p.error(f"--train-res: expected positive resolutions such as 32,64, got {args.train_res}")
    if args.warmup < 0 or not args.min_time >= 0 or args.min_time == float("inf") or args.threads < 0:
        p.error(f"--warmup, --threads and --min-time must be finite numbers >= 0, got {args.warmup}, "
                f"{args.threads} and {args.min_time}")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        p.error(f"--device: expected cpu, cuda, cuda:N or mps, got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        p.error(f"--device {args.device}: there are only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        p.error("--device mps: Apple's MPS backend is not available here")
    if args.json:
        try:
            check_output_path(args.json, "--json")
        except ValueError as e:  # now, not after the whole benchmark
            p.error(str(e))
    if args.infer_batch is None:
        args.infer_batch = 128 if args.device.startswith("cuda") else 32
    on_cuda = args.device.startswith("cuda")
    wanted = args.recipes or ("all" if on_cuda else "none")
    args.recipes = [] if wanted == "none" else list(RECIPES) if wanted == "all" else \
        [s.strip() for s in wanted.split(",") if s.strip()]
    if any(s not in RECIPES for s in args.recipes):
        p.error(f"--recipes: expected 'all', 'none' or a comma list of {', '.join(RECIPES)}, got {wanted!r}")
    args.recipe_size = RunSize(args.recipe_size or ("full" if on_cuda else "fast"))
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs: expected a positive number of epochs, got {args.epochs}")
    if args.accuracy and args.epochs is None:  # the run size of this environment decides, here at the entry
        try:
            args.epochs = 1 if env.run_size().name == "fast" else 5
        except ValueError as e:
            p.error(str(e))
    if args.dwconv is None:
        args.dwconv = "auto,torch" if args.device.startswith("cuda") else "auto"
    args.dwconv = [s.strip() for s in args.dwconv.split(",") if s.strip()]
    if not args.dwconv or any(s not in ("auto", "triton", "torch") for s in args.dwconv):
        p.error(f"--dwconv: expected a comma list of auto, triton, torch, got {args.dwconv}")
    return args


def main(argv=None) -> list[Row]:
    args = parse(argv)
    if args.accuracy:
        res = compare_accuracy(args.epochs, threads=args.threads)
        print(f"{'block':12} {'epochs':>6} {'test acc':>9} {'deploy acc':>10} {'train s':>8}")
        for mode, r in res.items():
            print(f"{mode:12} {r['epochs']:>6} {r['accuracy']:>9.4f} {r['deploy_accuracy']:>10.4f} {r['seconds']:>8.0f}")
        return res
    start = time.perf_counter()
    rows = run(args)
    print(f"unirep_lite.bench  device={args.device}  torch={torch.__version__}  "
          f"threads={args.threads or torch.get_num_threads()}  "
          f"rounds={args.repeats}  ({time.perf_counter() - start:.0f} s)")
    print(table(rows, args))
    if rows and not any(r.ips for r in rows):
        raise SystemExit(f"every benchmark failed on {args.device}: first error {rows[0].error}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) | {"median": r.median} for r in rows], f, indent=1)
    return rows



# ----------------------------------------------------------------------------- depthwise-conv kernels
# `python -m unirep_lite.bench dwconv`: the Triton depthwise conv (`triton_dwconv`) against cuDNN at
# the depthwise-conv shapes of one UniRepLKNet, forward and forward + backward, on a CUDA device.

def dwconv_shapes(variant: str, res: int) -> list[tuple[int, int, int, int]]:
    """(channels, map side, kernel size, dilation) of each distinct depthwise conv of `variant` at
    `res`: every stage's kernel sizes and, for a large kernel, its Dilated Reparam branches."""
    v = VARIANTS[variant]
    shapes = []
    for stage, (dim, ks) in enumerate(zip(v.dims, default_kernel_sizes(v.depths, v.stage3_pattern))):
        size = res // 4 // 2**stage
        for K in sorted(set(ks)):
            branches = zip(*BRANCHES[K]) if K >= 7 else []  # SmaK blocks are one plain conv
            shapes += [(dim, size, K, 1)] + [(dim, size, k, r) for k, r in branches]
    return shapes


def dwconv_table(variant: str = "a", batch: int = 128, res: int = 224, dtype: torch.dtype = torch.float32,
                 layout: torch.memory_format = torch.channels_last) -> list[dict]:
    """Time `triton_dwconv.measure` at every shape of `dwconv_shapes`, print a table, return its rows."""
    rows = []
    print(f"{'C':>4} {'HxW':>7} {'k':>3} {'r':>2} | {'fwd triton':>10} {'cuDNN':>8} | "
          f"{'fwd+bwd triton':>14} {'cuDNN':>8}  ms")
    for C, size, k, r in dwconv_shapes(variant, res):
        x = torch.randn(batch, C, size, size, device="cuda", dtype=dtype).contiguous(memory_format=layout)
        w = torch.randn(C, 1, k, k, device="cuda", dtype=dtype)
        fwd, both = triton_dwconv.measure(x, w, r, grad=False), triton_dwconv.measure(x, w, r, grad=True)
        rows.append(dict(C=C, size=size, k=k, dilation=r, fwd=fwd, fwd_bwd=both))
        print(f"{C:>4} {size:>3}x{size:<3} {k:>3} {r:>2} | {fwd['triton'] * 1e3:>10.3f} {fwd['torch'] * 1e3:>8.3f} | "
              f"{both['triton'] * 1e3:>14.3f} {both['torch'] * 1e3:>8.3f}")
    return rows


def dwconv_main(argv=None) -> list[dict]:
    p = checks.ArgumentParser(prog="python -m unirep_lite.bench dwconv",
                                description="Time the Triton depthwise conv against cuDNN at a UniRepLKNet's "
                                            "depthwise-conv shapes (CUDA only).")
    p.add_argument("--model", default="a", choices=list(VARIANTS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--layout", default="cl", choices=["cl", "nchw"])
    args = p.parse_args(argv)
    if args.batch < 1 or args.res < 32:
        p.error(f"--batch must be >= 1 and --res >= 32, got {args.batch} and {args.res}")
    if not (torch.cuda.is_available() and triton_dwconv.available()):
        p.error("needs a CUDA device and Triton")
    layout = torch.channels_last if args.layout == "cl" else torch.contiguous_format
    return dwconv_table(args.model, args.batch, args.res, getattr(torch, args.dtype), layout)


if __name__ == "__main__":
    if sys.argv[1:2] == ["dwconv"]:
        dwconv_main(sys.argv[2:])
    else:
        main()
