"""Fast paths for the Dilated Reparam Block: the same math, cheaper on a CPU (GPUs keep cuDNN's backward).

Three things make the straightforward block (paper Fig. 2: separate branch convs, each with its BN)
slow to train on a CPU, measured with oneDNN on 2 cores:
  * NCHW depthwise convs (float32): oneDNN reorders every tensor to its blocked/NHWC layout and back, and its
    NCHW weight gradient is 3-7x slower than the channels_last one. -> run the branches channels_last.
  * the backward of a depthwise conv takes slow paths: the weight gradient costs 5-30x the forward,
    the input gradient of a *dilated* conv 10-50x. Both are forward depthwise convs in disguise
    (the flipped kernel over the output gradient; the output gradient as a kernel over the input),
    which run on oneDNN's fast path. -> `depthwise_conv2d` computes them that way.
  * in eval mode the branches are a linear map, so one KxK conv with the merged kernel does it.
    The merge is differentiable, so gradients in eval mode are exact too. -> `merged_forward`.

Everything here is exact: the same sums in a different order, so float32 results agree within
rounding and float64 ones to ~1e-12. The optional fast-training mode (`set_fast_train`) is a
different model: each branch keeps a learnable per-channel scale and shift (its BN's gamma and beta
over the BN's *fixed* running statistics) instead of normalising with batch statistics, so the
branches merge into one KxK kernel exactly at every training step. Its parameters, state_dict keys
and deploy structure are those of the paper's block; `reparameterize()` works unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .reparam import equivalent_kernel_size, merge_branches


class _DepthwiseConv(torch.autograd.Function):
    """Stride-1 'same' depthwise conv whose gradients are forward convs on a CPU (see module docstring)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, dilation: int) -> Tensor:
        pad = [(equivalent_kernel_size(k, dilation) - 1) // 2 for k in weight.shape[-2:]]
        ctx.save_for_backward(x, weight)
        ctx.conf = (pad, dilation, bias is not None)
        return F.conv2d(x, weight, bias, 1, pad, dilation, x.shape[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        pad, r, has_bias = ctx.conf
        groups = x.shape[1]
        gx = gw = gb = None
        if x.device.type != "cpu":  # cuDNN's own backward is fine
            mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False]
            gx, gw, _ = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], pad, [r, r], False, [0, 0], groups, mask)
        else:
            grad = grad.contiguous(memory_format=_layout(x))
            if ctx.needs_input_grad[0]:
                # y[p] = sum_u w[u] x[p + r*u - pad]  =>  dx[q] = sum_u flip(w)[u] g[q + r*u - pad]
                gx = F.conv2d(grad, weight.flip(-1, -2), None, 1, pad, r, groups)
            if ctx.needs_input_grad[1]:
                gw = _depthwise_weight_grad(x, grad, weight.shape[-2:], pad, r)
        if has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum((0, 2, 3))
        return gx, gw, gb, None


def _depthwise_weight_grad(x: Tensor, grad: Tensor, k: tuple[int, int], pad: list[int], r: int) -> Tensor:
    """dW[c, u] = sum_{b, p} g[b, c, p] * x_pad[b, c, p + r*u], computed as a *forward* depthwise conv.

    oneDNN's weight gradient for depthwise convs is 5-30x slower than its forward. Seen per (b, c)
    pair, the sum above is a conv of x_pad[b, c] with g[b, c] as the kernel, stride r (one output
    per kernel tap): one depthwise conv over B*C channels, then a sum over the batch.
    """
    B, C, H, W = x.shape
    xi = x.permute(2, 3, 0, 1).contiguous().reshape(1, H, W, B * C).permute(0, 3, 1, 2)  # NHWC (1, BC, H, W)
    gi = grad.contiguous().reshape(B * C, 1, H, W)
    gw = F.conv2d(xi, gi, None, r, pad, 1, B * C)  # (1, B*C, kh, kw)
    return gw.reshape(B, C, *k).sum(0).unsqueeze(1)


def _layout(x: Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def depthwise_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, dilation: int = 1) -> Tensor:
    """Depthwise conv, stride 1, 'same' padding, with a fast exact backward; weight (C, 1, k, k).

    Kernel taps that can only ever see the zero padding (a 13x13 kernel on a 4x4 map reaches at
    most 3 pixels away) are cropped first: exact, and their gradient is exactly zero anyway.
    """
    if x.dim() != 4 or weight.dim() != 4 or weight.shape[0] != x.shape[1] or weight.shape[1] != 1:
        raise ValueError(f"expected x (B, C, H, W) and a depthwise weight (C, 1, k, k), got {tuple(x.shape)} "
                         f"and {tuple(weight.shape)}")
    k = weight.shape[-1]
    if k % 2 == 0 or weight.shape[-2] != k:
        raise ValueError(f"expected a square odd kernel, got {tuple(weight.shape[-2:])}")
    c = (k - 1) // 2
    mh, mw = (min(c, (size - 1) // dilation) for size in x.shape[-2:])
    if (mh, mw) != (c, c):
        weight = weight[:, :, c - mh:c + mh + 1, c - mw:c + mw + 1]
    return _DepthwiseConv.apply(x, weight, bias, dilation)


def channels_last(x: Tensor) -> Tensor:
    """On a CPU, x in channels_last layout (a no-op if it already is): oneDNN's depthwise convs want it.

    Only for the dtypes oneDNN runs (float64 takes torch's own conv, which is faster in NCHW).
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """An eval-mode BN as y = scale * x + shift, differentiable in its weight and bias.

    (`reparam.fuse_bn` is the same formula on detached tensors, for building deploy models.)
    """
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def merged_kernel(block) -> tuple[Tensor, Tensor]:
    """The KxK kernel and bias of a DilatedReparamBlock in eval mode, differentiably."""
    def branches():
        for conv, bn, r in block.branches():
            scale, shift = bn_scale_shift(bn)
            yield conv.weight * scale.reshape(-1, 1, 1, 1), shift, r

    return merge_branches(branches(), block.K)


def merged_forward(block, x: Tensor) -> Tensor:
    """Eval mode, or fast-training mode: one KxK conv with the merged kernel."""
    kernel, bias = merged_kernel(block)
    return depthwise_conv2d(channels_last(x), kernel, bias)


def deploy_forward(block, x: Tensor) -> Tensor:
    """The deploy structure: one KxK conv with bias (cropped on small maps, channels_last on a CPU)."""
    return depthwise_conv2d(channels_last(x), block.lk_origin.weight, block.lk_origin.bias)


def exact_forward(block, x: Tensor) -> Tensor:
    """Training mode, batch statistics: the paper's block computed channels_last with fast backward."""
    x = channels_last(x)
    out = None
    for conv, bn, r in block.branches():
        y = bn(depthwise_conv2d(x, conv.weight, None, r))
        out = y if out is None else out + y
    return out


def reference_forward(block, x: Tensor) -> Tensor:
    """The straightforward block (paper Fig. 2), for benchmarks and tests: each branch its conv and BN."""
    out = 0
    for conv, bn, _ in block.branches():
        out = out + bn(conv(x))
    return out


def dilated_blocks(model: nn.Module):
    from .blocks import DilatedReparamBlock

    return [m for m in model.modules() if isinstance(m, DilatedReparamBlock) and not m.deploy]


def set_fast_train(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch every Dilated Reparam Block of `model` to (or back from) fast-training mode, in place.

    Fast-training mode merges the branches into one KxK conv at every step: each branch is scaled by
    its BN's learnable gamma / sqrt(running_var + eps) and shifted, with the running statistics
    frozen (they are never updated in this mode). Same parameters, keys and deploy structure.
    """
    for m in dilated_blocks(model):
        m.mode = "fast_train" if enabled else "exact"
    return model


def set_reference(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Compute every block straightforwardly, as the authors write it (the benchmark's baseline), in place:
    Dilated Reparam Blocks as separate branch convs and BNs (Fig. 2), the FFN as permute + Linear."""
    from .blocks import UniRepLKNetBlock

    for m in dilated_blocks(model):
        m.mode = "reference" if enabled else "exact"
    for m in model.modules():
        if isinstance(m, UniRepLKNetBlock):
            m.reference = enabled
    return model
