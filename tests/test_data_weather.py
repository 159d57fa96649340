"""Time series: the offline weather array, time-range splits, baselines, the .npy loader, the front-end."""
import json

import numpy as np
import pytest
import torch

from unirep_lite.data import cache, weather
from unirep_lite.frontends.timeseries import (CorrformerEmbedding, ForecastHead, TimeSeriesForecaster,
                                              merge_nodes, split_nodes)


@pytest.fixture(scope="module")
def weather_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    weather.build(fast=True, root=root)
    return root


# ---------------------------------------------------------------- offline weather

def test_weather_array_keeps_the_real_stations_honest(weather_root):
    folder = weather_root / "weather-fast"
    array = np.load(folder / "stations.npy")
    info = json.loads((folder / "info.json").read_text())
    n_real = len(weather.REAL_STATIONS)
    assert array.shape == (weather.HOURS, weather.num_stations(fast=True), 2)
    assert weather.num_stations(fast=False) > weather.num_stations(fast=True) > n_real
    assert [s["real"] for s in info["stations"]] == [True] * n_real + [False] * (array.shape[1] - n_real)
    for k, (filename, reader, name) in enumerate(weather.REAL_STATIONS):
        assert info["stations"][k]["name"] == name
        np.testing.assert_array_equal(array[:, k], weather.read_tmy_station(filename, reader))
    for s in info["stations"][n_real:]:
        assert sum(s["weights"]) == pytest.approx(1.0, abs=1e-5) and max(s["delays_h"]) <= weather.MAX_DELAY
    assert (array[..., 1] >= 0).all()  # wind speed
    assert -30 < array[..., 0].min() and array[..., 0].max() < 45  # plausible degC


def test_weather_same_seed_same_checksum(weather_root, tmp_path):
    again = weather.build(fast=True, root=tmp_path)
    assert cache.dataset_checksum(again) == cache.dataset_checksum(weather_root / "weather-fast")


def test_time_splits_do_not_leak(weather_root):
    sets = {s: weather.load(s, fast=True, root=weather_root) for s in weather.SPLITS}
    (t0, t1), (v0, v1), (s0, s1) = (sets[s].bounds for s in weather.SPLITS)
    assert 0 == t0 < t1 < v0 < v1 < s0 < s1 == weather.HOURS  # train earlier, then val, then test
    assert v0 - t1 >= weather.HORIZON and s0 - v1 >= weather.HORIZON  # gaps
    for ds in sets.values():  # every window (input + target) inside its own range
        a, b = ds.bounds
        assert a + ds.starts.max() + ds.input_len + ds.horizon <= b
    # normalisation statistics come from the train range only, shared by every split
    assert np.array_equal(sets["val"].mean, sets["train"].mean) and np.array_equal(sets["test"].std, sets["train"].std)


def test_windows_are_slices_of_the_array(weather_root):
    array = np.load(weather_root / "weather-fast" / "stations.npy")
    ds = weather.load("val", fast=True, root=weather_root, normalize=False, stride=5)
    x, y = ds[3]
    t = ds.bounds[0] + 15
    assert x.shape == (48, array.shape[1] * 2) and y.shape == (24, array.shape[1] * 2)
    np.testing.assert_array_equal(x.numpy(), array[t:t + 48].reshape(48, -1))  # station-major channels
    np.testing.assert_array_equal(y.numpy(), array[t + 48:t + 72].reshape(24, -1))
    temp = weather.load("val", fast=True, root=weather_root, normalize=False, features="temperature")
    np.testing.assert_array_equal(temp[0][0].numpy(), array[ds.bounds[0]:ds.bounds[0] + 48, :, 0])
    with pytest.raises(ValueError, match="unknown feature"):
        weather.load("val", fast=True, root=weather_root, features="rain")


def test_baselines_known_answers(weather_root):
    hours = torch.arange(72.0)
    daily = torch.sin(2 * torch.pi * hours / 24).reshape(1, 72, 1).repeat(2, 1, 3)
    x, y = daily[:, :48], daily[:, 48:]
    assert torch.allclose(weather.seasonal_forecast(x, 24), y, atol=1e-5)  # exact on a 24 h cycle
    assert torch.equal(weather.persistence_forecast(x, 24), x[:, -1:].expand(2, 24, 3))
    assert weather.seasonal_forecast(x, 36).shape == (2, 36, 3)
    with pytest.raises(ValueError, match="period"):
        weather.seasonal_forecast(x[:, :12], 24)
    scores = weather.baseline_scores(weather.load("test", fast=True, root=weather_root, stride=24))
    assert set(scores) == {"persistence", "seasonal_24h"} and all(0 < s["mse"] < 3 for s in scores.values())


# ---------------------------------------------------------------- the paper's .npy station arrays

def test_global_stations_reads_npy(tmp_path):
    rng = np.random.default_rng(0)
    temp, wind = rng.normal(15, 8, (1200, 4, 1)), rng.gamma(2, 2, (1200, 4, 1))
    np.save(tmp_path / "temp.npy", temp.astype(np.float32))
    np.save(tmp_path / "wind.npy", wind.astype(np.float32))
    ds = weather.GlobalStations([tmp_path / "temp.npy", tmp_path / "wind.npy"], "test", normalize=False)
    assert ds.features == ["temp", "wind"] and ds.num_channels == 8
    x, y = ds[0]
    t = ds.bounds[0]
    both = np.concatenate([temp, wind], axis=2).astype(np.float32)
    np.testing.assert_array_equal(x.numpy(), both[t:t + 48].reshape(48, 8))
    np.testing.assert_array_equal(y.numpy(), both[t + 48:t + 72].reshape(24, 8))
    one = weather.GlobalStations(tmp_path / "temp.npy", "train", input_len=24, horizon=12)
    assert one[0][0].shape == (24, 4) and abs(float(one.series.mean())) < 0.2  # normalised


def test_global_stations_bad_files(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((500, 4), np.float32))
    with pytest.raises(ValueError, match=r"flat.npy.*\(time, stations, features\)"):
        weather.GlobalStations(tmp_path / "flat.npy")
    np.save(tmp_path / "temp.npy", np.zeros((500, 4, 1), np.float32))
    np.save(tmp_path / "wind.npy", np.zeros((500, 5, 1), np.float32))
    with pytest.raises(ValueError, match="wind.npy.*same hours and stations"):
        weather.GlobalStations([tmp_path / "temp.npy", tmp_path / "wind.npy"])
    data = (tmp_path / "temp.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])  # a truncated download
    with pytest.raises(ValueError, match="cut.npy"):
        weather.GlobalStations(tmp_path / "cut.npy")
    (tmp_path / "text.npy").write_text("time,station,temp\n")
    with pytest.raises(ValueError, match="text.npy: not a readable .npy"):
        weather.GlobalStations(tmp_path / "text.npy")
    with pytest.raises(FileNotFoundError, match=r"(?s)missing.npy: no such file.*time x stations x 1"):
        weather.GlobalStations(tmp_path / "missing.npy")
    holes = np.zeros((1200, 4, 1), np.float32)
    holes[10, 2, 0] = np.nan
    np.save(tmp_path / "holes.npy", holes)
    with pytest.raises(ValueError, match="holes.npy: non-finite"):
        weather.GlobalStations(tmp_path / "holes.npy", "test")  # the hole is in train: statistics
    np.save(tmp_path / "short.npy", np.zeros((200, 4, 1), np.float32))
    with pytest.raises(ValueError, match="short.npy.*fewer than input_len"):
        weather.GlobalStations(tmp_path / "short.npy")


# ---------------------------------------------------------------- Corrformer-style front-end

def test_node_split_and_embedding_shapes():
    x = torch.arange(2 * 3 * 6.0).reshape(2, 3, 6)
    nodes = split_nodes(x, 3)
    assert nodes.shape == (6, 3, 2) and torch.equal(nodes[1], x[0, :, 2:4])  # batch 0, node 1
    assert torch.equal(merge_nodes(nodes, 3), x)
    emb = CorrformerEmbedding(input_len=48, channels=16, n_nodes=4, d_model=24)
    assert emb(torch.randn(5, 48, 16)).shape == (20, 1, 48, 24)  # B*n x 1 x L x D'
    assert CorrformerEmbedding(48, 16, 4, 24, image_size=(32, 36))(torch.randn(5, 48, 16)).shape == (20, 1, 32, 36)
    with pytest.raises(ValueError, match=r"\(B, L=48, D=16\)"):
        emb(torch.randn(5, 47, 16))
    with pytest.raises(ValueError, match="divisible"):
        CorrformerEmbedding(48, 15, 4, 24)
    with pytest.raises(ValueError, match="L\\*D'"):
        CorrformerEmbedding(48, 16, 4, 24, image_size=(30, 30))


def test_embedding_known_answer_identity_projection():
    """With an identity projection (D/n = D'), node k's image is its channels, hours down the rows."""
    emb = CorrformerEmbedding(input_len=6, channels=4, n_nodes=2, d_model=2)
    with torch.no_grad():
        emb.proj.weight.copy_(torch.eye(2))
        emb.proj.bias.zero_()
    x = torch.randn(3, 6, 4)
    images = emb(x)
    assert torch.equal(images[2 * 1 + 1, 0], x[1, :, 2:4])  # sample 1, node 1


def test_forecaster_shapes_gradients_and_level_equivariance():
    torch.manual_seed(0)
    tiny = dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))
    model = TimeSeriesForecaster(input_len=48, horizon=24, channels=8, n_nodes=4, d_model=16, **tiny)
    x = torch.randn(2, 48, 8)
    y = model(x)
    assert y.shape == (2, 24, 8)
    y.pow(2).mean().backward()
    assert model.embed.proj.weight.grad.abs().sum() > 0 and model.head.proj.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():  # instance norm: shifting every input by c shifts the forecast by c
        assert torch.allclose(model(x + 10.0), model(x) + 10.0, atol=1e-3)
    head = ForecastHead(in_features=64, horizon=24, channels=8, n_nodes=4)
    assert head(torch.randn(8, 64)).shape == (2, 24, 8)
    with pytest.raises(ValueError, match=r"\(B\*n, 64\)"):
        head(torch.randn(7, 64))
    with pytest.raises(ValueError, match=r"\(B, L=48, D=8\)"):
        model(torch.randn(2, 48))


@pytest.mark.parametrize("kw, message", [
    ({"stride": 0}, "stride must be an integer >= 1"),
    ({"horizon": -5}, "horizon must be an integer >= 1"),
    ({"input_len": 0}, "input_len must be an integer >= 1"),
    ({"stride": 1.5}, "stride must be an integer >= 1"),
    ({"gap": -1}, "gap must be an integer >= 0"),
])
def test_station_windows_bad_sizes(kw, message):
    array = np.zeros((600, 2, 1), np.float32)
    with pytest.raises(ValueError, match=message):
        weather.StationWindows(array, "train", **{"input_len": 48, "horizon": 24, **kw},
                               feature_names=["temperature"])
