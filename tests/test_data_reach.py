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


# ---------------------------------------------------------------- pairs: two marks, "both crosses?"

def test_pairs_are_deterministic_balanced_and_need_both_marks():
    from unirep_lite.data import pairs

    a = pairs.make(120, 48, (6, 12, 18), seed=3)
    for u, v in zip(a, pairs.make(120, 48, (6, 12, 18), seed=3)):
        assert torch.equal(u, v)
    x, y, far = a
    assert x.shape == (120, 1, 48, 48) and (y == 1).sum() == (y == 0).sum() == 60
    assert set(far.tolist()) <= {6.0, 12.0, 18.0}
    assert (x.sum((1, 2, 3)) == 18).all()              # two marks of 9 pixels, never overlapping
    c = 48 // 2
    for img, label, d in zip(x[:, 0].numpy(), y.tolist(), far.tolist()):
        found = []
        for r in range(2, 46):
            for q in range(2, 46):
                for m, mark in enumerate(reach.MARKS):
                    if np.array_equal(img[r - 2:r + 3, q - 2:q + 3], mark):
                        found.append((m, max(abs(r - c), abs(q - c))))
        assert len(found) == 2 and max(dist for _, dist in found) == d
        assert (label == 1) == all(m == 1 for m, _ in found)   # 1 (cross) twice: "both crosses"
    # each mark alone leaves the label open: a cross appears in both classes
    assert pairs.ONE_MARK_CEILING == pytest.approx(5 / 6)


def test_pairs_bad_input():
    from unirep_lite.data import pairs

    with pytest.raises(ValueError, match="does not fit"):
        pairs.make(4, 32, (20,))
    with pytest.raises(ValueError, match="cannot both lie"):
        pairs.make(4, 32, (1, 2))
    with pytest.raises(ValueError, match="at least one distance"):
        pairs.make(4, 32, ())
