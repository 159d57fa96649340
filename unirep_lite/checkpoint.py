"""Checkpoints: read them safely, fit them to a model, save atomically, and save/restore a whole
training state (model, optimizer, schedule, RNGs) as a pair.

`load_checkpoint` is the one place that adapts a checkpoint to a model. It takes the authors'
released `.pth` files as they are (bare or under 'model' / 'state_dict' / 'model_ema', keys saved
from DataParallel), and turns a training-structure checkpoint into the weights of a deploy model:
each UniRepLKNet in the model, bare or wrapped (e.g. `nn.Sequential(frontend, backbone)`), gets a
training twin built from the options it records (`UniRepLKNet.config`), which loads its part of the
checkpoint and is reparameterized. `create_model(..., pretrained=path)` builds and loads in one call.
"""
from __future__ import annotations

import hashlib
import os
import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from . import releases as released
from .model import IN1K_RELEASES, UniRepLKNet, reparameterize
from .model import create_model as build_model

TRAIN_FORMAT = "unirep_lite.train/1"    # a whole training state: `save_training_state`
DEPLOY_FORMAT = "unirep_lite.deploy/1"  # a finished run's deploy weights under "model"

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


def read_state_dict(source) -> dict:
    """The bare state_dict of a checkpoint file (path) or of an already loaded checkpoint object."""
    if isinstance(source, (str, Path)):
        source = read_checkpoint(source)
    return unwrap_state_dict(source)


def check_state_dict(model: nn.Module, sd: Mapping, strict: bool = True) -> dict:
    """`sd` ready for `model.load_state_dict`: with strict, a ValueError listing every mismatch;
    without, only the tensors whose names and shapes match."""
    expected = model.state_dict()
    problems = describe_mismatch(expected, sd)
    if problems and strict:
        raise ValueError(f"checkpoint does not match the model:\n{problems}")
    if not strict:
        sd = {k: v for k, v in sd.items() if k in expected and tuple(v.shape) == tuple(expected[k].shape)}
        if not any(expected[k].is_floating_point() for k in sd):  # BatchNorm's step counters always fit
            raise ValueError(f"strict=False, but no tensor of the checkpoint matches the model in name and "
                             f"shape (0 of the model's {len(expected)} loaded): it is not this model's "
                             f"checkpoint\n{problems}")
        if len(sd) < len(expected):
            warnings.warn(f"strict=False: loaded {len(sd)} of the model's {len(expected)} tensors; the rest keep "
                          f"their values\n{problems}", stacklevel=3)
    return dict(sd)


def state_dict_digest(sd: Mapping) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes: saved next to our weights, checked on load."""
    h = hashlib.sha256()
    for name in sorted(sd):
        t = sd[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_digest(ckpt, path) -> None:
    """Files we wrote carry "model_sha256": a flipped bit in a tensor must not load silently."""
    if isinstance(ckpt, dict) and "model_sha256" in ckpt and isinstance(ckpt.get("model"), Mapping):
        if state_dict_digest(ckpt["model"]) != ckpt["model_sha256"]:
            raise ValueError(f"{path}: the weights do not match the checksum saved with them: the file is "
                             "damaged (use an earlier checkpoint or train again)")


def read_checkpoint(path, *formats: str):
    """torch.load a checkpoint safely (weights_only: no code runs from the file), on the CPU.

    With `formats`, the file must be a dict whose "format" is one of them (our training and deploy
    files); errors name the file and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (no checkpoint file there)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated, foreign or non-torch file, or one that wants to run code
        raise ValueError(f"could not read {path} as a checkpoint: {e}") from e
    if formats and (not isinstance(ckpt, dict) or ckpt.get("format") not in formats):
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a {' or '.join(map(repr, formats))} file (found format {found!r})")
    _check_digest(ckpt, path)
    return ckpt


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


# ----------------------------------------------------------------------------- fitting a checkpoint

def load_checkpoint(model: nn.Module, source, strict: bool = True) -> nn.Module:
    """Load a checkpoint (a path or an already loaded object) into `model`; returns the model.

    Takes the authors' released `.pth` files, bare or wrapped. A training-structure checkpoint loads
    into a deploy model too (see the module docstring). The reverse cannot be done (merged kernels
    don't split), so a deploy checkpoint needs a model built with deploy=True. On any mismatch a
    ValueError lists the missing and unexpected keys and the wrong shapes.
    """
    sd = read_state_dict(source)
    for name, net in model.named_modules():
        if isinstance(net, UniRepLKNet):
            sd = _fit_structure(net, sd, f"{name}." if name else "", strict)
    model.load_state_dict(check_state_dict(model, sd, strict), strict=strict)
    return model


def _fit_structure(net: UniRepLKNet, sd: dict, prefix: str, strict: bool) -> dict:
    """`sd` with the keys of `net` (those under `prefix`) in `net`'s structure, training or deploy."""
    part = {k.removeprefix(prefix): v for k, v in sd.items() if k.startswith(prefix)}
    if not part or is_deploy_state_dict(part) == net.deploy:
        return sd
    where = f" (under {prefix[:-1]!r})" if prefix else ""
    if not net.deploy:
        raise ValueError(f"this checkpoint{where} is in the deploy structure (merged kernels, no BatchNorm "
                         "statistics): create the model with deploy=True to load it")
    twin = UniRepLKNet(**net.config).to(next(net.parameters()))  # same options, dtype and device
    twin.load_state_dict(check_state_dict(twin, part, strict), strict=strict)
    deploy = reparameterize(twin.eval(), inplace=True).state_dict()
    return {k: v for k, v in sd.items() if not k.startswith(prefix)} | {prefix + k: v for k, v in deploy.items()}


def create_model(*args, pretrained=None, cache_dir=None, **kwargs) -> UniRepLKNet:
    """`model.create_model(*args, **kwargs)` with the weights of `pretrained` loaded: a path to one of
    the authors' `.pth` files or to our own, a loaded checkpoint, or True / a variant name ("A",
    "unireplknet_a") for the authors' ImageNet-1K weights of A, F, P or N, taken from the cache of
    `python -m unirep_lite.pretrained download A` (`cache_dir`: its folder). Nothing is downloaded here."""
    model = build_model(*args, **kwargs)
    if pretrained is None or pretrained is False:
        return model
    if pretrained is True or (isinstance(pretrained, str) and pretrained.strip().lower().removeprefix(
            "unireplknet_") in IN1K_RELEASES):
        name = args[0] if args else kwargs.get("name", "unireplknet_a")
        key = released.release_key(name) if pretrained is True else released.release_key(pretrained)
        if key != name.lower().removeprefix("unireplknet_"):
            raise ValueError(f"pretrained={pretrained!r} names the weights of unireplknet_{key}, not of {name!r}")
        pretrained = released.require(key, cache_dir)
    return load_checkpoint(model, pretrained)


# ----------------------------------------------------------------------------- training state

def save_training_state(path, *, model: nn.Module, optimizer, scheduler, scaler, **progress) -> Path:
    """Everything a resumed run needs to continue exactly, atomically: the model, optimizer,
    scheduler and grad-scaler states, every random number generator, and `progress` (epoch, step,
    history, config, ...: plain data kept as given)."""
    sd = model.state_dict()
    return atomic_save({"format": TRAIN_FORMAT, "model": sd, "model_sha256": state_dict_digest(sd),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(), "rng": rng_state(), **progress}, path)


def load_training_state(path, *, model: nn.Module, optimizer, scheduler, scaler,
                        check: Callable[[dict], None] | None = None) -> dict:
    """Restore a state written by `save_training_state` into these objects and the RNGs; returns it.

    Nothing is changed unless the file is a training state of the same architecture and `check`
    (given the whole state, e.g. to compare the run's settings) raised nothing.
    """
    state = read_checkpoint(path, TRAIN_FORMAT)
    problems = describe_mismatch(model.state_dict(), state["model"])
    if problems:
        raise ValueError(f"{path} was saved from a different model:\n{problems}")
    if check is not None:
        check(state)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state["scaler"]:  # empty when saved without fp16 (e.g. on the CPU); then start afresh
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return state


def rng_state() -> dict:
    """This process's Python, NumPy, torch (and CUDA) random states, as a checkpoint stores them."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned: the random numbers continue exactly where they were."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
