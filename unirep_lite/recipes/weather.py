"""Recipe "weather": 24-hour forecasts of station temperatures (unirep_lite.data.weather).

The paper forecasts temperature and wind separately and its kernel-size table (Table 13) reports the
temperature MAE; this recipe does temperature. (Wind is much harder to beat persistence on in a short
CPU run; `data.load(..., features="wind_speed")` gives it for your own experiments.)
A window of the last 48 hours of every station (L x D, D = stations, standardised with
the training range's statistics) goes through Corrformer's embedding (`frontends.timeseries`): the D
channels are split into n nodes, each hour's values of a node are projected to D' numbers, and the
node's L x D' map is one single-channel H x W image (H * W = L * D') for the backbone; a linear head
turns the pooled features into the next 24 hours. Two embeddings (`make_model(embedding=...)`):
"corrformer" (the paper's: conv token embedding + time features from the data's timestamps, hour of
day and day of year + positions; its windows come as (x, time marks) pairs, `load(..., time_marks=True)`)
and "linear" (one linear layer per hour). The default is "linear": with the same seed and schedule in
FAST mode the Corrformer embedding scored test MAE 0.361 / 0.361 / 0.357 (seeds 0 / 1 / 2) against the
linear one's 0.358 / 0.358 / 0.359 (both clear persistence 0.446 and seasonal 0.388): not better, so it
is an option, not the default (notebook 09 shows both). Loss MSE, headline metric MAE (in standardised
units, lower is better), compared with the persistence and seasonal (24 h) forecasts.
  full run: 4 nodes, D' = 432, image 144 x 144 -> stage-3 map 9 x 9, covered by a 13 x 13 kernel;
  FAST run: 1 node,  D' = 32,  image 48 x 32   -> stage-3 map 3 x 2, so a 2-core CPU trains it in a
            minute or two (there every kernel >= 3 covers the stage-3 map).
Windows start every hour in the full run; FAST mode trains on every 6th hour's window (~1,000) and
tests on every 4th (consecutive windows overlap by 71 of 72 hours, so little is lost).
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..data import weather as data
from ..frontends.timeseries import TimeSeriesForecaster
from ..runsize import RunSize
from ..train import TrainConfig
from .recipe import Recipe

# (nodes, D', image H x W) of the embedding; H * W = 48 * D'
EMBEDDING = {"full": (4, 432, (144, 144)), "fast": (1, 32, (48, 32))}
FEATURE = "temperature"
STRIDES = {"full": {"train": 1, "val": 6, "test": 1}, "fast": {"train": 6, "val": 12, "test": 4}}


EMBEDDINGS = ("corrformer", "linear")
EMBEDDING_KIND = "linear"  # the default: no worse than "corrformer" in FAST mode (notebook 09 shows both)


class TimedWindows(Dataset):
    """A `StationWindows` whose inputs carry their timestamps: ((x, marks), y), marks = L x 2 int64
    (hour of day, day of year of each input hour, `data.calendar`). Other attributes are the windows'."""

    def __init__(self, windows):
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i):
        x, y = self.windows[i]
        t = self.windows.starts[i]
        marks = torch.from_numpy(data.calendar(self.windows.hours[t:t + len(x)]))
        return (x, marks), y

    def __getattr__(self, name):  # num_channels, series, mean, std, bounds, stations, real, ...
        if name == "windows":
            raise AttributeError(name)
        return getattr(self.windows, name)


def windows_of(dataset):
    """The plain (x, y) windows under a dataset (TimedWindows or not), e.g. for the naive baselines."""
    return dataset.windows if isinstance(dataset, TimedWindows) else dataset


def load(split: str, size: RunSize | str, time_marks: bool | None = None):
    """Windows (x: 48 x D, y: 24 x D) of temperatures, standardised; FAST mode uses fewer, strided windows.

    time_marks: inputs as (x, marks) pairs for the "corrformer" embedding; None = the default embedding's need.
    """
    size = RunSize.parse(size)
    windows = data.load(split, fast=size.small, stride=STRIDES[size.key][split], features=FEATURE, normalize=True)
    if time_marks is None:
        time_marks = EMBEDDING_KIND == "corrformer"
    return TimedWindows(windows) if time_marks else windows


def channels(size: RunSize | str) -> int:
    """D = the number of stations of the dataset this size builds (one feature each)."""
    return data.num_stations(RunSize.parse(size).small)


def make_model(variant: str = "unireplknet_a", lk_size: int = 13, size: RunSize | str = "full",
               embedding: str = EMBEDDING_KIND, stations: int | None = None,
               **overrides) -> TimeSeriesForecaster:
    """Embedding ("corrformer" or "linear") + UniRepLKNet (1 input channel, no classifier) + 24-hour head.

    stations: D of another array (the paper's has 3,850); default: the offline dataset's. The D
    stations split into the run size's number of nodes, or the most below it that divide D evenly.
    """
    size = RunSize.parse(size)
    n_nodes, d_model, image_size = EMBEDDING[size.key]
    d = channels(size) if stations is None else stations
    n_nodes = max(n for n in range(1, n_nodes + 1) if d % n == 0)
    return TimeSeriesForecaster(data.INPUT_LEN, data.HORIZON, d, n_nodes=n_nodes, d_model=d_model,
                                backbone=variant, image_size=image_size, lk_size=lk_size, embedding=embedding,
                                **overrides)


def config(size: RunSize | str) -> TrainConfig:
    size = RunSize.parse(size)
    if size.small:
        return TrainConfig(epochs=size.epochs(2), batch_size=32, lr=2e-3, warmup_fraction=0.1, task="regression")
    return TrainConfig(epochs=30, batch_size=64, lr=1e-3, task="regression")


def baselines(dataset) -> dict:
    """MAE of the naive forecasts on a split (the recipe's metric); `data.baseline_scores` has MSE too."""
    scores = data.baseline_scores(windows_of(dataset))
    return {name.replace("_24h", " (24 h)"): s["mae"] for name, s in scores.items()}


def dataset_for(dataset, embedding: str):
    """The split in the form the embedding eats: (x, marks) pairs for "corrformer", plain x for "linear"."""
    windows = windows_of(dataset)
    return TimedWindows(windows) if embedding == "corrformer" else windows


RECIPE = Recipe(
    name="weather", label="time series", notebook="09_time_series.ipynb", data=data,
    task="regression", metric="mae",
    load=load, make_model=make_model, config=config, baselines=baselines,
    input_note=("48 h x D windows embedded as 4 node images of 144 x 144 (D' = 432, stage-3 map 9 x 9, "
                "covered by a 13 x 13 kernel); FAST mode uses one 48 x 32 image per window (D' = 32, "
                "stage-3 map 3 x 2) to train in a minute or two on a CPU"),
    tiny_config={"epochs": 1},  # for notebook 10's 15 runs: makes one FAST run cheaper still
    feature=FEATURE, unit=data.UNITS[FEATURE],
)
