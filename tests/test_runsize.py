"""The run size: one value (`runsize.RunSize`), read from the environment in one place (`env.run_size`)."""
import io

import pytest
import torch

from unirep_lite import env, recipes
from unirep_lite.runsize import CPU_EPOCH_FACTOR, FAST, FULL, RunSize, describe_run, expected_minutes


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("UNIREP_SIZE", "UNIREP_FAST", "UNIREP_DEVICE"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_the_hardware_picks_the_size_unless_told(clean_env):
    expected = "full" if torch.cuda.is_available() else "cpu"
    assert env.run_size() == RunSize(expected)
    clean_env.setenv("UNIREP_FAST", "1")
    assert env.run_size() == FAST and env.run_size().small
    clean_env.setenv("UNIREP_SIZE", "full")  # an explicit size wins over UNIREP_FAST
    assert env.run_size() == FULL and not env.run_size().small
    clean_env.setenv("UNIREP_SIZE", "huge")
    with pytest.raises(ValueError, match="UNIREP_SIZE must be one of"):
        env.run_size()


def test_the_environment_can_be_given_as_a_mapping(clean_env):
    assert env.run_size({"UNIREP_FAST": "1"}) == FAST
    assert env.run_size({"UNIREP_SIZE": "cpu", "UNIREP_FAST": "1"}).name == "cpu"
    assert env.default_device({"UNIREP_DEVICE": "cpu"}) == torch.device("cpu")
    with pytest.raises(ValueError, match="UNIREP_DEVICE must be a torch device"):
        env.default_device({"UNIREP_DEVICE": "gpu0"})
    with pytest.raises(ValueError, match="UNIREP_DWCONV must be one of"):
        env.dwconv_choice({"UNIREP_DWCONV": "fastest"})


def test_a_run_size_is_one_of_three_names():
    assert RunSize.parse("CPU") == RunSize("cpu") and RunSize.parse(FAST) is FAST
    assert [RunSize(n).key for n in ("fast", "cpu", "full")] == ["fast", "fast", "full"]
    assert [RunSize(n).label for n in ("fast", "cpu", "full")] == ["FAST", "CPU-sized", "full"]
    with pytest.raises(ValueError, match="run size must be one of"):
        RunSize("huge")
    with pytest.raises(TypeError, match="run size must be a RunSize"):
        RunSize.parse(True)


def test_a_cpu_sized_run_trains_fast_sizes_longer():
    recipe = recipes.get("digits")
    assert recipe.config("cpu").epochs == CPU_EPOCH_FACTOR * recipe.config("fast").epochs
    assert recipe.config("full").epochs == 30
    assert RunSize("cpu").epochs(5, 30) == 5 * CPU_EPOCH_FACTOR and FULL.epochs(5, 30) == 30


def test_describe_run_says_size_device_minutes_and_how_to_switch():
    out = io.StringIO()
    describe_run("05", RunSize("cpu"), "cpu", out=out)
    text = out.getvalue()
    assert "CPU-sized run (size 'cpu') on cpu" in text and "To switch" in text
    assert expected_minutes("05", RunSize("cpu")) == pytest.approx(CPU_EPOCH_FACTOR * expected_minutes("05", FAST))
    assert expected_minutes("99", FAST) is None


def test_fast_mode_is_deprecated(clean_env):
    clean_env.setenv("UNIREP_FAST", "1")
    with pytest.warns(DeprecationWarning, match="run_size"):
        assert env.fast_mode()


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
