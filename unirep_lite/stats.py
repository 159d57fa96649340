"""Model size and cost: parameters and multiply-accumulates (MACs)."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from . import checks
from .blocks import GRN


def count_params(model: nn.Module, paper: bool = False) -> int:
    """Number of parameters; `paper=True` leaves out GRN's gamma, as the paper's Table 5 does."""
    skip = {id(m.gamma) for m in model.modules() if isinstance(m, GRN)} if paper else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


@torch.no_grad()
def count_macs(model: nn.Module, resolution: int | tuple[int, int] = 224, in_chans: int | None = None) -> int:
    """MACs of one forward pass of a single image (torch's FLOP counter counts 2 FLOPs per MAC).

    Counts convolutions and matrix multiplies, which is what the paper's "FLOPs" column reports.
    """
    h, w = checks.size_2d("resolution", resolution)
    c = checks.positive_int("in_chans", in_chans) if in_chans is not None else getattr(model, "in_chans", 3)
    p = next(model.parameters())
    x = torch.zeros(1, c, h, w, dtype=p.dtype, device=p.device)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2
