"""The reach task: deterministic, balanced, and built so that only the distance of the evidence decides."""
import numpy as np
import pytest
import torch

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


@pytest.mark.parametrize("size", [48, 64, 65])
def test_one_mark_at_distance_d_on_the_square_ring(size):
    far = reach.max_distance(size)
    x, y, d = reach.make(200, size, (0, 6, far), seed=1)
    c = size // 2
    for img, label, dist in zip(x[:, 0].numpy(), y.tolist(), d.tolist()):
        rows, cols = np.nonzero(img)
        r, q = (rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2   # the mark's centre
        assert max(abs(r - c), abs(q - c)) == round(dist)                      # Chebyshev distance d
        assert np.array_equal(img[r - 2:r + 3, q - 2:q + 3], reach.MARKS[label])
        assert img.sum() == 9                                                  # the same ink in both classes


def test_bad_input():
    with pytest.raises(ValueError, match="does not fit"):
        reach.make(4, 32, (20,))
    with pytest.raises(ValueError, match="positive integer"):
        reach.make(0, 32)
    with pytest.raises(ValueError, match="size"):
        reach.make(4, 8)
    with pytest.raises(ValueError, match="at least one distance"):
        reach.make(4, 32, ())
