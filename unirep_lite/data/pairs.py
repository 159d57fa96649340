"""Pairs: "are both marks crosses?", a sparse task whose label needs two far-apart patches at once.

Every image holds two marks of `unirep_lite.data.reach` (a 5 x 5 plus or cross), each centred on the
square ring of half-side d around the image centre, d drawn from `distances` for each mark on its
own; the two never touch. The label is 1 when both marks are crosses (half the images), 0 for the
three other pairs (plus-plus, plus-cross, cross-plus, a sixth of the images each). One mark alone
decides only part of it: a plus says "no", a cross leaves 3 to 1 odds for "yes", so a model that
sees only one of the two marks scores at most 1/3 + 2/3 * 3/4 = 83%, one that sees neither 50%.
A model that answers at the centre must see *both*: two small patches of evidence, far apart in an
empty image, the sparse pattern the paper's dilated branches are meant for. Generated from a seed
with NumPy, offline, the same everywhere.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .. import checks
from . import reach

CLASSES = ("not both crosses", "both crosses")
GAP = 2 * reach.HALF + 2  # the least Chebyshev distance between the two centres: a pixel between marks
ONE_MARK_CEILING = 1 / 3 + 2 / 3 * 3 / 4  # the best accuracy from one of the two marks


def marks_for(rng: np.random.Generator, label: int) -> tuple[int, int]:
    """The two marks (0 plus, 1 cross) of an image of class `label`."""
    if label:
        return 1, 1
    return [(0, 0), (0, 1), (1, 0)][rng.integers(3)]


def sample(rng: np.random.Generator, size: int, d: tuple[float, float], label: int) -> np.ndarray:
    """One size x size image with two marks at distances d = (d1, d2) from the centre, of class `label`."""
    marks = marks_for(rng, label)
    while True:
        a, b = reach.place(rng, size, d[0]), reach.place(rng, size, d[1])
        if max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= GAP:
            break
    img = np.zeros((size, size), np.float32)
    reach.draw(img, a, marks[0])
    reach.draw(img, b, marks[1])
    return img


def make(n: int, size: int = 80, distances: Sequence[float] = (6, 12, 18, 24, 30, 36), seed: int = 0
         ) -> tuple[Tensor, Tensor, Tensor]:
    """n images, balanced over the two classes: (x (n, 1, size, size), labels (n,), far (n,)), where
    far is the larger of the two marks' distances. The same arguments give the same tensors."""
    checks.positive_int("n", n)
    checks.integer("size", size, minimum=16)
    distances = tuple(checks.number(f"distances[{i}]", v) for i, v in enumerate(distances))
    if not distances:
        raise ValueError("distances: expected at least one distance")
    if max(distances) < GAP / 2:
        raise ValueError(f"distances: two marks cannot both lie within d={max(distances)} of the centre "
                         f"without touching; expected a distance >= {GAP / 2}")
    for v in distances:
        if not 0 <= v <= reach.max_distance(size):
            raise ValueError(f"distances: d={v} does not fit a {size} x {size} image: expected "
                             f"0 <= d <= {reach.max_distance(size)}")
    checks.integer("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    images, far = [], []
    for y in labels:
        d = tuple(float(v) for v in rng.choice(distances, 2))
        if max(d) < GAP / 2:          # both too near the centre to fit apart: move one out
            d = (d[0], float(max(distances)))
        images.append(sample(rng, size, d, int(y)))
        far.append(max(d))
    return (torch.from_numpy(np.stack(images))[:, None], torch.from_numpy(labels.astype(np.int64)),
            torch.tensor(far, dtype=torch.float32))
