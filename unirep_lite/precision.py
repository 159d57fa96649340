"""Where CPU bfloat16 cannot be trusted, and the convolution that steps around it.

On some CPUs oneDNN's bfloat16 convolutions go wrong on very small feature maps: on Intel Xeons with
AMX, a stride-2 3 x 3 conv of 160 -> 320 channels on a 3 x 2 map returns NaN or wrong values under
`torch.autocast("cpu", dtype=torch.bfloat16)` (forward and backward); on AMD EPYC (AVX-512 BF16) the
weight gradient of a stride-2 3 x 3 channels_last conv on a 1 x 1 map is wrong by up to 3.4x. Both
were seen with torch 2.13. Large maps compute correctly, and small maps cost next to nothing, so
inside CPU bf16 autocast every convolution of the model whose map has a side under
`CPU_BF16_MIN_SIDE` runs in float32 instead (forward and backward). Outside autocast, on GPUs and in
float32/float64 nothing changes.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

CPU_BF16_MIN_SIDE = 8  # maps with a side below this run in float32 inside CPU bf16 autocast


def cpu_bf16_unsafe(x: Tensor) -> bool:
    """True when `x` is about to be convolved in CPU bfloat16 autocast on a map too small to trust."""
    # autocast first: outside it (and while exporting) no guard on the input's shape is recorded
    return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16 and min(x.shape[-2:]) < CPU_BF16_MIN_SIDE)


class Conv2d(nn.Conv2d):
    """`nn.Conv2d` (same parameters, same state_dict) that leaves CPU bf16 autocast on small maps."""

    def forward(self, x: Tensor) -> Tensor:
        if cpu_bf16_unsafe(x):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.to(self.weight.dtype))
        return super().forward(x)
