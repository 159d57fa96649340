"""The math of structural reparameterization, as pure functions.

Nothing here touches a module's state: every function takes tensors (or reads a BatchNorm's
parameters) and returns new tensors in the dtype and on the device of the kernel it was given, so
the same code merges float32, float64 and bfloat16 models on any device.

A Dilated Reparam Block (paper section 3.1) adds the outputs of a KxK depthwise conv and of several
small dilated depthwise convs, each followed by BatchNorm. In eval mode every piece is linear, so
the block equals a single KxK conv:
    1. fold each BN into the conv before it            (fuse_bn)
    2. write each dilated kxk kernel as a sparse one   (dilated_to_sparse, paper eq. 1)
    3. zero-pad all kernels to KxK and add them up     (merge_branches)
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks

# Branches (kernel sizes k, dilations r) of the Dilated Reparam Block for each large kernel K,
# from the authors' code (authoritative where the paper's text differs). Besides these, every
# block has the non-dilated KxK branch itself.
BRANCHES: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    17: ((5, 9, 3, 3, 3), (1, 2, 4, 5, 7)),
    15: ((5, 7, 3, 3, 3), (1, 2, 3, 5, 7)),
    13: ((5, 7, 3, 3, 3), (1, 2, 3, 4, 5)),
    11: ((5, 5, 3, 3, 3), (1, 2, 3, 4, 5)),
    9: ((5, 5, 3, 3), (1, 2, 3, 4)),
    7: ((5, 3, 3), (1, 2, 3)),
    5: ((3, 3), (1, 2)),
}


def equivalent_kernel_size(k: int, r: int) -> int:
    """Side of the non-dilated kernel that a kxk kernel with dilation r covers: (k-1)r+1.

    Plain arithmetic, no checks: convs call it while they are traced, with sizes that are tensors.
    """
    return (k - 1) * r + 1


def check_branches(K: int, ks: Sequence[int], rs: Sequence[int]) -> None:
    """Raise a ValueError naming the problem unless (ks, rs) are valid branches of a KxK block."""
    if not checks.is_int(K) or K < 1 or K % 2 == 0:
        raise ValueError(f"the large kernel size K must be a positive odd integer, got {K!r}")
    if not isinstance(ks, (tuple, list)) or not isinstance(rs, (tuple, list)):
        raise TypeError(f"branches must be a pair (kernel sizes, dilations) of tuples, got {ks!r}, {rs!r}")
    if len(ks) != len(rs):
        raise ValueError(
            f"branches: expected one dilation per branch kernel size, got {len(ks)} kernel sizes {tuple(ks)} "
            f"and {len(rs)} dilations {tuple(rs)}"
        )
    seen = set()
    for k, r in zip(ks, rs):
        if not checks.is_int(k) or k < 1 or k % 2 == 0:
            raise ValueError(f"branches: kernel sizes must be positive odd integers, got k={k!r}")
        if not checks.is_int(r) or r < 1:
            raise ValueError(f"branches: dilations must be integers >= 1, got r={r!r} (for k={k})")
        if equivalent_kernel_size(k, r) > K:
            raise ValueError(
                f"branches: (k={k}, r={r}) covers (k-1)r+1 = {equivalent_kernel_size(k, r)} pixels, "
                f"more than the large kernel K={K}: expected (k-1)r+1 <= K"
            )
        if (k, r) in seen:
            raise ValueError(f"branches: (k={k}, r={r}) appears twice; each (k, r) may appear once")
        seen.add((k, r))


def default_branches(K: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The authors' branch table entry for K, or a ValueError listing the supported sizes."""
    checks.odd_int("K", K)
    if K not in BRANCHES:
        raise ValueError(
            f"no default Dilated Reparam branches for K={K}: expected one of {sorted(BRANCHES)}, "
            "or pass branches=(kernel_sizes, dilations) explicitly"
        )
    return BRANCHES[K]


def fuse_bn(kernel: Tensor, bn: nn.BatchNorm2d, conv_bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Fold an eval-mode BatchNorm into the conv before it: BN(conv(x)) == conv'(x) + b'.

    BN(y) = (y - mean) / sqrt(var + eps) * gamma + beta, so each output channel's kernel is scaled by
    t = gamma / sqrt(var + eps) and the bias becomes beta + (conv_bias - mean) * t. Works for any conv
    whose first kernel dimension is the output channel (dense, grouped, depthwise, Linear).
    Differentiable in the kernel and the BN's weight and bias (the running statistics are buffers),
    so a block's merged kernel can be trained through (fast-training mode); under `torch.no_grad`
    it builds deploy models.
    """
    dtype, device = kernel.dtype, kernel.device

    def cast(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device=device, dtype=dtype)

    mean, var = cast(bn.running_mean), cast(bn.running_var)
    if mean is None or var is None:
        raise ValueError("fuse_bn needs a BatchNorm with running statistics (track_running_stats=True)")
    gamma = cast(bn.weight) if bn.weight is not None else torch.ones_like(mean)
    beta = cast(bn.bias) if bn.bias is not None else torch.zeros_like(mean)
    t = gamma * torch.rsqrt(var + bn.eps)
    bias = cast(conv_bias) if conv_bias is not None else torch.zeros_like(mean)
    shape = (-1,) + (1,) * (kernel.dim() - 1)
    return kernel * t.reshape(shape), beta + (bias - mean) * t


def dilated_to_sparse(kernel: Tensor, r: int) -> Tensor:
    """A kxk kernel with dilation r as the equivalent non-dilated ((k-1)r+1)^2 sparse kernel.

    Paper eq. 1 writes this as a transposed conv with stride r and a 1x1 identity kernel; that
    places the k*k weights on a grid with stride r and zeros in between, which is what the strided
    assignment below does directly. It works for dense, grouped and depthwise kernels alike
    (shape out x in/groups x k x k) and in any dtype.
    """
    if kernel.dim() != 4 or kernel.shape[-1] != kernel.shape[-2]:
        raise ValueError(f"expected a square conv kernel of shape (out, in/groups, k, k), got {tuple(kernel.shape)}")
    checks.positive_int("r", r)
    if r == 1:
        return kernel
    k = kernel.shape[-1]
    size = equivalent_kernel_size(k, r)
    sparse = kernel.new_zeros(kernel.shape[:2] + (size, size))
    sparse[:, :, ::r, ::r] = kernel
    return sparse


def dilated_to_sparse_transpose(kernel: Tensor, r: int) -> Tensor:
    """Paper eq. 1 literally: conv_transpose2d(kernel, I, stride=r) with I the 1x1x1x1 identity.

    Each (out, in) slice is treated as its own single channel (the appendix's general case), so
    grouped and dense kernels work too. Kept to show that the strided assignment is the same thing.
    """
    checks.positive_int("r", r)
    o, i, k, _ = kernel.shape
    identity = kernel.new_ones(1, 1, 1, 1)
    flat = F.conv_transpose2d(kernel.reshape(o * i, 1, k, k), identity, stride=r)
    return flat.reshape(o, i, *flat.shape[-2:])


def pad_to(kernel: Tensor, K: int) -> Tensor:
    """Zero-pad a kxk kernel (k <= K, same parity) equally on all sides to KxK."""
    checks.positive_int("K", K)
    k = kernel.shape[-1]
    if k > K or (K - k) % 2:
        raise ValueError(f"cannot centre a {k}x{k} kernel in {K}x{K}: expected k <= K and K - k even, got K={K}")
    p = (K - k) // 2
    return F.pad(kernel, (p, p, p, p)) if p else kernel


def merge_branches(branches: Iterable[tuple[Tensor, Tensor | None, int]], K: int) -> tuple[Tensor, Tensor]:
    """Sum parallel conv branches (kernel, bias or None, dilation) into one KxK kernel and bias.

    Parallel convs with 'same' padding on the same input add up linearly, so once every kernel is
    non-dilated and centred in KxK, the sum of kernels is the kernel of the sum.
    """
    checks.odd_int("K", K)
    kernel = bias = None
    for w, b, r in branches:
        w = dilated_to_sparse(w, r)
        if w.shape[-1] > K:
            raise ValueError(f"a branch with dilation r={r} covers {w.shape[-1]} pixels, more than K={K}")
        w = pad_to(w, K)
        kernel = w if kernel is None else kernel + w
        if b is not None:
            bias = b if bias is None else bias + b
    if kernel is None:
        raise ValueError("merge_branches needs at least one branch")
    if bias is None:
        bias = kernel.new_zeros(kernel.shape[0])
    return kernel, bias


def fold_affine_into_linear(
    weight: Tensor,
    bias: Tensor | None,
    scale: Tensor | None = None,
    shift: Tensor | None = None,
    input_shift: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Fold  y = scale * (W (x + input_shift) + bias) + shift  into one Linear  y = W' x + b'.

    Used for the end of the FFN: GRN's beta is an input shift, the trailing BatchNorm and the layer
    scale are per-output affine maps.
    """
    out = weight.shape[0]
    b = bias if bias is not None else weight.new_zeros(out)
    if input_shift is not None:
        b = b + weight @ input_shift.reshape(-1).to(weight)
    if scale is not None:
        scale = scale.reshape(-1).to(weight)
        weight, b = weight * scale[:, None], b * scale
    if shift is not None:
        b = b + shift.reshape(-1).to(weight)
    return weight, b


def bn_affine(bn: nn.BatchNorm2d | nn.BatchNorm1d, like: Tensor) -> tuple[Tensor, Tensor]:
    """An eval-mode BatchNorm as y = scale * x + shift (tensors in `like`'s dtype and device)."""
    ones = like.new_ones(bn.num_features)
    scale, shift = fuse_bn(ones.reshape(-1, 1), bn)
    return scale.reshape(-1), shift
