"""Seed comparisons: a gap is evidence only beyond the seed spread; the figures of notebooks 05 and 07."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from unirep_lite import plots  # noqa: E402
from unirep_lite.seeds import compare_seeds  # noqa: E402


def test_gap_beyond_spread_is_robust():
    c = compare_seeds({"K = 13": [0.81, 0.79], "K = 3": [0.60, 0.57]})
    assert c.robust and math.isclose(c.gap, 0.215) and math.isclose(c.spread, 0.03)
    assert "beyond the seed spread" in c.sentence() and "80.0%" in c.sentence()


@pytest.mark.parametrize("a, b, words", [
    ([0.80, 0.60], [0.65, 0.62], "within the seed spread: no conclusion"),  # gap < spread
    ([0.70, 0.64], [0.65, 0.60], "within the seed spread: no conclusion"),  # seeds overlap
    ([0.60, 0.61], [0.80, 0.79], "K = 3 ahead of K = 13, within"),           # the other way round, not robust
    ([0.8], [0.6], "one seed, which is no evidence"),
    ([0.7, 0.7], [0.7, 0.7], "tie"),
])
def test_not_robust(a, b, words):
    c = compare_seeds({"K = 13": a, "K = 3": b})
    assert not c.robust and words in c.sentence()


def test_lower_is_better():
    c = compare_seeds({"a": [0.10, 0.11], "b": [0.30, 0.32]}, higher_is_better=False)
    assert c.robust and c.gap > 0
    assert not compare_seeds({"a": [0.30, 0.32], "b": [0.10, 0.11]}, higher_is_better=False).robust


@pytest.mark.parametrize("scores", [{"a": [1.0]}, {"a": [], "b": [1.0]}, {"a": [np.nan], "b": [1.0]}])
def test_bad_scores_refused(scores):
    with pytest.raises(ValueError):
        compare_seeds(scores)


def test_figures_build():
    fig = plots.plot_seed_scores({"K = 13": [0.8, 0.79], "K = 3": [0.6, 0.55]}, reference=0.125)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3  # two arms' dots, the chance line
    img = np.random.default_rng(0).random((28, 28))
    fig = plots.plot_stage_cells(img, [("small", np.zeros((32, 32))), ("full", np.zeros((128, 128)))])
    assert len(fig.axes) == 3 and "map 8 x 8" in fig.axes[2].get_title()
    with pytest.raises(ValueError):
        plots.plot_stage_cells(img, [])
