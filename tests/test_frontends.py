"""The faithful front-ends: learned three-view projection (points), Corrformer embedding (time series),
named audio and video layouts. Shapes, gradients, determinism, and known answers."""
import math

import numpy as np
import pytest
import torch

from unirep_lite.data import weather
from unirep_lite.frontends.audio import AudioFrontend, dataset_stats
from unirep_lite.frontends.points import (LearnedProjection, PointEncoder, PointProjection, bilinear_scatter,
                                          knn_indices, splat)
from unirep_lite.frontends.timeseries import (CorrformerEmbedding, TimeSeriesForecaster, positional_embedding,
                                              time_features)
from unirep_lite.frontends.video import VideoFrontend, authors_reshape, tile_frames

TINY = {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64)}


def _cloud(b=2, p=40, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, p, 3, generator=g, dtype=dtype) * 1.6 - 0.8)


# ---------------------------------------------------------------- points: learned three views

def test_bilinear_scatter_spreads_one_point_and_keeps_splat():
    # a point a quarter of the way between pixel centres gives 3/4 and 1/4 of its value to them
    uv = torch.tensor([[[-1 + 0.25 * 2 / 4, 1.0]]])  # 5 columns: u between columns 0 and 1, top row
    out = bilinear_scatter(uv, torch.tensor([[[2.0]]]), 5, 5)[0, ..., 0]
    assert out[0, 0].item() == pytest.approx(1.5) and out[0, 1].item() == pytest.approx(0.5)
    assert out.sum().item() == pytest.approx(2.0)
    uvd = _cloud(2, 30, dtype=torch.float64)
    mass = bilinear_scatter(uvd[..., :2], torch.ones(2, 30, 1, dtype=torch.float64), 8, 8)[..., 0]
    assert torch.allclose(splat(uvd, 8, 8, "occupancy"), 1 - torch.exp(-mass))


def test_knn_and_point_encoder():
    p = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0.1, 0, 0], [5, 0, 0]]])
    assert knn_indices(p, 2)[0].tolist() == [[0, 2], [1, 2], [2, 0], [3, 1]]  # itself first
    enc = PointEncoder(dim=8, k=3)
    assert enc(_cloud()).shape == (2, 40, 8)
    perm = torch.randperm(40)  # a set function: permuting the points permutes the features
    x = _cloud()
    assert torch.allclose(enc(x)[:, perm], enc(x[:, perm]), atol=1e-6)


def test_learned_projection_shapes_gradients_determinism():
    torch.manual_seed(0)
    frontend = LearnedProjection(16, dim=8, k=8, hidden=8)
    p = _cloud().requires_grad_()
    out = frontend(p)
    assert out.shape == (2, 3, 16, 16) and frontend.planes(p).shape == (2, 3, 8 + 2, 16, 16)
    out.pow(2).mean().backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0  # reaches the points
    for name, param in frontend.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name  # and every layer
    torch.manual_seed(0)
    again = LearnedProjection(16, dim=8, k=8, hidden=8)  # same seed, same weights: the same image
    with torch.no_grad():
        assert torch.equal(again(p), frontend(p))  # (training mode: BN uses the batch's statistics)
        frontend.eval()
        assert torch.equal(frontend(p), frontend(p))
    with pytest.raises(ValueError, match=r"\(B, P, 3\)"):
        frontend(torch.zeros(2, 40, 2))


def test_learned_projection_gradcheck_and_views():
    torch.manual_seed(0)
    frontend = LearnedProjection(6, dim=3, k=3, hidden=4).double().eval()
    p = _cloud(1, 6, seed=2, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: frontend(x), (p,), eps=1e-6, atol=1e-5)
    # the occupancy and depth channels of each plane are exactly the fixed projection's
    planes = frontend.planes(p.detach())
    fixed = PointProjection(6, mode="depth").double()(p.detach())
    assert torch.allclose(planes[:, :, -1], fixed) and torch.allclose(
        planes[:, :, -2], PointProjection(6, mode="occupancy").double()(p.detach()))


def test_shapes_recipe_frontends():
    from unirep_lite import recipes

    recipe = recipes.get("shapes")
    model = recipe.make_model(size="fast", frontend="fixed", **TINY)
    assert isinstance(model[0], PointProjection)
    model = recipe.make_model(size="fast", frontend="learned", **TINY)
    assert isinstance(model[0], LearnedProjection)
    assert model(_cloud()).shape == (2, 10)
    with pytest.raises(ValueError, match="frontend"):
        recipe.make_model(size="fast", frontend="magic", **TINY)


# ---------------------------------------------------------------- time series: Corrformer embedding

def test_calendar_of_the_typical_year():
    cal = weather.calendar(np.array([0, 23, 24, 8759]))
    assert cal.tolist() == [[0, 0], [23, 0], [0, 1], [23, 364]]
    assert time_features(torch.tensor([[0, 0], [23, 365]])).tolist() == [[-0.5, -0.5], [0.5, 0.5]]


def test_positional_embedding_is_the_transformers():
    pe = positional_embedding(5, 6)
    assert pe.shape == (5, 6)
    assert pe[3, 0].item() == pytest.approx(math.sin(3)) and pe[3, 1].item() == pytest.approx(math.cos(3))
    assert pe[2, 4].item() == pytest.approx(math.sin(2 / 10000 ** (4 / 6)), rel=1e-5)


def test_corrformer_embedding_known_answer():
    """The token conv is a circular conv over time: with a kernel picking x[t-1] + 2 x[t+1], the
    first hour sees the last one (wrap-around); time and position terms add on top."""
    torch.manual_seed(0)
    emb = CorrformerEmbedding(input_len=6, channels=4, n_nodes=2, d_model=2, kind="corrformer")
    with torch.no_grad():
        emb.token.weight.zero_()
        emb.token.weight[0, 0, 0] = 1.0  # output 0 <- channel 0 of the hour before
        emb.token.weight[1, 1, 2] = 2.0  # output 1 <- 2 x channel 1 of the hour after
        emb.time.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.randn(3, 6, 4)
    marks = torch.stack([torch.arange(6) % 24, torch.full((6,), 100)], -1).expand(3, 6, 2)
    tokens = emb.tokens(x, marks)  # B*n x L x D'
    node = x[1, :, 2:4]  # sample 1, node 1
    expected = torch.stack([node.roll(1, 0)[:, 0], 2 * node.roll(-1, 0)[:, 1]], -1)
    expected = expected + positional_embedding(6, 2) + time_features(marks[0])
    assert torch.allclose(tokens[2 * 1 + 1], expected, atol=1e-6)
    assert torch.equal(emb(x, marks), tokens.reshape(6, 1, 6, 2))
    assert torch.allclose(emb.tokens(x) + time_features(marks[0]).repeat(6, 1, 1), tokens, atol=1e-6)  # no marks
    with pytest.raises(ValueError, match=r"time marks of shape \(B=3, L=6, 2\)"):
        emb(x, marks[:, :5])


def test_corrformer_forecaster_gradients_determinism_and_marks():
    torch.manual_seed(0)
    model = TimeSeriesForecaster(input_len=48, horizon=24, channels=8, n_nodes=2, d_model=16,
                                 embedding="corrformer", **TINY)
    x = torch.randn(2, 48, 8)
    marks = torch.from_numpy(weather.calendar(np.arange(100, 148))).expand(2, 48, 2)
    y = model((x, marks))
    assert y.shape == (2, 24, 8)
    y.pow(2).mean().backward()
    for p in (model.embed.token.weight, model.embed.time.weight, model.head.proj.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert torch.equal(model((x, marks)), model((x, marks)))
        later = torch.from_numpy(weather.calendar(np.arange(4100, 4148))).expand(2, 48, 2)
        assert not torch.allclose(model((x, marks)), model((x, later)))  # the timestamps matter
    with pytest.raises(ValueError, match="kind"):
        CorrformerEmbedding(48, 8, 2, 16, kind="fourier")


def test_weather_recipe_timed_windows():
    from unirep_lite import recipes
    from unirep_lite.recipes import weather as wr

    recipe = recipes.get("weather")
    plain = recipe.load("val", "fast", time_marks=False)
    timed = recipe.load("val", "fast", time_marks=True)
    (x, marks), y = timed[3]
    assert torch.equal(x, plain[3][0]) and torch.equal(y, plain[3][1])
    t = plain.bounds[0] + plain.starts[3]  # the window's first hour of the year
    assert marks.tolist() == weather.calendar(np.arange(t, t + 48)).tolist()
    assert timed.num_channels == plain.num_channels and wr.windows_of(plain) is plain
    assert isinstance(wr.windows_of(timed), weather.StationWindows)
    assert recipe.baselines(timed) == recipe.baselines(plain)
    model = recipe.make_model(size="fast", embedding="corrformer", **TINY).eval()
    with torch.no_grad():
        assert model((x[None], marks[None])).shape == (1, 24, x.shape[-1])
    assert recipe.make_model(size="fast", embedding="linear", **TINY).embed.kind == "linear"


# ---------------------------------------------------------------- audio and video layouts

def test_audio_layouts_and_dataset_normalisation():
    torch.manual_seed(0)
    waves = torch.randn(3, 1, 16000) * 0.1
    paper = AudioFrontend(layout="paper").eval()(waves)
    authors = AudioFrontend(layout="authors").eval()(waves)
    assert paper.shape == (3, 1, 128, 128) and torch.equal(authors, paper.transpose(2, 3))
    short = AudioFrontend(target_frames=100, num_mel_bins=64, layout="authors").eval()(waves)
    assert short.shape == (3, 1, 64, 100)  # B x 1 x F x T
    raw = AudioFrontend(normalize="none").eval()(waves)
    mean, std = dataset_stats(waves)
    assert mean == pytest.approx(raw.double().mean().item()) and std == pytest.approx(raw.double().std().item(), rel=1e-3)
    ds = AudioFrontend(normalize="dataset", stats=(mean, std)).eval()(waves)
    assert torch.allclose(ds, (raw - mean) / (2 * std), atol=1e-5)  # the authors': after padding, / (2 std)
    assert torch.equal(AudioFrontend(normalize=True).eval()(waves), paper)  # the old boolean still works
    for bad in (dict(layout="TF"), dict(normalize="batch"), dict(normalize="dataset")):
        with pytest.raises(ValueError):
            AudioFrontend(**bad)


def test_video_layout_names():
    frames = torch.rand(2, 16, 3, 8, 8)
    assert torch.equal(VideoFrontend("paper")(frames), tile_frames(frames))
    assert torch.equal(VideoFrontend("authors")(frames), authors_reshape(frames))
    assert VideoFrontend("grid").layout == "paper" and VideoFrontend("reshape").layout == "authors"
    with pytest.raises(ValueError, match="paper"):
        VideoFrontend("mosaic")


def test_batched_filterbank_equals_kaldi_on_every_clip():
    """The audio front-end computes the whole batch at once: the same numbers as kaldi.fbank per clip."""
    from unirep_lite.frontends.audio import AudioFrontend, log_mel_fbank, log_mel_fbank_batch

    g = torch.Generator().manual_seed(0)
    waves = torch.randn(3, 16000, generator=g) * 0.1
    ref = torch.stack([log_mel_fbank(w[None]) for w in waves])
    assert torch.allclose(log_mel_fbank_batch(waves), ref, atol=1e-5, rtol=0)
    fe = AudioFrontend().eval()
    one = torch.stack([fe(w[None]) for w in waves])
    assert torch.allclose(fe(waves[:, None]), one, atol=1e-5, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the filterbank stays float32 under autocast
        out = fe(waves[:, None])
    assert out.dtype == torch.float32 and torch.allclose(out, one, atol=1e-5, rtol=0)


def test_spec_augment_masks_each_clip_independently():
    from unirep_lite.frontends.audio import AudioFrontend

    torch.manual_seed(0)
    fe = AudioFrontend(augment=True).train()
    waves = torch.randn(1, 16000).repeat(8, 1)[:, None]  # the same clip eight times
    out = fe(waves)
    assert not all(torch.equal(out[0], out[i]) for i in range(1, 8))
