"""The building blocks of UniRepLKNet (paper section 3), with the authors' parameter names.

Module and parameter names follow the authors' checkpoints (`lk_origin`, `dil_conv_k5_1`, `se.down`,
`pwconv1.1`, `act.1.gamma`, ...) so that their `.pth` files load as they are. Every block that has a
training and an inference form takes `deploy=` in its constructor and has `reparameterize()` (timm's
convention), which turns the training form into the inference form in place, using the pure
functions of `reparam`.

Both block kinds compute their training form in one of three `mode`s (`MODES`), set model-wide by
`model.set_mode` / `set_fast_train` / `set_reference`:
  "exact"      the default: the paper's math, computed the fast way (channels_last, `dwconv`'s
               backward, branches merged into one conv in eval mode, FFN as 1x1 convs);
  "reference"  the paper's Fig. 2 and the authors' block literally (separate branch convs and BNs,
               permute + Linear): the benchmark's baseline and the tests' ground truth;
  "fast_train" a different model with the same parameters: each branch BN keeps its learnable
               gamma/beta over *frozen* running statistics, so the branches merge into one KxK conv
               at every training step.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .dwconv import channels_last, depthwise_conv2d
from .precision import Conv2d
from .reparam import (
    bn_affine,
    check_branches,
    default_branches,
    equivalent_kernel_size,
    fold_affine_into_linear,
    fuse_bn,
    merge_branches,
)


MODES = ("exact", "reference", "fast_train")
SE_REDUCTION = 4
MIN_DIM = SE_REDUCTION  # the SE block squeezes C channels to C // 4, at least one


def check_layer_scale(name: str, value) -> float | None:
    """None (no layer scale) or the finite number > 0 that every channel's scale starts at."""
    return None if value is None else checks.number(name, value, above=0.0)


def check_mode(module: nn.Module) -> str:
    if module.mode not in MODES:
        raise ValueError(f"{type(module).__name__}.mode must be one of {MODES}, got {module.mode!r}")
    return module.mode


def depthwise_conv(channels: int, k: int, dilation: int = 1, bias: bool = False) -> Conv2d:
    """A depthwise kxk conv with 'same' padding (output size == input size at stride 1)."""
    checks.positive_int("channels", channels), checks.odd_int("k", k), checks.positive_int("dilation", dilation)
    pad = (equivalent_kernel_size(k, dilation) - 1) // 2
    return Conv2d(channels, channels, k, padding=pad, dilation=dilation, groups=channels, bias=bias)


class DilatedReparamBlock(nn.Module):
    """A KxK depthwise conv plus parallel small dilated depthwise convs, each with its BN (Fig. 2).

    Training: out = BN(conv_KxK(x)) + sum_i BN_i(conv_{k_i, dilation r_i}(x)).
    Deploy:   out = conv_KxK'(x) + b', the exact merge of all branches (see `reparam`).
    `branches=(ks, rs)` overrides the authors' table (`reparam.BRANCHES`) for this K.
    `mode` picks how the training structure is computed (see the module docstring).
    """

    def __init__(self, channels: int, K: int, branches: tuple[Sequence[int], Sequence[int]] | None = None,
                 deploy: bool = False):
        super().__init__()
        checks.positive_int("channels", channels)
        checks.odd_int("K", K)
        checks.boolean("deploy", deploy)
        if branches is not None and not (isinstance(branches, (tuple, list)) and len(branches) == 2
                                         and all(isinstance(b, (tuple, list)) for b in branches)):
            raise TypeError(f"branches must be a pair (kernel sizes, dilations) of tuples, got {branches!r}")
        ks, rs = default_branches(K) if branches is None else branches
        ks, rs = tuple(ks), tuple(rs)
        check_branches(K, ks, rs)
        self.channels, self.K, self.ks, self.rs = channels, K, ks, rs
        self.deploy = deploy
        self.mode = "exact"
        self.lk_origin = depthwise_conv(channels, K, bias=deploy)
        if not deploy:
            self.origin_bn = nn.BatchNorm2d(channels)
            for k, r in zip(ks, rs):
                self.add_module(f"dil_conv_k{k}_{r}", depthwise_conv(channels, k, r))
                self.add_module(f"dil_bn_k{k}_{r}", nn.BatchNorm2d(channels))

    def branches(self):
        """(conv, bn, dilation) for every branch, the KxK one first."""
        yield self.lk_origin, self.origin_bn, 1
        for k, r in zip(self.ks, self.rs):
            yield getattr(self, f"dil_conv_k{k}_{r}"), getattr(self, f"dil_bn_k{k}_{r}"), r

    def forward(self, x: Tensor) -> Tensor:
        if self.deploy:  # one KxK conv with bias (cropped on small maps, channels_last on a CPU)
            return depthwise_conv2d(channels_last(x), self.lk_origin.weight, self.lk_origin.bias)
        mode = check_mode(self)
        if mode == "reference":
            return self.forward_reference(x)
        if mode == "fast_train" or not self.training:
            # BNs with running statistics make the block one KxK conv (exact, differentiable)
            kernel, bias = self.merged_kernel()
            return depthwise_conv2d(channels_last(x), kernel, bias)
        return self.forward_exact(x)

    def forward_exact(self, x: Tensor) -> Tensor:
        """Training mode, batch statistics: every branch, channels_last with `dwconv`'s fast backward."""
        x = channels_last(x)
        out = None
        for conv, bn, r in self.branches():
            y = bn(depthwise_conv2d(x, conv.weight, None, r))
            out = y if out is None else out + y
        return out

    def forward_reference(self, x: Tensor) -> Tensor:
        """Paper Fig. 2 literally: each branch its own conv and BN, outputs summed."""
        out = 0
        for conv, bn, _ in self.branches():
            out = out + bn(conv(x))
        return out

    def merged_kernel(self) -> tuple[Tensor, Tensor]:
        """The single KxK kernel and bias that equal this block in eval mode (differentiable)."""
        if self.deploy:
            return self.lk_origin.weight, self.lk_origin.bias
        return merge_branches(((*fuse_bn(conv.weight, bn), r) for conv, bn, r in self.branches()), self.K)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.deploy:
            return
        kernel, bias = self.merged_kernel()
        merged = depthwise_conv(self.channels, self.K, bias=True).to(kernel)
        merged.weight.copy_(kernel)
        merged.bias.copy_(bias)
        self.lk_origin = merged
        del self.origin_bn
        for k, r in zip(self.ks, self.rs):
            delattr(self, f"dil_conv_k{k}_{r}")
            delattr(self, f"dil_bn_k{k}_{r}")
        self.deploy = True

    def extra_repr(self) -> str:
        return f"{self.channels}, K={self.K}, ks={self.ks}, rs={self.rs}, deploy={self.deploy}"


class SEBlock(nn.Module):
    """Squeeze-and-Excitation: channel weights from global average pooling (C -> C/4 -> C)."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION):
        super().__init__()
        checks.positive_int("channels", channels), checks.positive_int("reduction", reduction)
        if channels < reduction:
            raise ValueError(f"channels // reduction must be >= 1, got channels={channels}, reduction={reduction}")
        self.down = Conv2d(channels, channels // reduction, 1, bias=True)
        self.up = Conv2d(channels // reduction, channels, 1, bias=True)

    def forward(self, x: Tensor, inplace: bool = False) -> Tensor:
        w = torch.sigmoid(self.up(F.relu(self.down(F.adaptive_avg_pool2d(x, 1)))))
        return x.mul_(w) if inplace else x * w


class GRN(nn.Module):
    """Global Response Normalization (ConvNeXt V2) on channels-last input (B, H, W, C).

    GRN(x) = (gamma * Nx + 1) * x + beta with Nx = ||x||_spatial / mean_c ||x||_spatial. gamma and
    beta start at zero, so GRN starts as the identity. The deploy form has no beta: it is folded
    into the next Linear.
    """

    def __init__(self, dim: int, use_bias: bool = True, eps: float = 1e-6):
        super().__init__()
        checks.positive_int("dim", dim)
        checks.boolean("use_bias", use_bias)
        self.eps = checks.number("eps", eps, above=0.0)
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim)) if use_bias else None

    def forward(self, x: Tensor, inplace: bool = False) -> Tensor:
        gx = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
        scale = self.gamma * (gx / (gx.mean(dim=-1, keepdim=True) + self.eps)) + 1
        out = x.mul_(scale) if inplace else x * scale
        if self.beta is None:
            return out
        return out.add_(self.beta) if inplace else out + self.beta


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) tensor ("channels_first")."""

    def forward(self, x: Tensor) -> Tensor:  # F.layer_norm, not super().forward: TorchScript can compile it
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class NCHWtoNHWC(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1)


class NHWCtoNCHW(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 3, 1, 2)


def pointwise_conv(x: Tensor, linear: nn.Linear) -> Tensor:
    """`linear` applied to the channels of a (B, C, H, W) tensor, as a 1x1 conv with its weights."""
    return F.conv2d(x, linear.weight[:, :, None, None], linear.bias)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability p (training only)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = checks.probability("p", p)

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class UniRepLKNetBlock(nn.Module):
    """x + drop_path(layer_scale * FFN(SE(BN(dwconv(x))))).

    A LarK block (K >= 7) uses a Dilated Reparam Block as its depthwise conv; a SmaK block (K = 3
    or 5) a plain depthwise conv. FFN = Linear(C, 4C), GELU, GRN, Linear(4C, C), BN.
    In deploy form the BN after the dwconv is folded into it, and GRN's beta, the FFN's BN and the
    layer scale into the second Linear.
    """

    def __init__(self, dim: int, kernel_size: int, drop_path: float = 0.0,
                 layer_scale_init_value: float | None = 1e-6, deploy: bool = False,
                 branches: tuple[Sequence[int], Sequence[int]] | None = None, ffn_factor: int = 4):
        super().__init__()
        checks.integer("dim", dim, minimum=MIN_DIM)
        if not checks.is_int(kernel_size) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"block kernel size must be a positive odd integer, got kernel_size={kernel_size!r}")
        checks.probability("drop_path", drop_path)
        check_layer_scale("layer_scale_init_value", layer_scale_init_value)
        checks.boolean("deploy", deploy)
        checks.positive_int("ffn_factor", ffn_factor)
        self.deploy = deploy
        self.kernel_size = kernel_size
        if kernel_size >= 7:
            self.dwconv = DilatedReparamBlock(dim, kernel_size, branches=branches, deploy=deploy)
        else:
            self.dwconv = depthwise_conv(dim, kernel_size, bias=deploy)
        self.norm = nn.Identity() if deploy else nn.BatchNorm2d(dim)
        self.se = SEBlock(dim)
        hidden = ffn_factor * dim
        self.pwconv1 = nn.Sequential(NCHWtoNHWC(), nn.Linear(dim, hidden))
        self.act = nn.Sequential(nn.GELU(), GRN(hidden, use_bias=not deploy))
        if deploy:
            self.pwconv2 = nn.Sequential(nn.Linear(hidden, dim, bias=True), NHWCtoNCHW())
        else:
            self.pwconv2 = nn.Sequential(nn.Linear(hidden, dim, bias=False), NHWCtoNCHW(), nn.BatchNorm2d(dim))
        use_ls = not deploy and layer_scale_init_value is not None
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init_value))) if use_ls else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.mode = "exact"  # see the module docstring; the Dilated Reparam Block has its own

    def forward(self, x: Tensor) -> Tensor:
        if check_mode(self) == "reference":
            return self.forward_reference(x)
        # The FFN's Linears run as 1x1 convs on the (B, C, H, W) tensor, with the same weights: on a
        # CPU, in channels_last layout, oneDNN's 1x1 convs beat permute + Linear and keep one layout
        # for the whole block (pwconv1/pwconv2/act stay Sequentials for the checkpoints' key names).
        # Without autograd (inference), the element-wise steps work in place: fewer passes over memory
        # (so a forward hook that keeps the output of `dwconv` or `norm` should keep a clone).
        inplace = not torch.is_grad_enabled()
        x = channels_last(x)
        y = self.se(self.norm(self.dwconv(x)), inplace=inplace)
        y = F.gelu(pointwise_conv(y, self.pwconv1[1]))
        y = self.act[1](y.permute(0, 2, 3, 1), inplace=inplace).permute(0, 3, 1, 2)  # GRN wants (B, H, W, C)
        y = pointwise_conv(y, self.pwconv2[0])
        if not self.deploy:
            y = self.pwconv2[2](y)
        if self.gamma is not None:
            y = self.gamma.view(1, -1, 1, 1) * y
        y = self.drop_path(y)
        # (under autocast y can be float16 and x float32: then x + y, which keeps float32)
        return y.add_(x) if inplace and y.dtype == x.dtype else x + y

    def forward_reference(self, x: Tensor) -> Tensor:
        """The block as the authors write it: NCHW, permute, Linear, GELU, GRN, Linear, permute, BN."""
        y = self.pwconv2(self.act(self.pwconv1(self.se(self.norm(self.dwconv(x))))))
        if self.gamma is not None:
            y = self.gamma.view(1, -1, 1, 1) * y
        return x + self.drop_path(y)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Turn this block into its deploy form in place (uses BN running statistics)."""
        if self.deploy:
            return
        # 1. dwconv (+ its merged branches) and the BN after it -> one conv with bias.
        if isinstance(self.dwconv, DilatedReparamBlock):
            self.dwconv.reparameterize()
            conv = self.dwconv.lk_origin
        else:
            old = self.dwconv
            conv = depthwise_conv(old.in_channels, self.kernel_size, bias=True).to(old.weight)
            conv.weight.copy_(old.weight)
            conv.bias.zero_()
            self.dwconv = conv
        kernel, bias = fuse_bn(conv.weight, self.norm, conv.bias)
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
        self.norm = nn.Identity()
        # 2. GRN's beta, the FFN's BN and the layer scale -> the second Linear.
        linear, bn = self.pwconv2[0], self.pwconv2[2]
        grn = self.act[1]
        scale, shift = bn_affine(bn, linear.weight)
        if self.gamma is not None:
            ls = self.gamma.to(linear.weight)
            scale, shift = scale * ls, shift * ls
        weight, b = fold_affine_into_linear(linear.weight, linear.bias, scale, shift, input_shift=grn.beta)
        merged = nn.Linear(linear.in_features, linear.out_features, bias=True).to(weight)
        merged.weight.copy_(weight)
        merged.bias.copy_(b)
        self.pwconv2 = nn.Sequential(merged, NHWCtoNCHW())
        grn.beta = None
        self.gamma = None
        self.deploy = True
