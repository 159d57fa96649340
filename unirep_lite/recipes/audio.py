"""Recipe "speech": spoken command words (unirep_lite.data.audio) classified from their filterbank.

The model is the paper's audio pipeline: waveform -> Kaldi log-mel filterbank (128 bins x 128 frames
of 10 ms, `frontends.audio.AudioFrontend`) seen as a 1 x 128 x 128 image -> UniRepLKNet with one
input channel. SpecAugment (full run) runs inside the front-end in training mode only, so `model.eval()` (and
the deploy model) sees clean filterbanks.
  full run: 128 x 128 filterbank -> stage-3 map 8 x 8 (the paper's size), a 13 x 13 kernel covers it;
  FAST run: the filterbank averaged over 2 x 2 cells -> 64 x 64 (stage-3 map 4 x 4), a quarter of the
            pixels, so a CPU trains it in a minute or two.
Layout and normalisation: `layout="paper"` (default: 1 x T x F, as the paper's text) or "authors"
(1 x F x T, as their code); `normalize="clip"` (default: each clip to mean 0, std 1) or "dataset" (the
authors': (fbank - mean) / (2 std) after padding, with the training split's statistics).
"""
from __future__ import annotations

from torch import nn

from ..data import audio as data
from ..frontends.audio import AudioFrontend, dataset_stats
from ..model import create_model
from ..runsize import RunSize
from ..train import TrainConfig
from .images import class_baselines
from .recipe import Recipe, sized_loader

INPUT_SIZE = {"full": 128, "fast": 64}  # side of the filterbank image, per run mode


load = sized_loader(data)  # load(split, size)


def training_stats(size: RunSize | str) -> tuple[float, float]:
    """Mean and std of the training split's padded filterbanks (the authors' normalisation statistics)."""
    train = load("train", size)
    return dataset_stats(train[i][0] for i in range(len(train)))


def make_model(variant: str = "unireplknet_a", lk_size: int = 13, size: RunSize | str = "full",
               augment: bool | None = None, layout: str = "paper", normalize: str = "clip",
               stats: tuple[float, float] | None = None, num_classes: int = len(data.WORDS),
               **overrides) -> nn.Module:
    """AudioFrontend (+ 2 x 2 average pooling in FAST mode) + UniRepLKNet(in_chans=1, 10 words; Speech
    Commands V2: num_classes=35).

    augment: SpecAugment in training; default on for the full run only. Its masks (up to 48 frames)
    can hide a whole word, which a long run learns to cope with but a few epochs do not.
    layout, normalize: see the module docstring; normalize="dataset" without stats computes them
    from the training split (`training_stats`).
    """
    size = RunSize.parse(size)
    fast = size.small
    if normalize == "dataset" and stats is None:
        stats = training_stats(size)
    frontend = AudioFrontend(augment=(not fast) if augment is None else augment, layout=layout,
                             normalize=normalize, stats=stats)
    backbone = create_model(variant, num_classes=num_classes, in_chans=1, lk_size=lk_size, **overrides)
    return nn.Sequential(frontend, nn.AvgPool2d(2), backbone) if fast else nn.Sequential(frontend, backbone)


def config(size: RunSize | str) -> TrainConfig:
    # mixup and label smoothing as in the paper's audio recipe, but only for the long run: a short
    # run learns faster without them (FAST data, 4 epochs: 14% test accuracy with SpecAugment, smoothing
    # and lr 2e-3; 55% without SpecAugment and smoothing at lr 1e-3)
    size = RunSize.parse(size)
    if size.small:
        return TrainConfig(epochs=size.epochs(5), batch_size=32, lr=1e-3, warmup_fraction=0.1, label_smoothing=0.0)
    return TrainConfig(epochs=40, batch_size=64, lr=2e-3, mixup_alpha=0.5)


RECIPE = Recipe(
    name="speech", label="audio", notebook="06_audio.ipynb", data=data,
    task="classification", metric="accuracy",
    load=load, make_model=make_model, config=config, baselines=class_baselines,
    input_note=("1 s at 16 kHz -> 1 x 128 x 128 log-mel filterbank (stage-3 map 8 x 8, the paper's size); "
                "FAST mode pools it to 64 x 64 (stage-3 map 4 x 4) to train in a minute or two on a CPU"),
    tiny_config={"epochs": 3},  # for notebook 10's 15 runs: makes one FAST run cheaper still
    classes=tuple(data.WORDS), input_size=INPUT_SIZE, sample_rate=data.SAMPLE_RATE,
)
