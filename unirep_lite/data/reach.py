"""Reach: a task that needs a wide view, with a knob for how far apart the evidence lies.

"Are the two dots joined by a line?" (a straight-line Pathfinder, after Long Range Arena). Every image
holds two dots (3 x 3 squares) exactly `d` pixels apart and two straight lines of length `d`:

* positive (label 1): one line runs from dot to dot; the other lies elsewhere with no dot on it;
* negative (label 0): each dot sits at the end of its own line, which leaves it in a random
  direction.

Both classes have the same parts: two dots, two lines, each dot at the end of a line, two bare line
ends. Any patch smaller than `d` looks the same in both, so no texture, count or pooled statistic of
local features tells them apart: the label is in a *relation* between points `d` pixels apart
(does the line that leaves this dot end at the other one?). `d` is the knob. Generated from a seed
with NumPy, offline, the same everywhere: nothing is cached or downloaded.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

DOT = 1  # half-side of a dot: 3 x 3 squares
CLASSES = ("apart", "joined")


def _draw_line(img: np.ndarray, p: np.ndarray, q: np.ndarray) -> None:
    """A 1-pixel line from p to q (row, col), sampled every half pixel."""
    n = int(np.ceil(2 * np.linalg.norm(q - p))) + 1
    pts = np.rint(p + np.linspace(0.0, 1.0, n)[:, None] * (q - p)).astype(int)
    img[pts[:, 0], pts[:, 1]] = 1.0


def _draw_dot(img: np.ndarray, p: np.ndarray) -> None:
    r, c = np.rint(p).astype(int)
    img[r - DOT:r + DOT + 1, c - DOT:c + DOT + 1] = 1.0


def _segment_distance(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> float:
    """Smallest distance between segments ab and cd (sampled: good enough at pixel scale)."""
    t = np.linspace(0.0, 1.0, 33)[:, None]
    s1, s2 = a + t * (b - a), c + t * (d - c)
    return float(np.sqrt(((s1[:, None] - s2[None]) ** 2).sum(-1)).min())


def _inside(p: np.ndarray, size: int, margin: int) -> bool:
    return bool((p >= margin).all() and (p <= size - 1 - margin).all())


def sample(rng: np.random.Generator, size: int, d: float, label: int, gap: float = 4.0,
           directions: int | None = None, max_tries: int = 1000) -> np.ndarray:
    """One size x size image (float32 in {0, 1}) of class `label` with dots and lines `d` pixels apart.

    Lines keep at least `gap` pixels from each other and from the dots they do not end at, so the
    answer never hides in a crossing.
    """
    margin = DOT + 1
    if not 4 <= d <= (size - 1 - 2 * margin) * np.sqrt(2):
        raise ValueError(f"distance d={d} does not fit a {size} x {size} image: expected 4 <= d <= "
                         f"{(size - 1 - 2 * margin) * np.sqrt(2):.0f}")

    def point() -> np.ndarray:
        return rng.uniform(margin, size - 1 - margin, 2)

    def step(p: np.ndarray) -> np.ndarray:
        a = rng.uniform(0, 2 * np.pi) if directions is None else 2 * np.pi * rng.integers(directions) / directions
        return p + d * np.array([np.sin(a), np.cos(a)])

    for _ in range(max_tries):
        p1 = point()
        p2 = step(p1)                              # the dots, d apart in both classes
        if not _inside(p2, size, margin):
            continue
        if label == 1:
            a1 = point()                           # the bare line, somewhere else
            a2 = step(a1)
            lines = [(p1, p2), (a1, a2)]
            ok = _inside(a2, size, margin) and _segment_distance(p1, p2, a1, a2) >= gap
        else:
            q1, q2 = step(p1), step(p2)            # each dot ends its own line
            lines = [(p1, q1), (p2, q2)]
            ok = (_inside(q1, size, margin) and _inside(q2, size, margin)
                  and _segment_distance(p1, q1, p2, q2) >= gap
                  and _segment_distance(p1, q1, p2, p2) >= gap  # no line passes the other dot
                  and _segment_distance(p2, q2, p1, p1) >= gap)
        if ok:
            img = np.zeros((size, size), np.float32)
            for a, b in lines:
                _draw_line(img, a, b)
            _draw_dot(img, p1)
            _draw_dot(img, p2)
            return img
    raise RuntimeError(f"could not place lines of length {d} in a {size} x {size} image in {max_tries} tries")


def make(n: int, size: int = 64, distances: Sequence[float] = (8, 16, 24, 32, 40), seed: int = 0,
         directions: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """n images, balanced over classes and distances: (x (n, 1, size, size), labels (n,), d (n,)).

    The same arguments give the same tensors. Each class and distance gets every n / (2 * len(distances))
    images (round-robin), in a seeded random order.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    distances = tuple(float(v) for v in distances)
    if not distances:
        raise ValueError("expected at least one distance")
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    dist = np.array(distances)[(np.arange(n) // 2) % len(distances)]
    order = rng.permutation(n)
    labels, dist = labels[order], dist[order]
    x = np.stack([sample(rng, size, d, int(y), directions=directions) for d, y in zip(dist, labels)])
    return (torch.from_numpy(x)[:, None], torch.from_numpy(labels.astype(np.int64)),
            torch.from_numpy(dist.astype(np.float32)))
