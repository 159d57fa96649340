"""Static explorers: every state is in the figure, the slider and the menu each keep their choice
when the other moves, every panel scale has a colour bar, each explorer asks one guiding question,
and the book build switches them on."""
import numpy as np
import pytest

from unirep_lite import explorers, plots
from unirep_lite.reparam import BRANCHES


def shown(fig, slider_index: int, menu_index: int) -> list[int]:
    """The traces a reader sees after choosing slider step `slider_index` and menu entry
    `menu_index`, in either order: visible (the slider's part) and opaque (the menu's part)."""
    step = fig.layout.sliders[0].steps[slider_index].args[0]
    button = fig.layout.updatemenus[0].buttons[menu_index].args[0]
    return [i for i in range(len(fig.data)) if step["visible"][i] and button["opacity"][i] > 0]


def test_kernel_figure_has_a_state_for_every_K_and_branch_choice():
    fig = explorers.kernel_figure(K=13)
    sizes, choices = sorted(BRANCHES), list(explorers.branch_choices(13))
    assert len(fig.data) == 2 * len(sizes) * len(choices)
    steps, buttons = fig.layout.sliders[0].steps, fig.layout.updatemenus[0].buttons
    assert [s.label for s in steps] == [str(k) for k in sizes]
    assert len(buttons) == len(choices)
    assert fig.layout.sliders[0].active == sizes.index(13)
    states = {(i, m): tuple(shown(fig, i, m)) for i in range(len(sizes)) for m in range(len(choices))}
    assert all(len(v) == 2 for v in states.values()) and len(set(states.values())) == len(states)
    # the step for K shows K x K panels, whatever the branch choice
    for (i, _), v in states.items():
        assert all(np.asarray(fig.data[t].z).shape == (sizes[i], sizes[i]) for t in v)
    # the initial view is the K = 13 step, authors' branches
    opaque = [i for i, t in enumerate(fig.data) if t.visible and t.opacity > 0]
    assert opaque == list(states[(sizes.index(13), 0)])


def test_slider_and_menu_keep_each_others_choice():
    """A slider step touches only what is visible (and the axes' size); a menu entry only what is
    opaque: neither resets the other (the menu used to snap K back to 13)."""
    for fig in (explorers.kernel_figure(K=13),
                explorers.erf_figure(kernels=(3, 7), stages=(3, 4), resolution=32, n_images=1, K=7)):
        for step in fig.layout.sliders[0].steps:
            traces, layout = step.args
            assert set(traces) == {"visible"} and "sliders" not in layout
            assert all(k.endswith(".visible") or k.endswith(".range") for k in layout)
        for button in fig.layout.updatemenus[0].buttons:
            traces, layout = button.args
            assert set(traces) == {"opacity", "hoverinfo", "showscale"} and "sliders" not in layout
            assert all(k.endswith(".opacity") for k in layout)


def test_every_panel_scale_has_a_colour_bar_and_the_explorer_asks_its_question():
    fig = explorers.kernel_figure(K=13)
    bars = [i for i, t in enumerate(fig.data) if t.visible and t.opacity > 0 and t.showscale]
    assert len(bars) == 2  # the branch count and the kernel weights, each its own scale
    assert fig.data[bars[0]].colorbar.title.text == "branches"
    assert fig.layout.title.text.startswith(explorers.KERNEL_QUESTION)
    erf = explorers.erf_figure(kernels=(3, 7), stages=(3,), resolution=32, n_images=1, K=7)
    assert sum(bool(t.visible and t.opacity > 0 and t.showscale) for t in erf.data) == 1  # one shared scale
    assert erf.layout.title.text.startswith(explorers.ERF_QUESTION)
    for question in (explorers.KERNEL_QUESTION, explorers.ERF_QUESTION):
        assert question.startswith("Question: ") and question.count("?") == 1


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
        explorers.state_figure(states, ("s", [1, 2]), ("m", ["a"]), (1, "a"), "Question?")
    with pytest.raises(ValueError, match="start"):
        explorers.state_figure(states, ("s", [1]), ("m", ["a"]), (2, "a"), "Question?")


def test_erf_figure_small():
    fig = explorers.erf_figure(kernels=(3, 7), stages=(3, 4), resolution=32, n_images=1, K=7, stage=3)
    assert len(fig.data) == 2 * 2 * 2
    assert fig.data[0].z.dtype == np.uint8  # stored as whole percent: a small page
    assert [s.label for s in fig.layout.sliders[0].steps] == ["3", "7"]
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["stage: stage 3", "stage: stage 4"]
    titles = [a.text for a in fig.layout.annotations if a.visible and a.opacity > 0]
    assert len(titles) == 2 and "K = 7" in titles[1] and "50% within" in titles[1]


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
