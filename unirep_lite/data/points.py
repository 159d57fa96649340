"""Point clouds: an offline shape-classification set built from trimesh solids, and a ModelNet40 loader.

The offline dataset ("shapes") has ten classes of solids (box, sphere, cylinder, ...). Every sample is
its own mesh: two shape parameters `a` and `b` in [0, 1) set its proportions, then it gets a random
size, a random turn about the vertical axis, a small tilt and a little noise, and P points are
sampled from its surface with a seed.

No leakage: [0, 1) is cut into 20 bands and the split of a sample is decided by the band of its `a`
(bands 0, 1, 2 of every five go to train, band 3 to val, band 4 to test). Validation and test shapes
therefore have proportions that no training shape has; they are held-out *instances*, not re-sampled
copies of training meshes.

Points are centred and scaled into the unit ball (radius 0.7 to 1.0: the random size), the range
`unirep_lite.frontends.points` projects.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from unirep_lite.data import cache
from unirep_lite.data.common import FixedSamples, SPLITS, check_folder, check_split, drop_unreadable, load_npy
from unirep_lite.env import progress_bar

NAME = "shapes"
VERSION = 1
SEED = 0
CLASSES = ["box", "sphere", "cylinder", "cone", "pyramid", "capsule", "torus", "annulus", "vase",
           "star_prism"]
N_BANDS = 20
SPLIT_OF_BAND = {0: "train", 1: "train", 2: "train", 3: "val", 4: "test"}  # band % 5 -> split
MAX_TILT_DEG = 20.0
NOISE_STD = 0.01  # in units of the unit ball
SCALE_RANGE = (0.7, 1.0)


def split_of(a: float) -> str:
    """The split that owns shape parameter `a` in [0, 1) (its band, interleaved so ranges are disjoint)."""
    return SPLIT_OF_BAND[int(a * N_BANDS) % 5]


def _draw_a(split: str, rng: np.random.Generator) -> float:
    """A uniform draw of `a` from the bands that belong to `split`."""
    bands = [k for k in range(N_BANDS) if SPLIT_OF_BAND[k % 5] == split]
    return (rng.choice(bands) + rng.uniform(0.0, 1.0)) / N_BANDS


def make_mesh(cls: str, a: float, b: float):
    """The solid of class `cls` with proportions set by a, b in [0, 1) (before normalising)."""
    from trimesh import creation as c

    if cls == "box":
        return c.box(extents=[1.0, 0.25 + 0.75 * a, 0.25 + 0.75 * b])
    if cls == "sphere":  # a mildly squashed ball: an ellipsoid between 3:4 and 1:1
        m = c.icosphere(subdivisions=3)
        m.vertices = m.vertices * np.array([1.0, 0.75 + 0.25 * a, 0.75 + 0.25 * b])
        return m
    if cls == "cylinder":
        return c.cylinder(radius=0.2 + 0.6 * a, height=0.5 + 1.5 * b, sections=48)
    if cls == "cone":
        return c.cone(radius=0.3 + 0.7 * a, height=0.5 + 1.5 * b, sections=48)
    if cls == "pyramid":  # a cone with a square base
        return c.cone(radius=0.3 + 0.7 * a, height=0.5 + 1.5 * b, sections=4)
    if cls == "capsule":
        return c.capsule(height=0.3 + 1.5 * a, radius=0.2 + 0.3 * b, count=[24, 24])
    if cls == "torus":
        return c.torus(major_radius=1.0, minor_radius=0.15 + 0.35 * a, major_sections=48, minor_sections=24)
    if cls == "annulus":  # a thick-walled tube
        return c.annulus(r_min=0.3 + 0.5 * a, r_max=1.0, height=0.3 + 1.2 * b, sections=48)
    if cls == "vase":  # a profile revolved about the vertical axis: foot, belly, neck, lip
        belly, neck = 0.5 + 0.4 * a, 0.2 + 0.2 * b
        profile = np.array([[0.0, 0.0], [0.35, 0.0], [belly, 0.6], [neck, 1.3], [neck + 0.1, 1.6], [0.0, 1.6]])
        return c.revolve(profile, sections=48)
    if cls == "star_prism":  # a 5- to 8-pointed star, fan-triangulated from its centre, extruded
        n = 5 + int(b * 4)
        angles = np.linspace(0.0, 2 * np.pi, 2 * n, endpoint=False)
        radii = np.where(np.arange(2 * n) % 2 == 0, 1.0, 0.35 + 0.3 * a)
        ring = np.c_[radii * np.cos(angles), radii * np.sin(angles)]
        verts = np.vstack([[0.0, 0.0], ring])
        faces = np.array([[0, 1 + i, 1 + (i + 1) % (2 * n)] for i in range(2 * n)])
        return c.extrude_triangulation(verts, faces, height=0.2 + 0.5 * b)
    raise ValueError(f"unknown shape class {cls!r}; expected one of {CLASSES}")


def normalize_unit_ball(points: np.ndarray) -> np.ndarray:
    """Centre P x 3 points on their mean and scale the farthest one to radius 1."""
    points = points - points.mean(axis=0, keepdims=True)
    radius = np.linalg.norm(points, axis=1).max()
    if not np.isfinite(radius) or radius == 0:
        raise ValueError("cannot normalise a point cloud whose points all coincide")
    return points / radius


def random_rotation(rng: np.random.Generator, max_tilt_deg: float = MAX_TILT_DEG) -> np.ndarray:
    """A 3 x 3 rotation: any turn about the vertical z axis after a tilt of up to `max_tilt_deg`.

    Solids stay roughly upright, as ModelNet's aligned meshes do, so the three views stay meaningful.
    """
    def rot(axis: int, t: float) -> np.ndarray:
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = np.cos(t), -np.sin(t), np.sin(t), np.cos(t)
        return r

    tilt = np.deg2rad(max_tilt_deg)
    return rot(2, rng.uniform(0, 2 * np.pi)) @ rot(0, rng.uniform(-tilt, tilt)) @ rot(1, rng.uniform(-tilt, tilt))


def sample_surface(mesh, num_points: int, seed: int) -> np.ndarray:
    """`num_points` points drawn uniformly by area from the mesh's surface, repeatably from `seed`."""
    import trimesh

    points, _ = trimesh.sample.sample_surface(mesh, num_points, seed=seed)
    return np.asarray(points, dtype=np.float64)


def make_sample(cls: str, a: float, b: float, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """One P x 3 float32 cloud of class `cls`: sample, normalise, rotate, add noise, resize."""
    points = normalize_unit_ball(sample_surface(make_mesh(cls, a, b), num_points, int(rng.integers(2**31))))
    points = points @ random_rotation(rng).T + rng.normal(0.0, NOISE_STD, points.shape)
    return (normalize_unit_ball(points) * rng.uniform(*SCALE_RANGE)).astype(np.float32)


def _params(fast: bool) -> dict:
    per_class = {"train": 48, "val": 16, "test": 16} if fast else {"train": 240, "val": 80, "test": 80}
    return {"seed": SEED, "per_class": per_class, "num_points": 512 if fast else 1024, "classes": CLASSES,
            "n_bands": N_BANDS, "noise_std": NOISE_STD, "max_tilt_deg": MAX_TILT_DEG,
            "scale_range": list(SCALE_RANGE)}


def _builder(params: dict):
    def build_into(folder: Path) -> None:
        jobs = [(s, k) for s in SPLITS for k in range(len(CLASSES))]
        arrays = {s: {"points": [], "labels": [], "params": []} for s in SPLITS}
        for s, k in progress_bar(jobs, desc="shapes: sampling meshes"):
            for i in range(params["per_class"][s]):
                # one independent stream per sample: the same sample whatever else is built
                rng = np.random.default_rng([params["seed"], SPLITS.index(s), k, i])
                a, b = _draw_a(s, rng), rng.uniform(0.0, 1.0)
                arrays[s]["points"].append(make_sample(CLASSES[k], a, b, params["num_points"], rng))
                arrays[s]["labels"].append(k)
                arrays[s]["params"].append((a, b))
        for s in SPLITS:
            np.save(folder / f"{s}_points.npy", np.stack(arrays[s]["points"]))
            np.save(folder / f"{s}_labels.npy", np.array(arrays[s]["labels"], dtype=np.int64))
            np.save(folder / f"{s}_params.npy", np.array(arrays[s]["params"], dtype=np.float64))
        (folder / "info.json").write_text(json.dumps({
            "classes": CLASSES, "params_columns": ["a (decides the split)", "b"],
            "split_rule": "band = floor(a * 20); band % 5 in {0,1,2}: train, 3: val, 4: test"}, indent=1))

    return build_into


def build(fast: bool = False, root=None, force: bool = False) -> Path:
    """Build (once) the offline shapes dataset and return its folder (`shapes` or `shapes-fast`)."""
    return cache.build_modality(NAME, _params, _builder, version=VERSION, fast=fast, root=root, force=force)


class PointClouds(FixedSamples, Dataset):
    """N x P x 3 points + int labels -> (float32 tensor P x 3, label); `transform` acts on the tensor."""

    def __init__(self, points: np.ndarray, labels: np.ndarray, classes: list[str], transform=None):
        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"expected points of shape (N, P, 3), got {points.shape}")
        if len(points) != len(labels):
            raise ValueError(f"{len(points)} point clouds but {len(labels)} labels")
        self.points, self.labels, self.classes, self.transform = points, labels, list(classes), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(np.array(self.points[i], dtype=np.float32))
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])


def load(split: str, fast: bool = False, root=None, transform=None) -> PointClouds:
    """The shapes split as a Dataset of (P x 3 float tensor, label); builds it on first use.

    `.params` holds each sample's shape parameters (a, b); `a` decides its split (see module doc).
    """
    check_split(split)
    folder = build(fast, root)
    ds = PointClouds(load_npy(folder / f"{split}_points.npy"), load_npy(folder / f"{split}_labels.npy"), CLASSES,
                     transform)
    ds.params = load_npy(folder / f"{split}_params.npy")
    return ds


# ---------------------------------------------------------------- the real benchmark: ModelNet40

MODELNET_LAYOUT = """expected ModelNet40's layout (as unpacked from ModelNet40.zip),
{root}/<class>/{{train,test}}/<name>.off, e.g.
  {root}/
    airplane/train/airplane_0001.off
    airplane/test/airplane_0627.off
    bathtub/train/bathtub_0001.off
    ..."""


def read_off(path):
    """A triangle mesh (trimesh.Trimesh) from an OFF file; ValueError naming the file if malformed.

    Handles ModelNet's quirk of a header glued to the counts ("OFF490 518 0") and polygon faces.
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such OFF file")
    with open(path, "rb") as f:
        head = f.read(3)
    if head != b"OFF":
        raise ValueError(f"{path}: not an OFF file (it must start with 'OFF', starts with {head!r})")
    try:  # from an open file, not a name: trimesh cannot encode names that are not UTF-8
        with open(path, "rb") as f:
            mesh = trimesh.load(f, file_type="off", force="mesh", process=False)
    except Exception as e:  # trimesh raises a mix of ValueError / IndexError / TypeError on bad files
        raise ValueError(f"{path}: malformed OFF file ({type(e).__name__}: {e})") from e
    if len(mesh.faces) == 0 or not np.isfinite(mesh.vertices).all() or mesh.area <= 0:
        raise ValueError(f"{path}: OFF file has no faces with area or non-finite vertices "
                         f"({len(mesh.vertices)} vertices, {len(mesh.faces)} faces)")
    return mesh


class ModelNet40(Dataset):
    """ModelNet40 `.off` meshes -> (P x 3 float32 tensor in the unit ball, label).

    Each mesh is read when its item is asked for, and `num_points` points are sampled from its surface
    with seed `seed + index`, so the same index always gives the same cloud (a fixed test set).
    Classes are the sorted class folders that have a `<split>` subfolder. ModelNet40 has only train
    and test splits; hold out part of train yourself for validation.
    on_error: "raise" (default) - a malformed file raises ValueError naming it when it is read;
      "skip" - the constructor reads every mesh once (slow for the full 12,311) and leaves out the
      unreadable ones, listing them in a warning and in `.skipped`.
    """

    def __init__(self, root, split: str = "train", num_points: int = 1024, classes=None, transform=None,
                 seed: int = 0, on_error: str = "raise"):
        root = Path(root)
        if split not in ("train", "test"):
            raise ValueError(f"ModelNet40's splits are 'train' and 'test', got {split!r}")
        layout = MODELNET_LAYOUT.format(root=root)
        check_folder(root, layout, on_error)
        found = sorted(d.name for d in root.iterdir() if (d / split).is_dir())
        self.classes = list(classes) if classes is not None else found
        missing = [c for c in self.classes if c not in found]
        if not self.classes or missing:
            raise FileNotFoundError(f"{root}: no '<class>/{split}/' folder for {missing or 'any class'}; {layout}")
        self.files = [(f, k) for k, c in enumerate(self.classes) for f in sorted((root / c / split).glob("*.off"))]
        if not self.files:
            raise FileNotFoundError(f"{root}: no .off files in any '<class>/{split}/' folder; {layout}")
        self.root, self.split, self.num_points, self.transform, self.seed = root, split, num_points, transform, seed
        self.skipped: list[str] = []
        if on_error == "skip":
            self.files, self.skipped = drop_unreadable(self.files, lambda item: read_off(item[0]),
                                                       "checking OFF files")

    def __len__(self) -> int:
        return len(self.files)

    def cloud(self, i: int) -> np.ndarray:
        """The i-th mesh's P x 3 float32 points, before `transform`."""
        path = self.files[i][0]
        return normalize_unit_ball(sample_surface(read_off(path), self.num_points, self.seed + i)).astype(np.float32)

    def __getitem__(self, i):
        x = torch.from_numpy(self.cloud(i))
        if self.transform is not None:
            x = self.transform(x)
        return x, self.files[i][1]

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All clouds at once (N x P x 3, labels N), with a progress bar: read the meshes once, then
        train many epochs on `PointClouds(*ds.to_arrays(), ds.classes)`."""
        bar = progress_bar(range(len(self)), desc=f"ModelNet40 {self.split}")
        points = np.stack([self.cloud(i) for i in bar])
        return points, np.array([label for _, label in self.files], dtype=np.int64)
