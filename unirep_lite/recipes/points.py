"""Recipe "shapes": point clouds of ten kinds of solid (unirep_lite.data.points) classified by UniRepLKNet.

A cloud of P x 3 points becomes three views, one image channel each (side, front, top; C' = 3), and
the backbone classifies that image, as in the paper's ModelNet-40 setup (which uses 224 x 224 views).
Two front-ends (`unirep_lite.frontends.points`): frontend="learned" (the paper's conv layers over
scattered point features, P2P style: `LearnedProjection`) and frontend="fixed" (depth-weighted
orthographic splats with nothing learned: `PointProjection`, the baseline). "learned" is the default:
with the same seed and schedule in FAST mode it scored 72.5% / 66.3% / 72.5% test accuracy (seeds 0 / 1 /
2) against the fixed views' 71.2% / 63.1% / 71.2%, with a lower test loss each time, at about twice the
CPU training time (notebook 08 shows both). The projection is the model's first layer,
so the model - and its deploy version - takes the dataset's raw P x 3 clouds.
  full run: 128 x 128 views -> stage-3 map 8 x 8, which a 13 x 13 kernel spans from any position;
  FAST run:  32 x  32 views -> stage-3 map 2 x 2, 16x fewer pixels, so a 2-core CPU trains it in a
             couple of minutes (there every kernel >= 3 covers the whole stage-3 map, K or not).
"""
from __future__ import annotations

from torch import nn

from ..data import points as data
from ..env import resolve_fast
from ..frontends.points import LearnedProjection, PointProjection
from ..model import create_model
from ..train import TrainConfig
from . import Recipe, register
from .images import class_baselines

FULL_SIZE, FAST_SIZE = 128, 32


def input_size(fast: bool | None = None) -> int:
    return FAST_SIZE if resolve_fast(fast) else FULL_SIZE


FRONTENDS = ("learned", "fixed")
FRONTEND = "learned"  # the default: see notebook 08 for both, same seed and schedule


def make_frontend(kind: str = FRONTEND, fast: bool | None = None) -> nn.Module:
    """P x 3 -> 3 x S x S: "learned" (LearnedProjection) or "fixed" (PointProjection, depth views)."""
    if kind == "learned":
        return LearnedProjection(input_size(fast))
    if kind == "fixed":
        return PointProjection(input_size(fast), mode="depth")
    raise ValueError(f"frontend must be one of {FRONTENDS}, got {kind!r}")


def make_model(variant: str = "unireplknet_a", lk_size: int = 13, fast: bool | None = None,
               frontend: str = FRONTEND, **overrides) -> nn.Module:
    """Three-view front-end (P x 3 -> 3 x S x S) + UniRepLKNet with 3 input channels, 10 classes."""
    first = make_frontend(frontend, fast)  # before the backbone: a bad name fails before any work
    backbone = create_model(variant, num_classes=len(data.CLASSES), in_chans=3, lk_size=lk_size, **overrides)
    return nn.Sequential(first, backbone)


def config(fast: bool) -> TrainConfig:
    # Batch 32: the FAST training split has only 480 clouds, so 64 would leave ~7 steps an epoch.
    if fast:
        return TrainConfig(epochs=3, batch_size=32, lr=2e-3, warmup_fraction=0.1)
    return TrainConfig(epochs=40, batch_size=32, lr=2e-3)


RECIPE = register(Recipe(
    name="shapes", modality="point cloud", task="classification", metric="accuracy",
    load=data.load, make_model=make_model, config=config, baselines=class_baselines,
    input_note=(f"P x 3 clouds projected to three {FULL_SIZE} x {FULL_SIZE} views (stage-3 map 8 x 8, covered "
                f"by a 13 x 13 kernel); FAST mode uses {FAST_SIZE} x {FAST_SIZE} views (stage-3 map 2 x 2) "
                "to train in a couple of minutes on a CPU"),
    extras={"classes": data.CLASSES, "views": ("side", "front", "top"), "frontends": FRONTENDS, "frontend": FRONTEND,
            "input_size": {"full": FULL_SIZE, "fast": FAST_SIZE},
            # for notebook 10's 15 runs: TrainConfig overrides that make one FAST run cheaper still
            "tiny_config": {"epochs": 1}},
))
