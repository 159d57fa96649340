"""unirep_lite.notebook: the variant loop, the confusion matrix and the deploy check of notebooks 05-08."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import Subset  # noqa: E402

from unirep_lite import count_params, recipes  # noqa: E402
from unirep_lite.notebook import check_deploy, confusion_matrix, plot_confusion, train_variants  # noqa: E402
from unirep_lite.train import TrainConfig  # noqa: E402

TINY = {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64)}

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_confusion_matrix_counts_true_by_predicted():
    cm = confusion_matrix(torch.tensor([0, 0, 1, 2, 2]), torch.tensor([0, 1, 1, 2, 0]), 4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert cm.sum() == 5 and np.trace(cm) == 3


def test_plot_confusion_titles_the_accuracy_and_fits_a_page():
    fig = plot_confusion([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
    ax = fig.axes[0]
    assert "75.0% correct" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert fig.get_figwidth() <= 7
    matplotlib.pyplot.close(fig)


@pytest.fixture(scope="module")
def runs():
    recipe = recipes.get("digits")
    small = Subset(recipe.load("train", "fast"), range(16))
    cfg = TrainConfig(epochs=1, batch_size=8, progress=False, device="cpu")
    return recipe, small, train_variants(recipe, ["unireplknet_a", "unireplknet_f"], small, small, cfg,
                                         lk_size=7, size="fast", **TINY)


def test_train_variants_trains_each_from_the_same_seed(runs, capsys):
    recipe, small, out = runs
    assert list(out) == ["unireplknet_a", "unireplknet_f"]
    for result in out.values():
        assert result.seconds > 0 and len(result.history.step_loss) == 2 and result.deploy_model is not None
    # TINY overrides depths and dims, so both variants are the same model, started from the same seed
    a, f = (r.history.step_loss for r in out.values())
    assert a == f and count_params(out["unireplknet_a"].model) == count_params(out["unireplknet_f"].model)


def test_check_deploy_compares_on_the_given_data(runs, capsys):
    recipe, small, out = runs
    check = check_deploy(out["unireplknet_a"], small)
    printed = capsys.readouterr().out
    assert "identical predictions" in printed and "parameters: trained" in printed
    assert check["agreement"] == 1.0 and check["max_abs_diff"] < 1e-4
    assert torch.equal(check["deploy"]["predictions"], check["trained"]["predictions"])
