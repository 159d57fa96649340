"""UniRepLKNet: a stem, four stages of LarK/SmaK blocks with downsampling between, and a head.

All nine sizes of the paper (Table 5) come from one table, `VARIANTS`; `create_model` builds any of
them with overrides. Module names match the authors' checkpoints (`downsample_layers`, `stages`,
`norm`, `head`), so their state_dicts load unchanged in both the training and the deploy structure.

Next to the model, what acts on a whole model: `reparameterize` (every block's own
`reparameterize()`) and the compute-mode switches (`set_mode`, `set_fast_train`, `set_reference`).
Loading checkpoints, the authors' included, is `checkpoint.load_checkpoint`.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from . import checks
from .blocks import MIN_DIM, MODES, DilatedReparamBlock, LayerNorm2d, UniRepLKNetBlock, check_layer_scale
from .precision import Conv2d
from .reparam import BRANCHES


@dataclass(frozen=True)
class Variant:
    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]
    stage3_pattern: tuple[int, ...]  # kernel sizes repeated along stage 3 (paper Table 5)
    paper_params_m: float  # paper Table 5 (M)
    paper_macs_g: float | None  # paper Table 5/6 "FLOPs" at 224 (G), which are MACs


VARIANTS: dict[str, Variant] = {
    "a": Variant((2, 2, 6, 2), (40, 80, 160, 320), (13,), 4.4, 0.6),
    "f": Variant((2, 2, 6, 2), (48, 96, 192, 384), (13,), 6.2, 0.9),
    "p": Variant((2, 2, 6, 2), (64, 128, 256, 512), (13,), 10.7, 1.6),
    "n": Variant((2, 2, 8, 2), (80, 160, 320, 640), (13,), 18.3, 2.8),
    "t": Variant((3, 3, 18, 3), (80, 160, 320, 640), (13, 3), 31.0, 4.9),
    "s": Variant((3, 3, 27, 3), (96, 192, 384, 768), (13, 3, 3), 55.6, 9.1),
    "b": Variant((3, 3, 27, 3), (128, 256, 512, 1024), (13, 3, 3), 97.9, None),
    "l": Variant((3, 3, 27, 3), (192, 384, 768, 1536), (13, 3, 3), 218.3, None),
    "xl": Variant((3, 3, 27, 3), (256, 512, 1024, 2048), (13, 3, 3), 386.4, None),
}

# The authors' ImageNet-1K weights of the four small variants (training structure, a bare state_dict),
# released on Hugging Face (repo DingXiaoH/UniRepLKNet). File names: `huggingface_file_names` in the
# authors' unireplknet.py; SHA-256 and size in MB: the Hugging Face listing (Git LFS pointers of commits
# 8051482 and 2a2717f) where we found them. N's hash was not found (recorded on first download) and its
# size is that of our own save of the same state_dict. `unirep_lite.pretrained` fetches and checks them.
RELEASE_URL = "https://huggingface.co/DingXiaoH/UniRepLKNet/resolve/main/"


@dataclass(frozen=True)
class Release:
    filename: str
    megabytes: float
    sha256: str | None = None  # the published SHA-256 of the file, where known


IN1K_RELEASES: dict[str, Release] = {
    "a": Release("unireplknet_a_in1k_224_acc77.03.pth", 18.9,
                 "a0ef11d8514590413a11493850e4882bb2c15c4c0203f97481158c7c58d76128"),
    "f": Release("unireplknet_f_in1k_224_acc78.58.pth", 26.3,
                 "b070ba01e853df306ac9d945f3c3592506595908adc1333d09983209fef7d5c8"),
    "p": Release("unireplknet_p_in1k_224_acc80.23.pth", 44.7,
                 "36363a5df396c0550b67208c50cd1936d7154839ad8f791937e952b6093a83d4"),
    "n": Release("unireplknet_n_in1k_224_acc81.64.pth", 75.8),
}

LARGE_KERNEL = 13  # the paper's large kernel; `lk_size=` swaps it for another K


def default_kernel_sizes(depths: Sequence[int], stage3_pattern: Sequence[int] = (13,),
                         lk_size: int = LARGE_KERNEL) -> tuple[tuple[int, ...], ...]:
    """Stage 1 all 3x3 (SmaK); stages 2 and 4 all large; stage 3 repeats the pattern (13 | 13,3 | 13,3,3)."""
    big = lambda k: lk_size if k == LARGE_KERNEL else k  # noqa: E731
    d1, d2, d3, d4 = depths
    stage3 = tuple(big(stage3_pattern[i % len(stage3_pattern)]) for i in range(d3))
    return (3,) * d1, (lk_size,) * d2, stage3, (lk_size,) * d4


class UniRepLKNet(nn.Module):
    """The network; `config` keeps the structure options it was built with (all but `deploy`), so
    that `UniRepLKNet(**model.config)` is its training structure (`checkpoint` builds one that way)."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (3, 3, 27, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float | None = 1e-6,
        head_init_scale: float = 1.0,
        deploy: bool = False,
        branches: tuple[Sequence[int], Sequence[int]] | None = None,
    ):
        super().__init__()
        depths = checks.integers("depths", depths, length=4, minimum=1)
        dims = checks.integers("dims", dims, length=4, minimum=MIN_DIM)
        if kernel_sizes is None:
            kernel_sizes = default_kernel_sizes(depths)
        if not (isinstance(kernel_sizes, (tuple, list)) and all(isinstance(ks, (tuple, list)) for ks in kernel_sizes)):
            raise TypeError(f"kernel_sizes must be 4 tuples of kernel sizes, one per stage, got {kernel_sizes!r}")
        kernel_sizes = tuple(tuple(ks) for ks in kernel_sizes)
        if len(kernel_sizes) != 4 or any(len(ks) != d for ks, d in zip(kernel_sizes, depths)):
            raise ValueError(
                f"kernel_sizes must give one kernel size per block of each stage, i.e. lengths {depths}; "
                f"got lengths {tuple(len(ks) for ks in kernel_sizes)}"
            )
        for i, ks in enumerate(kernel_sizes):
            for j, k in enumerate(ks):
                checks.odd_int(f"kernel_sizes[{i}][{j}]", k)
        if not (isinstance(in_chans, int) and in_chans >= 1) or isinstance(in_chans, bool):
            raise ValueError(f"in_chans must be a positive integer, got {in_chans!r}")
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0 (0: no classifier, features only), "
                             f"got {num_classes!r}")
        checks.probability("drop_path_rate", drop_path_rate)
        check_layer_scale("layer_scale_init_value", layer_scale_init_value)
        checks.number("head_init_scale", head_init_scale)
        checks.boolean("deploy", deploy)
        self.in_chans, self.num_classes = in_chans, num_classes
        self.depths, self.dims, self.kernel_sizes = depths, dims, kernel_sizes
        self.config = dict(in_chans=in_chans, num_classes=num_classes, depths=depths, dims=dims,
                           kernel_sizes=kernel_sizes, drop_path_rate=drop_path_rate,
                           layer_scale_init_value=layer_scale_init_value, head_init_scale=head_init_scale,
                           branches=branches)

        # Stem (two stride-2 3x3 convs) and three downsampling layers, as one list like the authors'.
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            Conv2d(in_chans, dims[0] // 2, 3, stride=2, padding=1), LayerNorm2d(dims[0] // 2, eps=1e-6),
            nn.GELU(),
            Conv2d(dims[0] // 2, dims[0], 3, stride=2, padding=1), LayerNorm2d(dims[0], eps=1e-6),
        )])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                Conv2d(dims[i], dims[i + 1], 3, stride=2, padding=1), LayerNorm2d(dims[i + 1], eps=1e-6),
            ))

        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()  # deeper blocks drop more
        self.stages = nn.ModuleList()
        for i in range(4):
            start = sum(depths[:i])
            self.stages.append(nn.Sequential(*[
                UniRepLKNetBlock(dims[i], kernel_sizes[i][j], drop_path=rates[start + j],
                                 layer_scale_init_value=layer_scale_init_value, deploy=deploy,
                                 branches=branches if kernel_sizes[i][j] >= 7 else None)
                for j in range(depths[i])
            ]))

        self.num_features = dims[-1]
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)
        if isinstance(self.head, nn.Linear):
            self.head.weight.data.mul_(head_init_scale)
            self.head.bias.data.mul_(head_init_scale)

    @property
    def deploy(self) -> bool:
        """True once every block is in deploy form (by `reparameterize` or timm's reparameterize_model)."""
        return all(block.deploy for stage in self.stages for block in stage)

    def switch_to_deploy(self) -> None:
        """mmpretrain's name for `reparameterize(self, inplace=True)`."""
        reparameterize(self, inplace=True)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"expected input of shape (B, {self.in_chans}, H, W) (in_chans={self.in_chans}), "
                f"got {tuple(x.shape)}"
            )

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """The four stage outputs (strides 4, 8, 16, 32), for ERFs and dense tasks."""
        self._check_input(x)
        outs = []
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
            outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        """Globally pooled, normalised features (B, num_features)."""
        return self.norm(self.forward_stages(x)[-1].mean((-2, -1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))


def reparameterize(model: nn.Module, inplace: bool = False) -> nn.Module:
    """The deploy structure of `model` (any module containing UniRepLKNet blocks), in eval mode.

    Reparameterization folds BatchNorm *running statistics* into convs, which is what a model does
    in eval mode. A model in training mode normalises with batch statistics instead, which no fixed
    kernel can reproduce, so we warn, and the result matches the original in eval mode. Calling it on
    a model that is already deployed changes nothing.
    """
    if model.training:
        warnings.warn(
            "reparameterize() called on a model in training mode: the deploy model uses BatchNorm "
            "running statistics and equals the original in eval mode (model.eval()), not in training mode",
            stacklevel=2,
        )
    target = model if inplace else copy.deepcopy(model)
    for m in list(target.modules()):
        if isinstance(m, UniRepLKNetBlock):
            m.reparameterize()
    return target.eval()


def list_models() -> list[str]:
    return [f"unireplknet_{v}" for v in VARIANTS]


def create_model(
    name: str = "unireplknet_a",
    num_classes: int = 1000,
    in_chans: int = 3,
    deploy: bool = False,
    lk_size: int | None = None,
    **overrides,
) -> UniRepLKNet:
    """Build a UniRepLKNet variant ('unireplknet_a' ... 'unireplknet_xl').

    `lk_size=K` replaces every 13x13 kernel by KxK (the paper's kernel-size study, everything else
    the same); `kernel_sizes=`, `depths=`, `dims=`, `drop_path_rate=`, `layer_scale_init_value=`
    override the table; `branches=(ks, rs)` gives every Dilated Reparam Block these branches instead
    of the authors' (`((), ())`: the KxK conv alone, the paper's Table 2 ablation). With weights:
    `unirep_lite.create_model(..., pretrained=path)` (`checkpoint.create_model`).
    """
    if lk_size is not None and (isinstance(lk_size, bool) or not isinstance(lk_size, int)
                                or lk_size < 1 or lk_size % 2 == 0):
        raise ValueError(f"lk_size must be a positive odd integer (the large kernel K, e.g. 13) or None, "
                         f"got {lk_size!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name such as 'unireplknet_a', got {name!r}")
    key = name.lower().removeprefix("unireplknet_")
    if key not in VARIANTS:
        raise ValueError(f"unknown model name {name!r}: expected one of {list_models()}")
    v = VARIANTS[key]
    depths = overrides.pop("depths", v.depths)
    dims = overrides.pop("dims", v.dims)
    if "kernel_sizes" in overrides and lk_size is not None:
        raise ValueError("pass either kernel_sizes= or lk_size=, not both")
    if lk_size is not None and lk_size >= 7 and lk_size not in BRANCHES and overrides.get("branches") is None:
        raise ValueError(f"lk_size={lk_size} has no default Dilated Reparam branches: expected one of "
                         f"{sorted(BRANCHES)}, or pass branches=(kernel_sizes, dilations)")
    if "kernel_sizes" not in overrides:
        depths = checks.integers("depths", depths, length=4, minimum=1)
        overrides["kernel_sizes"] = default_kernel_sizes(depths, v.stage3_pattern,
                                                         LARGE_KERNEL if lk_size is None else lk_size)
    return UniRepLKNet(in_chans=in_chans, num_classes=num_classes, depths=depths, dims=dims,
                       deploy=deploy, **overrides)


def set_mode(model: nn.Module, mode: str) -> nn.Module:
    """Set how every block of `model` computes its training structure (`blocks.MODES`), in place."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    for m in model.modules():
        if isinstance(m, (DilatedReparamBlock, UniRepLKNetBlock)):
            m.mode = mode
    return model


def set_fast_train(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch every block of `model` to (or back from) fast-training mode, in place.

    Fast-training mode merges each Dilated Reparam Block's branches into one KxK conv at every step:
    each branch is scaled by its BN's learnable gamma / sqrt(running_var + eps) and shifted, with the
    running statistics frozen (never updated in this mode). Same parameters, keys and deploy structure.
    """
    return set_mode(model, "fast_train" if enabled else "exact")


def set_reference(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Compute every block as the authors write it (the benchmark's baseline), in place: Dilated
    Reparam Blocks as separate branch convs and BNs (Fig. 2), the FFN as permute + Linear."""
    return set_mode(model, "reference" if enabled else "exact")

