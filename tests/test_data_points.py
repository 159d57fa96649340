"""Point clouds: the offline shapes set, the ModelNet40 loader on fixture .off files, the 3-view front-end."""
import math
import os

import numpy as np
import pytest
import torch

from unirep_lite import create_model
from unirep_lite.data import cache, points
from unirep_lite.frontends.points import PointProjection, view_matrices


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    points.build(fast=True, root=root)
    return root


# ---------------------------------------------------------------- offline shapes

def test_shapes_splits_shapes_and_classes(shapes_root):
    per_class = points._params(True)["per_class"]
    for split in points.SPLITS:
        ds = points.load(split, fast=True, root=shapes_root)
        assert len(ds) == per_class[split] * len(points.CLASSES)
        assert ds.classes == points.CLASSES
        x, y = ds[0]
        assert x.shape == (512, 3) and x.dtype == torch.float32 and isinstance(y, int)
        assert np.bincount(ds.labels, minlength=len(ds.classes)).tolist() == [per_class[split]] * len(ds.classes)
        radii = np.linalg.norm(ds.points, axis=-1).max(axis=1)  # random size inside the unit ball
        assert (radii <= 1 + 1e-5).all() and (radii >= points.SCALE_RANGE[0] - 1e-5).all()
    with pytest.raises(ValueError, match="split"):
        points.load("dev", fast=True, root=shapes_root)


def test_shapes_same_seed_same_checksum(shapes_root, tmp_path):
    again = points.build(fast=True, root=tmp_path)
    assert cache.dataset_checksum(again) == cache.dataset_checksum(shapes_root / "shapes-fast")
    assert cache.verify(again) == []


def test_shapes_splits_do_not_leak(shapes_root):
    """Each split owns its own bands of the shape parameter `a`, and no cloud appears in two splits."""
    sets = {s: points.load(s, fast=True, root=shapes_root) for s in points.SPLITS}
    bands = {}
    for s, ds in sets.items():
        assert all(points.split_of(a) == s for a in ds.params[:, 0])
        bands[s] = {int(a * points.N_BANDS) for a in ds.params[:, 0]}
    assert not (bands["train"] & bands["val"]) and not (bands["train"] & bands["test"]) \
        and not (bands["val"] & bands["test"])
    clouds = {s: {ds.points[i].tobytes() for i in range(len(ds))} for s, ds in sets.items()}
    assert not (clouds["train"] & clouds["test"]) and not (clouds["train"] & clouds["val"])


def test_every_class_builds_a_closed_mesh():
    for cls in points.CLASSES:
        for a, b in ((0.0, 0.0), (0.99, 0.99)):
            mesh = points.make_mesh(cls, a, b)
            assert mesh.area > 0 and mesh.is_watertight, cls
    with pytest.raises(ValueError, match="unknown shape class"):
        points.make_mesh("teapot", 0.5, 0.5)


# ---------------------------------------------------------------- ModelNet40 layout with .off fixtures

TETRA = "OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n"
# ModelNet's quirk (header glued to the counts) and quad faces
CUBE = ("OFF8 6 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n0 0 1\n1 0 1\n1 1 1\n0 1 1\n"
        "4 0 3 2 1\n4 4 5 6 7\n4 0 1 5 4\n4 2 3 7 6\n4 1 2 6 5\n4 0 4 7 3\n")


@pytest.fixture
def modelnet(tmp_path):
    for cls, text in (("cone", TETRA), ("cube", CUBE)):
        for split, n in (("train", 2), ("test", 1)):
            folder = tmp_path / cls / split
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{cls}_{split}_{i:04d}.off").write_text(text)
    return tmp_path


def test_modelnet_reads_off_files(modelnet):
    train = points.ModelNet40(modelnet, "train", num_points=64)
    assert train.classes == ["cone", "cube"] and len(train) == 4
    assert [label for _, label in train.files] == [0, 0, 1, 1]
    x, y = train[2]
    assert x.shape == (64, 3) and y == 1
    assert torch.linalg.norm(x, dim=1).max() == pytest.approx(1.0, abs=1e-5)  # unit ball
    assert torch.equal(train[2][0], x)  # same index, same seed, same cloud
    cube = torch.from_numpy(points.sample_surface(points.read_off(modelnet / "cube/train/cube_train_0000.off"), 500, 0))
    assert torch.allclose((cube == 0).logical_or(cube == 1).any(dim=1).float(), torch.ones(500))  # on faces
    arrays, labels = points.ModelNet40(modelnet, "test", num_points=32).to_arrays()
    assert arrays.shape == (2, 32, 3) and labels.tolist() == [0, 1]


def test_modelnet_bad_input(modelnet, tmp_path):
    bad = modelnet / "cube" / "train" / "cube_train_0009.off"
    bad.write_text("OFF\n4 4 0\n0 0 0\n1 0\n")
    ds = points.ModelNet40(modelnet, "train", num_points=16)
    with pytest.raises(ValueError, match="cube_train_0009.off"):
        [ds[i] for i in range(len(ds))]
    with pytest.warns(UserWarning, match="skipped 1"):
        skipping = points.ModelNet40(modelnet, "train", num_points=16, on_error="skip")
    assert len(skipping) == 4 and "cube_train_0009.off" in skipping.skipped[0]
    (tmp_path / "not_off.off").write_text("ply\nformat ascii 1.0\n")
    with pytest.raises(ValueError, match="not an OFF file"):
        points.read_off(tmp_path / "not_off.off")
    (tmp_path / "no_faces.off").write_text("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    with pytest.raises(ValueError, match="no_faces.off"):
        points.read_off(tmp_path / "no_faces.off")
    with pytest.raises(FileNotFoundError, match=r"(?s)does not exist.*<class>/\{train,test\}/<name>.off"):
        points.ModelNet40(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="airplane/train"):
        points.ModelNet40(modelnet, classes=["airplane"])
    with pytest.raises(ValueError, match="'train' and 'test'"):
        points.ModelNet40(modelnet, "val")


# ---------------------------------------------------------------- the three-view projection

def test_single_point_lands_on_one_pixel_per_view():
    """(0.5, -0.5, 1) on a 5 x 5 grid: side (y across, z up) -> row 0, col 1; front (x, z) -> row 0,
    col 3; top (x, y) -> row 3, col 3; one pixel each, soft occupancy 1 - e^-1."""
    p = torch.tensor([[[0.5, -0.5, 1.0]]], requires_grad=True)
    img = PointProjection(5, mode="occupancy")(p)
    assert img.shape == (1, 3, 5, 5)
    for view, (row, col) in enumerate([(0, 1), (0, 3), (3, 3)]):
        assert (img[0, view] > 0).nonzero().tolist() == [[row, col]]
        assert img[0, view, row, col].item() == pytest.approx(1 - math.exp(-1))
    depth = PointProjection(5, mode="depth")(p)[0]
    # height (d + 1) / 2 of the looked-along coordinate: x = 0.5 -> 0.75, y = -0.5 -> 0.25, z = 1 -> 1
    for view, (row, col), h in zip(range(3), [(0, 1), (0, 3), (3, 3)], (0.75, 0.25, 1.0)):
        assert depth[view, row, col].item() == pytest.approx((1 - math.exp(-1)) * h, rel=1e-5)


def test_projection_is_differentiable_and_learnable():
    torch.manual_seed(0)
    p = (torch.rand(2, 50, 3) * 1.6 - 0.8).requires_grad_()
    frontend = PointProjection(16, learnable=True)
    target = torch.rand(2, 3, 16, 16)
    (frontend(p) - target).pow(2).sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert frontend.views.grad.abs().sum() > 0
    assert torch.equal(frontend.views.detach(), view_matrices())  # starts as the orthogonal views
    assert not any(True for _ in PointProjection(16).parameters())  # fixed views: nothing to learn
    # a point between pixels spreads over four of them, with weights that sum to one splat
    half = PointProjection(5, mode="occupancy")(torch.tensor([[[0.25, 0.0, 0.0]]]))
    assert (half[0, 1] > 0).sum() == 2  # x between columns 2 and 3, z exactly on row 2


def test_projection_gradient_matches_finite_differences():
    torch.manual_seed(1)
    p = (torch.rand(1, 6, 3, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    for mode in ("occupancy", "depth"):
        frontend = PointProjection(8, mode=mode).double()
        assert torch.autograd.gradcheck(frontend, (p,), eps=1e-6, atol=1e-5)


def test_projection_feeds_the_backbone():
    frontend = PointProjection(32)
    model = create_model("unireplknet_a", num_classes=10, in_chans=3, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))
    ds = points.PointClouds(np.random.default_rng(0).uniform(-1, 1, (2, 100, 3)), np.zeros(2), ["c"])
    batch = torch.stack([ds[0][0], ds[1][0]])
    assert model(frontend(batch)).shape == (2, 10)
    for bad in (torch.zeros(100, 3), torch.zeros(2, 100, 2)):
        with pytest.raises(ValueError, match=r"\(B, P, 3\)"):
            frontend(bad)


def test_modelnet_file_name_not_utf8(tmp_path):
    folder = tmp_path / "chair" / "train"
    folder.mkdir(parents=True)
    name = os.path.join(os.fsencode(folder), b"chair_\xff\xfe.off")
    try:
        with open(name, "wb") as f:
            f.write(b"OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n")
    except OSError:
        pytest.skip("this file system does not allow file names that are not UTF-8")
    ds = points.ModelNet40(tmp_path, "train", num_points=64)
    assert ds[0][0].shape == (64, 3)
