"""CPU bfloat16 on small maps: the model's convolutions step out of autocast there, and only there."""
import pytest
import torch

from unirep_lite.dwconv import depthwise_conv2d
from unirep_lite.precision import CPU_BF16_MIN_SIDE, Conv2d, cpu_bf16_unsafe


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("shape", [(4, 160, 3, 2), (4, 64, 1, 1), (2, 40, 7, 30)])
def test_a_small_map_is_convolved_in_float32_inside_cpu_bf16_autocast(shape):
    # the shapes where oneDNN's bf16 conv returned NaN (Intel AMX) or wrong weight gradients
    torch.manual_seed(0)
    C = shape[1]
    conv = Conv2d(C, 2 * C, 3, stride=2, padding=1)
    x = torch.randn(shape, requires_grad=True)
    with bf16_autocast():
        y = conv(x)
    assert y.dtype == torch.float32
    y.square().sum().backward()
    gx, gw = x.grad.clone(), conv.weight.grad.clone()
    x.grad, conv.weight.grad = None, None
    ref = torch.nn.functional.conv2d(x, conv.weight, conv.bias, 2, 1)
    ref.square().sum().backward()
    close = lambda a, b: torch.allclose(a, b, rtol=1e-5, atol=1e-5)  # noqa: E731  float32 vs float32
    assert close(y, ref) and close(gx, x.grad) and close(gw, conv.weight.grad)


def test_a_large_map_keeps_bf16_and_outside_autocast_nothing_changes():
    conv = Conv2d(8, 16, 3, padding=1)
    big = torch.randn(2, 8, CPU_BF16_MIN_SIDE, CPU_BF16_MIN_SIDE)
    with bf16_autocast():
        assert conv(big).dtype == torch.bfloat16 and not cpu_bf16_unsafe(big)
        assert cpu_bf16_unsafe(big[..., :CPU_BF16_MIN_SIDE - 1])
    small = torch.randn(2, 8, 2, 2)
    assert not cpu_bf16_unsafe(small)  # no autocast: no guard
    assert torch.allclose(conv(small), torch.nn.functional.conv2d(small, conv.weight, conv.bias, 1, 1), atol=1e-6)
    with torch.autocast("cpu", dtype=torch.float16):
        assert not cpu_bf16_unsafe(small)


def test_the_depthwise_conv_takes_float32_on_a_small_map():
    torch.manual_seed(0)
    x, w = torch.randn(2, 16, 3, 2), torch.randn(16, 1, 5, 5, requires_grad=True)
    with bf16_autocast():
        y = depthwise_conv2d(x, w)
    assert y.dtype == torch.float32
    assert torch.allclose(y, depthwise_conv2d(x, w), atol=1e-6)
    y.sum().backward()
    assert w.grad.dtype == torch.float32 and torch.isfinite(w.grad).all()
