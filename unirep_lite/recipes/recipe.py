"""What a recipe is: one modality's data, front-end + backbone and training settings in one place.

Every function of a recipe takes the run size (`runsize.RunSize`) as an argument: the caller decides
it once (a notebook's first cell, a command line) and passes it down.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable

from torch import nn
from torch.utils.data import Dataset

from ..runsize import RunSize


@dataclass(frozen=True)
class Recipe:
    name: str                                   # registry key, e.g. "digits"
    label: str                                  # the paper's modality: "image", "audio", "video", ...
    notebook: str                               # the notebook that walks through it: "05_images.ipynb"
    data: ModuleType                            # its dataset module (build(fast) / load(split, fast))
    task: str                                   # "classification" or "regression" (train.TrainConfig.task)
    metric: str                                 # headline test metric: "accuracy" (higher is better) or "mae"
    load: Callable[..., Dataset]                # load(split, size) -> Dataset of (raw sample, target)
    make_model: Callable[..., nn.Module]        # make_model(variant="unireplknet_a", lk_size=13, size=..., **kw)
    config: Callable[[RunSize], object]         # config(size) -> train.TrainConfig (epochs of that size)
    baselines: Callable[[Dataset], dict]        # trivial baselines on a split: {"majority class": 0.1, ...}
    input_note: str = ""                        # the backbone's input size and why (shown in notebooks)
    tiny_config: dict = field(default_factory=dict)  # TrainConfig overrides for a FAST run cheaper still
    # what the notebooks show about the data, by modality (left empty where it does not apply)
    classes: tuple[str, ...] = ()               # class names, index = label (classification)
    input_size: dict = field(default_factory=dict)  # side of the square image the backbone sees: {"full": 128, "fast": 32}
    sample_rate: int = 0                        # audio: samples per second of the waveforms
    num_frames: int = 0                         # video: frames per clip
    views: tuple[str, ...] = ()                 # point clouds: the projections, one image channel each
    feature: str = ""                           # time series: the variable forecast
    unit: str = ""                              # time series: its unit, e.g. "degC"

    @property
    def modality(self) -> str:
        """The paper's modality ("image", "audio", "video", "point cloud", "time series")."""
        return self.label

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"


def sized_loader(data: ModuleType) -> Callable[..., Dataset]:
    """`load(split, size)` of a dataset module with a small and a full build: the small one for the
    FAST and CPU-sized runs."""
    def load(split: str, size: RunSize | str) -> Dataset:
        return data.load(split, fast=RunSize.parse(size).small)
    return load
