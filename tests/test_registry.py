"""One registry of the five modalities (`recipes.RECIPES`), and every entry point agrees with it."""
from pathlib import Path

import pytest

from unirep_lite import recipes
from unirep_lite.data.__main__ import registry

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_each_recipe_points_at_its_data_and_a_notebook(name):
    recipe = recipes.get(name)
    assert recipe.name == name and recipes.RECIPES[name] is recipe
    assert callable(recipe.data.build) and callable(recipe.data.load)
    assert (NOTEBOOKS / recipe.notebook).is_file()


def test_the_entry_points_use_the_registry():
    assert list(registry()) == list(recipes.RECIPES)  # python -m unirep_lite.data
    assert [r.modality for r in recipes.RECIPES.values()] == [
        "image", "audio", "video", "point cloud", "time series"]
    assert [r.notebook[:2] for r in recipes.RECIPES.values()] == ["05", "06", "07", "08", "09"]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="recipe must be one of digits, speech, video, shapes, weather, got 'imagenet'"):
        recipes.get("imagenet")
