"""Every public constructor checks its arguments when it is created.

For each argument of each constructor (and of the public functions with size, kernel or dilation
arguments), hypothesis draws values a user might pass by mistake: None, booleans, zero, negatives,
fractions, NaN and inf, strings, tuples of the wrong length. Each must be refused with a ValueError
or TypeError whose message names the argument, or, when the value is valid after all, give an
object that works: a forward pass on a tiny input with finite output.
"""
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from unirep_lite import stats
from unirep_lite.blocks import GRN, DilatedReparamBlock, DropPath, SEBlock, UniRepLKNetBlock, depthwise_conv
from unirep_lite.data import reach
from unirep_lite.erf import area_ratio, compute_erf, scale_decades, theoretical_receptive_field
from unirep_lite.frontends.audio import AudioFrontend, log_mel_fbank_batch
from unirep_lite.frontends.points import LearnedProjection, PointEncoder, PointProjection
from unirep_lite.frontends.timeseries import CorrformerEmbedding, ForecastHead, TimeSeriesForecaster
from unirep_lite.frontends.video import VideoFrontend, grid_shape, tile_frames, untile_frames
from unirep_lite.model import UniRepLKNet, create_model
from unirep_lite.reparam import check_branches, default_branches, dilated_to_sparse, merge_branches, pad_to

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(num_classes=3, depths=(1, 1, 1, 1), dims=(8, 16, 16, 16))

FLOATS = st.floats(-1e3, 1e3) | st.sampled_from([math.nan, math.inf, -math.inf, 0.5, 1e-6])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 9), FLOATS, st.text(max_size=3))


def tuples(elements=SCALARS, min_size=0, max_size=5):
    return st.lists(elements, min_size=min_size, max_size=max_size).map(tuple)


ANY = SCALARS | tuples()
SIZES = ANY | tuples(st.integers(-1, 20), 4, 4) | tuples(SCALARS, 4, 4)  # depths, dims
KERNEL_SIZES = ANY | tuples(tuples(SCALARS, 0, 2), 3, 5) | tuples(tuples(st.integers(-1, 9), 1, 1), 4, 4)
BRANCHES = ANY | st.tuples(tuples(st.integers(-1, 9), 0, 3), tuples(st.integers(-1, 4), 0, 3)) \
    | st.tuples(ANY, ANY)
PAIRS = ANY | tuples(st.integers(-1, 6), 2, 2)  # grids, image sizes


def finite(out):
    assert torch.isfinite(out).all()


def forward(shape, train=False):
    """Smoke test of a module: a forward pass on random input of `shape` gives finite numbers."""
    def run(module):
        module.train(train)
        finite(module(torch.randn(*shape)))
    return run


def model_forward(model):
    finite(model.eval()(torch.randn(2, model.in_chans, 32, 32)))


def nothing(result):
    pass


def positive(value):
    assert value > 0


def finite_map(erf):
    assert np.isfinite(erf.raw).all()


def backbone():
    return create_model("unireplknet_a", in_chans=1, num_classes=0, depths=(1, 1, 1, 1), dims=(8, 16, 16, 16))


# (argument name, build from one value of it, smoke test of what was built, the values to draw)
CASES = {
    "UniRepLKNet": [
        ("in_chans", lambda v: UniRepLKNet(in_chans=v, **TINY), model_forward, ANY),
        ("num_classes", lambda v: UniRepLKNet(num_classes=v, depths=(1, 1, 1, 1), dims=(8, 16, 16, 16)),
         model_forward, ANY),
        ("depths", lambda v: UniRepLKNet(depths=v, dims=(8, 16, 16, 16), num_classes=3), model_forward, SIZES),
        ("dims", lambda v: UniRepLKNet(dims=v, depths=(1, 1, 1, 1), num_classes=3), model_forward, SIZES),
        ("kernel_sizes", lambda v: UniRepLKNet(kernel_sizes=v, **TINY), model_forward, KERNEL_SIZES),
        ("drop_path_rate", lambda v: UniRepLKNet(drop_path_rate=v, **TINY), model_forward, ANY),
        ("layer_scale_init_value", lambda v: UniRepLKNet(layer_scale_init_value=v, **TINY), model_forward, ANY),
        ("head_init_scale", lambda v: UniRepLKNet(head_init_scale=v, **TINY), model_forward, ANY),
        ("deploy", lambda v: UniRepLKNet(deploy=v, **TINY), model_forward, ANY),
        ("branches", lambda v: UniRepLKNet(branches=v, **TINY), model_forward, BRANCHES),
    ],
    "create_model": [
        ("name", lambda v: create_model(v, **TINY), model_forward, ANY | st.sampled_from(["unireplknet_f", "A"])),
        ("lk_size", lambda v: create_model("unireplknet_a", lk_size=v, **TINY), model_forward, ANY),
        ("depths", lambda v: create_model("unireplknet_a", depths=v, dims=(8, 16, 16, 16)), model_forward, SIZES),
        ("dims", lambda v: create_model("unireplknet_a", dims=v, depths=(1, 1, 1, 1)), model_forward, SIZES),
    ],
    "UniRepLKNetBlock": [
        ("dim", lambda v: UniRepLKNetBlock(v, 3), lambda b: forward((2, b.se.down.in_channels, 6, 6), True)(b), ANY),
        ("kernel_size", lambda v: UniRepLKNetBlock(8, v), forward((2, 8, 6, 6), True), ANY),
        ("drop_path", lambda v: UniRepLKNetBlock(8, 3, drop_path=v), forward((2, 8, 6, 6), True), ANY),
        ("layer_scale_init_value", lambda v: UniRepLKNetBlock(8, 3, layer_scale_init_value=v),
         forward((2, 8, 6, 6), True), ANY),
        ("deploy", lambda v: UniRepLKNetBlock(8, 3, deploy=v), forward((2, 8, 6, 6)), ANY),
        ("branches", lambda v: UniRepLKNetBlock(8, 7, branches=v), forward((2, 8, 6, 6), True), BRANCHES),
        ("ffn_factor", lambda v: UniRepLKNetBlock(8, 3, ffn_factor=v), forward((2, 8, 6, 6), True), ANY),
    ],
    "DilatedReparamBlock": [
        ("channels", lambda v: DilatedReparamBlock(v, 5), lambda b: forward((2, b.channels, 6, 6), True)(b), ANY),
        ("K", lambda v: DilatedReparamBlock(4, v), forward((2, 4, 6, 6), True), ANY),
        ("branches", lambda v: DilatedReparamBlock(4, 7, branches=v), forward((2, 4, 6, 6), True), BRANCHES),
        ("deploy", lambda v: DilatedReparamBlock(4, 5, deploy=v), forward((2, 4, 6, 6)), ANY),
    ],
    "SEBlock": [
        ("channels", lambda v: SEBlock(v), lambda b: forward((2, b.up.out_channels, 4, 4))(b), ANY),
        ("reduction", lambda v: SEBlock(8, v), forward((2, 8, 4, 4)), ANY),
    ],
    "GRN": [
        ("dim", lambda v: GRN(v), lambda g: forward((2, 4, 4, g.gamma.shape[-1]))(g), ANY),
        ("use_bias", lambda v: GRN(8, use_bias=v), forward((2, 4, 4, 8)), ANY),
        ("eps", lambda v: GRN(8, eps=v), forward((2, 4, 4, 8)), ANY),
    ],
    "DropPath": [("p", DropPath, forward((4, 8, 3, 3), True), ANY)],
    "depthwise_conv": [
        ("channels", lambda v: depthwise_conv(v, 3), lambda c: forward((2, c.in_channels, 5, 5))(c), ANY),
        ("k", lambda v: depthwise_conv(4, v), forward((2, 4, 5, 5)), ANY),
        ("dilation", lambda v: depthwise_conv(4, 3, v), forward((2, 4, 5, 5)), ANY),
    ],
    "reparam": [
        ("r", lambda v: dilated_to_sparse(torch.randn(2, 1, 3, 3), v), finite, ANY),
        ("K", lambda v: pad_to(torch.randn(2, 1, 3, 3), v), finite, ANY),
        ("K", lambda v: merge_branches([(torch.randn(2, 1, 3, 3), None, 1)], v), lambda kb: finite(kb[0]), ANY),
        ("r", lambda v: merge_branches([(torch.randn(2, 1, 3, 3), None, v)], 13), lambda kb: finite(kb[0]), ANY),
        ("K", default_branches, nothing, ANY),
        ("branches", lambda v: check_branches(13, *v) if isinstance(v, tuple) and len(v) == 2 else
         check_branches(13, v, v), nothing, BRANCHES),
    ],
    "AudioFrontend": [
        ("sample_rate", lambda v: AudioFrontend(sample_rate=v),
         lambda fe: forward((2, 1, fe.sample_rate // 4))(fe), ANY | st.sampled_from([100, 8000])),
        ("num_mel_bins", lambda v: AudioFrontend(num_mel_bins=v), forward((2, 1, 4000)), ANY),
        ("target_frames", lambda v: AudioFrontend(target_frames=v), forward((2, 1, 4000)), ANY),
        ("freq_mask", lambda v: AudioFrontend(freq_mask=v, augment=True), forward((2, 1, 4000), True), ANY),
        ("time_mask", lambda v: AudioFrontend(time_mask=v, augment=True), forward((2, 1, 4000), True), ANY),
        ("augment", lambda v: AudioFrontend(augment=v), forward((2, 1, 4000), True), ANY),
        ("normalize", lambda v: AudioFrontend(normalize=v), forward((2, 1, 4000)), ANY),
        ("layout", lambda v: AudioFrontend(layout=v), forward((2, 1, 4000)), ANY | st.just("authors")),
        ("stats", lambda v: AudioFrontend(normalize="dataset", stats=v), forward((2, 1, 4000)),
         ANY | tuples(FLOATS, 2, 2)),
        ("sample_rate", lambda v: log_mel_fbank_batch(torch.randn(2, 4000), v), finite, ANY),
        ("num_mel_bins", lambda v: log_mel_fbank_batch(torch.randn(2, 4000), 16000, v), finite, ANY),
    ],
    "video": [
        ("layout", VideoFrontend, forward((2, 4, 3, 4, 4)), ANY | st.sampled_from(["grid", "reshape"])),
        ("num_frames", grid_shape, nothing, ANY),
        ("grid", lambda v: tile_frames(torch.randn(2, 4, 3, 4, 4), v), finite, PAIRS),
        ("grid", lambda v: untile_frames(torch.randn(2, 3, 8, 8), v), finite, PAIRS),
    ],
    "PointProjection": [
        ("image_size", lambda v: PointProjection(v), forward((2, 20, 3)), PAIRS),
        ("mode", lambda v: PointProjection(8, mode=v), forward((2, 20, 3)), ANY | st.just("occupancy")),
        ("learnable", lambda v: PointProjection(8, learnable=v), forward((2, 20, 3)), ANY),
    ],
    "LearnedProjection": [
        ("image_size", lambda v: LearnedProjection(v, dim=4, hidden=4), forward((2, 20, 3), True), PAIRS),
        ("dim", lambda v: LearnedProjection(8, dim=v, hidden=4), forward((2, 20, 3), True), ANY),
        ("k", lambda v: LearnedProjection(8, dim=4, k=v, hidden=4), forward((2, 20, 3), True), ANY),
        ("hidden", lambda v: LearnedProjection(8, dim=4, hidden=v), forward((2, 20, 3), True), ANY),
    ],
    "PointEncoder": [
        ("dim", lambda v: PointEncoder(v), forward((2, 20, 3)), ANY),
        ("k", lambda v: PointEncoder(4, v), forward((2, 20, 3)), ANY),
        ("hidden", lambda v: PointEncoder(4, 4, v), forward((2, 20, 3)), ANY),
    ],
    "CorrformerEmbedding": [
        ("input_len", lambda v: CorrformerEmbedding(v, 4, 2, 6, kind="corrformer"),
         lambda e: forward((2, e.input_len, 4))(e), ANY),
        ("channels", lambda v: CorrformerEmbedding(6, v, 1, 6), lambda e: forward((2, 6, e.channels))(e), ANY),
        ("n_nodes", lambda v: CorrformerEmbedding(6, 4, v, 6), forward((2, 6, 4)), ANY),
        ("d_model", lambda v: CorrformerEmbedding(6, 4, 2, v, kind="corrformer"), forward((2, 6, 4)), ANY),
        ("image_size", lambda v: CorrformerEmbedding(6, 4, 2, 6, image_size=v), forward((2, 6, 4)),
         PAIRS | st.just((4, 9))),
        ("kind", lambda v: CorrformerEmbedding(6, 4, 2, 6, kind=v), forward((2, 6, 4)), ANY),
    ],
    "ForecastHead": [
        ("in_features", lambda v: ForecastHead(v, 3, 4, 2), lambda h: forward((4, h.proj.in_features))(h), ANY),
        ("horizon", lambda v: ForecastHead(8, v, 4, 2), forward((4, 8)), ANY),
        ("channels", lambda v: ForecastHead(8, 3, v, 1), forward((4, 8)), ANY),
        ("n_nodes", lambda v: ForecastHead(8, 3, 4, v), lambda h: forward((2 * h.n_nodes, 8))(h), ANY),
    ],
    "TimeSeriesForecaster": [
        ("input_len", lambda v: TimeSeriesForecaster(v, 3, 4, backbone=backbone()),
         lambda f: forward((2, f.embed.input_len, 4))(f), ANY),
        ("horizon", lambda v: TimeSeriesForecaster(6, v, 4, backbone=backbone()), forward((2, 6, 4)), ANY),
        ("channels", lambda v: TimeSeriesForecaster(6, 3, v, backbone=backbone()),
         lambda f: forward((2, 6, f.embed.channels))(f), ANY),
        ("n_nodes", lambda v: TimeSeriesForecaster(6, 3, 4, n_nodes=v, backbone=backbone()),
         forward((2, 6, 4)), ANY),
        ("d_model", lambda v: TimeSeriesForecaster(6, 3, 4, d_model=v, backbone=backbone()), forward((2, 6, 4)), ANY),
        (("backbone", "model name"), lambda v: TimeSeriesForecaster(6, 3, 4, backbone=v), forward((2, 6, 4)), ANY),
        ("instance_norm", lambda v: TimeSeriesForecaster(6, 3, 4, instance_norm=v, backbone=backbone()),
         forward((2, 6, 4)), ANY),
        ("embedding", lambda v: TimeSeriesForecaster(6, 3, 4, embedding=v, backbone=backbone()),
         forward((2, 6, 4)), ANY),
    ],
    "reach.make": [
        ("n", lambda v: reach.make(v, 16, (0, 2)), lambda out: finite(out[0]), ANY),
        ("size", lambda v: reach.make(4, v, (0, 2)), lambda out: finite(out[0]), ANY | st.sampled_from([16, 21])),
        ("distances", lambda v: reach.make(4, 16, v), lambda out: finite(out[0]), ANY | tuples(FLOATS, 1, 3)),
        ("seed", lambda v: reach.make(4, 16, (0, 2), seed=v), lambda out: finite(out[0]), ANY),
    ],
}


def erf_cases(model):
    images = torch.randn(2, 3, 16, 16)
    return [
        ("resolution", lambda v: stats.count_macs(model, v), positive, PAIRS),
        ("in_chans", lambda v: stats.count_macs(model, 16, in_chans=v), positive, ANY),
        ("stage", lambda v: compute_erf(model, images, stage=v, progress=False), finite_map, ANY),
        ("batch_size", lambda v: compute_erf(model, images, batch_size=v, progress=False, theoretical=False),
         finite_map, ANY),
        ("stage", lambda v: theoretical_receptive_field(model, v, 16), positive, ANY),
        ("resolution", lambda v: theoretical_receptive_field(model, -1, v), positive, ANY),
        ("threshold t", lambda v: area_ratio(torch.rand(5, 5).numpy() + 0.1, v), nothing, ANY),
        ("decades", lambda v: scale_decades(torch.rand(5, 5).numpy(), v), nothing, ANY),
    ]


def check(names, build, smoke, value):
    """`build(value)` refuses the value with a message naming the argument (one of `names`), or
    builds something that passes `smoke`."""
    names = (names,) if isinstance(names, str) else names
    try:
        built = build(value)
    except (ValueError, TypeError) as e:
        assert any(re.search(rf"\b{re.escape(n)}\b", str(e)) for n in names), \
            f"{names[0]}={value!r}: the message does not name the argument: {e}"
        return
    smoke(built)


def case_id(name):
    return name if isinstance(name, str) else name[0]


PARAMS = [pytest.param(case, id=f"{owner}-{case_id(case[0])}") for owner, cases in CASES.items() for case in cases]


@pytest.mark.parametrize("case", PARAMS)
@settings(max_examples=25, deadline=None, derandomize=True)  # the same draws on every run: CI cannot flake
@given(data=st.data())
def test_bad_arguments_are_refused_by_name_or_work(case, data):
    name, build, smoke, values = case
    check(name, build, smoke, data.draw(values, label=case_id(name)))


@pytest.fixture(scope="module")
def erf_model():
    return create_model("unireplknet_a", **TINY).eval()


@pytest.mark.parametrize("index", range(len(erf_cases(None))), ids=[c[0] for c in erf_cases(None)])
@settings(max_examples=25, deadline=None, derandomize=True)  # the same draws on every run: CI cannot flake
@given(data=st.data())
def test_stats_and_erf_arguments(erf_model, index, data):
    name, build, smoke, values = erf_cases(erf_model)[index]
    check(name, build, smoke, data.draw(values, label=name))


def test_drop_path_rate_must_be_in_0_1():
    for bad in (1.0, 1.5, -0.1, math.nan):
        with pytest.raises(ValueError, match="drop_path_rate"):
            create_model("unireplknet_a", drop_path_rate=bad, **TINY)
    with pytest.raises(ValueError, match="p must be"):
        DropPath(1.0)
    with pytest.raises(ValueError, match="layer_scale_init_value"):
        create_model("unireplknet_a", layer_scale_init_value=-1e-6, **TINY)


def test_a_model_with_drop_path_trains_a_step():
    torch.manual_seed(0)
    model = create_model("unireplknet_a", drop_path_rate=0.5, **TINY).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert math.isfinite(loss.item())
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ---------------------------------------------------------------- config dataclasses: TrainConfig, lesson.Setup

def _train_config_fields():
    from unirep_lite.train import TrainConfig

    return TrainConfig, ["epochs", "batch_size", "lr", "min_lr", "weight_decay", "warmup_fraction",
                         "label_smoothing", "mixup_alpha", "grad_clip", "task", "amp", "channels_last", "seed",
                         "device", "num_workers", "data_on_device", "progress", "reparameterize", "overwrite"]


def _setup_fields():
    from unirep_lite import lesson

    return (lambda **kw: lesson.setup("fast", **kw)), ["size", "distances", "n_train", "n_test", "stages",
                                                       "epochs", "batch_size", "lr", "seeds", "layer_scale",
                                                       "erf_images", "global_paths"]


CONFIGS = [(make, field) for make, fields in (_train_config_fields(), _setup_fields()) for field in fields]


@pytest.mark.parametrize("make, field", CONFIGS, ids=[f"{'TrainConfig' if i < 19 else 'Setup'}-{f}"
                                                       for i, (_, f) in enumerate(CONFIGS)])
@settings(max_examples=25, deadline=None, derandomize=True)
@given(value=ANY)
def test_config_fields_are_checked_when_the_config_is_made(make, field, value):
    try:
        config = make(**{field: value})
    except (ValueError, TypeError) as e:
        assert re.search(rf"\b{field}\b", str(e)), f"{field}={value!r}: the message does not name it: {e}"
        return
    assert getattr(config, field) == value or value != value  # kept as given (NaN never reaches here)
