"""The Triton depthwise conv equals F.conv2d: outputs, input, weight and bias gradients.

On a CPU the kernels run in Triton's interpreter, which must be switched on (TRITON_INTERPRET=1)
before Triton is imported: `test_kernels_in_the_interpreter` runs this file's `test_interp_*` tests
in a child pytest with the variable set, so no other test sees it. Tiny shapes there (the interpreter
runs every program in numpy); on a GPU the same checks run at real sizes. Speed is measured by
`python -m unirep_lite.bench --device cuda` and `python -m unirep_lite.bench dwconv`, never asserted here.
"""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from unirep_lite import triton_dwconv as T


def interpreted() -> bool:
    """Triton was imported with its interpreter on (its own jit'd helpers are interpreted too)."""
    if not (T.available() and T.interpreting()):
        return False
    from triton.runtime.interpreter import InterpretedFunction
    return isinstance(T.tl.sum, InterpretedFunction)


interp = pytest.mark.skipif(not interpreted(), reason="runs in the child pytest of test_kernels_in_the_interpreter")
SMALL = dict(BLOCK_H=4, BLOCK_W=4, BLOCK_C=4)  # several tiles and channel blocks per map
ONE = dict(BLOCK_H=8, BLOCK_W=16, BLOCK_C=8)  # one program per map: keeps large K quick to interpret


@pytest.mark.skipif(not T.available() or interpreted(), reason="needs Triton; already in the interpreter")
def test_kernels_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join(sys.path))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "interp_"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout.splitlines()[-1], run.stdout[-2000:]


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setattr(T, "INTERPRET_BLOCKS", SMALL)
    yield monkeypatch


def reference(x, w, b, dilation, g):
    """F.conv2d in float64: output and the gradients of x, w, b for the output gradient g."""
    x, w = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    b = None if b is None else b.detach().double().requires_grad_()
    pad = [dilation * (k - 1) // 2 for k in w.shape[-2:]]
    y = F.conv2d(x, w, b, 1, pad, dilation, x.shape[1])
    grads = torch.autograd.grad(y, [t for t in (x, w, b) if t is not None], g.double())
    return y, grads


def ours(x, w, b, dilation, g):
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    b = None if b is None else b.detach().requires_grad_()
    y = T.depthwise_conv2d(x, w, b, dilation)
    grads = torch.autograd.grad(y, [t for t in (x, w, b) if t is not None], g)
    return y, grads


def make(B, C, H, W, k, device="cpu", dtype=torch.float32, layout=torch.channels_last, bias=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.randn(B, C, H, W, generator=gen).to(device, dtype).contiguous(memory_format=layout)
    w = torch.randn(C, 1, kh, kw, generator=gen).to(device, dtype) / (kh * kw) ** 0.5
    b = torch.randn(C, generator=gen).to(device, dtype) if bias else None
    g = torch.randn(B, C, H, W, generator=gen).to(device, dtype).contiguous(memory_format=layout)
    return x, w, b, g


def assert_matches(x, w, b, g, dilation, atol):
    y, grads = ours(x, w, b, dilation, g)
    y_ref, grads_ref = reference(x, w, b, dilation, g)
    assert y.dtype == x.dtype and y.shape == x.shape
    torch.testing.assert_close(y.double(), y_ref, atol=atol, rtol=atol)
    for name, got, want, inp in zip(("x", "weight", "bias"), grads, grads_ref, (x, w, b)):
        assert got.dtype == inp.dtype, name
        scale = max(1.0, want.abs().max().item())  # the weight gradient sums over the whole map
        torch.testing.assert_close(got.double(), want, atol=atol * scale, rtol=atol, msg=f"grad of {name}")
    return y


# (B, C, H, W, k, dilation, interpreter blocks): odd sizes, C not a multiple of BLOCK_C, batch 1 and 2
CASES = [
    (1, 5, 7, 9, 3, 1, SMALL),
    (2, 6, 13, 5, 5, 2, SMALL),
    (1, 5, 11, 6, 7, 3, SMALL),
    (1, 5, 9, 7, 3, 5, SMALL),
    (1, 5, 9, 7, 13, 1, ONE),
    (1, 3, 13, 5, 17, 1, ONE),
    (1, 3, 7, 9, 31, 1, ONE),
    (1, 4, 9, 6, (3, 5), 1, SMALL),  # non-square: what dwconv's crop leaves on a non-square map
]


@interp
@pytest.mark.parametrize("B,C,H,W,k,dilation,blocks", CASES, ids=lambda v: None if isinstance(v, dict) else str(v))
def test_interp_matches_conv2d_fp32(interpret, B, C, H, W, k, dilation, blocks):
    interpret.setattr(T, "INTERPRET_BLOCKS", blocks)
    y = assert_matches(*make(B, C, H, W, k), dilation, atol=1e-5)
    assert y.is_contiguous(memory_format=torch.channels_last)  # the output keeps the input's layout


@interp
def test_interp_nchw_input_and_no_bias(interpret):
    x, w, _, g = make(2, 5, 7, 6, 5, layout=torch.contiguous_format, bias=False)
    y = assert_matches(x, w, None, g, 2, atol=1e-5)
    assert y.is_contiguous()


@interp
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_interp_half_precision_accumulates_in_fp32(interpret, dtype):
    # inputs rounded to 16 bits, sums in float32: within the output's own rounding of the exact result
    atol = 1e-2 if dtype == torch.float16 else 4e-2
    assert_matches(*make(1, 5, 7, 9, 5, dtype=dtype), 1, atol=atol)


@interp
def test_interp_under_torch_compile(interpret):
    """The kernels are custom ops: torch.compile calls them as they are, gradients included."""
    x, w, b, g = make(1, 5, 7, 9, 3)
    f = torch.compile(T.depthwise_conv2d, backend="aot_eager", fullgraph=True)
    xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = f(xs, ws, b, 2)
    gx, gw = torch.autograd.grad(y, (xs, ws), g)
    y_ref, (gx_ref, gw_ref, _) = reference(x, w, b, 2, g)
    for got, want in ((y, y_ref), (gx, gx_ref), (gw, gw_ref)):
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_bad_arguments_are_named():
    x = torch.zeros(1, 4, 5, 5)
    for w, d, what in [(torch.zeros(4, 1, 4, 4), 1, "odd"), (torch.zeros(4, 1, 33, 33), 1, "31"),
                       (torch.zeros(3, 1, 3, 3), 1, "depthwise"), (torch.zeros(4, 1, 3, 3), 0, "dilation")]:
        with pytest.raises(ValueError, match=what):
            T.depthwise_conv2d(x, w, None, d)
    with pytest.raises(ValueError, match="one dtype"):
        T.depthwise_conv2d(x, torch.zeros(4, 1, 3, 3, dtype=torch.float64))


def test_dispatch_never_picks_triton_on_a_cpu(monkeypatch):
    x, w = torch.zeros(1, 4, 8, 8), torch.zeros(4, 1, 13, 13)
    for choice in ("auto", "triton", "torch"):
        monkeypatch.setenv("UNIREP_DWCONV", choice)
        assert T.use_triton(x, w, 1) is False
    monkeypatch.setenv("UNIREP_DWCONV", "fast")
    with pytest.raises(ValueError, match="auto, triton, torch"):
        T.mode()
    with T.forced("torch"):
        assert T.mode() == "torch"  # forced beats the environment variable
    with pytest.raises(ValueError, match="auto, triton, torch"):
        T.forced("cudnn")


def test_imports_without_triton(python_without):
    python_without("triton",
                   "from unirep_lite import triton_dwconv as T\n"
                   "import torch\n"
                   "assert not T.available()\n"
                   "assert not T.use_triton(torch.zeros(1, 2, 4, 4), torch.zeros(2, 1, 3, 3), 1)\n",
                   timeout=120)


# ------------------------------------------------------------------ real sizes, on a GPU only
cuda = pytest.mark.skipif(not (torch.cuda.is_available() and T.available()) or T.interpreting(),
                          reason="needs CUDA and Triton (not its interpreter)")


@cuda
@pytest.mark.parametrize("k,dilation", [(3, 1), (5, 1), (7, 1), (13, 1), (17, 1), (31, 1),
                                        (3, 2), (5, 2), (7, 3), (9, 4), (3, 5), (5, 7)])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format], ids=["cl", "nchw"])
def test_cuda_matches_conv2d(k, dilation, layout):
    assert_matches(*make(4, 40, 56, 56, k, device="cuda", layout=layout), dilation, atol=1e-4)


@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("C,size,k", [(40, 56, 13), (80, 28, 13), (320, 7, 3), (43, 17, 31)])
def test_cuda_half_precision(dtype, C, size, k):
    atol = 1e-2 if dtype == torch.float16 else 4e-2
    assert_matches(*make(8, C, size, size, k, device="cuda", dtype=dtype), 1, atol=atol)


@cuda
def test_cuda_autocast_like_conv2d():
    x, w, b, g = make(2, 40, 28, 28, 13, device="cuda")
    w, b = w.requires_grad_(), b.requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = T.depthwise_conv2d(x, w, b, 1)
        y_ref = F.conv2d(x, w, b, 1, 6, 1, 40)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    gw, gb = torch.autograd.grad(y.float().sum(), (w, b))
    assert gw.dtype == gb.dtype == torch.float32  # gradients in the parameters' dtype
    torch.testing.assert_close(y.float(), y_ref.float(), atol=4e-2, rtol=4e-2)


@cuda
def test_cuda_dispatch_measures_once(monkeypatch):
    monkeypatch.setenv("UNIREP_DWCONV", "auto")
    x, w, _, _ = make(8, 40, 56, 56, 13, device="cuda")
    choice = T.use_triton(x, w, 1)
    assert isinstance(choice, bool) and choice in T.decisions().values()
    monkeypatch.setenv("UNIREP_DWCONV", "torch")
    assert not T.use_triton(x, w, 1)
    monkeypatch.setenv("UNIREP_DWCONV", "triton")
    assert T.use_triton(x, w, 1)


def test_bench_dwconv_choices():
    from unirep_lite import bench

    assert bench.parse([]).dwconv == ["auto"]  # a CPU run: one choice, the table as before
    assert bench.parse(["--dwconv", "triton, torch"]).dwconv == ["triton", "torch"]
    with pytest.raises(SystemExit):
        bench.parse(["--dwconv", "cudnn"])


def test_bench_dwconv_shapes_are_the_models():
    from unirep_lite import bench

    shapes = bench.dwconv_shapes("a", 224)
    assert shapes[0] == (40, 56, 3, 1)  # stage 1: SmaK 3x3 only, no branches
    assert (80, 28, 13, 1) in shapes and (80, 28, 7, 2) in shapes and (320, 7, 3, 5) in shapes
    assert len(shapes) == 1 + 3 * 6  # each large-kernel stage: K plus its five dilated branches
    assert (320, 14, 3, 1) in bench.dwconv_shapes("t", 224)  # T's stage 3 alternates 13 and 3
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench.dwconv_main(["--model", "a"])
