"""The reach task: deterministic, balanced, and built so that only the long-range relation decides."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from unirep_lite.data import reach


def test_same_arguments_same_images():
    a = reach.make(40, 48, (6, 12, 18), seed=3)
    b = reach.make(40, 48, (6, 12, 18), seed=3)
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    assert not torch.equal(a[0], reach.make(40, 48, (6, 12, 18), seed=4)[0])


def test_shapes_values_and_balance():
    x, y, d = reach.make(60, 48, (6, 12, 18), seed=0)
    assert x.shape == (60, 1, 48, 48) and x.dtype == torch.float32
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}
    for v in (6, 12, 18):  # every distance has as many of each class
        assert (y[d == v] == 1).sum() == (y[d == v] == 0).sum() == 10


def _dot_components(img: np.ndarray) -> int:
    """How many connected pieces of the drawing hold a dot (a fully lit 3 x 3 square)."""
    parts, _ = ndimage.label(img, structure=np.ones((3, 3)))
    centres = ndimage.binary_erosion(img > 0, structure=np.ones((3, 3)))
    return len(set(parts[centres].tolist()))


@pytest.mark.parametrize("size,dist", [(48, (6, 12, 24)), (64, (6, 18, 30))])
def test_label_is_connectivity(size, dist):
    # joined: both dots on one line (one piece); apart: each dot on its own line (two pieces)
    x, y, _ = reach.make(80, size, dist, seed=1)
    for img, label in zip(x[:, 0].numpy(), y.tolist()):
        assert _dot_components(img) == (1 if label == 1 else 2)
        assert ndimage.label(img, structure=np.ones((3, 3)))[1] == 2  # always two pieces in all


def test_no_ink_shortcut():
    # both classes draw two dots and two lines of the same length: the amount of ink is the same
    x, y, d = reach.make(400, 64, (6, 18, 30), seed=2)
    ink = x.sum((1, 2, 3))
    for v in (6, 18, 30):
        joined, apart = ink[(d == v) & (y == 1)].mean(), ink[(d == v) & (y == 0)].mean()
        assert abs(joined - apart) < 0.05 * apart


def test_bad_input():
    with pytest.raises(ValueError, match="does not fit"):
        reach.make(4, 32, (60,))
    with pytest.raises(ValueError, match="positive integer"):
        reach.make(0, 32)
    with pytest.raises(ValueError, match="size"):
        reach.make(4, 8)
    with pytest.raises(ValueError, match="at least one distance"):
        reach.make(4, 32, ())
