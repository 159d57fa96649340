"""Effective receptive fields (ERF), by the method of RepLKNet (Ding et al., CVPR 2022).

The ERF of a stage asks: which input pixels does the output at the *centre* of that stage's feature
map actually depend on, and how strongly? We feed real images, take relu(stage output) at the central
position summed over channels, backpropagate it to the input, and accumulate relu(input gradient)
summed over channels, averaged over images. The map is shown as log10(x + 1) scaled to [0, 1], and
summarised by the "high-contribution area ratio": the smallest centred square holding a fraction t
of the map's total, as a fraction of the input area. A wider spread means a larger ratio.

Works for any model whose forward returns the stage feature maps (timm's `features_only=True`) or
that has `forward_stages(x)` (UniRepLKNet). Pure functions first, then the pieces that run models.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .blocks import DilatedReparamBlock, UniRepLKNetBlock
from .env import progress_bar, seed_everything
from .model import create_model, reparameterize

THRESHOLDS = (0.2, 0.3, 0.5, 0.99)  # RepLKNet's thresholds for the area ratio
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Real photographs inside scikit-image's wheel (no download: we read the files, not skimage's fetcher).
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "camera.png", "coins.png", "moon.png", "brick.png", "grass.png", "gravel.png",
          "retina.jpg", "ihc.png", "hubble_deep_field.jpg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TIMM_BASELINES = {"convnextv2_atto": 7, "resnet18": 3, "resnet26": 3}  # name -> their kernel size


# ------------------------------------------------------------------------------------ pure math

def scale_log(erf_map: np.ndarray) -> np.ndarray:
    """log10(x + 1) rescaled to [0, 1]: contributions differ by orders of magnitude (RepLKNet)."""
    m = np.log10(np.asarray(erf_map, dtype=np.float64) + 1.0)
    top = m.max()
    return m / top if top > 0 else m


def scale_decades(erf_map: np.ndarray, decades: float = 4.0) -> np.ndarray:
    """log10(x / max) mapped from [-decades, 0] to [0, 1]: a view that ignores the map's overall size.

    log10(x + 1) depends on the absolute size of the gradients: for a trained network (RepLKNet's
    case) they are large and the log compresses them; for a random-init network they are far below 1,
    so log10(x + 1) ~ x / ln 10 is linear and only the peak shows. Relative decades show the spread.
    """
    checks.number("decades", decades, above=0.0)
    m = np.asarray(erf_map, dtype=np.float64)
    top = m.max()
    if top <= 0:
        return np.zeros_like(m)
    rel = np.log10(np.maximum(m / top, 10.0 ** -decades))
    return rel / decades + 1.0


def area_ratio(erf_map: np.ndarray, t: float) -> float:
    """Smallest centred square whose sum holds at least fraction t of the total, over the map's area.

    The square is centred on (H//2, W//2), the pixel under the centre output; its side is 1, 3, 5, ...
    If even the largest centred square that fits misses fraction t, the whole map (1.0) is needed.
    """
    m = np.asarray(erf_map, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"expected a 2-D ERF map (H, W), got shape {m.shape}")
    if isinstance(t, bool) or not isinstance(t, (int, float, np.floating)) or not 0 < t <= 1:
        raise ValueError(f"threshold t must be in (0, 1], got {t!r}")
    if (m < 0).any():
        raise ValueError("an ERF map is non-negative (relu'd gradients); got negative values")
    total = m.sum()
    if total <= 0:
        raise ValueError("the ERF map is all zeros: no input pixel contributes")
    h, w = m.shape
    ch, cw = h // 2, w // 2
    for i in range(min(ch, cw, h - 1 - ch, w - 1 - cw) + 1):
        side = 2 * i + 1
        if m[ch - i:ch + i + 1, cw - i:cw + i + 1].sum() >= t * total * (1 - 1e-12):
            return side * side / (h * w)
    return 1.0


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> int:
    """Theoretical receptive field (side, in input pixels) of a chain of (kernel, stride, dilation).

    Each layer widens the field by (k_eff - 1) times the product of the strides before it (the
    distance between neighbouring positions of its input, in input pixels), k_eff = (k-1)d + 1.
    """
    rf, jump = 1, 1
    for k, s, d in layers:
        rf += ((k - 1) * d) * jump
        jump *= s
    return rf


KERNEL_KINDS = ("uniform", "random")


def stack_kernels(n: int, k: int = 3, kind: str = "uniform", seed: int = 0) -> np.ndarray:
    """n k x k kernels, each non-negative and summing to 1: the layers of Luo et al.'s (2016) stack.

    kind "uniform": every weight 1/k^2. "random": each layer its own |N(0, 1)| weights (seeded).
    Non-negative kernels make the ERF a probability distribution, whose variance adds up layer by
    layer: that is why its width grows as sqrt(n) while the theoretical field grows as n.
    """
    checks.positive_int("n", n)
    checks.odd_int("k", k)
    checks.one_of("kind", kind, KERNEL_KINDS)
    if kind == "uniform":
        w = np.ones((n, k, k))
    else:
        w = np.abs(np.random.default_rng(seed).standard_normal((n, k, k)))
    return w / w.sum(axis=(1, 2), keepdims=True)


def stacked_erf(kernels: np.ndarray) -> np.ndarray:
    """ERF of a stack of stride-1 linear convs (one channel) with these (n, k, k) kernels, in order.

    The gradient of the single output of the stack (valid convs on an n(k-1)+1 square input, i.e.
    the centre output) with respect to the input: a delta spread back through each layer in turn,
    last layer first (the transpose of a convolution). The map's side is the theoretical field.
    """
    w = np.asarray(kernels, dtype=np.float64)
    if w.ndim != 3 or w.shape[0] < 1 or w.shape[1] != w.shape[2] or w.shape[1] % 2 == 0:
        raise ValueError(f"kernels must be an (n, k, k) array of square odd kernels, got shape {w.shape}")
    g = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    for layer in torch.from_numpy(w).flip(0):  # the gradient reaches the last layer first
        g = F.conv_transpose2d(g, layer[None, None])
    return g[0, 0].numpy()


def erf_std(erf_map: np.ndarray) -> float:
    """Width of an ERF map: the RMS distance (pixels) from its centroid along an axis, averaged over
    the two axes, sqrt((var_y + var_x) / 2), with the map as the weights."""
    m = np.asarray(erf_map, dtype=np.float64)
    if m.ndim != 2 or (m < 0).any() or m.sum() <= 0:
        raise ValueError(f"expected a non-negative 2-D map with a positive sum, got shape {m.shape}")
    p = m / m.sum()
    ys, xs = np.arange(m.shape[0]), np.arange(m.shape[1])
    py, px = p.sum(axis=1), p.sum(axis=0)
    var_y = (py * (ys - py @ ys) ** 2).sum()
    var_x = (px * (xs - px @ xs) ** 2).sum()
    return float(np.sqrt((var_y + var_x) / 2))


# ------------------------------------------------------------------------------------ inputs

def _skimage_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def _read_rgb(path: Path) -> Tensor:
    """An image file as a 3 x H x W float tensor in [0, 1] (grey and RGBA become RGB)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise
    except Exception as e:  # not an image (UnidentifiedImageError), truncated, a decompression bomb
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def _resize_crop(img: Tensor, resolution: int, box: tuple[float, float, float] | None = None) -> Tensor:
    """Crop a square (centre, or box = (side fraction, x, y) in [0,1]) and resize it to resolution."""
    _, h, w = img.shape
    side = min(h, w)
    if box is None:
        top, left = (h - side) // 2, (w - side) // 2
    else:
        side = max(8, int(side * box[0]))
        top, left = int((h - side) * box[2]), int((w - side) * box[1])
    crop = img[:, top:top + side, left:left + side]
    # antialiased bilinear resizing overshoots a little at sharp edges: keep the image in [0, 1]
    return F.interpolate(crop[None], size=(resolution, resolution), mode="bilinear",
                         antialias=True, align_corners=False)[0].clamp_(0.0, 1.0)


def load_images(source: str | os.PathLike = "photos", n: int = 8, resolution: int = 224, seed: int = 0,
                normalize: bool = True) -> Tensor:
    """n images as an (n, 3, resolution, resolution) tensor, the same for the same arguments.

    source: "photos" (real photographs bundled in scikit-image), "noise" (standard normal), or a
    folder of image files (searched recursively). Photos are square-centre-cropped; if n exceeds
    the number of files, seeded random crops of them are added. `normalize` applies ImageNet's
    mean and std (not to noise, which is already centred).
    """
    if not checks.is_int(n) or n < 1:
        raise ValueError(f"n (number of images) must be a positive integer, got {n!r}")
    if not checks.is_int(resolution) or resolution < 8:
        raise ValueError(f"resolution must be an integer >= 8, got {resolution!r}")
    g = torch.Generator().manual_seed(seed)
    if source == "noise":
        return torch.randn(n, 3, resolution, resolution, generator=g)
    if source == "photos":
        files = [_skimage_dir() / name for name in PHOTOS if (_skimage_dir() / name).is_file()]
        if not files:
            raise FileNotFoundError(f"none of scikit-image's bundled photos {PHOTOS} found in {_skimage_dir()}")
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"expected 'photos', 'noise' or a folder of images, got {str(source)!r} "
                                    "which is not a folder")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    images = []
    for i in range(n):
        img = _read_rgb(files[i % len(files)])
        if i < len(files):
            images.append(_resize_crop(img, resolution))
        else:  # more images than files: a seeded random crop (half to full side) of a file
            frac, x, y = torch.rand(3, generator=g).tolist()
            images.append(_resize_crop(img, resolution, (0.5 + 0.5 * frac, x, y)))
    batch = torch.stack(images)
    if normalize:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        batch = (batch - mean) / std
    return batch


# ------------------------------------------------------------------------------------ models

def stage_outputs(model: nn.Module, x: Tensor) -> list[Tensor]:
    """The stage feature maps of `model` for input x: forward_stages(x), or forward(x) if it is a list."""
    if hasattr(model, "forward_stages"):
        return list(model.forward_stages(x))
    out = model(x)
    if isinstance(out, (list, tuple)) and all(isinstance(o, Tensor) and o.dim() == 4 for o in out):
        return list(out)
    raise ValueError(
        f"{type(model).__name__} returns {type(out).__name__}, not stage feature maps: expected a model "
        "with forward_stages(x) (UniRepLKNet) or one whose forward returns a list of (B, C, H, W) maps "
        "(timm.create_model(name, features_only=True))"
    )


def build_model(name: str, lk_size: int | None = None, seed: int = 0, layer_scale: float | None = 1.0,
                **kwargs) -> nn.Module:
    """A randomly initialised model for ERF studies, in eval mode; never downloads anything.

    name: a UniRepLKNet variant ("unireplknet_a", ...; `lk_size=K` swaps every 13 for K) or a timm
    model ("convnextv2_atto", "resnet18", ...) built with features_only=True and no pretrained
    weights. `layer_scale` sets UniRepLKNet's layer-scale init: the training default 1e-6 makes every
    block an identity at initialisation, so a random-init ERF would show only the downsampling convs;
    1.0 lets the blocks (and their kernel size) count, as trained blocks do.
    """
    seed_everything(seed)
    if name.startswith("unireplknet"):
        return create_model(name, num_classes=0, lk_size=lk_size, layer_scale_init_value=layer_scale,
                            **kwargs).eval()
    if lk_size is not None:
        raise ValueError(f"lk_size applies to UniRepLKNet models only, not {name!r}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: pretrained=False never fetches
    import timm

    if not timm.is_model(name):
        raise ValueError(f"unknown model {name!r}: expected a UniRepLKNet variant or a timm model name "
                         f"such as {sorted(TIMM_BASELINES)}")
    model = timm.create_model(name, pretrained=False, features_only=True, **kwargs)
    # Keep the four stages at strides 4, 8, 16, 32, like UniRepLKNet (a ResNet also offers its stride-2 stem).
    strides = model.feature_info.reduction()
    if "out_indices" not in kwargs and strides != [4, 8, 16, 32] and {4, 8, 16, 32} <= set(strides):
        seed_everything(seed)
        keep = tuple(i for i, s in enumerate(strides) if s in (4, 8, 16, 32))
        model = timm.create_model(name, pretrained=False, features_only=True, out_indices=keep, **kwargs)
    return model.eval()


def _conv_chain(model: nn.Module, x: Tensor, stage: int) -> list[tuple[int, int, int]]:
    """(kernel, stride, dilation) of the spatial layers on the path to `stage`, in execution order.

    A Dilated Reparam Block counts as its KxK kernel (its dilated branches run in parallel inside
    it), and 1x1 convs are skipped: pointwise ones do not widen the field, and strided ones are
    ResNet shortcuts that run beside a strided 3x3 conv. Layers after the stage (smaller outputs
    than the stage's map) are left out.
    """
    events: list[tuple[tuple[int, int, int], tuple[int, int]]] = []
    inside: set[int] = set()
    for m in model.modules():
        if isinstance(m, DilatedReparamBlock):
            inside.update(id(c) for c in m.modules() if c is not m)

    def as_pair(v):
        return v[0] if isinstance(v, tuple) else v

    def hook(m, inputs, out):
        if id(m) in inside:
            return
        if isinstance(m, DilatedReparamBlock):
            layer = (m.K, 1, 1)
        elif isinstance(m, nn.Conv2d):
            layer = (as_pair(m.kernel_size), as_pair(m.stride), as_pair(m.dilation))
        else:  # pooling
            layer = (as_pair(m.kernel_size), as_pair(m.stride), as_pair(getattr(m, "dilation", 1)))
        if layer[0] > 1:
            events.append((layer, tuple(out.shape[-2:])))

    kinds = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, DilatedReparamBlock)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            outs = stage_outputs(model, x)
            if not -len(outs) <= stage < len(outs):
                raise ValueError(f"stage {stage} out of range: this model has {len(outs)} stage outputs")
            size = tuple(outs[stage].shape[-2:])
    finally:
        for h in handles:
            h.remove()
    chain = []
    for layer, out_size in events:
        if out_size[0] < size[0]:
            break
        chain.append(layer)
    return chain


def theoretical_receptive_field(model: nn.Module, stage: int = -1, resolution: int = 224,
                                in_chans: int | None = None) -> int:
    """Side (input pixels) of the square that the convolutions of `model` up to `stage` can reach.

    Global operations (UniRepLKNet's SE and GRN, ConvNeXt V2's GRN) technically let every pixel
    affect every output; this is the field of the local (convolutional) path, the usual meaning.
    """
    checks.integer("stage", stage)
    checks.positive_int("resolution", resolution)
    c = checks.positive_int("in_chans", in_chans) if in_chans is not None else getattr(model, "in_chans", 3)
    p = next(model.parameters())
    x = torch.zeros(1, c, resolution, resolution, dtype=p.dtype, device=p.device)
    return receptive_field(_conv_chain(model, x, stage))


# ------------------------------------------------------------------------------------ the ERF

@dataclass
class ERF:
    """An effective receptive field: the raw map and what we report about it."""
    raw: np.ndarray                 # accumulated relu(grad), summed over channels, mean over images
    stage: int
    n_images: int
    theoretical_rf: int | None = None   # side in input pixels (see theoretical_receptive_field)
    label: str = ""
    info: dict = field(default_factory=dict)

    @property
    def scaled(self) -> np.ndarray:
        """log10(raw + 1) rescaled to [0, 1]: what RepLKNet shows and measures."""
        return scale_log(self.raw)

    def decades(self, n: float = 4.0) -> np.ndarray:
        """The map in decades below its peak, scaled to [0, 1] (see scale_decades)."""
        return scale_decades(self.raw, n)

    @property
    def resolution(self) -> int:
        return self.raw.shape[-1]

    def area_ratios(self, thresholds: Sequence[float] = THRESHOLDS, scaled: bool = True) -> dict[float, float]:
        """High-contribution area ratio per threshold, on the scaled map (RepLKNet) or the raw one."""
        m = self.scaled if scaled else self.raw
        return {t: area_ratio(m, t) for t in thresholds}

    def theoretical_ratio(self) -> float | None:
        """The theoretical field's share of the input area (clipped to the image)."""
        if self.theoretical_rf is None:
            return None
        side = min(self.theoretical_rf, self.resolution)
        return side * side / self.resolution ** 2


def compute_erf(model: nn.Module, images: Tensor, stage: int = -1, batch_size: int = 8,
                progress: bool = True, label: str = "", theoretical: bool = True,
                merge: bool = True) -> ERF:
    """RepLKNet's ERF of `model`'s stage `stage` (index into its stage outputs; -1 = last).

    The model runs in eval mode, so the images of a batch do not interact (BatchNorm uses its running
    statistics) and one backward pass per batch gives every image's gradient at once. `merge=True`
    runs a reparameterized copy of a UniRepLKNet: in eval mode it is the same function (so the same
    ERF) with one conv per block instead of six, and a little cheaper (merge the model yourself,
    `unirep_lite.reparameterize`, to skip the copy when calling this repeatedly).
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"expected images as a tensor of shape (N, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    if len(images) == 0 or images.shape[-1] == 0 or images.shape[-2] == 0:
        raise ValueError(f"expected at least one image of at least 1 x 1 pixels, got shape {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("the images contain NaN or inf values")
    if not checks.is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    checks.integer("stage", stage)
    callers, was_training = model, model.training  # the caller's model gets its mode back at the end
    total = torch.zeros(images.shape[-2:], dtype=torch.float64)
    n_stages = None
    try:
        if merge and any(isinstance(m, UniRepLKNetBlock) and not m.deploy for m in model.modules()):
            model = reparameterize(model.eval())
        model.eval()
        p = next(model.parameters())
        bar = progress_bar(range(0, len(images), batch_size), desc=f"ERF {label}".strip(), leave=False,
                           disable=not progress)
        for start in bar:
            x = images[start:start + batch_size].to(device=p.device, dtype=p.dtype).requires_grad_(True)
            outs = stage_outputs(model, x)
            n_stages = len(outs)
            if not -len(outs) <= stage < len(outs):
                raise ValueError(f"stage {stage} out of range: this model has {len(outs)} stage outputs")
            feat = outs[stage]
            h, w = feat.shape[-2:]
            centre = F.relu(feat[:, :, h // 2, w // 2]).sum()
            (grad,) = torch.autograd.grad(centre, x)
            total += F.relu(grad).sum(dim=(0, 1)).double().cpu()
        rf = theoretical_receptive_field(model, stage, images.shape[-1], images.shape[1]) if theoretical else None
    finally:
        callers.train(was_training)
    return ERF(raw=(total / len(images)).numpy(), stage=stage, n_images=len(images), theoretical_rf=rf,
               label=label, info={"n_stages": n_stages})


def erf_table(erfs: Sequence[ERF], thresholds: Sequence[float] = THRESHOLDS) -> list[dict]:
    """One row per ERF: label, stage (1-based), area ratio per threshold, theoretical field (side, ratio)."""
    rows = []
    for e in erfs:
        n = e.info.get("n_stages")
        row = {"model": e.label, "stage": e.stage % n + 1 if n else e.stage}  # 1-based, like the paper
        row.update({f"t={t}": round(r, 4) for t, r in e.area_ratios(thresholds).items()})
        row["theoretical RF (px)"] = e.theoretical_rf
        tr = e.theoretical_ratio()
        row["theoretical ratio"] = None if tr is None else round(tr, 4)
        rows.append(row)
    return rows
