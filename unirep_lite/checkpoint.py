"""Load the authors' released `.pth` checkpoints (training or deploy structure) into our models."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

MAX_LISTED = 10  # keys shown per category in a mismatch message


def unwrap_state_dict(obj) -> dict:
    """The bare state_dict inside a checkpoint: bare, or under 'model' / 'state_dict' / 'model_ema'."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a checkpoint holding a state_dict (a mapping), got {type(obj).__name__}")
    for key in ("model", "state_dict", "model_ema"):
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    sd = {k.removeprefix("module."): v for k, v in obj.items()}  # saved from DataParallel/DDP
    if not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError("the checkpoint does not contain a state_dict of tensors (looked at the top level, "
                         "'model', 'state_dict' and 'model_ema')")
    return sd


def is_deploy_state_dict(sd: Mapping) -> bool:
    """Deploy checkpoints have no BatchNorm statistics in the blocks and no layer scale."""
    return not any(k.startswith("stages.") and k.endswith("running_mean") for k in sd)


def describe_mismatch(expected: Mapping, got: Mapping) -> str:
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = sorted(k for k in set(expected) & set(got) if tuple(expected[k].shape) != tuple(got[k].shape))
    lines = []
    for title, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" ... and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
            lines.append(f"{len(keys)} {title} keys: {', '.join(keys[:MAX_LISTED])}{more}")
    for k in shapes[:MAX_LISTED]:
        lines.append(f"shape of {k}: model {tuple(expected[k].shape)}, checkpoint {tuple(got[k].shape)}")
    return "\n".join(lines)


def load_checkpoint(model: nn.Module, source, strict: bool = True) -> nn.Module:
    """Load a checkpoint (a path or an already loaded object) into `model`; returns the model.

    A training-structure checkpoint loads into a deploy model too: it is loaded into a training
    copy, which is then reparameterized. The reverse cannot be done (merged kernels don't split), so
    a deploy checkpoint needs a model built with deploy=True. On any mismatch a ValueError lists the
    missing and unexpected keys and the wrong shapes.
    """
    from .model import UniRepLKNet, reparameterize

    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint file at {path}")
        source = torch.load(path, map_location="cpu", weights_only=True)
    sd = unwrap_state_dict(source)
    model_deploy = getattr(model, "deploy", False)
    if isinstance(model, UniRepLKNet) and is_deploy_state_dict(sd) != model_deploy:
        if model_deploy:  # training checkpoint -> deploy model
            train = UniRepLKNet(in_chans=model.in_chans, num_classes=model.num_classes, depths=model.depths,
                                dims=model.dims, kernel_sizes=model.kernel_sizes, deploy=False)
            load_checkpoint(train, sd, strict=strict)
            sd = reparameterize(train.to(next(model.parameters())).eval(), inplace=True).state_dict()
        else:
            raise ValueError("this checkpoint is in the deploy structure (merged kernels, no BatchNorm "
                             "statistics): create the model with deploy=True to load it")
    expected = model.state_dict()
    problems = describe_mismatch(expected, sd)
    if problems and strict:
        raise ValueError(f"checkpoint does not match the model:\n{problems}")
    if not strict:
        sd = {k: v for k, v in sd.items() if k in expected and tuple(v.shape) == tuple(expected[k].shape)}
    model.load_state_dict(sd, strict=strict)
    return model


def atomic_save(obj, path) -> Path:
    """torch.save to a temporary file beside `path`, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_checkpoint(model: nn.Module, path) -> Path:
    """Save a bare state_dict (the authors' layout), atomically."""
    return atomic_save(model.state_dict(), path)
