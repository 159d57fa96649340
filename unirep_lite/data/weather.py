"""Time series: hourly station weather (temperature, wind speed) offline, and the paper's .npy loader.

The offline dataset ("weather") is a `time x stations x features` array like the paper's global
temperature/wind data, from the typical-meteorological-year (TMY) files that ship inside pvlib:
Sand Point AK (TMY3), Greensboro NC (TMY3) and Miami FL (TMY2), 8,760 hours each, in each station's
local standard time. A TMY stitches typical months from different years, so the stations are not
simultaneous observations; what they share is the daily and seasonal cycle.

Three stations are few, so the array adds *derived* stations after the real ones, made
deterministically from the seed: derived station k is a convex mix of the real stations, each
delayed by 0 to 6 hours (a delay holds the first value instead of wrapping around the year, so no
later hour leaks to the start), plus AR(1) noise (coefficient 0.9, stationary std 0.1 x the feature's
std); wind is clipped at 0. The full build has 3 real + 29 derived stations, the FAST one 3 + 5.
`info.json` lists, for every station, whether it is real and, if derived, its weights and delays.

Splits are TIME RANGES (train first 70% of the year, then val 10%, then test 20%; `time_splits`),
with a gap of `horizon` hours between ranges; a window of input_len + horizon hours lies wholly
inside one range, so no hour is an input or a target in two splits.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from unirep_lite.data import cache
from unirep_lite.data.common import FixedSamples, SPLITS, check_split, load_npy
from unirep_lite.env import progress_bar

NAME = "weather"
VERSION = 1
SEED = 0
FEATURES = ("temperature", "wind_speed")
UNITS = {"temperature": "degC", "wind_speed": "m/s"}
INPUT_LEN, HORIZON = 48, 24  # the paper's 48 h in, 24 h out
FRACTIONS = (0.7, 0.1, 0.2)  # train, val, test, in time order
HOURS = 8760
MAX_DELAY = 6
AR_COEF, NOISE_FRACTION = 0.9, 0.1

# (file inside pvlib's data folder, reader, short name); TMY2 stores tenths of degC and of m/s
REAL_STATIONS = (("703165TY.csv", "tmy3", "Sand Point AK"), ("723170TYA.CSV", "tmy3", "Greensboro NC"),
                 ("12839.tm2", "tmy2", "Miami FL"))


def read_tmy_station(filename: str, reader: str) -> np.ndarray:
    """One pvlib-bundled TMY file -> 8760 x 2 float32 (temperature degC, wind speed m/s), in file order."""
    import pvlib
    from pvlib import iotools

    path = Path(pvlib.__file__).parent / "data" / filename
    if reader == "tmy3":
        df, _ = iotools.read_tmy3(str(path), map_variables=True)
        values = df[["temp_air", "wind_speed"]].to_numpy(np.float64)
    else:
        df, _ = iotools.read_tmy2(str(path))
        values = df[["DryBulb", "Wspd"]].to_numpy(np.float64) / 10.0
    if values.shape != (HOURS, 2) or not np.isfinite(values).all():
        raise ValueError(f"{path}: expected {HOURS} finite hourly rows, got {values.shape}")
    return values.astype(np.float32)


def delay(series: np.ndarray, hours: int) -> np.ndarray:
    """series shifted later by `hours` along axis 0, the first value held (no wrap-around)."""
    if hours == 0:
        return series.copy()
    return np.concatenate([np.repeat(series[:1], hours, axis=0), series[:-hours]], axis=0)


def ar1_noise(n: int, coef: float, std: float, rng: np.random.Generator) -> np.ndarray:
    """An AR(1) series x_t = coef * x_{t-1} + e_t whose stationary standard deviation is `std`."""
    e = rng.normal(0.0, std * np.sqrt(1 - coef**2), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, std)
    for t in range(1, n):
        x[t] = coef * x[t - 1] + e[t]
    return x


def derive_stations(real: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, list[dict]]:
    """`count` derived stations (T x count x F) from the real ones (T x S x F), and how each was made."""
    rng = np.random.default_rng(seed)
    t, s, f = real.shape
    feature_std = real.reshape(-1, f).std(axis=0)
    out, recipes = np.empty((t, count, f), np.float32), []
    for k in range(count):
        weights, delays = rng.dirichlet(np.ones(s)), rng.integers(0, MAX_DELAY + 1, s)
        mix = sum(w * delay(real[:, j], int(d)) for j, (w, d) in enumerate(zip(weights, delays)))
        noise = np.stack([ar1_noise(t, AR_COEF, NOISE_FRACTION * feature_std[i], rng) for i in range(f)], axis=1)
        station = mix + noise
        station[:, FEATURES.index("wind_speed")] = np.maximum(station[:, FEATURES.index("wind_speed")], 0.0)
        out[:, k] = station
        recipes.append({"weights": np.round(weights, 6).tolist(), "delays_h": delays.tolist()})
    return out, recipes


def calendar(hours) -> np.ndarray:
    """(hour of day 0..23, day of year 0..364) of array rows: row t of a typical year is local standard
    hour t % 24 of day t // 24 (Jan 1 = day 0; TMY rows are the hours from Jan 1 00:00, same for all stations)."""
    hours = np.asarray(hours)
    return np.stack([hours % 24, (hours // 24) % 365], axis=-1)


def num_stations(fast: bool = False) -> int:
    """Stations in the array this mode builds: the real TMY ones plus the derived ones."""
    return len(REAL_STATIONS) + _params(bool(fast))["derived_stations"]


def _params(fast: bool) -> dict:
    return {"seed": SEED, "derived_stations": 5 if fast else 29, "features": list(FEATURES),
            "real_stations": [name for _, _, name in REAL_STATIONS], "max_delay_h": MAX_DELAY,
            "ar_coef": AR_COEF, "noise_fraction": NOISE_FRACTION}


def _builder(params: dict):
    def build_into(folder: Path) -> None:
        bar = progress_bar(REAL_STATIONS, desc="weather: reading TMY")
        real = np.stack([read_tmy_station(f, r) for f, r, _ in bar], axis=1)
        derived, recipes = derive_stations(real, params["derived_stations"], params["seed"])
        np.save(folder / "stations.npy", np.concatenate([real, derived], axis=1))  # time x stations x features
        stations = [{"name": name, "real": True, "source": f"pvlib/data/{f}"} for f, _, name in REAL_STATIONS]
        stations += [{"name": f"derived-{k:02d}", "real": False, **r} for k, r in enumerate(recipes)]
        (folder / "info.json").write_text(json.dumps(
            {"features": list(FEATURES), "units": UNITS, "axes": ["time (hour of a typical year)", "station",
             "feature"], "stations": stations}, indent=1))

    return build_into


def build(fast: bool = False, root=None, force: bool = False) -> Path:
    """Build (once) the offline weather array and return its folder (`weather` or `weather-fast`)."""
    return cache.build_modality(NAME, _params, _builder, version=VERSION, fast=fast, root=root, force=force)


# ---------------------------------------------------------------- windows over time ranges

def _check_window(**sizes) -> None:
    """ValueError unless every window size (input_len, horizon, stride) is an integer >= 1."""
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1 (hours), got {v!r}")


def time_splits(n_time: int, input_len: int = INPUT_LEN, horizon: int = HORIZON,
                fractions=FRACTIONS, gap: int | None = None) -> dict[str, tuple[int, int]]:
    """Hour ranges [start, end) of train, val and test, in time order, `gap` (default: horizon) apart."""
    _check_window(input_len=input_len, horizon=horizon)
    gap = horizon if gap is None else gap
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise ValueError(f"gap must be an integer >= 0 (hours between splits), got {gap!r}")
    usable = n_time - 2 * gap
    bounds, start = {}, 0
    for split, frac in zip(SPLITS, fractions):
        end = n_time if split == SPLITS[-1] else start + int(round(frac * usable))  # test runs to the end
        bounds[split] = (start, end)
        start = end + gap
    for split, (a, b) in bounds.items():
        if b - a < input_len + horizon:
            raise ValueError(f"the {split} range has {b - a} hours, fewer than input_len + horizon = "
                             f"{input_len + horizon}; use a longer series or shorter windows")
    return bounds


class StationWindows(FixedSamples, Dataset):
    """Sliding windows over a time x stations x features array, in one split's time range.

    Yields (x, y): x = input_len x D, y = horizon x D float32, with D = stations x features flattened
    station-major (the features of one station are neighbours). normalize=True standardises every
    (station, feature) with the mean and std of the TRAIN range (never val or test); `.mean`/`.std`
    (shape D) undo it. `.stations`, `.features` and `.bounds` (the split's hour range) describe it.
    """

    def __init__(self, array: np.ndarray, split: str, input_len: int = INPUT_LEN, horizon: int = HORIZON,
                 stride: int = 1, features=None, normalize: bool = False, fractions=FRACTIONS, gap=None,
                 stations=None, feature_names=FEATURES, source: str = "array"):
        check_split(split)
        _check_window(input_len=input_len, horizon=horizon, stride=stride)
        check_station_array(array, source)
        feature_names = list(feature_names)
        if features is None:
            chosen = feature_names
        else:
            chosen = [features] if isinstance(features, str) else list(features)
        unknown = [f for f in chosen if f not in feature_names]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; this array has {feature_names}")
        self.features = chosen
        self.stations = list(stations) if stations is not None else [f"station-{i}" for i in range(array.shape[1])]
        self.input_len, self.horizon, self.stride = input_len, horizon, stride
        try:
            ranges = time_splits(array.shape[0], input_len, horizon, fractions, gap)
        except ValueError as e:
            raise ValueError(f"{source} ({array.shape[0]} hours): {e}") from None
        self.bounds = start, end = ranges[split]
        self.hours = np.arange(start, end)  # the array row (hour of the year) of each row of `series`
        cols = [feature_names.index(f) for f in chosen]
        self.series = np.ascontiguousarray(array[start:end][:, :, cols], dtype=np.float32).reshape(end - start, -1)
        train_start, train_end = ranges["train"]
        train = np.asarray(array[train_start:train_end][:, :, cols]).reshape(train_end - train_start, -1)
        for name, block, offset in ((split, self.series, start), ("train", train, train_start)):
            if not np.isfinite(block).all():
                hour, column = np.argwhere(~np.isfinite(block))[0]
                raise ValueError(f"{source}: non-finite value (NaN/inf) in the {name} range at hour "
                                 f"{offset + hour}, column {column}; fill or drop missing values first")
        # float64 accumulators, no float64 copy: the real arrays hold thousands of stations
        self.mean = train.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.std = np.maximum(train.std(axis=0, dtype=np.float64), 1e-6).astype(np.float32)
        if normalize:
            self.series = (self.series - self.mean) / self.std
        self.normalize = normalize
        self.starts = np.arange(0, len(self.series) - input_len - horizon + 1, stride)

    @property
    def num_channels(self) -> int:
        """D, the width of x and y."""
        return self.series.shape[1]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i):
        t = self.starts[i]
        window = torch.from_numpy(self.series[t:t + self.input_len + self.horizon])
        return window[:self.input_len], window[self.input_len:]


def load(split: str, fast: bool = False, root=None, input_len: int = INPUT_LEN, horizon: int = HORIZON,
         stride: int = 1, features=None, normalize: bool = True) -> StationWindows:
    """The weather split as (x: input_len x D, y: horizon x D) windows; builds the array on first use.

    features: None (both), "temperature" or "wind_speed" (the paper forecasts each separately).
    """
    check_split(split)  # before a build
    folder = build(fast, root)
    info = json.loads((folder / "info.json").read_text())
    array = load_npy(folder / "stations.npy")
    ds = StationWindows(array, split, input_len, horizon, stride, features, normalize,
                        stations=[s["name"] for s in info["stations"]], feature_names=info["features"],
                        source=str(folder / "stations.npy"))
    ds.real = [s["real"] for s in info["stations"]]
    return ds


# ---------------------------------------------------------------- baselines the models must beat

def persistence_forecast(x: torch.Tensor, horizon: int = HORIZON) -> torch.Tensor:
    """Naive forecast: the last observed hour repeated. x (..., L, D) -> (..., horizon, D)."""
    return x[..., -1:, :].expand(*x.shape[:-2], horizon, x.shape[-1])


def seasonal_forecast(x: torch.Tensor, horizon: int = HORIZON, period: int = 24) -> torch.Tensor:
    """Seasonal naive forecast: hour t ahead repeats the hour one `period` earlier. (..., L, D) -> (..., horizon, D)."""
    if x.shape[-2] < period:
        raise ValueError(f"the seasonal baseline needs input_len >= period = {period}, got {x.shape[-2]}")
    last = x[..., -period:, :]
    reps = -(-horizon // period)
    return torch.cat([last] * reps, dim=-2)[..., :horizon, :]


def baseline_scores(dataset: StationWindows, batch_size: int = 512) -> dict[str, dict[str, float]]:
    """MSE and MAE of the persistence and seasonal (24 h) baselines over a dataset, in its own units."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    sums = {name: {"mse": 0.0, "mae": 0.0} for name in ("persistence", "seasonal_24h")}
    n = 0
    for x, y in loader:
        for name, pred in (("persistence", persistence_forecast(x, y.shape[1])),
                           ("seasonal_24h", seasonal_forecast(x, y.shape[1]))):
            sums[name]["mse"] += (pred - y).pow(2).sum().item()
            sums[name]["mae"] += (pred - y).abs().sum().item()
        n += y.numel()
    return {name: {k: v / n for k, v in s.items()} for name, s in sums.items()}


# ---------------------------------------------------------------- the real benchmark's arrays

NPY_LAYOUT = """expected the global station arrays as NumPy .npy files of shape (time, stations, features),
e.g. temp.npy (hourly temperature) and wind.npy (hourly wind speed) of the same stations and hours:
  {root}/temp.npy   float array, time x stations x 1
  {root}/wind.npy   float array, time x stations x 1"""


def check_station_array(array: np.ndarray, source: str = "array") -> None:
    """ValueError naming `source` unless `array` is a non-empty numeric time x stations x features array."""
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise ValueError(f"{source}: expected a numeric NumPy array, got {type(array).__name__} "
                         f"of dtype {getattr(array, 'dtype', None)}")
    if array.ndim != 3 or min(array.shape) == 0:
        raise ValueError(f"{source}: expected shape (time, stations, features), got {array.shape} "
                         f"(ndim {array.ndim}); add a features axis with array[..., None] if you have one feature")


def read_station_array(path) -> np.ndarray:
    """One .npy file (time x stations x features), memory-mapped; clear errors for a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; " + NPY_LAYOUT.format(root=path.parent))
    array = load_npy(path, fix="expected an array of shape (time, stations, features)", mmap_mode="r")
    check_station_array(array, str(path))
    return array


class GlobalStations(StationWindows):
    """The paper's global temperature/wind data: one or more .npy arrays, time x stations x features.

    Several files (say temp.npy and wind.npy) must share time and stations; their features are
    stacked in the order given and named after the files. Splits are time ranges (`time_splits`).
    Reading is all-or-nothing: a malformed file raises ValueError naming it (nothing is skipped,
    since one file holds every station).
    """

    def __init__(self, paths, split: str = "train", input_len: int = INPUT_LEN, horizon: int = HORIZON,
                 stride: int = 1, normalize: bool = True, fractions=FRACTIONS, gap=None):
        paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        if not paths:
            raise ValueError("give at least one .npy path; " + NPY_LAYOUT.format(root="<root>"))
        arrays = [read_station_array(p) for p in paths]
        for p, a in zip(paths[1:], arrays[1:]):
            if a.shape[:2] != arrays[0].shape[:2]:
                raise ValueError(f"{p}: shape {a.shape} does not match {paths[0]}'s {arrays[0].shape} in "
                                 "(time, stations); every file must cover the same hours and stations")
        array = arrays[0] if len(arrays) == 1 else np.concatenate([np.asarray(a) for a in arrays], axis=2)
        names = [p.stem if a.shape[2] == 1 else f"{p.stem}_{i}"  # temp.npy -> "temp"
                 for p, a in zip(paths, arrays) for i in range(a.shape[2])]
        super().__init__(array, split, input_len, horizon, stride, None, normalize, fractions, gap,
                         feature_names=names, source=", ".join(map(str, paths)))
        self.paths = paths
