"""Offline datasets, real-benchmark loaders and the cache they live in, one module per modality.

`images` (real MNIST "digits"), `audio` (synthetic spoken "speech"), `video` (synthetic actions),
`points` ("shapes") and `weather` (`unirep_lite.modalities` lists them): each has
`build(fast=None, root=None, force=False) -> folder`, `load(split, ...) -> Dataset` for split in
train/val/test, and a loader for the real benchmark's own layout. `common` holds what they share
(the split check, .npy loading, folder checks), `cache` the folder their builds live in.
`python -m unirep_lite.data build` builds every offline dataset once into `data_root()`.
"""
from __future__ import annotations

from . import audio, cache, images, points, video, weather
from .cache import data_root, dataset_checksum, verify
from .common import SPLITS, FixedSamples, check_folder, check_split, drop_unreadable, load_npy

__all__ = ["audio", "cache", "images", "points", "video", "weather", "data_root", "dataset_checksum", "verify",
           "check_folder", "check_split", "drop_unreadable", "load_npy", "FixedSamples", "SPLITS"]
