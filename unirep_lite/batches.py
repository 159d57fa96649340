"""How training and evaluation data become batches: `make_batches` gives `TensorBatches` (tensors
kept on the training device, batched by indexing) where the samples are fixed tensors that fit
there, else a DataLoader (`make_loader`). `fit` and `evaluate` take every batch through here.

Why tensors on the device: a DataLoader spends Python on every sample (indexing, collating),
copies each batch to the GPU and, with workers, starts processes. The course's datasets all fit in
a GPU's memory (the largest, speech, is 255 MB as int16), so `fit` stacks each split once, moves it
to the training device and forms a batch by indexing: one gather per batch, no per-sample Python,
no workers. Augmentation is
batched on the device too (SpecAugment inside the audio front-end, mixup in `fit`).

Each epoch's order is `torch.randperm` from a generator seeded with (seed, epoch) only, so a resumed
run shuffles exactly like an uninterrupted one.

On several processes (torchrun) each global batch of that order is split into one part per process
(`shard`), on both paths; evaluation takes contiguous parts of the data instead (`sample_shard`).

Which data takes this path (`as_tensors`): an (inputs, targets) tuple of tensors, a TensorDataset,
or a Dataset with `to_tensors()` (the course's datasets, whose samples are fixed). Anything else (a
DataLoader, a Dataset that may draw random augmentations per sample) keeps the DataLoader path.
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler, Subset, TensorDataset

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


def epoch_order(n: int, shuffle: bool, seed: int, epoch: int) -> Tensor:
    """The sample order of an epoch (on the CPU): a function of (seed, epoch) only."""
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    # The same order as fit's DataLoader path (`reseed_loader` seeds its generator alike): a
    # DataLoader draws one int64 (its workers' base seed) before its sampler's randperm. So both
    # paths train identically (tests/test_batches.py), and runs measured before repeat.
    torch.empty((), dtype=torch.int64).random_(generator=g)
    return torch.randperm(n, generator=g)


def shard(idx: Tensor, rank: int, world: int) -> Tensor:
    """Process `rank`'s part of a global batch's indices (parts differ in size by at most one)."""
    return idx if world == 1 else idx.tensor_split(world)[rank]


def _check_shards(n: int, batch_size: int, drop_last: bool, world: int, what: str) -> None:
    # every process needs samples in every step: a process without any has no loss to take part with
    smallest = batch_size if drop_last or n % batch_size == 0 else min(n, n % batch_size)
    if world > 1 and smallest < world:
        raise ValueError(f"the {what} gives a batch of {smallest} samples, fewer than the {world} processes "
                         "that share it; use more data or another batch_size")


class TensorBatches:
    """Mini-batches of (x, y) tensors held on `device`, in a (seed, epoch)-determined order.

    Iterating yields (x[idx], y[idx]); `len()` is the number of batches. Call `set_epoch(e)` before
    each epoch (fit does). drop_last drops the ragged last batch (a batch of one breaks BatchNorm).
    With `world` > 1 each batch holds process `rank`'s part of the global batch of `batch_size`.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, device=None, rank: int = 0, world: int = 1):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if len(x) != len(y):
            raise ValueError(f"inputs and targets must have the same length, got {len(x)} and {len(y)}")
        _check_shards(len(x), batch_size, drop_last, world, "data")
        device = torch.device(device) if device is not None else x.device
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.rank, self.world = rank, world
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
        return epoch_order(len(self.x), self.shuffle, self.seed, self.epoch)

    def __iter__(self):
        order = self.order().to(self.x.device)
        for i in range(len(self)):
            idx = shard(order[i * self.batch_size:(i + 1) * self.batch_size], self.rank, self.world)
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)


class ShardedBatchSampler(Sampler):
    """A DataLoader's batch_sampler for process `rank` of `world`: the batches TensorBatches makes
    (the same (seed, epoch) order, the same parts of each global batch), as lists of indices."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int, drop_last: bool, rank: int,
                 world: int, what: str = "data"):
        _check_shards(n, batch_size, drop_last, world, what)
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.rank, self.world, self.epoch = rank, world, 0

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = epoch_order(self.n, self.shuffle, self.seed, self.epoch)
        for i in range(len(self)):
            yield shard(order[i * self.batch_size:(i + 1) * self.batch_size], self.rank, self.world).tolist()


def device_batches(data, batch_size: int, device: torch.device, *, shuffle: bool = False, seed: int = 0,
                   drop_last: bool = False, rank: int = 0, world: int = 1) -> TensorBatches | None:
    """`TensorBatches` of `data` on `device`, or None when `data` is not fixed tensors or too large."""
    pair = as_tensors(data)
    if pair is None:
        return None
    x, y = pair
    if not fits_on(device, x.element_size() * x.nelement() + y.element_size() * y.nelement()):
        return None
    return TensorBatches(x, y, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, device=device,
                         rank=rank, world=world)


# ----------------------------------------------------------------------------- any data

def _seed_worker(worker_id: int) -> None:
    # Each DataLoader worker gets a distinct torch seed from the loader's generator; give
    # NumPy and Python the same one so augmentations in workers repeat too.
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def make_batches(data, batch_size: int, device: torch.device, *, shuffle: bool = False, seed: int = 0,
                 num_workers: int = 0, drop_last: bool = False, on_device: bool = True, what: str = "data",
                 rank: int = 0, world: int = 1):
    """Batches of `data` for `device`: `TensorBatches` where the samples are fixed tensors that fit on
    the device (and `on_device`), else a DataLoader (`make_loader`). With `world` > 1, process
    `rank`'s part of every global batch of `batch_size` (a given loader is rebuilt so)."""
    if isinstance(data, TensorBatches) and world > 1:
        return TensorBatches(data.x, data.y, data.batch_size, shuffle=data.shuffle, seed=data.seed,
                             drop_last=data.drop_last, rank=rank, world=world)
    if isinstance(data, (DataLoader, TensorBatches)):
        return data if world == 1 else shard_loader(data, rank, world, seed, what)
    found = device_batches(data, batch_size, device, shuffle=shuffle, seed=seed, drop_last=drop_last,
                           rank=rank, world=world) if on_device else None
    if found is not None and found.dataset_size == 0:
        raise ValueError(f"the {what} is empty (no samples)")
    return found or make_loader(data, batch_size, shuffle, seed=seed, num_workers=num_workers,
                                drop_last=drop_last, what=what, rank=rank, world=world)


def make_loader(data, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0,
                drop_last: bool = False, what: str = "data", rank: int = 0, world: int = 1) -> DataLoader:
    """A DataLoader from a DataLoader (returned as is), a Dataset, or a tuple (inputs, targets) of
    tensors; with `world` > 1 it yields process `rank`'s part of each global batch."""
    if isinstance(data, DataLoader):
        return data if world == 1 else shard_loader(data, rank, world, seed, what)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        if len(data[0]) != len(data[1]):
            raise ValueError(f"inputs and targets must have the same length, got {len(data[0])} "
                             f"and {len(data[1])}")
        data = TensorDataset(*data)
    if not isinstance(data, Dataset):
        raise ValueError("expected a DataLoader, a Dataset, or a tuple (inputs, targets) of tensors, "
                         f"got {type(data).__name__}")
    if hasattr(data, "__len__") and len(data) == 0:
        raise ValueError(f"the {what} is empty (a {type(data).__name__} of length 0)")
    generator = torch.Generator().manual_seed(seed)
    if world > 1:
        batches = ShardedBatchSampler(len(data), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                                      rank=rank, world=world, what=what)
        return DataLoader(data, batch_sampler=batches, num_workers=num_workers, worker_init_fn=_seed_worker,
                          generator=generator, pin_memory=torch.cuda.is_available())
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=num_workers, worker_init_fn=_seed_worker, generator=generator,
                      pin_memory=torch.cuda.is_available())


def shard_loader(loader: DataLoader, rank: int, world: int, seed: int = 0, what: str = "data") -> DataLoader:
    """`loader` rebuilt to give process `rank` its part of each of its global batches (same dataset,
    batch size, shuffling, workers and collate function)."""
    if not isinstance(loader.sampler, (RandomSampler, SequentialSampler)) or loader.batch_size is None:
        raise ValueError(f"the {what} is a DataLoader with its own sampler or batch sampler, which cannot be "
                         "split over processes: pass its Dataset (fit batches it) or a plain DataLoader")
    batches = ShardedBatchSampler(len(loader.dataset), loader.batch_size,
                                  shuffle=isinstance(loader.sampler, RandomSampler), seed=seed,
                                  drop_last=loader.drop_last, rank=rank, world=world, what=what)
    return DataLoader(loader.dataset, batch_sampler=batches, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      worker_init_fn=loader.worker_init_fn or _seed_worker,
                      generator=torch.Generator().manual_seed(seed))


def sample_shard(data, rank: int, world: int):
    """Process `rank`'s contiguous part of `data` (tensors, a Dataset or a DataLoader) for evaluation:
    the parts of all processes, in rank order, are the data in order."""
    if world == 1:
        return data
    pair = (data.x, data.y) if isinstance(data, TensorBatches) else \
        None if isinstance(data, DataLoader) else as_tensors(data)
    n = len(pair[0]) if pair is not None else len(data.dataset if isinstance(data, DataLoader) else data)
    lo, hi = n * rank // world, n * (rank + 1) // world
    if pair is not None:
        return pair[0][lo:hi], pair[1][lo:hi]
    if not isinstance(data, DataLoader):
        return Subset(data, range(lo, hi))
    if data.batch_size is None:
        raise ValueError("evaluating a DataLoader on several processes needs one with a batch_size")
    return DataLoader(Subset(data.dataset, range(lo, hi)), batch_size=data.batch_size,
                      num_workers=data.num_workers, collate_fn=data.collate_fn, pin_memory=data.pin_memory,
                      worker_init_fn=data.worker_init_fn)


def drop_ragged(data, batch_size: int) -> bool:
    """Whether a loader built for training should drop its ragged last batch: yes when there are
    full ones (a last batch of one sample breaks BatchNorm in training mode)."""
    try:
        return len(data[0] if isinstance(data, (tuple, list)) else data) > batch_size
    except TypeError:
        return False


def reseed_loader(loader, seed: int, epoch: int) -> None:
    """Make this epoch's shuffle depend on (seed, epoch) only, so a resumed run shuffles the same.

    Loaders without a generator draw their shuffle seed from torch's global RNG, which the
    checkpoint restores, so they repeat as well.
    """
    if isinstance(loader, TensorBatches):
        loader.set_epoch(epoch)
        return
    sampler, rank = getattr(loader, "batch_sampler", None), 0
    if isinstance(sampler, ShardedBatchSampler):
        sampler.set_epoch(epoch)
        rank = sampler.rank  # the generator then only seeds workers: each process's augmentations differ
    gen = getattr(loader, "generator", None)
    if isinstance(gen, torch.Generator):
        gen.manual_seed((seed * 100_003 + epoch + rank * 2**52) % 2**64)


# ----------------------------------------------------------------------------- one batch

def split_batch(batch) -> tuple[Any, Tensor]:
    """(inputs, targets) of a batch; a ValueError for anything but a pair."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError("every batch must be a pair (inputs, targets); got "
                     f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}")


def to_device(x, device: torch.device, channels_last: bool = False):
    """Inputs (a tensor, or a tuple/list of them) on `device`; 4-D ones channels-last if asked."""
    if isinstance(x, Tensor):
        x = x.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
    if isinstance(x, (tuple, list)):
        return type(x)(to_device(t, device, channels_last) for t in x)
    return x


def batch_len(x) -> int:
    """Number of samples in a batch's inputs (the first tensor's, for a tuple of them)."""
    return len(x[0]) if isinstance(x, (tuple, list)) else len(x)
