"""Batches from tensors that live on the training device: the GPU-shaped input pipeline.

A DataLoader spends Python on every sample (indexing, collating), copies each batch to the GPU and,
with workers, starts processes. The course's datasets all fit in a GPU's memory (the largest,
speech, is 255 MB as int16), so `fit` stacks each split once, moves it to the training device and
forms a batch by indexing: one gather per batch, no per-sample Python, no workers. Augmentation is
batched on the device too (SpecAugment inside the audio front-end, mixup in `fit`).

Each epoch's order is `torch.randperm` from a generator seeded with (seed, epoch) only, so a resumed
run shuffles exactly like an uninterrupted one.

Which data takes this path (`as_tensors`): an (inputs, targets) tuple of tensors, a TensorDataset,
or a Dataset with `to_tensors()` (the course's datasets, whose samples are fixed). Anything else (a
DataLoader, a Dataset that may draw random augmentations per sample) keeps the DataLoader path.
"""
from __future__ import annotations

import os

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

# Share of the device's free memory (of the machine's RAM on a CPU) one split may take on the device.
MEMORY_SHARE = 0.25


def as_tensors(data) -> tuple[Tensor, Tensor] | None:
    """(inputs, targets) of the whole of `data` as two tensors, or None when its samples are not fixed."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
    elif isinstance(data, TensorDataset) and len(data.tensors) == 2:
        x, y = data.tensors
    elif callable(getattr(data, "to_tensors", None)):
        pair = data.to_tensors()
        if pair is None:
            return None
        x, y = pair
    else:
        return None
    if len(x) != len(y):
        raise ValueError(f"inputs and targets must have the same length, got {len(x)} and {len(y)}")
    return x, y


def fits_on(device: torch.device, nbytes: int) -> bool:
    """True when `nbytes` is a modest share of what `device` has free."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        try:
            free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # not a POSIX system: assume 8 GB
            free = 8 << 30
    return nbytes <= MEMORY_SHARE * free


class TensorBatches:
    """Mini-batches of (x, y) tensors held on `device`, in a (seed, epoch)-determined order.

    Iterating yields (x[idx], y[idx]); `len()` is the number of batches. Call `set_epoch(e)` before
    each epoch (fit does). drop_last drops the ragged last batch (a batch of one breaks BatchNorm).
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, device=None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if len(x) != len(y):
            raise ValueError(f"inputs and targets must have the same length, got {len(x)} and {len(y)}")
        device = torch.device(device) if device is not None else x.device
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.epoch = 0

    @property
    def dataset_size(self) -> int:
        return len(self.x)

    def __len__(self) -> int:
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> Tensor:
        """This epoch's sample order (on the CPU): a function of (seed, epoch) only."""
        n = len(self.x)
        if not self.shuffle:
            return torch.arange(n)
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        # The same order as fit's DataLoader path (`train._reseed_loader` seeds its generator alike): a
        # DataLoader draws one int64 (its workers' base seed) before its sampler's randperm. So both
        # paths train identically (tests/test_batches.py), and runs measured before repeat.
        torch.empty((), dtype=torch.int64).random_(generator=g)
        return torch.randperm(n, generator=g)

    def __iter__(self):
        order = self.order().to(self.x.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)


def device_batches(data, batch_size: int, device: torch.device, *, shuffle: bool = False, seed: int = 0,
                   drop_last: bool = False) -> TensorBatches | None:
    """`TensorBatches` of `data` on `device`, or None when `data` is not fixed tensors or too large."""
    pair = as_tensors(data)
    if pair is None:
        return None
    x, y = pair
    if not fits_on(device, x.element_size() * x.nelement() + y.element_size() * y.nelement()):
        return None
    return TensorBatches(x, y, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, device=device)
