"""ERF tools: cases with a known answer, the area-ratio definition, determinism, bad input."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from unirep_lite import create_model, erf
from unirep_lite.table import format_table


class Stages(nn.Module):
    """Wraps layers so that forward returns a list of stage maps, like timm's features_only."""

    def __init__(self, *stages):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x):
        outs = []
        for s in self.stages:
            x = s(x)
            outs.append(x)
        return outs


def test_single_conv_erf_is_its_kernel_support():
    # One kxk conv with positive weights: the centre output depends on exactly the kxk pixels under
    # it, and with positive inputs every one of them gets a positive gradient.
    k, res = 5, 17
    conv = nn.Conv2d(3, 4, k, padding=k // 2, bias=False)
    nn.init.uniform_(conv.weight, 0.1, 1.0)
    e = erf.compute_erf(Stages(conv), torch.rand(2, 3, res, res) + 0.1, progress=False)
    support = e.raw > 0
    expected = np.zeros((res, res), dtype=bool)
    c = res // 2
    expected[c - k // 2:c + k // 2 + 1, c - k // 2:c + k // 2 + 1] = True
    assert np.array_equal(support, expected)
    assert e.theoretical_rf == k
    # the gradient of a linear conv is its kernel, summed over in/out channels, for every image
    assert np.allclose(e.raw[expected].reshape(k, k), conv.weight.detach().sum((0, 1)).numpy(), rtol=1e-5)


def test_dilated_conv_erf_is_sparse_grid():
    k, r, res = 3, 3, 15
    conv = nn.Conv2d(1, 1, k, padding=r * (k // 2), dilation=r, bias=False)
    nn.init.constant_(conv.weight, 1.0)
    e = erf.compute_erf(Stages(conv), torch.ones(1, 1, res, res), progress=False)
    ys, xs = np.nonzero(e.raw)
    c = res // 2
    assert sorted(set(ys - c)) == [-r, 0, r] and sorted(set(xs - c)) == [-r, 0, r]
    assert e.theoretical_rf == (k - 1) * r + 1


def test_receptive_field_recurrence():
    assert erf.receptive_field([]) == 1
    assert erf.receptive_field([(3, 1, 1)] * 2) == 5
    assert erf.receptive_field([(3, 2, 1), (3, 2, 1)]) == 7      # second layer's step is 2 px
    assert erf.receptive_field([(7, 2, 1), (3, 2, 1), (3, 1, 1)]) == 7 + 2 * 2 + 2 * 4
    assert erf.receptive_field([(3, 1, 2)]) == 5                   # dilation 2: (3-1)*2+1


def test_unireplknet_theoretical_rf_matches_hand_count():
    # stem: two 3x3 s2 convs (1 + 2 + 2*2 = 7, step 4); stage 1: two 3x3 blocks (+2*4 each) = 23.
    m = create_model("unireplknet_a", num_classes=0, depths=(2, 2, 1, 1)).eval()
    assert erf.theoretical_receptive_field(m, stage=0, resolution=64) == 23
    # stage 2: downsample 3x3 s2 (+2*4 = 31, step 8), two 13x13 blocks (+12*8 each) = 223
    assert erf.theoretical_receptive_field(m, stage=1, resolution=64) == 223
    small = create_model("unireplknet_a", num_classes=0, lk_size=3, depths=(2, 2, 1, 1)).eval()
    assert erf.theoretical_receptive_field(small, stage=1, resolution=64) == 31 + 2 * 2 * 8


def test_area_ratio_on_hand_made_maps():
    m = np.zeros((11, 11))
    m[5, 5] = 1.0                                   # all mass at the centre
    assert erf.area_ratio(m, 0.99) == pytest.approx(1 / 121)
    m = np.zeros((11, 11))
    m[4:7, 4:7] = 1.0                               # uniform 3x3 around the centre
    assert erf.area_ratio(m, 0.5) == pytest.approx(9 / 121)      # 1/9 < 0.5 needs the full 3x3
    assert erf.area_ratio(m, 1 / 9) == pytest.approx(1 / 121)    # the centre alone holds 1/9
    m = np.ones((10, 10))                           # even side: centre (5, 5), largest square 9x9
    assert erf.area_ratio(m, 0.81) == pytest.approx(81 / 100)
    assert erf.area_ratio(m, 0.99) == 1.0           # no centred square holds it: the whole map
    m = np.ones((9, 9))
    ratios = [erf.area_ratio(m, t) for t in erf.THRESHOLDS]
    assert ratios == sorted(ratios)                 # more mass needs a larger square


def test_area_ratio_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        erf.area_ratio(np.ones((2, 3, 3)), 0.5)
    with pytest.raises(ValueError, match="threshold"):
        erf.area_ratio(np.ones((3, 3)), 1.5)
    with pytest.raises(ValueError, match="all zeros"):
        erf.area_ratio(np.zeros((3, 3)), 0.5)
    with pytest.raises(ValueError, match="negative"):
        erf.area_ratio(-np.ones((3, 3)), 0.5)


def test_scale_log_range():
    s = erf.scale_log(np.array([[0.0, 9.0], [99.0, 0.0]]))
    assert s.min() == 0 and s.max() == 1
    assert s[0, 1] == pytest.approx(0.5)            # log10(10) / log10(100)


def test_load_images_sources_and_determinism(tmp_path):
    photos = erf.load_images("photos", n=3, resolution=32)
    assert photos.shape == (3, 3, 32, 32)
    more = erf.load_images("photos", n=len(erf.PHOTOS) + 2, resolution=16, seed=1)
    assert torch.equal(more, erf.load_images("photos", n=len(erf.PHOTOS) + 2, resolution=16, seed=1))
    assert torch.equal(erf.load_images("noise", 2, 16, seed=3), erf.load_images("noise", 2, 16, seed=3))
    assert not torch.equal(erf.load_images("noise", 2, 16, seed=3), erf.load_images("noise", 2, 16, seed=4))
    from PIL import Image

    (tmp_path / "sub").mkdir()
    Image.fromarray(np.full((20, 30), 128, np.uint8)).save(tmp_path / "sub" / "grey.png")
    folder = erf.load_images(tmp_path, n=2, resolution=8, normalize=False)
    assert folder.shape == (2, 3, 8, 8) and torch.allclose(folder[0], torch.full((3, 8, 8), 128 / 255))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        erf.load_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        erf.load_images(tmp_path / "empty")
    with pytest.raises(ValueError, match="resolution"):
        erf.load_images("noise", 1, 4)


def test_erf_is_deterministic_and_merge_invariant():
    imgs = erf.load_images("photos", n=2, resolution=64)
    model = erf.build_model("unireplknet_a", lk_size=7, seed=0, depths=(1, 1, 1, 1))
    a = erf.compute_erf(model, imgs, stage=2, progress=False)
    b = erf.compute_erf(erf.build_model("unireplknet_a", lk_size=7, seed=0, depths=(1, 1, 1, 1)), imgs,
                        stage=2, progress=False)
    assert np.array_equal(a.raw, b.raw)
    # the reparameterized model is the same function in eval mode, so it has the same ERF
    c = erf.compute_erf(model, imgs, stage=2, progress=False, merge=False)
    assert np.allclose(a.raw, c.raw, rtol=1e-4, atol=1e-6 * a.raw.max())
    assert a.area_ratios() == c.area_ratios()
    assert model.training is False and not any(getattr(m, "deploy", False) for m in model.modules())


def test_batching_does_not_change_the_erf():
    imgs = erf.load_images("noise", n=3, resolution=32)
    model = erf.build_model("unireplknet_a", depths=(1, 1, 1, 1), lk_size=5)
    one = erf.compute_erf(model, imgs, stage=1, batch_size=1, progress=False).raw
    all3 = erf.compute_erf(model, imgs, stage=1, batch_size=3, progress=False).raw
    assert np.allclose(one, all3, rtol=1e-4, atol=1e-7 * one.max())


def test_timm_baselines_offline():
    imgs = erf.load_images("noise", n=1, resolution=64)
    for name in ("convnextv2_atto", "resnet18"):
        e = erf.compute_erf(erf.build_model(name), imgs, progress=False, label=name)
        assert e.raw.shape == (64, 64) and e.raw.sum() > 0
    resnet = erf.build_model("resnet18")
    assert [o.shape[-1] for o in resnet(torch.zeros(1, 3, 64, 64))] == [16, 8, 4, 2]  # strides 4..32
    # conv1 7x7 s2, maxpool 3x3 s2, layer1: four 3x3 convs at step 4 -> 1+6+2*2+4*2*4 = 43
    assert erf.theoretical_receptive_field(resnet, stage=0, resolution=64) == 43


def test_bad_model_and_stage():
    with pytest.raises(ValueError, match="stage feature maps"):
        erf.compute_erf(nn.Conv2d(3, 3, 3), torch.zeros(1, 3, 8, 8), progress=False)
    with pytest.raises(ValueError, match="out of range"):
        erf.compute_erf(Stages(nn.Conv2d(3, 3, 3, padding=1)), torch.zeros(1, 3, 8, 8), stage=3, progress=False)
    with pytest.raises(ValueError, match="unknown model"):
        erf.build_model("not_a_model")
    with pytest.raises(ValueError, match="lk_size"):
        erf.build_model("resnet18", lk_size=7)


def test_table_rows():
    imgs = erf.load_images("noise", n=1, resolution=32)
    torch.manual_seed(0)  # some random 3x3 convs have no positive gradient at the centre: an all-zero ERF
    e = erf.compute_erf(Stages(nn.Conv2d(3, 2, 3, padding=1)), imgs, progress=False, label="conv")
    rows = erf.erf_table([e])
    assert rows[0]["model"] == "conv" and rows[0]["theoretical RF (px)"] == 3 and rows[0]["stage"] == 1
    assert set(rows[0]) >= {f"t={t}" for t in erf.THRESHOLDS}
    assert "conv" in format_table(rows)


# ------------------------------------------------------------ bad input

def _tiny_unireplknet():
    import unirep_lite

    return unirep_lite.create_model("unireplknet_a", num_classes=3, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))


def test_compute_erf_bad_images(one_thread):
    from unirep_lite import erf

    model = _tiny_unireplknet()
    for bad, message in ((torch.zeros(0, 3, 32, 32), "at least one image"),
                         (torch.zeros(3, 32, 32), r"shape \(N, C, H, W\)"),
                         (torch.full((1, 3, 32, 32), float("nan")), "NaN or inf")):
        with pytest.raises(ValueError, match=message):
            erf.compute_erf(model, bad, progress=False)


@pytest.mark.parametrize("merge", [True, False])
def test_compute_erf_leaves_callers_model_as_it_was(one_thread, merge):
    from unirep_lite import erf

    model = _tiny_unireplknet().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = erf.compute_erf(model, torch.randn(2, 3, 32, 32), stage=1, progress=False, merge=merge)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # BN statistics too
    assert np.isfinite(e.raw).all() and e.raw.sum() > 0


def test_load_images_not_an_image(tmp_path):
    from unirep_lite import erf

    (tmp_path / "fake.png").write_text("this is text")
    with pytest.raises(ValueError, match=r"fake.png: not a readable image \(UnidentifiedImageError"):
        erf.load_images(tmp_path, n=1, resolution=16)


# ------------------------------------------------------------ Luo et al.'s stacked kernels

def test_stacked_erf_is_the_gradient_of_the_stack():
    kernels = erf.stack_kernels(5, 3, "random", seed=1)
    side = 5 * 2 + 1
    x = torch.zeros(1, 1, side, side, dtype=torch.float64, requires_grad=True)
    y = x
    for w in kernels:                                   # valid convs: one output, the centre one
        y = torch.nn.functional.conv2d(y, torch.from_numpy(w)[None, None])
    y.sum().backward()
    assert np.allclose(erf.stacked_erf(kernels), x.grad[0, 0].numpy())
    assert erf.stacked_erf(kernels).shape == (side, side) == (erf.receptive_field([(3, 1, 1)] * 5),) * 2


def test_stacked_uniform_variance_adds_up():
    # a uniform k x k kernel has variance (k^2 - 1) / 12 per axis; n layers add n of them
    for k in (3, 5):
        for n in (1, 2, 7):
            m = erf.stacked_erf(erf.stack_kernels(n, k))
            assert m.sum() == pytest.approx(1.0) and m.shape == (n * (k - 1) + 1,) * 2
            assert erf.erf_std(m) == pytest.approx(np.sqrt(n * (k * k - 1) / 12))
    assert np.allclose(erf.stacked_erf(erf.stack_kernels(1, 3)), np.full((3, 3), 1 / 9))


def test_stacked_random_kernels_follow_sqrt_law():
    ns = np.arange(1, 17)
    stds = np.array([erf.erf_std(erf.stacked_erf(erf.stack_kernels(n, 3, "random", seed=0))) for n in ns])
    c = stds / np.sqrt(ns)
    assert c.max() / c.min() < 1.1                       # std / sqrt(n) about constant
    assert not np.array_equal(erf.stack_kernels(2, 3, "random", seed=0), erf.stack_kernels(2, 3, "random", seed=1))
    assert np.allclose(erf.stack_kernels(4, 5, "random").sum(axis=(1, 2)), 1.0)


def test_erf_std_of_hand_made_maps():
    m = np.zeros((9, 9))
    m[4, 4] = 1.0
    assert erf.erf_std(m) == 0.0
    m = np.zeros((9, 9))
    m[4, 2] = m[4, 6] = 1.0                              # x: +-2 around the centroid, y: 0
    assert erf.erf_std(m) == pytest.approx(np.sqrt((4 + 0) / 2))


def test_stacked_kernels_reject_bad_input():
    with pytest.raises(ValueError, match="odd"):
        erf.stack_kernels(2, 4)
    with pytest.raises(ValueError, match="n must be"):
        erf.stack_kernels(0)
    with pytest.raises(ValueError, match="kind"):
        erf.stack_kernels(2, 3, "gaussian")
    with pytest.raises(ValueError, match=r"\(n, k, k\)"):
        erf.stacked_erf(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="non-negative"):
        erf.erf_std(-np.ones((3, 3)))


def test_plot_sqrt_law_draws_every_curve():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from unirep_lite import plots

    ns = [1, 2, 4]
    example = erf.stacked_erf(erf.stack_kernels(4))
    fig = plots.plot_sqrt_law(ns, {"a": [1, 1.4, 2], "b": [0.9, 1.3, 1.8]}, [3, 5, 9], example, "n = 4")
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 4   # sqrt fit, field, two curves
    plt.close(fig)
    with pytest.raises(ValueError, match="one value per n"):
        plots.plot_sqrt_law(ns, {"a": [1, 2]}, [3, 5, 9])
