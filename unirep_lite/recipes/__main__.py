"""Train one recipe end to end from the command line and print its test score next to its baselines.

    python -m unirep_lite.recipes list
    python -m unirep_lite.recipes video                    # this machine's run size: full on a GPU, else CPU-sized
    python -m unirep_lite.recipes video --full             # the full run anywhere (hours on a CPU)
    python -m unirep_lite.recipes video --fast             # the FAST run (also chosen by UNIREP_FAST=1)
    python -m unirep_lite.recipes speech --variant unireplknet_f --lk-size 7 --seed 1 --json speech_f7.json
    python -m unirep_lite.recipes speech --data ~/data/speech_commands_v0.02   # the real benchmark
    torchrun --nproc_per_node 4 -m unirep_lite.recipes video   # one run on 4 GPUs (DDP)

One command per number that the notebooks' "What we measured" cells report (notebooks 05-09 run
the same recipes with plots around them; notebook 10 runs them at K = 13, 7 and 3). The device is
chosen as everywhere in the course: CUDA, then Apple MPS, then the CPU (UNIREP_DEVICE overrides).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from .. import checks, env
from ..blocks import UniRepLKNetBlock
from ..model import VARIANTS, list_models
from ..paths import check_output_path
from ..runsize import RunSize
from ..train import distributed
from . import RECIPES, benchmark, get, run


def summary(result, seconds: float) -> dict:
    """The numbers of one run, JSON-ready."""
    recipe = get(result.recipe)
    history = result.fit.history
    return {
        "recipe": result.recipe, "variant": result.variant, "lk_size": result.lk_size, "seed": result.seed,
        "mode": result.size.name, "metric": recipe.metric, "test": result.score,
        "baselines": result.baselines, "val": history.val_metric, "epochs": len(history.epoch),
        "deploy_check": result.fit.deploy_check, "wall_s": round(seconds, 1),
        "device": str(next(result.fit.model.parameters()).device), "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def check_arguments(parser: argparse.ArgumentParser, args) -> None:
    """Reject a bad variant, kernel size, epoch count or JSON path before anything is loaded."""
    if args.variant.lower().removeprefix("unireplknet_") not in VARIANTS:
        parser.error(f"--variant: expected one of {', '.join(list_models())}, got {args.variant!r}")
    try:
        UniRepLKNetBlock(4, args.lk_size)  # one tiny block: the model's own kernel-size checks
    except ValueError as e:
        parser.error(f"--lk-size {args.lk_size}: {e}")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs: expected a positive number of epochs, got {args.epochs}")
    if not 0 <= args.seed < 2**32:
        parser.error(f"--seed: expected an integer from 0 to 2**32 - 1, got {args.seed}")
    if args.json:
        try:
            check_output_path(args.json, "--json")
        except ValueError as e:
            parser.error(str(e))


def main(argv=None) -> dict | None:
    p = checks.ArgumentParser(prog="python -m unirep_lite.recipes", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help=f"a recipe ({', '.join(RECIPES)}) or 'list'")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--fast", action="store_true", help="the small FAST (CI) run")
    size.add_argument("--full", action="store_true", help="the full run, also without a GPU")
    p.add_argument("--variant", default="unireplknet_a", help="unireplknet_a (default), unireplknet_f, ...")
    p.add_argument("--lk-size", type=int, default=13, help="the large kernel K (default 13, the paper's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's number of epochs")
    p.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    benchmark.add_arguments(p)  # --data PATH and its options: the recipe on its real benchmark
    args = p.parse_args(argv)
    if args.name == "list":
        for name, r in RECIPES.items():
            print(f"{name:8} {r.modality:12} {r.metric:9} {r.input_note}")
        return None
    if args.name not in RECIPES:
        p.error(f"unknown recipe {args.name!r}: expected one of {', '.join(RECIPES)} or 'list'")
    check_arguments(p, args)  # now, before the data loads and an hour of training
    benchmark.check_arguments(p, args)
    # --fast / --full choose; otherwise the environment and the hardware do (env.run_size)
    try:
        size = RunSize("fast") if args.fast else RunSize("full") if args.full else env.run_size()
        device = env.default_device()
        launch = env.torchrun()
    except ValueError as e:
        p.error(str(e))
    if launch is not None:  # under torchrun: this process trains its part of each batch on its device
        device = distributed.start(launch, device)
    if args.data is not None:
        try:
            return benchmark.main(p, args, device)
        except (ValueError, FileExistsError, distributed.ProcessLost) as e:
            raise SystemExit(f"{p.prog}: error: {str(e).splitlines()[0]}") from None
        finally:
            distributed.stop()
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    start = time.perf_counter()
    try:  # the library's refusals (an unusable data folder, say) are one line, not a traceback
        result = run(args.name, size, variant=args.variant, lk_size=args.lk_size, seed=args.seed, device=device,
                     **overrides)
    except (ValueError, FileExistsError, distributed.ProcessLost) as e:
        raise SystemExit(f"{p.prog}: error: {e}") from None
    finally:
        distributed.stop()
    out = summary(result, time.perf_counter() - start)
    if launch is not None and launch["rank"] != 0:  # process 0 reports for all
        return out
    base = ", ".join(f"{k} {v:.4g}" for k, v in out["baselines"].items())
    print(f"{out['recipe']} ({out['mode']} run) {out['variant']} K={out['lk_size']} seed {out['seed']}: "
          f"test {out['metric']} {out['test']:.4g} (baselines: {base}); deploy check {out['deploy_check']}; "
          f"{out['wall_s']:.0f} s on {out['device']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
