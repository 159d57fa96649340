"""Reach: "which mark lies d pixels from here?", a task whose only difficulty is distance.

Every image holds one mark, a 5 x 5 plus or a 5 x 5 cross (9 pixels of ink each), centred `d` pixels
from the image centre along a row or a column (a random point of the square ring of half-side `d`:
a convolution's reach is a square, so `d` is measured the same way). The label is the mark. A model
that answers *at the centre* (a per-location prediction, as a segmentation or detection head makes at
every pixel) can only use the pixels its convolutions reach from there: when `d` lies beyond that
reach, nothing it sees tells plus from cross and it is at chance, however long it trains. Texture,
ink and position are the same in both classes; only how far the evidence lies changes: `d` is the knob.
Generated from a seed with NumPy, offline, the same everywhere: nothing is cached or downloaded.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import checks

HALF = 2  # marks are (2 * HALF + 1) squares
_DIAGONAL = np.eye(2 * HALF + 1, dtype=np.float32)
PLUS = np.zeros_like(_DIAGONAL)
PLUS[HALF, :] = PLUS[:, HALF] = 1.0
CROSS = np.maximum(_DIAGONAL, _DIAGONAL[::-1])
MARKS = (PLUS, CROSS)
CLASSES = ("plus", "cross")


def max_distance(size: int) -> int:
    """The largest d at which a mark fits the image in every direction around the centre."""
    c = size // 2
    return min(c - HALF, size - 1 - c - HALF)


def sample(rng: np.random.Generator, size: int, d: float, label: int) -> np.ndarray:
    """One size x size image (float32 in {0, 1}): mark `label` centred d pixels from the centre."""
    if not 0 <= d <= max_distance(size):
        raise ValueError(f"distance d={d} does not fit a {size} x {size} image: expected "
                         f"0 <= d <= {max_distance(size)}")
    img = np.zeros((size, size), np.float32)
    draw(img, place(rng, size, d), label)
    return img


def place(rng: np.random.Generator, size: int, d: float) -> tuple[int, int]:
    """A random point (row, column) of the square ring of half-side d around the image centre."""
    c = size // 2
    along = c + rng.uniform(-d, d)                 # where on the chosen side of the ring
    r, q = [(c - d, along), (c + d, along), (along, c - d), (along, c + d)][rng.integers(4)]
    return int(np.rint(r)), int(np.rint(q))


def draw(img: np.ndarray, at: tuple[int, int], label: int) -> None:
    """Put mark `label` on `img` (in place), centred on `at` = (row, column)."""
    r, q = at
    img[r - HALF:r + HALF + 1, q - HALF:q + HALF + 1] = MARKS[label]


def make(n: int, size: int = 80, distances: Sequence[float] = (6, 12, 18, 24, 30, 36), seed: int = 0
         ) -> tuple[Tensor, Tensor, Tensor]:
    """n images, balanced over classes and distances: (x (n, 1, size, size), labels (n,), d (n,)).

    The same arguments give the same tensors. Each class and distance gets every n / (2 * len(distances))
    images (round-robin), in a seeded random order.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    if isinstance(distances, (str, bytes)) or not isinstance(distances, Iterable):
        raise TypeError(f"distances must be a sequence of numbers, got {distances!r}")
    distances = tuple(checks.number(f"distances[{i}]", v) for i, v in enumerate(distances))
    for d in distances:
        if not 0 <= d <= max_distance(size):
            raise ValueError(f"distances: d={d} does not fit a {size} x {size} image: expected "
                             f"0 <= d <= {max_distance(size)}")
    if not distances:
        raise ValueError("distances: expected at least one distance")
    checks.integer("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    dist = np.array(distances)[(np.arange(n) // 2) % len(distances)]
    order = rng.permutation(n)
    labels, dist = labels[order], dist[order]
    x = np.stack([sample(rng, size, d, int(y)) for d, y in zip(dist, labels)])
    return (torch.from_numpy(x)[:, None], torch.from_numpy(labels.astype(np.int64)),
            torch.from_numpy(dist.astype(np.float32)))
