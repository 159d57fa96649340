"""Mixed precision on the real model of every recipe (front-end + UniRepLKNet), in every block mode.

Under `torch.autocast` every custom piece (the depthwise conv's autograd function, the merged
kernels of fast-training mode, the front-ends) must behave like torch's built-in ops: forward and
backward in consistent dtypes, gradients in each parameter's own dtype, a finite fp32 loss, and an
optimizer step that keeps the weights finite. On the CPU autocast means bfloat16; the same test runs
on CUDA (bf16 and fp16) when a GPU exists. A toy model would not have caught the crash of a real
recipe's first backward on a GPU, so these use the recipes' own models and data. Their FAST maps
shrink to 1 x 1, where the CPU's bf16 convolutions cannot be trusted: the model runs those in float32
(`unirep_lite.precision`), and a NaN anyway fails the test naming the layer it was born in.
"""
import contextlib
import math

import pytest
import torch

import unirep_lite
from unirep_lite import recipes, set_mode
from unirep_lite.train import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

NAMES = ["digits", "speech", "video", "shapes", "weather"]
DEVICES = [("cpu", torch.bfloat16)] + [
    ("cuda", dtype) for dtype in (torch.bfloat16, torch.float16) if torch.cuda.is_available()]


def batch(recipe, n=4):
    ds = recipe.load("val", "fast")
    xs, ys = zip(*(ds[i] for i in range(n)))
    y = torch.stack(ys) if torch.is_tensor(ys[0]) else torch.as_tensor(ys)
    return torch.stack(xs), y


@contextlib.contextmanager
def nan_origin(model):
    """Yields a list that names, in order, every module whose output is not finite (forward pass)."""
    found = []

    def hook(module, args, out):
        if torch.is_tensor(out) and out.is_floating_point() and not torch.isfinite(out).all():
            found.append(f"{names[module]} ({type(module).__name__}, output {out.dtype} "
                         f"{tuple(out.shape)}, input {tuple(args[0].shape) if args else ()})")

    names = {m: n or "model" for n, m in model.named_modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        yield found
    finally:
        for h in handles:
            h.remove()


def loss_of(recipe, out, y):
    if recipe.task == "classification":
        return torch.nn.functional.cross_entropy(out.float(), y)
    return torch.nn.functional.mse_loss(out.float(), y.float())


@pytest.mark.parametrize("device,dtype", DEVICES, ids=lambda v: str(v).replace("torch.", ""))
@pytest.mark.parametrize("mode", ["exact", "reference", "fast_train"])
@pytest.mark.parametrize("name", NAMES)
def test_real_recipe_model_trains_a_step_under_autocast(name, mode, device, dtype):
    recipe = recipes.get(name)
    x, y = batch(recipe)
    x, y = x.to(device), y.to(device)
    torch.manual_seed(0)
    model = set_mode(recipe.make_model(variant="unireplknet_a", lk_size=13, size="fast"), mode).to(device).train()
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with torch.autocast(device, dtype=dtype), nan_origin(model) as bad:
        out = model(x)
        loss = loss_of(recipe, out, y)
    assert not bad, f"NaN/inf first produced by {bad[0]}"
    assert out.dtype in (dtype, torch.float32)  # the head runs in the autocast dtype, a loss in fp32
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    loss.backward()
    for k, p in model.named_parameters():
        if p.grad is not None:
            assert p.grad.dtype == p.dtype, k
            assert torch.isfinite(p.grad).all(), k
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(before[k], p) for k, p in model.named_parameters())


@pytest.mark.parametrize("device,amp", [("cpu", "bf16")] + [
    ("cuda", a) for a in ("bf16", "fp16") if torch.cuda.is_available()])
def test_fit_with_mixed_precision_on_a_real_recipe(device, amp, tmp_path):
    """`fit` itself under autocast: a few steps of the digits recipe, deploy model checked, and the
    checkpoint written on this device loads on the CPU."""
    recipe = recipes.get("digits")
    ds = recipe.load("val", "fast")
    xs, ys = zip(*(ds[i] for i in range(64)))
    x, y = torch.stack(xs), torch.as_tensor(ys)
    torch.manual_seed(0)
    model = recipe.make_model(size="fast", depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    cfg = TrainConfig(epochs=1, batch_size=16, amp=amp, device=device, progress=False,
                      checkpoint_path=str(tmp_path / "run.pt"))
    result = fit(model, (x[:48], y[:48]), (x[48:], y[48:]), cfg)
    assert all(math.isfinite(v) for v in result.history.step_loss)
    assert result.deploy_check["agreement"] == 1.0  # the deploy check itself runs in float32
    cpu = recipe.make_model(size="fast", depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    unirep_lite.load_checkpoint(cpu, tmp_path / "run.pt")
