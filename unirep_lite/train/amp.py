"""The mixed precision policy: which autocast dtype a mode means on a device."""
from __future__ import annotations

import contextlib
from typing import Optional

import torch


def autocast_dtype(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype, or None for plain float32: on CUDA "auto" picks bf16 where supported, else
    fp16; on other devices only an explicit "bf16" turns it on (a CPU is rarely faster in bf16)."""
    if mode == "off":
        return None
    if device.type == "cuda":
        if mode == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if mode == "bf16" else torch.float16
    return torch.bfloat16 if mode == "bf16" else None


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """torch.autocast for `dtype` on `device`, or a no-op for None (float32)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
