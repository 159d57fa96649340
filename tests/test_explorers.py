"""Static explorers: every state is in the figure, each slider step shows exactly its own state, the
menu swaps in the slider of its branch choice / stage, and the book build switches them on."""
import numpy as np
import pytest

from unirep_lite import explorers, plots
from unirep_lite.reparam import BRANCHES


def visible(args) -> list[int]:
    return [i for i, v in enumerate(args[0]["visible"]) if v]


def test_kernel_figure_has_a_state_for_every_K_and_branch_choice():
    fig = explorers.kernel_figure(K=13)
    sizes, choices = sorted(BRANCHES), list(explorers.branch_choices(13))
    assert len(fig.data) == 2 * len(sizes) * len(choices)
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == [str(k) for k in sizes]
    assert fig.layout.sliders[0].active == sizes.index(13)
    shown = [visible(s.args) for s in steps]
    assert all(len(v) == 2 for v in shown) and len({tuple(v) for v in shown}) == len(sizes)
    # the step for K shows K x K panels, and its merged kernel is the library's
    for K, v in zip(sizes, shown):
        assert all(np.asarray(fig.data[i].z).shape == (K, K) for i in v)
    # the initial view is the K = 13 step, authors' branches
    assert [i for i, t in enumerate(fig.data) if t.visible] == shown[sizes.index(13)]
    # each menu entry brings its own slider: different traces for the same K
    buttons = fig.layout.updatemenus[0].buttons
    assert len(buttons) == len(choices)
    per_choice = [tuple(visible(b.args[1]["sliders"][0]["steps"][0]["args"])) for b in buttons]
    assert len(set(per_choice)) == len(choices)


def test_kernel_states_are_the_library_kernels():
    states = explorers.kernel_states([7], seed=3)
    (_, count), (_, merged) = states[(7, "authors' branches")]
    assert count.max() == len(BRANCHES[7][0]) + 1 and count.min() == 1
    (_, dense_count), _ = states[(7, "dense KxK only")]
    assert (dense_count == 1).all()
    assert merged.shape == (7, 7)


def test_state_figure_rejects_missing_states():
    states = {(1, "a"): [("p", np.zeros((3, 3)))]}
    with pytest.raises(ValueError, match="no panels"):
        explorers.state_figure(states, ("s", [1, 2]), ("m", ["a"]), (1, "a"), title=lambda s, m: "")
    with pytest.raises(ValueError, match="start"):
        explorers.state_figure(states, ("s", [1]), ("m", ["a"]), (2, "a"), title=lambda s, m: "")


def test_erf_figure_small():
    fig = explorers.erf_figure(kernels=(3, 7), stages=(3, 4), resolution=32, n_images=1, K=7, stage=3)
    assert len(fig.data) == 2 * 2 * 2
    assert fig.data[0].z.dtype == np.uint8  # stored as whole percent: a small page
    assert [s.label for s in fig.layout.sliders[0].steps] == ["3", "7"]
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["stage: stage 3", "stage: stage 4"]
    assert "K = 7" in fig.layout.annotations[1].text


def test_live_or_static_follows_the_book_build(monkeypatch):
    monkeypatch.delenv(explorers.BOOK_ENV, raising=False)
    assert explorers.live_or_static(lambda: "widget", lambda: "figure") == "widget"
    monkeypatch.setenv(explorers.BOOK_ENV, "1")
    assert explorers.live_or_static(lambda: "widget", lambda: "figure") == "figure"
    from tools import book

    assert book.BUILD_ENV[explorers.BOOK_ENV] == "1"


def test_book_style_sets_a_readable_column_figure():
    import matplotlib as mpl

    with mpl.rc_context():
        plots.book_style()
        width, _ = mpl.rcParams["figure.figsize"]
        assert width * mpl.rcParams["figure.dpi"] <= 720 and mpl.rcParams["font.size"] >= 9
