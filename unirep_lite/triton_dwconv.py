"""A depthwise KxK convolution for CUDA in Triton: stride 1, 'same' padding, any dilation.

Why: cuDNN's depthwise kernels are slow at large kernels. A CUDA profile of deploy UniRepLKNet-A
(batch 128, 224 x 224) spends 64% of its GPU time in cuDNN's `conv2d_grouped_direct_kernel`;
the paper's speed claim rests on a dedicated large-kernel implementation.

What: three jobs, one kernel each, all accumulating in float32:
  * forward       y[b, c, p] = bias[c] + sum_u w[c, u] * x[b, c, p + r*u - pad]
  * input grad    dx = the same forward conv of the output gradient with the flipped kernel
                  (y is a correlation, so its adjoint is the correlation with the flipped kernel)
  * weight grad   dw[c, u] = sum_{b, p} g[b, c, p] * x[b, c, p + r*u - pad]: one program per
                  (tap u, block of channels, slice of the batch x space), partial sums added by torch
                  (deterministic: no atomics).
The kernels take strides, so channels_last (NHWC, the layout they are tuned for: channels are the
contiguous, coalesced axis) and NCHW inputs both work without a copy; outputs keep the input's layout.
Inputs float32 / bfloat16 / float16; outputs and gradients in the dtype of the input they belong to.

`use_triton(x, weight, dilation)` says whether to use it for a call: only on CUDA tensors with Triton
importable, and only where a one-time measurement per shape found it faster than cuDNN (or where
the environment variable UNIREP_DWCONV=triton|torch|auto forces the choice, see `env`).
`unirep_lite.dwconv` is the one place that asks it; `python -m unirep_lite.bench dwconv` times the
kernels against cuDNN. Triton is optional: without it this module imports and
`available()` is False. With TRITON_INTERPRET=1 the kernels run on CPU tensors in Triton's
interpreter (slowly), which is how the tests check them without a GPU.
"""
from __future__ import annotations

import functools
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import Tensor

from . import env

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only wheels, macOS, ...: everything falls back to F.conv2d
    triton = tl = None

MAX_K = 31
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def available() -> bool:
    """True when Triton imports (it comes with PyTorch's CUDA wheels on Linux)."""
    return triton is not None


def interpreting() -> bool:
    """Triton's interpreter (TRITON_INTERPRET=1): kernels run on CPU tensors, for tests. The variable must
    be set before Triton is imported (its own jit'd helpers, tl.sum, tl.cdiv, are built at import)."""
    return env.triton_interpret()


# ----------------------------------------------------------------------------------------------
# The kernels. Plain functions here; `_kernels()` turns them into Triton kernels on first use, so
# this module imports without Triton.

def _fwd_kernel(x_ptr, w_ptr, b_ptr, y_ptr, C, H, W,
                sxb, sxc, sxh, sxw, syb, syc, syh, syw,
                KH: tl.constexpr, KW: tl.constexpr, DIL: tl.constexpr, HAS_BIAS: tl.constexpr,
                BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr):
    """One program: a BLOCK_H x BLOCK_W tile of output pixels times BLOCK_C channels of one image.

    w is (KH*KW, C) float32, so a tap's weights for a block of channels are one contiguous load.
    The x tile of each tap overlaps its neighbours' (the caches serve those re-reads).
    """
    pid_p, pid_c, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n_w = tl.cdiv(W, BLOCK_W)
    p = tl.arange(0, BLOCK_H * BLOCK_W)
    oh = (pid_p // n_w) * BLOCK_H + p // BLOCK_W
    ow = (pid_p % n_w) * BLOCK_W + p % BLOCK_W
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C
    x_base = x_ptr + b.to(tl.int64) * sxb + c[None, :] * sxc
    acc = tl.zeros((BLOCK_H * BLOCK_W, BLOCK_C), dtype=tl.float32)
    for i in range(KH):
        ih = oh + (i * DIL - DIL * (KH - 1) // 2)
        h_ok = (ih >= 0) & (ih < H)
        for j in range(KW):
            iw = ow + (j * DIL - DIL * (KW - 1) // 2)
            ok = (h_ok & (iw >= 0) & (iw < W))[:, None] & c_ok[None, :]  # zero padding = masked loads
            xv = tl.load(x_base + (ih * sxh + iw * sxw)[:, None], mask=ok, other=0.0)
            wv = tl.load(w_ptr + (i * KW + j) * C + c, mask=c_ok, other=0.0)
            acc += xv.to(tl.float32) * wv[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + c, mask=c_ok, other=0.0)[None, :]
    out = ((oh < H) & (ow < W))[:, None] & c_ok[None, :]
    y = y_ptr + b.to(tl.int64) * syb + c[None, :] * syc + (oh * syh + ow * syw)[:, None]
    tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=out)


def _wgrad_kernel(x_ptr, g_ptr, out_ptr, B, C, H, W, SPLIT,
                  sxb, sxc, sxh, sxw, sgb, sgc, sgh, sgw,
                  KH: tl.constexpr, KW: tl.constexpr, DIL: tl.constexpr,
                  BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr):
    """One program: one row i of kernel taps, BLOCK_C channels, and every SPLIT-th (image, pixel tile).

    For each tap u = (i, j) it writes its partial sum of g[b, c, p] * x[b, c, p + r*u - pad] to
    out[split, u, c]; the caller sums over `split`. Splitting the batch x space over many programs
    keeps the GPU busy when KH * C / BLOCK_C programs alone would not.
    """
    i, pid_c, pid_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    dh = i * DIL - DIL * (KH - 1) // 2
    n_w = tl.cdiv(W, BLOCK_W)
    per_image = tl.cdiv(H, BLOCK_H) * n_w
    p = tl.arange(0, BLOCK_H * BLOCK_W)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C
    for j in range(KW):
        dw = j * DIL - DIL * (KW - 1) // 2
        acc = tl.zeros((BLOCK_H * BLOCK_W, BLOCK_C), dtype=tl.float32)
        for t in range(pid_s, B * per_image, SPLIT):
            b = t // per_image
            r = t % per_image
            oh = (r // n_w) * BLOCK_H + p // BLOCK_W
            ow = (r % n_w) * BLOCK_W + p % BLOCK_W
            ih, iw = oh + dh, ow + dw
            ok = (oh < H) & (ow < W) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            ok = ok[:, None] & c_ok[None, :]
            gv = tl.load(g_ptr + b.to(tl.int64) * sgb + c[None, :] * sgc + (oh * sgh + ow * sgw)[:, None],
                         mask=ok, other=0.0)
            xv = tl.load(x_ptr + b.to(tl.int64) * sxb + c[None, :] * sxc + (ih * sxh + iw * sxw)[:, None],
                         mask=ok, other=0.0)
            acc += gv.to(tl.float32) * xv.to(tl.float32)
        tl.store(out_ptr + (pid_s * KH * KW + i * KW + j) * C + c, tl.sum(acc, axis=0), mask=c_ok)


# Block configs for autotuning (BLOCK_H, BLOCK_W, BLOCK_C, num_warps): 128-512 pixels x channels per
# program; BLOCK_C 8 and 16 fit the narrow stages (C = 40 in UniRepLKNet-A), 32 and 64 the wide ones.
_FWD_CONFIGS = [(4, 8, 32, 4), (8, 8, 32, 4), (8, 16, 16, 4), (4, 16, 64, 8), (8, 16, 8, 4), (16, 16, 8, 8)]
_WGRAD_CONFIGS = [(8, 8, 32, 4), (8, 16, 16, 4), (4, 16, 64, 8), (16, 16, 8, 4)]
# The interpreter runs one fixed config (the tests pick tiles smaller or larger than their maps).
INTERPRET_BLOCKS = dict(BLOCK_H=4, BLOCK_W=4, BLOCK_C=4)


def _configs(table):
    return [triton.Config(dict(BLOCK_H=h, BLOCK_W=w, BLOCK_C=c), num_warps=nw) for h, w, c, nw in table]


@functools.cache
def _kernels() -> SimpleNamespace:
    """The Triton kernels, built on first use (so that this module imports without Triton)."""
    if not available():
        raise RuntimeError("unirep_lite.triton_dwconv needs Triton (pip install triton), which is not installed")
    fwd, wgrad = triton.jit(_fwd_kernel), triton.jit(_wgrad_kernel)
    if interpreting():  # autotuning would time on a GPU; `INTERPRET_BLOCKS` instead
        return SimpleNamespace(fwd=fwd, wgrad=wgrad, tuned=False)
    key = ["C", "H", "W", "KH", "KW", "DIL", "sxc", "sxw"]  # strides: the layout; dtypes are added by Triton
    return SimpleNamespace(fwd=triton.autotune(_configs(_FWD_CONFIGS), key=key)(fwd),
                           wgrad=triton.autotune(_configs(_WGRAD_CONFIGS), key=key + ["B", "SPLIT"])(wgrad),
                           tuned=True)


def _launch(kernel, tuned, grid, *args, **consts):
    """Run `kernel` on grid(meta): autotuned on a GPU, with `INTERPRET_BLOCKS` in the interpreter."""
    if tuned:
        kernel[grid](*args, **consts)
    else:
        kernel[grid(INTERPRET_BLOCKS)](*args, **consts, **INTERPRET_BLOCKS)


def _taps(weight: Tensor) -> Tensor:
    """(C, 1, KH, KW) -> (KH*KW, C) float32: one contiguous load per tap and channel block."""
    return weight.reshape(weight.shape[0], -1).t().float().contiguous()


def _conv(x: Tensor, weight: Tensor, bias: Tensor | None, dilation: int) -> Tensor:
    """The forward kernel: y = depthwise conv of x with weight (C, 1, KH, KW), 'same' padding."""
    B, C, H, W = x.shape
    KH, KW = weight.shape[-2:]
    y = torch.empty_like(x)  # keeps x's layout (channels_last stays channels_last)
    k = _kernels()
    b = bias.float().contiguous() if bias is not None else y  # y: an unused placeholder pointer

    def grid(m):
        return triton.cdiv(H, m["BLOCK_H"]) * triton.cdiv(W, m["BLOCK_W"]), triton.cdiv(C, m["BLOCK_C"]), B

    _launch(k.fwd, k.tuned, grid, x, _taps(weight), b, y, C, H, W, *x.stride(), *y.stride(),
            KH=KH, KW=KW, DIL=dilation, HAS_BIAS=bias is not None)
    return y


def _split(x: Tensor, rows: int, C: int, n_tiles: int) -> int:
    """How many programs share one (tap row, channel block): enough for ~8 per streaming multiprocessor."""
    if x.device.type != "cuda":
        return min(2, n_tiles)  # the interpreter: still exercise the split-and-sum path
    sms = torch.cuda.get_device_properties(x.device).multi_processor_count
    return max(1, min(n_tiles, 1024, triton.cdiv(8 * sms, rows * triton.cdiv(C, 32))))


def _weight_grad(x: Tensor, g: Tensor, kernel_size: tuple[int, int], dilation: int) -> Tensor:
    """dw (C, 1, KH, KW) float32 from the input x and the output gradient g."""
    B, C, H, W = x.shape
    KH, KW = kernel_size
    k = _kernels()
    # The split must not depend on the tile config (the partial-sum buffer is allocated here), so it
    # is sized for 8 x 8 tiles; a program with no tile left writes zeros.
    split = _split(x, KH, C, B * triton.cdiv(H, 8) * triton.cdiv(W, 8))
    part = torch.empty(split, KH * KW, C, device=x.device, dtype=torch.float32)

    def grid(m):
        return KH, triton.cdiv(C, m["BLOCK_C"]), split

    _launch(k.wgrad, k.tuned, grid, x, g, part, B, C, H, W, split, *x.stride(), *g.stride(),
            KH=KH, KW=KW, DIL=dilation)
    return part.sum(0).t().reshape(C, 1, KH, KW)


# ----------------------------------------------------------------------------------------------
# Autograd and the public function. The kernels are wrapped as custom ops so that torch.compile
# treats them as opaque calls (it neither traces into Triton's launcher nor breaks the graph).

@torch.library.custom_op("unirep_lite::triton_dwconv", mutates_args=())
def _conv_op(x: Tensor, weight: Tensor, bias: Tensor | None, dilation: int) -> Tensor:
    return _conv(x, weight, bias, dilation)


@_conv_op.register_fake
def _(x, weight, bias, dilation):
    return torch.empty_like(x)


@torch.library.custom_op("unirep_lite::triton_dwconv_wgrad", mutates_args=())
def _wgrad_op(x: Tensor, grad: Tensor, kh: int, kw: int, dilation: int) -> Tensor:
    return _weight_grad(x, grad, (kh, kw), dilation)


@_wgrad_op.register_fake
def _(x, grad, kh, kw, dilation):
    return x.new_empty((x.shape[1], 1, kh, kw), dtype=torch.float32)


class _TritonDepthwiseConv(torch.autograd.Function):
    """Forward, input gradient and weight gradient by the Triton kernels; bias gradient by torch."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, dilation: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.dilation = dilation
        ctx.bias_dtype = None if bias is None else bias.dtype
        return _conv_op(x, weight, bias, dilation)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        r = ctx.dilation
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:  # the adjoint of a correlation: correlate with the flipped kernel
            gx = _conv_op(grad, weight.flip(-1, -2), None, r).to(x.dtype)
        if ctx.needs_input_grad[1]:
            gw = _wgrad_op(x, grad, weight.shape[-2], weight.shape[-1], r).to(weight.dtype)
        if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
            gb = grad.sum((0, 2, 3), dtype=torch.float32).to(ctx.bias_dtype)
        return gx, gw, gb, None


def check(x: Tensor, weight: Tensor, bias: Tensor | None = None, dilation: int = 1,
          dtype: torch.dtype | None = None) -> None:
    """Raise ValueError unless the Triton kernels handle these arguments (run in `dtype`, default x's)."""
    if x.dim() != 4 or weight.dim() != 4 or weight.shape[0] != x.shape[1] or weight.shape[1] != 1:
        raise ValueError(f"expected x (B, C, H, W) and a depthwise weight (C, 1, kh, kw), got {tuple(x.shape)} "
                         f"and {tuple(weight.shape)}")
    kh, kw = weight.shape[-2:]
    if kh % 2 == 0 or kw % 2 == 0 or max(kh, kw) > MAX_K:
        raise ValueError(f"expected odd kernel sizes up to {MAX_K}, got {(kh, kw)}")
    if not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"expected an integer dilation >= 1, got {dilation!r}")
    if bias is not None and tuple(bias.shape) != (x.shape[1],):
        raise ValueError(f"expected a bias of shape ({x.shape[1]},), got {tuple(bias.shape)}")
    if (dtype or x.dtype) not in DTYPES:
        raise ValueError(f"expected x in {DTYPES}, got {dtype or x.dtype}")


def depthwise_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, dilation: int = 1) -> Tensor:
    """Depthwise conv by the Triton kernels: stride 1, 'same' padding; x (B, C, H, W), weight (C, 1, kh, kw).

    Equals F.conv2d(x, weight, bias, 1, dilation * (k - 1) // 2, dilation, groups=C) within float
    rounding. Under CUDA autocast, x, weight and bias are cast to the autocast dtype first, as
    autocast does for F.conv2d; gradients come back in the dtype of each input.
    """
    check(x, weight, bias, dilation)
    if x.device.type == "cuda" and torch.is_autocast_enabled("cuda"):
        dtype = torch.get_autocast_dtype("cuda")
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise ValueError(f"expected x, weight and bias of one dtype (as F.conv2d does), got {x.dtype}, "
                         f"{weight.dtype} and {None if bias is None else bias.dtype}")
    return _TritonDepthwiseConv.apply(x, weight, bias, dilation)


# ----------------------------------------------------------------------------------------------
# When to use it: measured once per shape, never guessed.

_decisions: dict[tuple, bool] = {}  # (C, H, W, kh, kw, dilation, dtype, channels_last, grad) -> faster?


_forced: str | None = None  # set by `forced()`; a global, so torch.compile guards on it and recompiles


def mode() -> str:
    """"auto" (default), "triton" or "torch": `forced()`'s choice, else the UNIREP_DWCONV environment variable."""
    return _forced or env.dwconv_choice()


def use_triton(x: Tensor, weight: Tensor, dilation: int = 1) -> bool:
    """Whether `unirep_lite.dwconv` should run this depthwise conv with the Triton kernels.

    False on anything but CUDA tensors, without Triton, and for arguments the kernels don't take.
    UNIREP_DWCONV=triton / torch forces the choice; with auto (the default) the first call for a shape
    times both (forward, plus backward when gradients are needed) and the answer is kept for the process.
    """
    if x.device.type != "cuda" or not available():
        return False
    choice = mode()
    if choice == "torch":
        return False
    # the dtype the conv will run in: autocast's on CUDA (`depthwise_conv2d` casts), else x's
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else x.dtype
    try:
        check(x, weight, None, dilation, dtype)
    except ValueError:
        return False
    if choice == "triton":
        return True
    grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    key = (*x.shape[1:], *weight.shape[-2:], dilation, dtype, x.is_contiguous(memory_format=torch.channels_last), grad)
    if key not in _decisions:
        if torch.compiler.is_compiling() or torch.cuda.is_current_stream_capturing():
            return False  # can't time here; an eager call for this shape decides for later compiles
        seconds = measure(x.to(dtype), weight.to(dtype), dilation, grad)
        _decisions[key] = seconds["triton"] < seconds["torch"]
    return _decisions[key]


def decisions() -> dict[tuple, bool]:
    """The choices made so far (a copy), for benchmarks and reports."""
    return dict(_decisions)


def measure(x: Tensor, weight: Tensor, dilation: int = 1, grad: bool = False, reps: int = 10) -> dict[str, float]:
    """Seconds per call of the Triton kernels and of F.conv2d (cuDNN) on these arguments: the median of
    `reps` timed calls after a warm-up (the first Triton call autotunes). With grad: forward + backward."""
    C, (kh, kw) = x.shape[1], weight.shape[-2:]
    pad = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
    x, weight = x.detach().requires_grad_(grad), weight.detach().to(x.dtype).requires_grad_(grad)  # fresh leaves
    fns = {"triton": lambda: depthwise_conv2d(x, weight, None, dilation),
           "torch": lambda: F.conv2d(x, weight, None, 1, pad, dilation, C)}
    seconds = {}
    with torch.autocast(x.device.type, enabled=False), torch.set_grad_enabled(grad):
        g = torch.randn_like(x)
        for name, fn in fns.items():
            def step():
                y = fn()
                if grad:
                    torch.autograd.grad(y, (x, weight), g)
            for _ in range(2):
                step()
            times = []
            for _ in range(reps):
                torch.cuda.synchronize(x.device)
                start = time.perf_counter()
                step()
                torch.cuda.synchronize(x.device)
                times.append(time.perf_counter() - start)
            seconds[name] = sorted(times)[reps // 2]
    return seconds


class forced:
    """Context manager: the choice is `choice` ("auto", "triton", "torch") inside, whatever UNIREP_DWCONV says.

    For benchmarks that time both in one process. torch.compile recompiles for each choice.
    """

    def __init__(self, choice: str):
        if choice not in env.DWCONV_CHOICES:
            raise ValueError(f"choice must be one of {', '.join(env.DWCONV_CHOICES)}, got {choice!r}")
        self.choice = choice

    def __enter__(self):
        global _forced
        self.before, _forced = _forced, self.choice

    def __exit__(self, *exc):
        global _forced
        _forced = self.before
