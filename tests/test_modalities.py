"""The modality table: one row per modality, and every entry point (data CLI, recipes, notebooks) agrees with it."""
import importlib
from pathlib import Path

import pytest

from unirep_lite import modalities, recipes
from unirep_lite.data.__main__ import registry

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("name", list(modalities.MODALITIES))
def test_each_row_points_at_real_modules_and_a_notebook(name):
    m = modalities.get(name)
    assert m.name == name
    data = importlib.import_module(m.data)
    assert callable(data.build) and callable(data.load)
    recipe = recipes.get(name)                     # imports m.recipe, which registers `name`
    assert recipes.RECIPES[name] is recipe and importlib.import_module(m.recipe).RECIPE is recipe
    assert recipe.modality == m.label
    assert (NOTEBOOKS / m.notebook).is_file()


def test_the_entry_points_use_the_table():
    assert list(registry()) == list(modalities.MODALITIES)  # python -m unirep_lite.data
    assert [m.label for m in modalities.MODALITIES.values()] == [
        "image", "audio", "video", "point cloud", "time series"]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown modality 'imagenet': expected one of digits, speech"):
        modalities.get("imagenet")
