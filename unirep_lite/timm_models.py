"""timm-native UniRepLKNet: the nine variants in timm's model registry, built by `create_model`.

`import unirep_lite` calls `register()`, after which timm's own API builds our model:

    import timm, unirep_lite
    model = timm.create_model("unireplknet_a", num_classes=10, in_chans=1)        # == unirep_lite.create_model
    feats = timm.create_model("unireplknet_a", features_only=True)                 # 4 maps, strides 4..32
    deploy = timm.utils.reparameterize_model(model.eval())                         # == unirep_lite.reparameterize
    model = timm.create_model("unireplknet_a", pretrained=True)                   # A, F, P, N: from the cache
    model = timm.create_model("unireplknet_s", pretrained=True,                    # others: a LOCAL file
                              pretrained_cfg_overlay=dict(file="unireplknet_s_in1k_224_acc83.91.pth"))

timm declined to add UniRepLKNet, so timm downloads nothing: each `pretrained_cfg` names the authors'
released file (Hugging Face repo `DingXiaoH/UniRepLKNet`, file names as in their `unireplknet.py`)
as a fact. `pretrained=True` takes a local copy (`file=`) or a loaded `state_dict=`, else, for the
ImageNet-1K weights of A, F, P and N, the file that `python -m unirep_lite.pretrained download A`
stored in the cache (timm's `cache_dir=` is its folder; a missing file is an error saying so). Loading goes
through `checkpoint.load_checkpoint` (bare or wrapped, training or deploy structure); with another
`num_classes` than the file's, the classifier is left at its initialisation, as timm does.

One entrypoint per variant, as in timm's own model files; `register()` hands them to timm's
`register_model`. Without timm it does nothing. Names already registered by this module (a
re-import) are left as they are; names registered by someone else (e.g. the authors' file) are not
overwritten.
"""
from __future__ import annotations

import warnings

from torch import Tensor, nn

from . import releases
from .checkpoint import load_checkpoint, read_state_dict
from .model import IN1K_RELEASES, create_model

try:
    import timm
    from timm.models import (
        FeatureInfo,
        adapt_input_conv,
        generate_default_cfgs,
        is_model,
        model_entrypoint,
        register_model,
        resolve_pretrained_cfg,
    )
except ImportError:  # timm is optional: without it the entrypoints are never registered
    timm = None

HF_HUB_ID = "DingXiaoH/UniRepLKNet"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# timm tag -> (released file, classes, input size) per variant; the authors' `huggingface_file_names`
RELEASED = {
    "a": {"in1k": (IN1K_RELEASES["a"].filename, 1000, 224)},
    "f": {"in1k": (IN1K_RELEASES["f"].filename, 1000, 224)},
    "p": {"in1k": (IN1K_RELEASES["p"].filename, 1000, 224)},
    "n": {"in1k": (IN1K_RELEASES["n"].filename, 1000, 224)},
    "t": {"in1k": ("unireplknet_t_in1k_224_acc83.21.pth", 1000, 224)},
    "s": {"in1k": ("unireplknet_s_in1k_224_acc83.91.pth", 1000, 224),
          "in22k_ft_in1k_384": ("unireplknet_s_in22k_to_in1k_384_acc86.44.pth", 1000, 384),
          "in22k": ("unireplknet_s_in22k_pretrain.pth", 21841, 224)},
    "b": {"in22k_ft_in1k_384": ("unireplknet_b_in22k_to_in1k_384_acc87.40.pth", 1000, 384),
          "in22k": ("unireplknet_b_in22k_pretrain.pth", 21841, 224)},
    "l": {"in22k_ft_in1k_384": ("unireplknet_l_in22k_to_in1k_384_acc87.88.pth", 1000, 384),
          "in22k": ("unireplknet_l_in22k_pretrain.pth", 21841, 224)},
    "xl": {"in22k_ft_in1k_384": ("unireplknet_xl_in22k_to_in1k_384_acc87.96.pth", 1000, 384),
           "in22k": ("unireplknet_xl_in22k_pretrain.pth", 21841, 224)},
}


def pretrained_cfgs() -> dict[str, dict]:
    """'unireplknet_<v>.<tag>' -> timm pretrained_cfg fields naming the authors' released weights."""
    cfgs = {}
    for v, tags in RELEASED.items():
        for tag, (filename, classes, size) in tags.items():
            cfgs[f"unireplknet_{v}.{tag}"] = dict(
                hf_hub_id=HF_HUB_ID, hf_hub_filename=filename, num_classes=classes,
                input_size=(3, size, size), pool_size=(size // 32, size // 32), crop_pct=1.0 if size > 224 else 0.875,
                interpolation="bicubic", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                first_conv="downsample_layers.0.0", classifier="head", license="apache-2.0",
                paper_ids="arXiv:2311.15599")
    return cfgs


# timm's register_model reads the pretrained cfgs from `default_cfgs` of the entrypoint's module
default_cfgs = generate_default_cfgs(pretrained_cfgs()) if timm is not None else {}


class StageFeatures(nn.Module):
    """`features_only=True`: the backbone's stage outputs (strides 4, 8, 16, 32) as a list, like timm's."""

    def __init__(self, model: nn.Module, out_indices=(0, 1, 2, 3)):
        super().__init__()
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ValueError(f"out_indices must be stage indices in 0..3, got {out_indices}")
        model.head, model.norm = nn.Identity(), nn.Identity()  # unused: features stop at the stages
        self.model, self.out_indices = model, out_indices
        self.feature_info = FeatureInfo([dict(num_chs=d, reduction=4 * 2**i, module=f"stages.{i}")
                                         for i, d in enumerate(model.dims)], out_indices)

    def forward(self, x: Tensor) -> list[Tensor]:
        stages = self.model.forward_stages(x)
        return [stages[i] for i in self.out_indices]


def _build(name: str, pretrained: bool = False, pretrained_cfg=None, pretrained_cfg_overlay=None,
           cache_dir=None, features_only: bool = False, out_indices=(0, 1, 2, 3), **kwargs) -> nn.Module:
    """timm entrypoint body: `unirep_lite.create_model(name, **kwargs)` + pretrained_cfg + local weights."""
    cfg = resolve_pretrained_cfg(name, pretrained_cfg=pretrained_cfg,
                                 pretrained_cfg_overlay=pretrained_cfg_overlay).to_dict()
    if features_only:
        kwargs["num_classes"] = 0
    elif cfg.get("num_classes") is not None:
        kwargs.setdefault("num_classes", cfg["num_classes"])  # timm's convention: the weights' classes
    model = create_model(name, **kwargs)
    model.pretrained_cfg = model.default_cfg = cfg
    if pretrained:
        load_checkpoint(model, _adapted_state_dict(model, cfg, name, cache_dir))
    return StageFeatures(model, out_indices) if features_only else model


def _adapted_state_dict(model: nn.Module, cfg: dict, name: str, cache_dir=None) -> dict:
    """The local weights named by cfg ('state_dict' or 'file', else the cached release), fitted to the
    model's in_chans and classes."""
    source = cfg.get("state_dict") or cfg.get("file")
    cached = [k for k, r in IN1K_RELEASES.items() if r.filename == cfg.get("hf_hub_filename")]
    if (source is None or (isinstance(source, str) and not source)) and cached:
        source = releases.require(cached[0], cache_dir)
    if source is None or (isinstance(source, str) and not source):
        raise RuntimeError(
            f"{name}: unirep_lite downloads nothing; get the authors' {cfg.get('hf_hub_filename')!r} "
            f"(Hugging Face {cfg.get('hf_hub_id')!r}) yourself and pass "
            "pretrained_cfg_overlay=dict(file='path/to/it.pth')")
    sd = read_state_dict(source)
    stem = cfg["first_conv"] + ".weight"
    if stem in sd and sd[stem].shape[1] != model.in_chans:  # timm's rule: sum or repeat the RGB filters
        sd[stem] = adapt_input_conv(model.in_chans, sd[stem])
    prefix = cfg["classifier"] + "."
    ours = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    if {k: v.shape for k, v in ours.items()} != {k: v.shape for k, v in sd.items() if k.startswith(prefix)}:
        sd = {k: v for k, v in sd.items() if not k.startswith(prefix)}
        sd.update(ours)  # another number of classes (or none): keep the model's own, initialised classifier
    return sd


# ----------------------------------------------------------------------------- the entrypoints
# timm's model files decorate each entrypoint with @register_model; `_entrypoint` only records it, and
# `register()` registers what it recorded (see the module docstring). Keywords go to `create_model`.

ENTRYPOINTS = []


def _entrypoint(fn):
    ENTRYPOINTS.append(fn)
    return fn


@_entrypoint
def unireplknet_a(pretrained: bool = False, **kwargs) -> nn.Module:
    return _build("unireplknet_a", pretrained, **kwargs)


@_entrypoint
def unireplknet_f(pretrained: bool = False, **kwargs) -> nn.Module:
    return _build("unireplknet_f", pretrained, **kwargs)


@_entrypoint
def unireplknet_p(pretrained: bool = False, **kwargs) -> nn.Module:
    return _build("unireplknet_p", pretrained, **kwargs)


@_entrypoint
def unireplknet_n(pretrained: bool = False, **kwargs) -> nn.Module:
    return _build("unireplknet_n", pretrained, **kwargs)


@_entrypoint
def unireplknet_t(pretrained: bool = False, **kwargs) -> nn.Module:
    return _build("unireplknet_t", pretrained, **kwargs)


@_entrypoint
def unireplknet_s(pretrained: bool = False, **kwargs) -> nn.Module:
    return _build("unireplknet_s", pretrained, **kwargs)


@_entrypoint
def unireplknet_b(pretrained: bool = False, **kwargs) -> nn.Module:
    return _build("unireplknet_b", pretrained, **kwargs)


@_entrypoint
def unireplknet_l(pretrained: bool = False, **kwargs) -> nn.Module:
    return _build("unireplknet_l", pretrained, **kwargs)


@_entrypoint
def unireplknet_xl(pretrained: bool = False, **kwargs) -> nn.Module:
    return _build("unireplknet_xl", pretrained, **kwargs)


def register() -> list[str]:
    """Register the nine entrypoints with timm (no-op without timm); returns the names registered now."""
    if timm is None:
        return []
    done = []
    for fn in ENTRYPOINTS:
        name = fn.__name__
        if is_model(name):
            owner = getattr(model_entrypoint(name), "__module__", "?")
            if owner != __name__:
                warnings.warn(f"timm already has a model {name!r} (from {owner}); unirep_lite leaves it as it is",
                              stacklevel=2)
            continue
        register_model(fn)
        done.append(name)
    return done
