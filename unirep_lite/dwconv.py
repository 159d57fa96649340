"""The depthwise convolution every block calls: stride 1, 'same' padding, one place that picks the kernel.

The math is `F.conv2d(x, w, b, padding=same, dilation=r, groups=C)`. What this module adds is speed
and dtype discipline, never different results:
  * On a CPU, oneDNN's depthwise *backward* takes slow paths: the weight gradient costs 5-30x the
    forward, the input gradient of a dilated conv 10-50x. Both are forward depthwise convs in
    disguise (the flipped kernel over the output gradient; the output gradient as a kernel over the
    input), which run on oneDNN's fast path, so `_DepthwiseConv` computes them that way. GPUs keep
    cuDNN's own backward.
  * oneDNN wants channels_last (NHWC) for float32/bfloat16 depthwise convs (`channels_last`).
  * Under `torch.autocast` the conv runs in the autocast dtype, exactly like the built-in conv:
    inputs are cast before the autograd function, so forward and backward see one dtype and each
    gradient flows back through the cast to its parameter's own dtype. On maps too small for a CPU's
    bfloat16 kernels it runs in float32 instead (`precision`).
  * Kernel taps that can only ever see the zero padding are cropped (exact; their gradient is 0),
    except while a model is traced or exported: the graph must hold for every input size.
  * On CUDA, large kernels run in a Triton kernel where a one-time measurement per shape finds it
    faster than cuDNN (`triton_dwconv.use_triton`; UNIREP_DWCONV=triton|torch|auto forces a choice).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import triton_dwconv
from .precision import cpu_bf16_unsafe
from .reparam import equivalent_kernel_size


class _DepthwiseConv(torch.autograd.Function):
    """Stride-1 'same' depthwise conv whose CPU gradients are forward convs (see the module docstring)."""

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
        grad = grad.to(x.dtype)  # one dtype throughout (forward ran in x's dtype)
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

    Seen per (b, c) pair, the sum is a conv of x_pad[b, c] with g[b, c] as the kernel, stride r (one
    output per kernel tap): one depthwise conv over B*C channels, then a sum over the batch.
    """
    B, C, H, W = x.shape
    xi = x.permute(2, 3, 0, 1).contiguous().reshape(1, H, W, B * C).permute(0, 3, 1, 2)  # NHWC (1, BC, H, W)
    gi = grad.contiguous().reshape(B * C, 1, H, W)
    gw = F.conv2d(xi, gi, None, r, pad, 1, B * C)  # (1, B*C, kh, kw)
    return gw.reshape(B, C, *k).sum(0).unsqueeze(1)


def _layout(x: Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast would run a conv in on this device, or None outside autocast."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def _exporting() -> bool:
    """True while torch.jit.trace/script, torch.export or an ONNX export records the model.

    (torch.compile is not export: it guards on input shapes and recompiles, so it keeps both.)
    """
    is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    onnx_export = getattr(torch.onnx, "is_in_onnx_export", lambda: False)
    return torch.jit.is_tracing() or torch.jit.is_scripting() or is_exporting() or onnx_export()


def depthwise_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, dilation: int = 1) -> Tensor:
    """Depthwise conv, stride 1, 'same' padding, with a fast exact backward; weight (C, 1, k, k)."""
    if x.dim() != 4 or weight.dim() != 4 or weight.shape[0] != x.shape[1] or weight.shape[1] != 1:
        raise ValueError(f"expected x (B, C, H, W) and a depthwise weight (C, 1, k, k), got {tuple(x.shape)} "
                         f"and {tuple(weight.shape)}")
    k = weight.shape[-1]
    if k % 2 == 0 or weight.shape[-2] != k:
        raise ValueError(f"expected a square odd kernel, got {tuple(weight.shape[-2:])}")
    if _exporting():
        # a trace or an exported graph must hold for every input size: no crop (it would bake this
        # size in), no Python autograd function (exporters cannot see inside it); same numbers
        pad = (equivalent_kernel_size(k, dilation) - 1) // 2
        return F.conv2d(x, weight, bias, 1, pad, dilation, x.shape[1])
    c = (k - 1) // 2
    mh, mw = (min(c, (size - 1) // dilation) for size in x.shape[-2:])
    if (mh, mw) != (c, c):
        weight = weight[:, :, c - mh:c + mh + 1, c - mw:c + mw + 1]
    if triton_dwconv.use_triton(x, weight, dilation):  # CUDA only, where measured faster than cuDNN
        return triton_dwconv.depthwise_conv2d(x, weight, bias, dilation)
    dtype = _autocast_dtype(x.device.type)
    if cpu_bf16_unsafe(x):  # a map too small for the CPU's bf16 kernels: float32 (see `precision`)
        dtype = weight.dtype
    if dtype is None:
        return _DepthwiseConv.apply(x, weight, bias, dilation)
    # as autocast does for F.conv2d: cast the inputs (the casts carry gradients back in each input's
    # dtype), then run forward and backward in that one dtype
    x, weight = x.to(dtype), weight.to(dtype)
    bias = None if bias is None else bias.to(dtype)
    with torch.autocast(x.device.type, enabled=False):
        return _DepthwiseConv.apply(x, weight, bias, dilation)


def channels_last(x: Tensor) -> Tensor:
    """On a CPU, x in channels_last layout (a no-op if it already is): oneDNN's depthwise convs want it.

    Only for the dtypes oneDNN runs (float64 takes torch's own conv, which is faster in NCHW).
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16):
        return x.contiguous(memory_format=torch.channels_last)
    return x
