"""Drawn diagrams of UniRepLKNet (the paper's Fig. 1), made from the library's own configuration.

    block(K=13)           a UniRepLKNet block, and its Dilated Reparam Block with every branch
    architecture("A")     stem, four stages of LarK / SmaK blocks, downsampling, head
    save(fig, path)       a PNG whose bytes depend only on the drawing (no date in it)

Nothing here is typed in twice: the branches come from a real `UniRepLKNetBlock` (so from
`reparam.BRANCHES` and the block's own LarK / SmaK rule), the depths, widths and kernel sizes of a
variant from a real `UniRepLKNet` (`VARIANTS`, `default_kernel_sizes`), so a change to the model
changes the drawing. Sizes suit the book's column (7 inches, text of 8 pt and more).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .blocks import DilatedReparamBlock, UniRepLKNetBlock
from .model import VARIANTS, UniRepLKNet, create_model
from .plots import branch_footprints

LARK_COLOUR, SMAK_COLOUR = "#f4a259", "#8cb8d8"  # LarK / SmaK blocks, in both diagrams
FFN_COLOUR, PLAIN_COLOUR = "#c9e4c5", "#eeeeee"
FONT = 8.5  # the smallest text in a diagram, in points


def _box(ax, x, y, w, h, text, colour=PLAIN_COLOUR, size=FONT, **kw):
    """A rounded box centred at (x, y), `w` x `h` inches, with centred text."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.06",
                                facecolor=colour, edgecolor="#333333", linewidth=0.9, **kw))
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def _arrow(ax, start, end, **kw):
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="-|>", color="#333333", lw=0.9, shrinkA=0, shrinkB=0, **kw))


def _add(ax, x, y, r=0.11):
    from matplotlib.patches import Circle

    ax.add_patch(Circle((x, y), r, facecolor="white", edgecolor="#333333", linewidth=0.9))
    ax.text(x, y, "+", ha="center", va="center", fontsize=FONT + 2)


def _canvas(width: float, height: float):
    """A figure whose single axes is measured in inches, origin at the bottom left."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def block_parts(K: int) -> dict:
    """What `block` draws for kernel size K, read off a real UniRepLKNetBlock: the kind ("LarK" with a
    Dilated Reparam Block, or "SmaK"), its branches [(k, r), ...] (the dense KxK one first), and the
    FFN's expansion factor."""
    blk = UniRepLKNetBlock(8, K)
    dw = blk.dwconv
    lark = isinstance(dw, DilatedReparamBlock)
    branches = [(K, 1)] + list(zip(dw.ks, dw.rs)) if lark else [(K, 1)]
    return {"kind": "LarK" if lark else "SmaK", "branches": branches,
            "ffn": blk.pwconv1[1].out_features // blk.pwconv1[1].in_features}


def block(K: int = 13):
    """The UniRepLKNet block (left) and its depthwise conv (right): for a LarK block the Dilated
    Reparam Block, every branch with the input pixels it sees in the KxK window, summed."""
    parts = block_parts(K)
    lark = parts["kind"] == "LarK"
    width, height = 7.0, 5.4
    fig, ax = _canvas(width, height)

    # left: the block, top to bottom, with the residual connection on its left
    x, w, h, gap = 1.25, 1.5, 0.3, 0.1
    dw_text = f"Dilated Reparam\nBlock, K={K}" if lark else f"depthwise\nconv {K}x{K}"
    e = parts["ffn"]
    steps = [(dw_text, LARK_COLOUR if lark else SMAK_COLOUR, 0.46), ("BN", PLAIN_COLOUR, h),
             ("SE: pool, 1x1, ReLU,\n1x1, sigmoid, scale", PLAIN_COLOUR, 0.42),
             (f"Linear C -> {e}C", FFN_COLOUR, h), ("GELU", FFN_COLOUR, h), ("GRN", FFN_COLOUR, h),
             (f"Linear {e}C -> C", FFN_COLOUR, h), ("BN", FFN_COLOUR, h),
             ("layer scale", PLAIN_COLOUR, h)]
    top = height - 0.35
    ax.text(x, top, "x  (B, C, H, W)", ha="center", va="center", fontsize=FONT)
    y = top - 0.2
    centres = []
    for text, colour, bh in steps:
        _arrow(ax, (x, y), (x, y - gap - 0.02))
        y -= gap + bh / 2
        _box(ax, x, y, w, bh, text, colour)
        centres.append(y)
        y -= bh / 2
    ffn_top, ffn_bottom = centres[3] + h / 2 + 0.04, centres[7] - h / 2 - 0.04
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((x - w / 2 - 0.07, ffn_bottom), w + 0.14, ffn_top - ffn_bottom, fill=False,
                           linestyle="--", edgecolor="#4a7a45", linewidth=0.9))
    ax.text(x + w / 2 + 0.1, (ffn_top + ffn_bottom) / 2, "FFN", rotation=90, ha="left", va="center",
            fontsize=FONT, color="#2f5a2b")
    _arrow(ax, (x, y), (x, y - 0.17))
    _add(ax, x, y - 0.28)
    _arrow(ax, (x, y - 0.39), (x, y - 0.6))
    ax.text(x, y - 0.7, "output", ha="center", va="center", fontsize=FONT)
    # the residual: from the input, down the left side, into the sum
    side = x - w / 2 - 0.28
    ax.plot([x, side, side], [top - 0.12, top - 0.12, y - 0.28], color="#333333", lw=0.9)
    _arrow(ax, (side, y - 0.28), (x - 0.11, y - 0.28))

    # right: the depthwise conv of this block
    left = 2.75
    if not lark:
        ax.text((left + width) / 2, height / 2,
                f"A SmaK block: its depthwise conv is one plain {K}x{K} conv\n(no dilated branches).",
                ha="center", va="center", fontsize=FONT + 1)
        return fig
    branches = parts["branches"]
    n = len(branches)
    col = (width - left - 0.1) / n
    ax.text((left + width) / 2, top, f"Dilated Reparam Block, K = {K}: {n} depthwise convs",
            ha="center", va="center", fontsize=FONT + 1, weight="bold")
    xs = [left + col * (i + 0.5) for i in range(n)]
    split = top - 0.35
    ax.plot([xs[0], xs[-1]], [split, split], color="#333333", lw=0.9)
    feet = branch_footprints(K, [k for k, _ in branches[1:]], [r for _, r in branches[1:]])
    side_img = min(col - 0.12, 0.62)
    for xi, (k, r), (_, foot) in zip(xs, branches, feet):
        _arrow(ax, (xi, split), (xi, split - 0.2))
        label = f"{k}x{k}\ndense" if (k, r) == (K, 1) else f"{k}x{k}\nr = {r}"
        _box(ax, xi, split - 0.45, col - 0.1, 0.5, label, LARK_COLOUR)
        _arrow(ax, (xi, split - 0.7), (xi, split - 0.82))
        _box(ax, xi, split - 0.99, col - 0.1, 0.34, "BN")
        # the pixels this branch sees in the KxK window: a sparse grid for r > 1
        y0 = split - 1.3 - side_img
        ax.imshow(np.where(foot > 0, 0.15, 1.0), cmap="gray", vmin=0, vmax=1, interpolation="nearest",
                  extent=(xi - side_img / 2, xi + side_img / 2, y0, y0 + side_img), zorder=2)
        ax.add_patch(Rectangle((xi - side_img / 2, y0), side_img, side_img, fill=False,
                               edgecolor="#333333", linewidth=0.6, zorder=3))
        ax.plot([xi, xi], [split - 1.16, y0 + side_img + 0.02], color="#333333", lw=0.9, ls=":")
        ax.plot([xi, xi], [y0 - 0.02, y0 - 0.25], color="#333333", lw=0.9)
    y_img = split - 1.3 - side_img
    ax.text(left - 0.05, y_img + side_img / 2, f"pixels\nseen\n({K}x{K})", ha="right", va="center",
            fontsize=FONT)
    bottom = y_img - 0.25
    ax.plot([xs[0], xs[-1]], [bottom, bottom], color="#333333", lw=0.9)
    mid = (left + width) / 2
    _arrow(ax, (mid, bottom), (mid, bottom - 0.2))
    _add(ax, mid, bottom - 0.31)
    _arrow(ax, (mid, bottom - 0.42), (mid, bottom - 0.6))
    ax.text(mid, bottom - 1.0,
            f"after training: each BN folded into its conv, each dilated\n"
            f"kernel written as a sparse {K}x{K} kernel, all summed:\n"
            f"one {K}x{K} depthwise conv with bias (notebook 1)",
            ha="center", va="center", fontsize=FONT)
    # the dashed link from the block's dwconv box to its expansion
    ax.plot([x + w / 2, xs[0]], [centres[0], split], color="#b35c00", lw=0.9, ls="--")
    return fig


def architecture(variant="A"):
    """Stem, four stages and head of a UniRepLKNet: each stage's width, resolution and blocks, one
    square per block (LarK or SmaK, with its K). `variant`: a key of VARIANTS ("A" ... "XL") or a
    UniRepLKNet (a variant with overrides)."""
    if isinstance(variant, UniRepLKNet):
        model, name = variant, "UniRepLKNet"
    else:
        key = str(variant).lower()
        if key not in VARIANTS:
            raise ValueError(f"variant must be one of {[k.upper() for k in VARIANTS]} or a UniRepLKNet, "
                             f"got {variant!r}")
        # the variant's blocks at a tiny width: the same structure without its weights (XL: 386 M)
        model = create_model(f"unireplknet_{key}", num_classes=0, dims=(8, 8, 8, 8))
        name = f"UniRepLKNet-{key.upper()}"
    depths = model.depths
    dims = model.dims if isinstance(variant, UniRepLKNet) else VARIANTS[key].dims
    # (K, LarK?) of every block, as built: LarK blocks are the ones with a Dilated Reparam Block
    kernels = [[(blk.kernel_size, isinstance(blk.dwconv, DilatedReparamBlock)) for blk in stage]
               for stage in model.stages]
    width = 7.0
    per_row = 14  # block squares a row inside a stage box
    rows = [max(1, -(-d // per_row)) for d in depths]
    heights = [0.42 + 0.3 * r for r in rows]
    height = 1.0 + 0.55 + sum(heights) + 3 * 0.42 + 0.55 + 0.45
    fig, ax = _canvas(width, height)
    from matplotlib.patches import Rectangle

    ax.text(0.1, height - 0.25, f"{name}: depths {tuple(depths)}, widths C {tuple(dims)}",
            ha="left", va="center", fontsize=FONT + 1.5, weight="bold")
    # legend
    for i, (label, colour) in enumerate([("LarK block (Dilated Reparam Block, K >= 7)", LARK_COLOUR),
                                         ("SmaK block (plain depthwise conv)", SMAK_COLOUR)]):
        lx = 0.1 + i * 3.7
        ax.add_patch(Rectangle((lx, height - 0.66), 0.2, 0.2, facecolor=colour, edgecolor="#333333", lw=0.6))
        ax.text(lx + 0.28, height - 0.56, label, ha="left", va="center", fontsize=FONT)
    left, w = 0.1, width - 0.2
    y = height - 0.95
    ax.text(width / 2, y, "input  3 x H x W", ha="center", va="center", fontsize=FONT)
    y -= 0.12

    def flow(y_from, length=0.13):
        _arrow(ax, (width / 2, y_from), (width / 2, y_from - length))
        return y_from - length

    y = flow(y)
    _box(ax, width / 2, y - 0.21, w, 0.42,
         f"stem: conv 3x3 stride 2 (3 -> {dims[0] // 2}), LN, GELU, conv 3x3 stride 2 "
         f"({dims[0] // 2} -> {dims[0]}), LN      ->  H/4 x W/4", PLAIN_COLOUR)
    y -= 0.42
    for s in range(4):
        if s > 0:
            y = flow(y, 0.08)
            _box(ax, width / 2, y - 0.12, w, 0.24,
                 f"downsample: conv 3x3 stride 2 ({dims[s - 1]} -> {dims[s]}), LN", PLAIN_COLOUR,
                 size=FONT)
            y -= 0.24
        y = flow(y, 0.08)
        hs = heights[s]
        ax.add_patch(Rectangle((left, y - hs), w, hs, facecolor="white", edgecolor="#333333", lw=0.9))
        ks = kernels[s]
        lark = sum(is_lark for _, is_lark in ks)
        smak = len(ks) - lark
        count = ", ".join(p for p in [f"{lark} LarK" if lark else "", f"{smak} SmaK" if smak else ""] if p)
        ax.text(left + 0.1, y - 0.2, f"stage {s + 1}:  C = {dims[s]},  H/{4 * 2 ** s} x W/{4 * 2 ** s},  "
                f"{len(ks)} blocks ({count})", ha="left", va="center", fontsize=FONT)
        cell, x0 = 0.42, left + 0.12
        for j, (k, is_lark) in enumerate(ks):
            cx, cy = x0 + (j % per_row) * cell, y - 0.5 - (j // per_row) * 0.3
            ax.add_patch(Rectangle((cx, cy - 0.12), cell - 0.06, 0.24,
                                   facecolor=LARK_COLOUR if is_lark else SMAK_COLOUR, edgecolor="#333333", lw=0.6))
            ax.text(cx + (cell - 0.06) / 2, cy, str(k), ha="center", va="center", fontsize=FONT)
        y -= hs
    y = flow(y, 0.1)
    _box(ax, width / 2, y - 0.2, w, 0.4,
         f"head: global average pool, LN, Linear ({dims[3]} -> classes)", PLAIN_COLOUR)
    return fig


def save(fig, path) -> Path:
    """Write `fig` as a PNG (100 dpi, no date or software tag: the same drawing gives the same bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    return path


# The drawings the book's intro shows (book/intro.md), committed as PNGs in book/_assets/;
# tests/test_diagrams.py redraws them and fails when a committed one is out of date.
BOOK_FIGURES = {
    "block.png": lambda: block(13),
    "architecture.png": lambda: architecture("A"),
}


def write_book_figures(folder) -> list[Path]:
    """Draw BOOK_FIGURES into `folder` (the repository's book/_assets). Returns the paths written."""
    import matplotlib.pyplot as plt

    paths = []
    for name, draw in BOOK_FIGURES.items():
        fig = draw()
        paths.append(save(fig, Path(folder) / name))
        plt.close(fig)
    return paths
