"""Training on several processes (torchrun, DistributedDataParallel): who this process is, and the
few collectives `fit` and `evaluate` need.

The same `fit` runs in one process and under `torchrun --nproc_per_node N`: an entry calls `start`
with `unirep_lite.env.torchrun()`'s value, and `fit` finds the process group (`World.current()`,
torch.distributed's own state). Then every process trains a DDP copy of the model on its share of
each global batch (config.batch_size stays the global batch, so steps and schedule are those of one
process), losses and validation outputs are combined over all processes, and only process 0 writes
checkpoints and shows progress.

A process that dies breaks the next collective of the others (gloo reports a closed connection at
once, NCCL and a hung peer after `timeout`): `collective` turns that into `ProcessLost`, and `fit`
adds where the last checkpoint is, so the run ends with one line instead of a hang.
"""
from __future__ import annotations

import contextlib
import datetime
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.distributed as dist

# How long a collective waits for a silent peer before giving up (a crashed one is noticed at once).
TIMEOUT = datetime.timedelta(minutes=5)


class ProcessLost(RuntimeError):
    """Another process of the run stopped (it crashed, was killed, or timed out)."""


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes: rank in [0, size)."""
    rank: int = 0
    size: int = 1

    @classmethod
    def current(cls) -> "World":
        """The initialised default process group's rank and size; one process when there is none."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def main(self) -> bool:
        """Process 0: the one that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def seed(self, seed: int) -> int:
        """The seed of this process's random numbers (dropout, drop path, mixup): `seed` on process
        0, so one process draws what process 0 of many does; distinct ones elsewhere."""
        return (seed + self.rank * 1_000_003) % 2**32


def start(launch: Mapping, device=None, timeout: datetime.timedelta = TIMEOUT) -> torch.device:
    """Join the process group of a torchrun launch (`unirep_lite.env.torchrun()`'s value); returns
    this process's device: cuda:LOCAL_RANK with NCCL when `device` is CUDA (or None and a GPU is
    there), else `device` (default cpu) with gloo."""
    device = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        device = torch.device("cuda", launch["local_rank"])
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://{launch['master_addr']}:{launch['master_port']}",
                            rank=launch["rank"], world_size=launch["world_size"], timeout=timeout)
    return device


def stop() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def collective(what: str):
    """Run communication with the other processes; their loss becomes a ProcessLost saying `what`."""
    try:
        yield
    except ProcessLost:
        raise
    except RuntimeError as e:  # gloo: RuntimeError; NCCL and timeouts: torch.distributed.DistError
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ProcessLost(f"lost contact with another process while {what} ({first})") from e


def all_sum(values: list[float], device) -> list[float]:
    """The sum of `values` over all processes (float64)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather(obj) -> list:
    """`obj` of every process, in rank order (picklable objects, e.g. CPU tensors)."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
