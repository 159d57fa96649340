"""Figures for the course: branch and merged kernels of a Dilated Reparam Block, and ERF heatmaps.

Every function returns its figure (matplotlib or plotly) and shows nothing itself, so notebooks,
widgets and tests use the same code. Kernels are drawn with a diverging colour map centred on zero
(weights have a sign); ERFs with a sequential one (contributions do not).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .erf import THRESHOLDS
from .reparam import dilated_to_sparse, fuse_bn, pad_to


# ------------------------------------------------------------------------------------ style

# Figures sized for the book's text column (about 700 px): at 100 dpi a 7-inch figure is drawn at
# its own size, so 9-10 pt text stays 12-14 px on the page. Wider figures get shrunk, and their text
# with them: split them into rows instead.
BOOK_RC = {
    "figure.figsize": (7.0, 3.6), "figure.dpi": 100, "savefig.dpi": 100,
    "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 9,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "figure.titlesize": 11,
    "figure.constrained_layout.use": False, "savefig.bbox": "tight",
}


def book_style() -> None:
    """Set matplotlib's defaults for figures that read well at the book's column width."""
    import matplotlib as mpl

    mpl.rcParams.update(BOOK_RC)


def tidy(fig, gap: float = 0.15, **tight):
    """`fig.tight_layout(**tight)`, then `gap` inches more between the suptitle and the panels'
    titles (tight_layout leaves a suptitle touching two-line panel titles). Returns the figure."""
    fig.tight_layout(**tight)
    if fig.get_suptitle():
        fig.subplots_adjust(top=fig.subplotpars.top - gap / fig.get_figheight())
    return fig


# ------------------------------------------------------------------------------------ kernels

@torch.no_grad()
def block_kernels(block, channel: int = 0) -> list[tuple[str, np.ndarray]]:
    """(title, KxK kernel) of each branch of a Dilated Reparam Block, BN folded, then the merged one.

    Each dilated kxk branch is written as the sparse KxK kernel it equals (reparam.dilated_to_sparse
    and pad_to), so the merged kernel is exactly the sum of the panels before it.
    """
    if getattr(block, "deploy", False):
        return [(f"merged {block.K}x{block.K}", block.lk_origin.weight[channel, 0].double().cpu().numpy())]
    if not 0 <= channel < block.channels:
        raise ValueError(f"channel must be in [0, {block.channels}), got {channel}")
    parts = []
    for conv, bn, r in block.branches():
        w, _ = fuse_bn(conv.weight, bn)
        k = conv.kernel_size[0]
        title = f"{block.K}x{block.K} (dense)" if r == 1 and k == block.K else f"k={k}, r={r}"
        parts.append((title, pad_to(dilated_to_sparse(w, r), block.K)[channel, 0].double().cpu().numpy()))
    merged, _ = block.merged_kernel()
    parts.append((f"merged {block.K}x{block.K}", merged[channel, 0].double().cpu().numpy()))
    return parts


def branch_footprints(K: int, ks: Sequence[int], rs: Sequence[int]) -> list[tuple[str, np.ndarray]]:
    """Which input pixels (of the KxK window) each branch sees: 1 where it has a weight, else 0."""
    out = [(f"{K}x{K} (dense)", np.ones((K, K)))]
    for k, r in zip(ks, rs):
        ones = torch.ones(1, 1, k, k, dtype=torch.float64)
        out.append((f"k={k}, r={r}", pad_to(dilated_to_sparse(ones, r), K)[0, 0].numpy()))
    return out


def _kernel_ax(ax, kernel: np.ndarray, title: str, vmax: float, cmap: str = "RdBu_r") -> None:
    ax.imshow(kernel, cmap=cmap, vmin=-vmax if cmap == "RdBu_r" else 0, vmax=vmax)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_kernels(parts: Sequence[tuple[str, np.ndarray]], suptitle: str = "", shared_scale: bool = True):
    """A row of kernel heatmaps (diverging colours, zero = white). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    if not parts:
        raise ValueError("plot_kernels needs at least one (title, kernel) pair")
    n = len(parts)
    cols = min(n, 4)  # at most four panels a row: readable at the book's column width
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.75 * cols + 0.2, 2.3 * rows + 0.3), squeeze=False)
    vmax = max(np.abs(k).max() for _, k in parts) or 1.0
    for ax in axes.flat[n:]:
        fig.delaxes(ax)
    for ax, (title, k) in zip(axes.flat, parts):
        _kernel_ax(ax, k, title, vmax if shared_scale else (np.abs(k).max() or 1.0))
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return tidy(fig, h_pad=1.5)  # row titles clear of the kernels above


def plot_block(block, channel: int = 0, suptitle: str | None = None):
    """Two rows for a Dilated Reparam Block: the pixels each branch sees, and its (sparse) kernel;
    the last panel of the kernel row is the merged kernel, the sum of the others."""
    import matplotlib.pyplot as plt

    kernels = block_kernels(block, channel)
    feet = branch_footprints(block.K, block.ks, block.rs) + [("merged: all of them", None)]
    n = len(kernels)
    # at most four branches a row (readable at the book's column width); each branch is a column
    # of two panels: the pixels it sees above its kernel
    cols = min(n, 4)
    bands = -(-n // cols)
    fig, axes = plt.subplots(2 * bands, cols, figsize=(1.75 * cols + 0.4, 3.9 * bands + 0.3), squeeze=False)
    for j in range(n, bands * cols):  # empty places of the last band
        fig.delaxes(axes[2 * (j // cols), j % cols])
        fig.delaxes(axes[2 * (j // cols) + 1, j % cols])
    vmax = max(np.abs(k).max() for _, k in kernels) or 1.0
    for j, ((t_k, k), (t_f, f)) in enumerate(zip(kernels, feet)):
        if f is None:  # the merged kernel sees the union: every pixel of the KxK window
            f = np.ones_like(k)
        top, bottom = axes[2 * (j // cols), j % cols], axes[2 * (j // cols) + 1, j % cols]
        _kernel_ax(top, f * 0.6, t_f, 1.0, cmap="Greys")
        _kernel_ax(bottom, k, t_k, vmax)
    for band in range(bands):
        axes[2 * band, 0].set_ylabel("pixels seen", fontsize=9)
        axes[2 * band + 1, 0].set_ylabel("kernel", fontsize=9)
    fig.suptitle(suptitle if suptitle is not None else
                 f"Dilated Reparam Block K={block.K}:\nbranches and merged kernel (channel {channel})", fontsize=10)
    return tidy(fig, h_pad=2.0)


def plotly_kernels(parts: Sequence[tuple[str, np.ndarray]], title: str = ""):
    """Interactive version of plot_kernels: hover shows each weight."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = len(parts)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[t for t, _ in parts], horizontal_spacing=0.02)
    vmax = max(np.abs(k).max() for _, k in parts) or 1.0
    for j, (_, k) in enumerate(parts, start=1):
        fig.add_trace(go.Heatmap(z=k, colorscale="RdBu_r", zmin=-vmax, zmax=vmax, showscale=(j == n)), 1, j)
        fig.update_xaxes(showticklabels=False, row=1, col=j)
        fig.update_yaxes(showticklabels=False, autorange="reversed", scaleanchor=f"x{j if j > 1 else ''}",
                         row=1, col=j)
    # no fixed width: the figure fills its container (the book column, a notebook cell)
    fig.update_layout(title=title, height=260, autosize=True, margin=dict(l=10, r=10, t=60, b=10))
    return fig


# ------------------------------------------------------------------------------------ ERFs

def _square(ax, side: int, res: int, **kw) -> None:
    from matplotlib.patches import Rectangle

    side = min(side, res)
    c = res // 2
    ax.add_patch(Rectangle((c - side / 2, c - side / 2), side, side, fill=False, **kw))


SCALES = ("replknet", "decades")


def erf_image(e, scale: str = "replknet") -> np.ndarray:
    """What to draw for an ERF: RepLKNet's log10(x+1) in [0, 1], or 4 decades below the peak."""
    if scale == "replknet":
        return e.scaled
    if scale == "decades":
        return e.decades(4.0)
    raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")


def plot_erfs(erfs: Sequence, threshold: float | None = 0.5, cols: int | None = None, suptitle: str = "",
              scale: str = "replknet"):
    """ERF heatmaps side by side, scaled as RepLKNet does ("replknet") or in decades ("decades").

    Dashed white square: the theoretical receptive field (clipped to the image); solid cyan square:
    the smallest centred square holding `threshold` of the contribution (its area ratio in the title).
    """
    import matplotlib.pyplot as plt

    erfs = list(erfs)
    if not erfs:
        raise ValueError("plot_erfs needs at least one ERF")
    cols = cols or min(len(erfs), 3)  # three a row fit the book's column with readable titles
    rows = (len(erfs) + cols - 1) // cols
    side = min(3.0, 7.2 / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, (side + 0.4) * rows), squeeze=False)
    for ax in axes.flat[len(erfs):]:
        ax.axis("off")
    for ax, e in zip(axes.flat, erfs):
        ax.imshow(erf_image(e, scale), cmap="magma", vmin=0, vmax=1)
        title = e.label or f"stage {e.stage}"
        res = e.resolution
        if e.theoretical_rf is not None:
            _square(ax, e.theoretical_rf, res, edgecolor="white", linestyle="--", linewidth=1)
        if threshold is not None:
            ratio = e.area_ratios((threshold,))[threshold]
            side = int(round(np.sqrt(ratio) * res))
            _square(ax, side, res, edgecolor="cyan", linewidth=1.2)
            title += f"\nratio@{threshold}: {ratio:.3f}"
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(suptitle or ("ERF, log10(x+1) scaled to [0, 1]" if scale == "replknet" else
                              "ERF, decades below the peak (black: 10^-4 of the peak or less)"), fontsize=10)
    return tidy(fig)


def plot_area_ratios(erfs: Sequence, thresholds: Sequence[float] | None = None):
    """Area ratio against threshold, one line per ERF (higher = contribution spread wider)."""
    import matplotlib.pyplot as plt


    thresholds = tuple(thresholds or THRESHOLDS)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for e in erfs:
        r = e.area_ratios(thresholds)
        ax.plot(thresholds, [r[t] for t in thresholds], marker="o", label=e.label or f"stage {e.stage}")
    ax.set_yscale("log")
    ax.set_xlabel("threshold t (fraction of total contribution)")
    ax.set_ylabel("area ratio (log scale)")
    ax.set_title("High-contribution area ratio", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plotly_erfs(erfs: Sequence, title: str | None = None, scale: str = "replknet"):
    """Interactive ERF heatmaps: hover a pixel to read its scaled contribution."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    erfs = list(erfs)
    if not erfs:
        raise ValueError("plotly_erfs needs at least one ERF")
    n = len(erfs)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[e.label or f"stage {e.stage}" for e in erfs],
                        horizontal_spacing=0.02)
    for j, e in enumerate(erfs, start=1):
        fig.add_trace(go.Heatmap(z=erf_image(e, scale), colorscale="Magma", zmin=0, zmax=1, showscale=(j == n),
                                 hovertemplate="x %{x}, y %{y}: %{z:.3f}<extra></extra>"), 1, j)
        fig.update_xaxes(showticklabels=False, row=1, col=j)
        fig.update_yaxes(showticklabels=False, autorange="reversed", scaleanchor=f"x{j if j > 1 else ''}",
                         row=1, col=j)
    if title is None:
        title = "ERF, log10(x+1) scaled to [0, 1]" if scale == "replknet" else "ERF, decades below the peak"
    fig.update_layout(title=title, height=330, autosize=True, margin=dict(l=10, r=10, t=70, b=10))
    return fig


# ------------------------------------------------------------------------------------ inputs and runs

def plot_stage_cells(original, enlarged: Sequence[tuple[str, np.ndarray]], stride: int = 16, kernel: int = 13,
                     original_title: str = "the data"):
    """The input as stored, then as the backbone sees it at each size, with one stage's cells on it.

    `original` and each image of `enlarged` ([(title, image)]) are 2-D grey images. Orange lines: the
    cells of the feature map of that stride (`stride` x `stride` input pixels each); red dashed square:
    the input pixels a `kernel` x `kernel` conv at that stage spans from the cell nearest the centre
    (it may reach far beyond the image). Returns the figure.
    """
    import matplotlib.pyplot as plt

    if not enlarged:
        raise ValueError("plot_stage_cells needs at least one enlarged image")
    fig, axes = plt.subplots(1, 1 + len(enlarged), figsize=(2.4 * (1 + len(enlarged)), 3.0))
    axes[0].imshow(np.asarray(original), cmap="gray_r")
    axes[0].set_title(original_title, fontsize=10)
    for ax, (title, img) in zip(axes[1:], enlarged):
        s = np.asarray(img).shape[-1]
        ax.imshow(np.asarray(img), cmap="gray_r", extent=(0, s, s, 0))
        ticks = list(range(0, s + 1, stride))
        ax.hlines(ticks, 0, s, color="tab:orange", lw=0.8)  # over the image only
        ax.vlines(ticks, 0, s, color="tab:orange", lw=0.8)
        reach = kernel * stride  # in input pixels
        c = s / 2 - stride / 2 if (s // stride) % 2 == 0 else s / 2  # centre of a middle cell
        ax.add_patch(plt.Rectangle((c - reach / 2, c - reach / 2), reach, reach, fill=False,
                                   ec="tab:red", lw=1.5, ls="--"))
        lo, hi = min(-0.2 * s, c - reach / 2 - 4), max(1.2 * s, c + reach / 2 + 4)
        ax.set_xlim(lo, hi)  # wide enough for the kernel's reach
        ax.set_ylim(hi, lo)
        ax.set_title(f"{title}: {s} x {s}\nmap {s // stride} x {s // stride}", fontsize=10)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"orange: cells of the stride-{stride} map ({stride} x {stride} input pixels each)\n"
                 f"red: the reach of one {kernel} x {kernel} kernel there", fontsize=10)
    return tidy(fig)


def plot_seed_scores(scores, ylabel: str = "test accuracy", title: str = "", reference: float | None = None,
                     reference_label: str = "chance", ax=None):
    """One dot per seed and a bar at the mean for each arm (`scores`: name -> one score per seed), and
    a dashed line at `reference` (e.g. chance). Returns the figure."""
    import matplotlib.pyplot as plt

    if not scores:
        raise ValueError("plot_seed_scores needs at least one arm")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 + 1.3 * len(scores), 3.0))
    for i, (name, values) in enumerate(scores.items()):
        values = np.asarray(values, dtype=float)
        ax.plot(np.full(len(values), i) + np.linspace(-0.08, 0.08, len(values)), values, "o",
                color=f"C{i}", alpha=0.8)
        ax.hlines(values.mean(), i - 0.25, i + 0.25, color=f"C{i}", lw=2.5)
    if reference is not None:
        ax.axhline(reference, color="gray", ls="--", lw=1, label=reference_label)
        ax.legend(fontsize=9, loc="best")
    ax.set_xticks(range(len(scores)), list(scores))
    ax.set_xlim(-0.6, len(scores) - 0.4)
    ax.set(ylabel=ylabel, title=title or "dots: single seeds, bars: means")
    ax.figure.tight_layout()
    return ax.figure


def plot_sqrt_law(ns: Sequence[int], stds: dict, fields: Sequence[int], example: np.ndarray | None = None,
                  example_title: str = ""):
    """Luo et al.'s law: the ERF width of n stacked layers against n, on log-log axes.

    `stds`: label -> ERF std (pixels) per n; `fields`: the theoretical field (side, pixels) per n.
    A dotted c * sqrt(n) line is fitted to the first curve. `example`: one ERF map drawn on the left,
    its whole square being the theoretical field.
    """
    import matplotlib.pyplot as plt

    ns = np.asarray(ns, dtype=float)
    if not stds or len(fields) != len(ns) or any(len(s) != len(ns) for s in stds.values()):
        raise ValueError("plot_sqrt_law needs at least one std curve and one value per n in each")
    cols = 1 if example is None else 2
    fig, axes = plt.subplots(1, cols, figsize=(3.3 * cols + 0.6, 3.2), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.5][-cols:]})
    ax = axes[0, -1]
    first = np.asarray(next(iter(stds.values())), dtype=float)
    c = np.exp(np.mean(np.log(first) - 0.5 * np.log(ns)))  # least squares on the log scale
    ax.plot(ns, c * np.sqrt(ns), "-", color="grey", lw=6, alpha=0.35, label=f"{c:.2f} sqrt(n)")
    ax.plot(ns, fields, "k--", label="theoretical field (px)")
    for label, s in stds.items():
        ax.plot(ns, s, "o-", ms=3, label=label)
    ax.set(xscale="log", yscale="log", xlabel="layers n", ylabel="pixels")
    ticks = [int(n) for n in ns if np.log2(n).is_integer()]   # 1, 2, 4, 8, ...
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_title("field grows as n, ERF std as sqrt(n)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if example is not None:
        axes[0, 0].imshow(example, cmap="magma")
        axes[0, 0].set_title(example_title, fontsize=9)
        axes[0, 0].set_xticks([])
        axes[0, 0].set_yticks([])
    return tidy(fig)


# ------------------------------------------------------------------------------------ images, point clouds

def plot_images(panels: Sequence[tuple[str, object]], suptitle: str = "", cols: int = 3, cmap: str = "magma",
                aspect: str = "equal"):
    """A grid of 2-D arrays (tensors or NumPy), each with its title and its own colour scale, no ticks:
    the planes of a front-end, the terms of an embedding. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    from . import checks

    panels = list(panels)
    if not panels:
        raise ValueError("plot_images needs at least one (title, image) pair")
    cols = min(checks.positive_int("cols", cols), len(panels))
    rows = -(-len(panels) // cols)
    panel = 7.2 / cols + 0.5 if aspect == "equal" else 2.6  # square images: their width, titles
    fig, axes = plt.subplots(rows, cols, figsize=(7.2, panel * rows + 0.6), squeeze=False)
    for ax in axes.flat[len(panels):]:
        fig.delaxes(ax)
    for ax, (title, image) in zip(axes.flat, panels):
        ax.imshow(np.asarray(image, dtype=np.float64), cmap=cmap, aspect=aspect)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return tidy(fig)


def plot_views(images: dict, names: Sequence[str], views: Sequence[str] = ("side", "front", "top"),
               suptitle: str = ""):
    """Three-view images of point clouds side by side: `images` maps a row label ("128 x 128",
    "learned") to a B x V x H x W batch; one column per cloud (`names`), one row per label and view.
    Images in [0, 1] (the fixed depth views) share that scale; others get their own."""
    import matplotlib.pyplot as plt

    batches = {label: np.asarray(torch.as_tensor(x).detach().cpu(), dtype=np.float64) for label, x in images.items()}
    for label, x in batches.items():
        if x.ndim != 4 or x.shape[:2] != (len(names), len(views)):
            raise ValueError(f"images[{label!r}] must be {len(names)} clouds x {len(views)} views x H x W, "
                             f"got shape {x.shape}")
    rows, cols = len(batches) * len(views), len(names)
    fig, axes = plt.subplots(rows, cols, figsize=(7.4, 0.85 * rows + 0.9), squeeze=False)
    for b, (label, x) in enumerate(batches.items()):
        unit = x.min() >= 0 and x.max() <= 1
        for v, view in enumerate(views):
            row = b * len(views) + v
            for k in range(cols):
                axes[row, k].imshow(x[k, v], cmap="magma", **({"vmin": 0, "vmax": 1} if unit else {}))
                axes[row, k].set_xticks([])
                axes[row, k].set_yticks([])
            axes[row, 0].set_ylabel(f"{label}\n{view}", fontsize=8)
    for k, name in enumerate(names):
        axes[0, k].set_title(name, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return tidy(fig, h_pad=0.3, w_pad=0.3)


def plotly_point_clouds(clouds, names: Sequence[str], colors=None, title: str = "cloud",
                        colorscale: str = "Viridis"):
    """Rotatable 3D scatter of point clouds (N x P x 3), one shown at a time, picked from a menu.
    Points are coloured by `colors` (N x P, e.g. a gradient's size) or by their height."""
    import plotly.graph_objects as go

    clouds = np.asarray(torch.as_tensor(clouds).detach().cpu(), dtype=np.float64)
    if clouds.ndim != 3 or clouds.shape[-1] != 3 or len(clouds) != len(names):
        raise ValueError(f"clouds must be N x P x 3 with one name each, got shape {clouds.shape} and "
                         f"{len(names)} names")
    colors = clouds[..., 2] if colors is None else np.asarray(torch.as_tensor(colors).detach().cpu())
    fig = go.Figure()
    for k, (p, name) in enumerate(zip(clouds, names)):
        fig.add_trace(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name=name, visible=k == 0,
                                   marker=dict(size=2, color=colors[k], colorscale=colorscale)))
    menu = [dict(label=name, method="update",
                 args=[{"visible": [j == k for j in range(len(names))]}, {"title": f"{title}: {name}"}])
            for k, name in enumerate(names)]
    axis = dict(range=[-1, 1])
    fig.update_layout(title=f"{title}: {names[0]}", height=480, margin=dict(l=0, r=0, t=40, b=0),
                      updatemenus=[dict(buttons=menu, direction="down", x=0.0, y=1.0)],
                      scene=dict(aspectmode="cube", xaxis=axis, yaxis=axis, zaxis=axis))
    return fig


# ------------------------------------------------------------------------------------ the sparse pattern

def plot_numbered_kernels(parts: Sequence[tuple[str, np.ndarray]], fmt: str = "{:.0f}"):
    """Small kernels side by side with every weight written in its pixel ("·" for a zero): for
    showing where the weights of a dilated kernel land. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    if not parts:
        raise ValueError("plot_numbered_kernels needs at least one (title, kernel) pair")
    fig, axes = plt.subplots(1, len(parts), figsize=(7, 3.2), squeeze=False)
    vmax = max(float(np.abs(np.asarray(k)).max()) for _, k in parts) or 1.0
    for ax, (title, k) in zip(axes.flat, parts):
        k = np.asarray(k, dtype=float)
        ax.imshow(k, cmap="viridis", vmin=0, vmax=vmax)
        for (i, j), v in np.ndenumerate(k):
            ax.text(j, i, fmt.format(v) if v else "·", ha="center", va="center", fontsize=9,
                    color="w" if v < 0.6 * vmax else "k")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    return tidy(fig)


def branch_counts(K: int, ks: Sequence[int], rs: Sequence[int]) -> np.ndarray:
    """How many branches of a Dilated Reparam Block (the dense KxK one included) weigh each pixel."""
    return sum(f for _, f in branch_footprints(K, ks, rs))


def plot_branch_counts(table: dict, cols: int = 4):
    """One panel per K of `table` ({K: (ks, rs)}, e.g. reparam.BRANCHES): how many branches weigh
    each pixel of the KxK window, on one colour scale with its colour bar."""
    import matplotlib.pyplot as plt

    sizes = sorted(table)
    if not sizes:
        raise ValueError("plot_branch_counts needs at least one K")
    cols = min(cols, len(sizes))
    rows = -(-len(sizes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7, 2.15 * rows + 0.5), squeeze=False)
    top = max(len(table[K][0]) for K in sizes) + 1
    for ax, K in zip(axes.flat, sizes):
        im = ax.imshow(branch_counts(K, *table[K]), cmap="viridis", vmin=1, vmax=top)
        ax.set_title(f"K={K}\n1 + {len(table[K][0])} branches", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(sizes):]:
        ax.axis("off")
    fig.suptitle("How many branches see each pixel of the KxK window", fontsize=10)
    tidy(fig, h_pad=2.0, rect=(0, 0, 0.9, 1))
    bar = fig.add_axes((0.91, 0.15, 0.02, 0.65))
    fig.colorbar(im, cax=bar, label="branches seeing the pixel", ticks=range(1, top + 1))
    return fig


def plot_sparse_pattern(K: int, ks: Sequence[int], rs: Sequence[int]):
    """The paper's case for the dilated branches (section 3.1), as weights on the KxK window: the
    dense KxK kernel weighs every pixel once (dense local patterns); the dilated branches (r > 1)
    add weight on sparse grids of stride r (pixels far apart: sparse patterns); together, some
    pixels are weighted by several branches. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    dilated = [(k, r) for k, r in zip(ks, rs) if r > 1]
    sparse = sum((f for _, f in branch_footprints(K, *zip(*dilated))[1:]), np.zeros((K, K))) \
        if dilated else np.zeros((K, K))
    panels = [("the dense KxK branch:\nevery pixel, once", np.ones((K, K))),
              (f"the dilated branches (r > 1):\nsparse grids, r = {', '.join(str(r) for _, r in dilated)}",
               sparse),
              ("all branches: how many\nweigh each pixel", branch_counts(K, ks, rs))]
    fig, axes = plt.subplots(1, 3, figsize=(7, 3.0))
    top = max(float(p.max()) for _, p in panels)
    for ax, (title, p) in zip(axes, panels):
        im = ax.imshow(p, cmap="Blues", vmin=0, vmax=top)  # white: no weight there
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Where a K = {K} Dilated Reparam Block puts its weights", fontsize=10)
    tidy(fig, rect=(0, 0, 0.9, 1))
    bar = fig.add_axes((0.91, 0.15, 0.02, 0.6))
    fig.colorbar(im, cax=bar, label="branches", ticks=range(0, int(top) + 1))
    return fig
