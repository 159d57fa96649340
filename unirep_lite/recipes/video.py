"""Recipe "video": synthetic actions (unirep_lite.data.video) classified from a tiled frame grid.

A clip of 16 frames of 3 x 32 x 32 becomes one 3 x 128 x 128 image, a 4 x 4 grid of frames in reading
order (`frontends.video.VideoFrontend`, the paper's layout), and an ordinary image backbone with 3
input channels classifies it. Motion is then a change of position from tile to tile, which only
kernels that reach across tiles can compare: that is what large kernels are for here.
  full run: 128 x 128 -> stage-3 map 8 x 8 (half a frame per cell), a 13 x 13 kernel spans the grid;
  FAST run: the grid averaged over 2 x 2 cells -> 64 x 64 (16 x 16 frames, stage-3 map 4 x 4), a
            quarter of the pixels, so a CPU trains it in a minute or two. Tiles stay separate (each
            is 32 wide, so no 2 x 2 cell straddles two frames).
`layout="authors"` (or "reshape") builds the authors' row-interleaved layout instead, for comparison;
the default is `layout="paper"` (or "grid"), the frame grid the paper describes.
"""
from __future__ import annotations

from torch import nn

from ..data import video as data
from ..frontends.video import VideoFrontend
from ..model import create_model
from ..runsize import RunSize
from ..train import TrainConfig
from .images import class_baselines
from .recipe import Recipe, sized_loader

INPUT_SIZE = {"full": 128, "fast": 64}  # side of the frame grid, per run mode


load = sized_loader(data)  # load(split, size)


def make_model(variant: str = "unireplknet_a", lk_size: int = 13, size: RunSize | str = "full",
               layout: str = "paper", num_classes: int = len(data.CLASSES), **overrides) -> nn.Module:
    """VideoFrontend (+ 2 x 2 average pooling in FAST mode) + UniRepLKNet(in_chans=3, 8 actions;
    Kinetics-400: num_classes=400)."""
    fast = RunSize.parse(size).small
    frontend = VideoFrontend(layout)
    backbone = create_model(variant, num_classes=num_classes, in_chans=3, lk_size=lk_size, **overrides)
    return nn.Sequential(frontend, nn.AvgPool2d(2), backbone) if fast else nn.Sequential(frontend, backbone)


def config(size: RunSize | str) -> TrainConfig:
    # lr 1e-3: at 2e-3 a FAST run stayed at chance (12.5%) for 4 epochs; at 1e-3 it reached 81% in 6
    size = RunSize.parse(size)
    if size.small:
        return TrainConfig(epochs=size.epochs(6), batch_size=32, lr=1e-3, warmup_fraction=0.1)
    return TrainConfig(epochs=40, batch_size=64, lr=1e-3)


RECIPE = Recipe(
    name="video", label="video", notebook="07_video.ipynb", data=data,
    task="classification", metric="accuracy",
    load=load, make_model=make_model, config=config, baselines=class_baselines,
    input_note=("16 frames of 3 x 32 x 32 tiled 4 x 4 -> 3 x 128 x 128 (stage-3 map 8 x 8); FAST mode pools "
                "the grid to 64 x 64 (16 x 16 frames, stage-3 map 4 x 4) to train in a minute or two on a CPU"),
    tiny_config={},  # the FAST config is already the shortest run that learns (fewer epochs stay near chance)
    classes=tuple(data.CLASSES), input_size=INPUT_SIZE, num_frames=data.NUM_FRAMES,
)
