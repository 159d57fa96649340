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
from ..frontends.points import LearnedProjection, PointProjection
from ..model import create_model
from ..runsize import RunSize
from ..train import TrainConfig
from .images import class_baselines
from .recipe import Recipe, sized_loader

INPUT_SIZE = {"full": 128, "fast": 32}  # side of the projected views, per run mode


FRONTENDS = ("learned", "fixed")
FRONTEND = "learned"  # the default: see notebook 08 for both, same seed and schedule


load = sized_loader(data)  # load(split, size)


def make_frontend(kind: str = FRONTEND, size: RunSize | str = "full") -> nn.Module:
    """P x 3 -> 3 x S x S: "learned" (LearnedProjection) or "fixed" (PointProjection, depth views)."""
    side = INPUT_SIZE[RunSize.parse(size).key]
    if kind == "learned":
        return LearnedProjection(side)
    if kind == "fixed":
        return PointProjection(side, mode="depth")
    raise ValueError(f"frontend must be one of {FRONTENDS}, got {kind!r}")


def make_model(variant: str = "unireplknet_a", lk_size: int = 13, size: RunSize | str = "full",
               frontend: str = FRONTEND, num_classes: int = len(data.CLASSES), **overrides) -> nn.Module:
    """Three-view front-end (P x 3 -> 3 x S x S) + UniRepLKNet with 3 input channels, 10 classes
    (ModelNet40: num_classes=40)."""
    first = make_frontend(frontend, size)  # before the backbone: a bad name fails before any work
    backbone = create_model(variant, num_classes=num_classes, in_chans=3, lk_size=lk_size, **overrides)
    return nn.Sequential(first, backbone)


def config(size: RunSize | str) -> TrainConfig:
    # Batch 32: the FAST training split has only 480 clouds, so 64 would leave ~7 steps an epoch.
    size = RunSize.parse(size)
    if size.small:
        return TrainConfig(epochs=size.epochs(3), batch_size=32, lr=2e-3, warmup_fraction=0.1)
    return TrainConfig(epochs=40, batch_size=32, lr=2e-3)


RECIPE = Recipe(
    name="shapes", label="point cloud", notebook="08_point_clouds.ipynb", data=data,
    task="classification", metric="accuracy",
    load=load, make_model=make_model, config=config, baselines=class_baselines,
    input_note=("P x 3 clouds projected to three 128 x 128 views (stage-3 map 8 x 8, covered by a 13 x 13 "
                "kernel); FAST mode uses 32 x 32 views (stage-3 map 2 x 2) to train in a couple of minutes "
                "on a CPU"),
    tiny_config={"epochs": 1},  # for notebook 10's 15 runs: makes one FAST run cheaper still
    classes=tuple(data.CLASSES), input_size=INPUT_SIZE, views=("side", "front", "top"),
)
