"""Helpers for checking reparameterization honestly.

A freshly built model hides mistakes: BN statistics are 0/1, GRN's gamma and beta are zero and the
layer scale is 1e-6, so a wrong fold of any of them changes nothing visible. `randomize_` gives
every such parameter and buffer a random, non-trivial value first.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import GRN, UniRepLKNetBlock


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine parameters, GRN gamma/beta and layer scales, in place."""
    g = torch.Generator().manual_seed(seed)

    def rand(t: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return (torch.rand(t.shape, generator=g, dtype=torch.float64) * (high - low) + low).to(t)

    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(rand(m.running_mean, -0.5, 0.5))
            m.running_var.copy_(rand(m.running_var, 0.5, 2.0))
            if m.affine:
                m.weight.copy_(rand(m.weight, 0.5, 1.5))
                m.bias.copy_(rand(m.bias, -0.5, 0.5))
        elif isinstance(m, GRN):
            m.gamma.copy_(rand(m.gamma, -0.5, 0.5))
            if m.beta is not None:
                m.beta.copy_(rand(m.beta, -0.5, 0.5))
        if isinstance(m, UniRepLKNetBlock) and m.gamma is not None:
            m.gamma.copy_(rand(m.gamma, 0.5, 1.5))
    return model


def relative_error(reference: torch.Tensor, other: torch.Tensor) -> float:
    """||reference - other|| / ||reference||, in float64."""
    ref, oth = reference.detach().double(), other.detach().double()
    return ((ref - oth).norm() / ref.norm().clamp_min(1e-300)).item()
