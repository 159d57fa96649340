"""One place decides how big a run is (`env.run_size`): FAST for CI, CPU-sized without a GPU, full on one."""
import pytest
import torch

from unirep_lite import env, recipes


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("UNIREP_SIZE", "UNIREP_FAST", "UNIREP_DEVICE"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_the_hardware_picks_the_size_unless_told(clean_env):
    expected = "full" if torch.cuda.is_available() else "cpu"
    assert env.run_size() == expected
    clean_env.setenv("UNIREP_FAST", "1")
    assert env.run_size() == "fast" and env.fast_mode()
    clean_env.setenv("UNIREP_SIZE", "full")  # an explicit size wins over UNIREP_FAST
    assert env.run_size() == "full" and not env.fast_mode()
    clean_env.setenv("UNIREP_SIZE", "huge")
    with pytest.raises(ValueError, match="UNIREP_SIZE must be one of"):
        env.run_size()


def test_a_cpu_sized_run_trains_fast_sizes_longer(clean_env):
    recipe = recipes.get("digits")
    clean_env.setenv("UNIREP_SIZE", "cpu")
    assert env.fast_mode()
    assert recipe.train_config().epochs == env.CPU_EPOCH_FACTOR * recipe.config(True).epochs
    assert recipe.train_config(True) == recipe.config(True)  # an explicit size is taken as given
    clean_env.setenv("UNIREP_SIZE", "fast")
    assert recipe.train_config() == recipe.config(True)
    clean_env.setenv("UNIREP_SIZE", "full")
    assert recipe.train_config() == recipe.config(False)


@pytest.mark.parametrize("kind", ["std", "notebook"])
def test_progress_bar_is_off_where_tqdm_disable_says_so(monkeypatch, kind):
    # tqdm's notebook bar (what tqdm.auto gives in Jupyter) ignores TQDM_DISABLE: the book showed bars
    import tqdm.auto
    import tqdm.notebook
    import tqdm.std

    monkeypatch.setattr(tqdm.auto, "tqdm", tqdm.notebook.tqdm if kind == "notebook" else tqdm.std.tqdm)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert env.progress_bar(range(3), disable=False).disable
    monkeypatch.delenv("TQDM_DISABLE")
    assert env.progress_bar(range(3), disable=True).disable
