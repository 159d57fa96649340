"""Video: a synthetic action dataset (motions of shapes) offline, and a folder-of-mp4 loader.

The offline dataset ("video") has eight actions defined by motion alone: a shape moves right, left,
up or down, rotates clockwise or anticlockwise, grows or shrinks. Any single frame shows a shape at
some position, angle and size that all eight actions produce, so only the change over time tells
them apart. The split is by appearance: validation and test clips use shapes and colour (hue) bands
that training never shows, so a model cannot pass by remembering what the objects look like.

Clips are stored as uint8 arrays N x N_F x 3 x h x w (not video files: exact and fast to read).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from unirep_lite.data import cache
from unirep_lite.data.common import FixedSamples, SPLITS, check_folder, check_split, drop_unreadable, load_npy
from unirep_lite.env import progress_bar

NAME = "video"
VERSION = 1
SEED = 0
CLASSES = ["move_right", "move_left", "move_up", "move_down",
           "rotate_clockwise", "rotate_anticlockwise", "grow", "shrink"]
NUM_FRAMES, SIZE = 16, 32  # 16 frames of 32 x 32 tile into one 128 x 128 image
HUE_BANDS = 10

# Outlines on the unit disk; none is round, so that rotation is visible.
SHAPES = {
    "triangle": [(0, -1), (0.8, 0.7), (-0.8, 0.7)],
    "square": [(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)],
    "bar": [(-1, -0.3), (1, -0.3), (1, 0.3), (-1, 0.3)],
    "ell": [(-0.7, -1), (-0.2, -1), (-0.2, 0.5), (0.7, 0.5), (0.7, 1), (-0.7, 1)],
    "tee": [(-1, -0.9), (1, -0.9), (1, -0.4), (0.25, -0.4), (0.25, 1), (-0.25, 1), (-0.25, -0.4),
            (-1, -0.4)],
    "plus": [(-0.25, -1), (0.25, -1), (0.25, -0.25), (1, -0.25), (1, 0.25), (0.25, 0.25), (0.25, 1),
             (-0.25, 1), (-0.25, 0.25), (-1, 0.25), (-1, -0.25), (-0.25, -0.25)],
    "star": [(np.sin(a) * r, -np.cos(a) * r) for a, r in
             zip(np.arange(10) * np.pi / 5, [1, 0.4] * 5)],
    "arrow": [(-1, -0.2), (0.2, -0.2), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.2), (-1, 0.2)],
    "kite": [(0, -1), (0.45, -0.2), (0, 1), (-0.45, -0.2)],
    "chevron": [(-0.8, -0.8), (0, -0.1), (0.8, -0.8), (0.8, -0.2), (0, 0.6), (-0.8, -0.2)],
}


def _params(fast: bool) -> dict:
    return {"seed": SEED, "num_frames": NUM_FRAMES, "size": SIZE,
            "per_class": {"train": 100, "val": 20, "test": 30} if fast
            else {"train": 300, "val": 50, "test": 100}}


def appearance_split(seed: int = SEED) -> dict[str, dict]:
    """Shapes and hue bands per split (disjoint): the basis of the no-leak guarantee."""
    rng = np.random.default_rng(seed)
    shapes = list(rng.permutation(sorted(SHAPES)))
    bands = [int(b) for b in rng.permutation(HUE_BANDS)]
    return {"train": {"shapes": sorted(shapes[:6]), "hue_bands": sorted(bands[:6])},
            "val": {"shapes": sorted(shapes[6:8]), "hue_bands": sorted(bands[6:8])},
            "test": {"shapes": sorted(shapes[8:]), "hue_bands": sorted(bands[8:])}}


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb

    return hsv_to_rgb([h, s, v]) * 255


def motion_path(action: str, n: int, rng: np.random.Generator, size: int = SIZE):
    """Per-frame (centre x, centre y, angle, radius) for one action; positions in pixels."""
    t = np.linspace(0, 1, n)
    radius0 = rng.uniform(0.17, 0.25) * size
    angle0 = rng.uniform(0, 2 * np.pi)
    radius, angle = np.full(n, radius0), np.full(n, angle0)
    cx, cy = np.full(n, rng.uniform(0.3, 0.7) * size), np.full(n, rng.uniform(0.3, 0.7) * size)
    if action.startswith("move"):
        travel = rng.uniform(0.35, 0.5) * size
        start = rng.uniform(0.2 * size, 0.8 * size - travel)  # stays in frame, start anywhere possible
        along = start + travel * t
        if action == "move_right":
            cx = along
        elif action == "move_left":
            cx = size - along
        elif action == "move_down":
            cy = along
        else:
            cy = size - along
    elif action.startswith("rotate"):
        turn = rng.uniform(0.5, 1.0) * np.pi * (1 if action == "rotate_clockwise" else -1)
        angle = angle0 + turn * t  # image y points down: positive angle turns clockwise on screen
    else:
        small, large = rng.uniform(0.12, 0.16) * size, rng.uniform(0.26, 0.32) * size
        radius = small + (large - small) * (t if action == "grow" else 1 - t)
    return cx, cy, angle, radius


def render_clip(shape: str, action: str, hue: float, rng: np.random.Generator,
                n: int = NUM_FRAMES, size: int = SIZE) -> np.ndarray:
    """One clip, uint8 n x 3 x size x size: a filled shape on a noisy grey background."""
    from PIL import Image, ImageDraw

    outline = np.asarray(SHAPES[shape], dtype=float)
    colour = _hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0))
    background = rng.uniform(20, 110)
    cx, cy, angle, radius = motion_path(action, n, rng, size)
    up = 4  # draw 4x larger and average down: smooth edges at 32 px
    clip = np.empty((n, 3, size, size), np.uint8)
    for f in range(n):
        c, s = np.cos(angle[f]), np.sin(angle[f])
        x = (outline[:, 0] * c - outline[:, 1] * s) * radius[f] + cx[f]
        y = (outline[:, 0] * s + outline[:, 1] * c) * radius[f] + cy[f]
        mask = Image.new("L", (size * up, size * up))
        ImageDraw.Draw(mask).polygon([(float(a), float(b)) for a, b in zip(x * up, y * up)], fill=1)
        cover = np.asarray(mask, np.float32).reshape(size, up, size, up).mean(axis=(1, 3))
        frame = np.repeat(background + rng.normal(0, 6, (1, size, size)), 3, axis=0)  # grey, noisy
        frame = frame * (1 - cover) + colour[:, None, None] * cover
        clip[f] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    return clip


def _builder(params: dict):
    def build_into(folder: Path) -> None:
        split_of = appearance_split(params["seed"])
        info = {"classes": CLASSES, "num_frames": params["num_frames"], "size": params["size"],
                "appearance": split_of}
        for si, split in enumerate(SPLITS):
            n = params["per_class"][split] * len(CLASSES)
            clips = np.empty((n, params["num_frames"], 3, params["size"], params["size"]), np.uint8)
            labels = np.arange(n, dtype=np.int64) % len(CLASSES)
            shapes, bands = [], []
            for i in progress_bar(range(n), desc=f"video: {split}"):
                rng = np.random.default_rng([params["seed"], si, i])
                shape = str(rng.choice(split_of[split]["shapes"]))
                band = int(rng.choice(split_of[split]["hue_bands"]))
                hue = (band + rng.uniform()) / HUE_BANDS
                clips[i] = render_clip(shape, CLASSES[labels[i]], hue, rng,
                                       params["num_frames"], params["size"])
                shapes.append(shape)
                bands.append(band)
            np.save(folder / f"{split}_clips.npy", clips)
            np.save(folder / f"{split}_labels.npy", labels)
            np.save(folder / f"{split}_shapes.npy", np.array(shapes))
            np.save(folder / f"{split}_hue_bands.npy", np.array(bands, dtype=np.int64))
        (folder / "info.json").write_text(json.dumps(info, indent=1))

    return build_into


def build(fast: bool = False, root=None, force: bool = False) -> Path:
    """Build (once) the synthetic action dataset and return its folder."""
    return cache.build_modality(NAME, _params, _builder, version=VERSION, fast=fast, root=root, force=force)


class SyntheticActions(FixedSamples, Dataset):
    """A built split: (frames N_F x 3 x h x w float in [0, 1], label); `.shapes`, `.hue_bands` per clip."""

    def __init__(self, folder: Path, split: str, transform=None):
        check_split(split)
        folder = Path(folder)
        self.clips = load_npy(folder / f"{split}_clips.npy", mmap_mode="r")
        self.labels = load_npy(folder / f"{split}_labels.npy")
        self.shapes = [str(s) for s in load_npy(folder / f"{split}_shapes.npy")]
        self.hue_bands = load_npy(folder / f"{split}_hue_bands.npy")
        self.classes, self.transform = list(CLASSES), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        frames = torch.from_numpy(np.asarray(self.clips[i], dtype=np.float32) / 255.0)
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, int(self.labels[i])


def load(split: str, fast: bool = False, root=None, transform=None) -> SyntheticActions:
    """A split of the offline action dataset (built on first use); `transform` e.g. the video front-end."""
    check_split(split)  # before a build
    return SyntheticActions(build(fast, root), split, transform)


# ---------------------------------------------------------------- Kinetics / UCF-style folders

VIDEO_LAYOUT = """expected a Kinetics/UCF-style video folder:
  {root}/
    labels.txt                 (class names, one a line; or UCF's classInd.txt, "1 Name" lines)
    <class_a>/xxx.mp4          (one folder per class; .mp4, .avi, .mkv or .webm)
    <class_b>/yyy.mp4
  and optionally a split list (e.g. UCF's trainlist01.txt): lines "<class>/<file> [label]" """
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm")
LABEL_FILES = ("labels.txt", "classInd.txt")


def read_video(path, num_frames: int = NUM_FRAMES, size: int | None = None) -> torch.Tensor:
    """Decode a video with PyAV and sample `num_frames` frames uniformly: uint8 N_F x 3 x h x w.

    `size` resizes every frame to size x size (bilinear, antialiased); None keeps the file's size.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("it has no video stream")
            stream = container.streams.video[0]
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except ValueError as e:
        raise ValueError(f"{path}: cannot read video ({e})") from e
    except Exception as e:  # PyAV's FFmpeg errors (invalid data, truncated file, ...)
        raise ValueError(f"{path}: cannot read video ({type(e).__name__}: {e})") from e
    if not frames:
        raise ValueError(f"{path}: the video has no frames")
    picks = np.linspace(0, len(frames) - 1, num_frames).round().astype(int)  # uniform, repeats if short
    clip = torch.from_numpy(np.stack([frames[i] for i in picks])).permute(0, 3, 1, 2).contiguous()
    if size is not None and clip.shape[-2:] != (size, size):
        clip = torch.nn.functional.interpolate(clip.float(), size=(size, size), mode="bilinear",
                                               antialias=True, align_corners=False)
        clip = clip.round().clamp(0, 255).to(torch.uint8)
    return clip


def read_label_list(path) -> list[str]:
    """Class names from a label list: "Name" or "<index> Name" per line (UCF's classInd.txt)."""
    names = []
    for line in Path(path).read_text().splitlines():
        parts = line.strip().split()
        if parts:
            names.append(parts[-1] if len(parts) > 1 and parts[0].isdigit() else line.strip())
    if not names:
        raise ValueError(f"{path}: the label list is empty")
    return names


class VideoFolder(Dataset):
    """Kinetics/UCF-style videos: (frames N_F x 3 x h x w float in [0, 1], label).

    labels: the label list (default: labels.txt or classInd.txt in root), or the class names
      themselves (a list); its order gives label ids, and class folders not in it are left out (so a
      shorter list selects a subset of classes).
    split_file: optional list of "<class>/<file> [...]" lines to keep (UCF's train/test lists);
      default: every video in the class folders.
    on_error: "raise" (default) - a corrupt video raises ValueError naming it when it is read;
      "skip" - the constructor decodes every video once (slow) and leaves out unreadable ones,
      listing them in a warning and in `.skipped`.
    """

    def __init__(self, root, labels=None, split_file=None, num_frames: int = NUM_FRAMES,
                 size: int | None = None, transform=None, on_error: str = "raise"):
        root = Path(root)
        layout = VIDEO_LAYOUT.format(root=root)
        check_folder(root, layout, on_error)
        if labels is None:
            found = [root / f for f in LABEL_FILES if (root / f).is_file()]
            if not found:
                raise FileNotFoundError(f"{root} has no label list ({' or '.join(LABEL_FILES)}); "
                                        f"{layout}")
            labels = found[0]
        self.classes = list(labels) if isinstance(labels, (list, tuple)) else read_label_list(labels)
        if not self.classes:
            raise ValueError("labels: the list of class names is empty")
        index = {c: i for i, c in enumerate(self.classes)}
        if split_file is not None:
            rels = [ln.split()[0] for ln in Path(split_file).read_text().splitlines() if ln.strip()]
        else:
            rels = sorted(p.relative_to(root).as_posix() for c in self.classes if (root / c).is_dir()
                          for p in (root / c).iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
        self.files = []
        for rel in rels:
            cls = rel.split("/")[0]
            if cls not in index:
                raise ValueError(f"{rel}: class folder {cls!r} is not in the label list {labels}; "
                                 f"{layout}")
            self.files.append((rel, index[cls]))
        if not self.files:
            raise FileNotFoundError(f"{root}: no video files found; {layout}")
        self.root, self.num_frames, self.size, self.transform = root, num_frames, size, transform
        self.skipped: list[str] = []
        missing = {rel for rel, _ in self.files if not (root / rel).is_file()}  # listed in split_file only
        if missing:
            what = f"{len(missing)} video(s) listed in {split_file} do not exist under {root}: {sorted(missing)[:3]}"
            if on_error != "skip":
                raise FileNotFoundError(f"{what}; pass on_error='skip' to leave them out")
            warnings.warn(f"skipped {what}")
            self.skipped = [f"{root / rel}: no such video file" for rel in sorted(missing)]
            self.files = [item for item in self.files if item[0] not in missing]
            if not self.files:
                raise FileNotFoundError(f"{root}: none of the videos in {split_file} exists; {layout}")
        if on_error == "skip":
            self.files, unreadable = drop_unreadable(self.files, lambda it: self._read(it[0]), "checking videos")
            self.skipped += unreadable

    def _read(self, rel: str) -> torch.Tensor:
        return read_video(self.root / rel, self.num_frames, self.size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        rel, label = self.files[i]
        frames = self._read(rel).float() / 255.0
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, label
