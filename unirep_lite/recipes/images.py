"""Recipe "digits": real MNIST digits (unirep_lite.data.images) classified by UniRepLKNet.

The digits are 28 x 28 grey images; the backbone sees them enlarged (bilinear) so that its stage-3
feature map is big enough for a large kernel to have something to cover:
  full run: 128 x 128 -> stage-3 map 8 x 8, a 13 x 13 kernel spans all of it from any position;
  FAST run:  32 x  32 -> stage-3 map 2 x 2, 16x fewer pixels than the full run, so a CPU trains
             it in one to two minutes (every kernel >= 3 covers the whole map there, K or not).
The enlargement is a layer of the model (`Resize`), so the model takes the dataset's 1 x 28 x 28
digits as they are, and the deploy model does too.

This module also holds the pieces the other classification recipes share: `Resize` and
`class_baselines`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import images as data
from ..model import create_model
from ..runsize import RunSize
from ..train import TrainConfig
from .recipe import Recipe, sized_loader

INPUT_SIZE = {"full": 128, "fast": 32}  # side of the enlarged digits, per run mode


class Resize(nn.Module):
    """B x C x h x w -> B x C x size x size, bilinear (antialiased when shrinking)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected images B x C x H x W, got shape {tuple(x.shape)}")
        if x.shape[-2:] == (self.size, self.size):
            return x
        shrink = min(x.shape[-2:]) > self.size
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                             antialias=shrink)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def class_baselines(dataset) -> dict:
    """Trivial classifiers' accuracy on a split: always guessing its most common class, and chance."""
    labels = np.asarray(dataset.labels)
    if labels.size == 0:
        raise ValueError("class_baselines needs a non-empty split")
    counts = np.bincount(labels, minlength=len(dataset.classes))
    return {"majority class": float(counts.max() / counts.sum()), "chance": 1.0 / len(dataset.classes)}


load = sized_loader(data)  # load(split, size)


def make_model(variant: str = "unireplknet_a", lk_size: int = 13, size: RunSize | str = "full",
               num_classes: int = len(data.CLASSES), in_chans: int = 1, **overrides) -> nn.Module:
    """Resize(28 -> input size) + UniRepLKNet with 1 input channel and 10 classes (other benchmarks:
    `num_classes`, `in_chans`)."""
    size = RunSize.parse(size)
    backbone = create_model(variant, num_classes=num_classes, in_chans=in_chans, lk_size=lk_size, **overrides)
    return nn.Sequential(Resize(INPUT_SIZE[size.key]), backbone)


def config(size: RunSize | str) -> TrainConfig:
    # lr 2e-3 at batch 64: AdamW's usual range for a model this small; no mixup, digits are easy
    size = RunSize.parse(size)
    if size.small:
        # 3 epochs gave 95.3% test accuracy, too close to the 95% bar; 5 gave 96.9%
        return TrainConfig(epochs=size.epochs(5), batch_size=64, lr=2e-3, warmup_fraction=0.1)
    return TrainConfig(epochs=30, batch_size=64, lr=2e-3)


RECIPE = Recipe(
    name="digits", label="image", notebook="05_images.ipynb", data=data,
    task="classification", metric="accuracy",
    load=load, make_model=make_model, config=config, baselines=class_baselines,
    input_note=("1 x 28 x 28 digits enlarged to 128 x 128 (stage-3 map 8 x 8, covered by a 13 x 13 kernel); "
                "FAST mode uses 32 x 32 (stage-3 map 2 x 2) to train in one to two minutes on a CPU"),
    tiny_config={"epochs": 2},  # for notebook 10's 15 runs: makes one FAST run cheaper still
    classes=tuple(data.CLASSES), input_size=INPUT_SIZE,
)
