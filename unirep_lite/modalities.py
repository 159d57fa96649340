"""The five modalities of the course, one row each: where its dataset, recipe and notebook live.

The name is the one every entry point uses: `python -m unirep_lite.data build NAME`,
`recipes.get(NAME)`, `python -m unirep_lite.recipes NAME`, and notebook 10's loop over all five.
This module imports nothing else of the package, so the data and recipe packages can both read it.

    from unirep_lite.modalities import MODALITIES
    for name, m in MODALITIES.items():
        print(name, m.label, m.notebook)      # digits image 05_images.ipynb ...
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Modality:
    name: str        # registry key: "digits"
    label: str       # the paper's modality: "image", "audio", "video", "point cloud", "time series"
    data: str        # module with build() / load(split): "unirep_lite.data.images"
    recipe: str      # module that registers the recipe: "unirep_lite.recipes.images"
    notebook: str    # the notebook that walks through it, in notebooks/: "05_images.ipynb"


def _row(name: str, label: str, module: str, notebook: str) -> Modality:
    # a modality's data module and recipe module share their file name
    return Modality(name, label, f"unirep_lite.data.{module}", f"unirep_lite.recipes.{module}", notebook)


# in the course's order: notebooks 05 to 09
MODALITIES: dict[str, Modality] = {m.name: m for m in (
    _row("digits", "image", "images", "05_images.ipynb"),
    _row("speech", "audio", "audio", "06_audio.ipynb"),
    _row("video", "video", "video", "07_video.ipynb"),
    _row("shapes", "point cloud", "points", "08_point_clouds.ipynb"),
    _row("weather", "time series", "weather", "09_time_series.ipynb"),
)}


def get(name: str) -> Modality:
    """The row of `name`; a ValueError lists the valid names."""
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}: expected one of {', '.join(MODALITIES)}")
    return MODALITIES[name]
