"""The end of a run: reparameterize into the deploy structure, check it predicts the same, save it."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..batches import split_batch, to_device
from ..blocks import UniRepLKNetBlock
from ..checkpoint import DEPLOY_FORMAT, atomic_save, state_dict_digest


def is_unireplknet(model: nn.Module) -> bool:
    """True when `model` contains UniRepLKNet blocks (fit then reparameterizes it by default)."""
    return any(isinstance(m, UniRepLKNetBlock) for m in model.modules())


def save_deploy(deploy_model: nn.Module, path) -> Path:
    """Write the deploy model's weights (atomically, with their digest) where load_checkpoint finds them."""
    sd = deploy_model.state_dict()
    return atomic_save({"format": DEPLOY_FORMAT, "model": sd, "model_sha256": state_dict_digest(sd)}, path)


@torch.no_grad()
def check_deploy(model: nn.Module, reparameterize_fn, loader: DataLoader, task: str,
                 device: torch.device) -> tuple[nn.Module, dict]:
    """Reparameterize and check, in float32, that the deploy model predicts what the trained one does.

    Both models see each batch together, so shuffling or random augmentation in `loader` can't
    make them disagree.
    """
    model.eval()
    deploy_model = reparameterize_fn(model).to(device).eval()
    n, agree, max_abs_diff, scale = 0, 0, 0.0, 0.0
    for batch in loader:
        x, _ = split_batch(batch)
        x = to_device(x, device, channels_last=False)
        ref, out = model(x).float(), deploy_model(x).float()
        n += len(ref)
        diff = (out - ref).abs().max().item()
        if not (torch.isfinite(ref).all() and torch.isfinite(out).all()):
            diff = float("nan")  # max() would drop a NaN: keep it, it fails the check below
        max_abs_diff = float("nan") if math.isnan(diff) or math.isnan(max_abs_diff) else max(max_abs_diff, diff)
        scale = max(scale, ref.abs().max().item())
        if task == "classification":
            agree += (out.argmax(1) == ref.argmax(1)).sum().item()
    check = {"n": n, "max_abs_diff": max_abs_diff}
    if math.isnan(max_abs_diff):
        check["agreement"] = agree / n if task == "classification" else None
        ok = False
    elif task == "classification":
        check["agreement"] = agree / n
        ok = agree == n
    else:
        # float32 reassociation in the merged kernels moves outputs by ~1e-6 relative; allow 1e-4.
        ok = max_abs_diff <= 1e-4 * max(1.0, scale)
    if not ok:
        raise RuntimeError(f"the reparameterized model does not reproduce the trained one: {check}")
    return deploy_model, check
