"""Figures and widgets: right panels, exact merged kernel, library errors shown in the widget."""
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from torch import nn  # noqa: E402

from unirep_lite import DilatedReparamBlock, erf, plots, widgets  # noqa: E402
from unirep_lite.testing import randomize_  # noqa: E402


def test_block_kernels_sum_to_merged():
    block = randomize_(DilatedReparamBlock(3, 13), seed=0).eval()
    parts = plots.block_kernels(block, channel=1)
    assert [t for t, _ in parts][-1] == "merged 13x13"
    assert len(parts) == 1 + len(block.ks) + 1
    assert all(k.shape == (13, 13) for _, k in parts)
    assert np.allclose(sum(k for _, k in parts[:-1]), parts[-1][1], atol=1e-6)
    block.reparameterize()
    assert np.allclose(plots.block_kernels(block, channel=1)[0][1], parts[-1][1], atol=1e-6)


def test_branch_footprints_are_dilated_grids():
    feet = dict(plots.branch_footprints(13, (5, 3), (1, 4)))
    assert feet["13x13 (dense)"].sum() == 169
    assert feet["k=5, r=1"].sum() == 25 and feet["k=5, r=1"][4:9, 4:9].all()
    grid = feet["k=3, r=4"]
    assert grid.sum() == 9 and grid[2, 2] == grid[6, 6] == grid[10, 10] == 1 and grid[3, 3] == 0


def test_figures_build():
    block = DilatedReparamBlock(1, 7).eval()
    fig = plots.plot_block(block)
    assert len(fig.axes) == 2 * (1 + len(block.ks) + 1)
    conv = nn.Conv2d(3, 2, 3, padding=1)
    nn.init.uniform_(conv.weight, 0.1, 1.0)  # positive: the centre output is positive for positive input

    class One(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return [self.conv(x)]

    e = erf.compute_erf(One(), erf.load_images("photos", 1, 16, normalize=False), progress=False,
                        label="conv")
    assert len(plots.plot_erfs([e, e, e], cols=2).axes) == 4
    plots.plot_area_ratios([e])
    assert len(plots.plotly_erfs([e]).data) == 1
    assert len(plots.plotly_kernels(plots.block_kernels(block)).data) == len(block.ks) + 2
    with pytest.raises(ValueError):
        plots.plot_erfs([])
    import matplotlib.pyplot as plt

    plt.close("all")


def test_parse_ints():
    assert widgets.parse_ints("5, 7,3") == (5, 7, 3)
    assert widgets.parse_ints("") == ()
    with pytest.raises(ValueError, match="comma-separated integers"):
        widgets.parse_ints("5, x", "branch k")


def test_kernel_explorer_shows_library_errors():
    ui = widgets.kernel_explorer(13)
    c = ui.controls
    assert c["message"].value == "" and ui.figure is not None
    assert "where do the dilated branches add weight" in c["question"].value
    c["rs"].value = "1, 2, 3, 4, 9"            # (3-1)*9+1 = 19 > 13: the library refuses
    assert "ValueError" in c["message"].value and "more than the large kernel K=13" in c["message"].value
    assert ui.figure is None
    c["K"].value = 12
    assert "positive odd integer" in c["message"].value
    c["K"].value = 17
    c["ks"].value, c["rs"].value = "5, 9, 3, 3, 3", "1, 2, 4, 5, 7"
    assert c["message"].value == "" and len(ui.figure.axes) == 2 * 7
    c["ks"].value = "5, a"
    assert "comma-separated" in c["message"].value
    import matplotlib.pyplot as plt

    plt.close("all")


def test_erf_explorer_headless_and_errors(tmp_path):
    ex = widgets.ERFExplorer(source="noise", progress=False)
    ui = ex.widget(resolutions=(32, 64), n_images=1)
    c = ui.controls
    assert "area ratios" in c["message"].value and c["scale"].value == "decades"
    assert "50% square" in c["question"].value
    c["scale"].value = "replknet"               # only redraws
    assert "area ratios" in c["message"].value
    c["model"].value = "resnet18"               # K = 13 is a UniRepLKNet option only
    ui.run()
    assert "lk_size applies to UniRepLKNet models only" in c["message"].value
    c["kernel"].value = None
    ui.run()
    assert "area ratios" in c["message"].value
    c["source"].value = str(tmp_path / "nowhere")
    ui.run()
    assert "FileNotFoundError" in c["message"].value
    with pytest.raises(ValueError, match="stage"):
        ex.compute("unireplknet_a", 7, 5, 32, 1)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_tidy_keeps_the_suptitle_clear_of_two_line_panel_titles():
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(plots.BOOK_RC):  # square images in wide slots: tight_layout alone
        fig, axes = plt.subplots(1, 3, figsize=(7, 2.7))  # left 2.5 px between the titles
        for ax in axes:
            ax.imshow(np.zeros((8, 8)))
            ax.set_title("UniRepLKNet-A K=13\nratio@0.5: 0.015", fontsize=9)
        fig.suptitle("ERF, decades below the peak", fontsize=10)
        plots.tidy(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    sup = fig._suptitle.get_window_extent(renderer)
    top_of_titles = max(ax.title.get_window_extent(renderer).y1 for ax in axes)
    assert sup.y0 - top_of_titles >= 0.1 * fig.dpi, (sup.y0, top_of_titles)  # >= 0.1 inch of air
    plt.close(fig)


def test_widgets_show_errors_instead_of_raising(tmp_path):
    from unirep_lite import widgets

    (tmp_path / "fake.png").write_text("this is text")
    ex = widgets.ERFExplorer(source=str(tmp_path), progress=False)
    ui = ex.widget(resolutions=(32,), n_images=1)  # computes at once: shows the error, raises nothing
    assert "not a readable image" in ui.controls["message"].value

    start = time.perf_counter()
    ui = widgets.kernel_explorer(13)
    ui.controls["K"].value = 99999
    assert f"K must be an odd integer from 1 to {widgets.MAX_K}" in ui.controls["message"].value
    assert time.perf_counter() - start < 60  # bounded: no 40 GB kernel was allocated
    with pytest.raises(ValueError, match="K must be an odd integer"):
        widgets.render_block(99999, (5,), (1,))


def test_sparse_pattern_figures():
    import matplotlib.pyplot as plt
    from unirep_lite.reparam import BRANCHES

    count = plots.branch_counts(13, *BRANCHES[13])
    assert count[6, 6] == 6 and count.min() == 1 and count.shape == (13, 13)
    fig = plots.plot_sparse_pattern(13, *BRANCHES[13])
    dense, dilated, total = (ax.images[0].get_array() for ax in fig.axes[:3])
    assert (dense == 1).all() and np.array_equal(total, count)
    assert np.array_equal(dilated, count - 1 - plots.branch_footprints(13, (5,), (1,))[1][1])
    assert len(plots.plot_branch_counts(BRANCHES).axes) == 8 + 1  # 7 sizes, an empty slot, the bar
    with pytest.raises(ValueError):
        plots.plot_numbered_kernels([])
    assert len(plots.plot_numbered_kernels([("a", np.eye(3))]).axes[0].texts) == 9
    plt.close("all")


def test_point_cloud_and_image_figures():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    fig = plots.plotly_point_clouds(rng.uniform(-1, 1, (2, 50, 3)), ["a", "b"])
    assert [t.visible for t in fig.data] == [True, False]  # one cloud at a time, picked from the menu
    with pytest.raises(ValueError, match="one name each"):
        plots.plotly_point_clouds(rng.uniform(-1, 1, (2, 50, 3)), ["a"])
    assert len(plots.plot_images([("x", rng.random((8, 8))), ("y", rng.random((8, 8)))]).axes) >= 2
    plt.close("all")
