"""Explorers that stay interactive without a kernel: precomputed states as one plotly figure.

The ipywidgets explorers (`unirep_lite.widgets`) compute whatever the reader asks for, but on a static
web page (the book) there is no Python behind them: a widget there is only its saved first state.
The figures here compute a grid of states up front (a slider over one choice, a menu over another)
and let plotly.js switch between them in the browser, so the page needs no kernel.

    kernel_figure()      merged kernels: slider K (every K of the branch table), menu branch choice
    erf_figure(...)      effective receptive fields: slider K, menu stage (random-init UniRepLKNet-A)
    live_or_static(...)  the widget in JupyterLab, the figure when the book is built (UNIREP_BOOK=1)

Each control keeps its choice when the other moves (see `state_figure`), and each explorer carries
one guiding question (KERNEL_QUESTION, ERF_QUESTION), as the widgets of `unirep_lite.widgets` do.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from . import env
from . import erf as erf_lib
from . import plots
from .blocks import DilatedReparamBlock
from .model import reparameterize
from .reparam import BRANCHES
from .testing import randomize_

# The book build sets this (tools/book.py: BUILD_ENV; read by env.static_book); JupyterLab, Colab and Binder don't.
BOOK_ENV = "UNIREP_BOOK"


def static_book() -> bool:
    """True while the static book is being built: widgets there would be frozen on the page."""
    return env.static_book()


def live_or_static(live: Callable, static: Callable):
    """`live()` (an ipywidgets explorer) in a live kernel, `static()` (a plotly figure) in the book."""
    return static() if static_book() else live()


# ---------------------------------------------------------------------------------------------------
# the generic figure: states[(slider value, menu value)] = panels

# One guiding question per explorer: the figure's title in the book, the first line of the widget.
KERNEL_QUESTION = "Question: where do the dilated branches add weight beyond the dense kernel, as K grows?"
ERF_QUESTION = "Question: what happens to the 50% square as K grows, and does it depend on the stage?"


def _colorbar_panels(styles: Sequence[dict]) -> list[bool]:
    """Which panels get a colour bar: each one whose scale differs from the next panel's (a panel
    scaled to its own data always does), and the last."""
    own = [st.get("range", "symmetric") != "decades" for st in styles]
    return [j == len(styles) - 1 or own[j] or styles[j] != styles[j + 1] for j in range(len(styles))]


def state_figure(states: dict[tuple, Sequence[tuple[str, np.ndarray]]], slider: tuple[str, Sequence],
                 menu: tuple[str, Sequence], start: tuple, question: str,
                 styles: Sequence[dict] | None = None, height: int = 380, note: str = ""):
    """One plotly figure showing `states` one at a time: a slider over `slider` values, a menu over
    `menu` values, `question` (what to look for) as its title and `note` (what is shown) under it.
    Each state is a list of (panel title, 2-D array); every state has the same number of panels. `styles`, one per panel column:
    `colorscale`, `colorbar` (extra colour-bar settings) and `range`, either "symmetric" (centred
    on zero, for kernel weights), "data" (0 to the panel's maximum) or "decades" (an ERF in [0, 1]
    on a 4-decade scale, stored as whole percent in bytes to keep the page small).

    The two controls are independent, without JavaScript of our own: every state's traces exist
    once; the slider sets which are *visible* (all menu entries of its value), the menu which are
    *opaque*, hoverable and own a colour bar (all slider values of its entry). Panel titles work the
    same way, as annotations: the slider sets their `visible`, the menu their `opacity`.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    slider_name, slider_values = slider
    menu_name, menu_values = menu
    slider_values, menu_values = list(slider_values), list(menu_values)
    keys = [(sv, m) for sv in slider_values for m in menu_values]
    missing = [k for k in keys if k not in states]
    if missing:
        raise ValueError(f"state_figure: no panels for {missing[:3]} (need every (slider, menu) pair)")
    if start not in states:
        raise ValueError(f"start {start!r} is not one of the states")
    n = len(states[keys[0]])
    if any(len(states[k]) != n for k in keys):
        raise ValueError("state_figure: every state needs the same number of panels")

    styles = list(styles or [dict(colorscale="RdBu_r", range="symmetric")] * n)
    if len(styles) != n:
        raise ValueError(f"state_figure: {n} panels per state but {len(styles)} styles")
    bars = _colorbar_panels(styles)
    fig = make_subplots(rows=1, cols=n, horizontal_spacing=0.16 if sum(bars) > 1 else 0.06)
    domains = [fig.layout[f"xaxis{j if j > 1 else ''}"].domain for j in range(1, n + 1)]
    owner = []  # (slider value, menu value) of every trace, then of every annotation
    for key in keys:
        for j, ((title, z), style) in enumerate(zip(states[key], styles)):
            kind = style.get("range", "symmetric")
            z = np.asarray(z, dtype=float)
            vmax = float(np.abs(z).max()) or 1.0
            bar = dict(thickness=12, len=0.85, x=domains[j][1] + 0.01, xanchor="left")
            hover = "row %{y}, column %{x}: %{z:.3g}<extra></extra>"
            if kind == "decades":
                z = np.round(np.clip(z, 0, 1) * 100).astype(np.uint8)
                scale = dict(zmin=0, zmax=100)
                bar.update(tickvals=[0, 25, 50, 75, 100],
                           ticktext=["10<sup>-4</sup>", "10<sup>-3</sup>", "10<sup>-2</sup>", "0.1",
                                     "peak"])
                hover = "row %{y}, column %{x}<extra></extra>"
            else:
                scale = {"symmetric": dict(zmin=-vmax, zmax=vmax), "data": dict(zmin=0.0, zmax=vmax)}[kind]
            bar.update(style.get("colorbar", {}))
            chosen = key[1] == start[1]
            fig.add_trace(go.Heatmap(z=z, colorscale=style.get("colorscale", "RdBu_r"), **scale,
                                     visible=key[0] == start[0], opacity=1.0 if chosen else 0.0,
                                     showscale=bars[j] and chosen, colorbar=bar, hovertemplate=hover,
                                     hoverinfo="all" if chosen else "skip"), 1, j + 1)
            owner.append(key)
            fig.add_annotation(text=title, x=sum(domains[j]) / 2, y=1.0, xref="paper", yref="paper",
                               xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=13),
                               visible=key[0] == start[0], opacity=1.0 if chosen else 0.0)
    def ranges(sv):
        """Axis ranges of slider value `sv` (its panels' sizes), set explicitly: a restyle alone
        leaves the square-pixel constraint on the previous size."""
        out = {}
        for j, (_, z) in enumerate(states[(sv, menu_values[0])], start=1):
            rows, cols = np.shape(z)
            suffix = j if j > 1 else ""
            out[f"xaxis{suffix}.range"] = [-0.5, cols - 0.5]
            out[f"yaxis{suffix}.range"] = [rows - 0.5, -0.5]  # row 0 at the top, as an image
        return out

    for j in range(1, n + 1):
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain",
                         row=1, col=j)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain",
                         scaleanchor=f"x{j if j > 1 else ''}", row=1, col=j)
    fig.update_layout(ranges(start[0]))

    def slider_step(sv):
        shown = [k[0] == sv for k in owner]
        return [{"visible": shown},
                {**ranges(sv), **{f"annotations[{i}].visible": v for i, v in enumerate(shown)}}]

    def menu_entry(m):
        chosen = [k[1] == m for k in owner]
        traces = {"opacity": [1.0 if c else 0.0 for c in chosen],
                  "hoverinfo": ["all" if c else "skip" for c in chosen],
                  "showscale": [c and bars[i % n] for i, c in enumerate(chosen)]}
        return [traces, {f"annotations[{i}].opacity": 1.0 if c else 0.0 for i, c in enumerate(chosen)}]

    steps = [dict(method="update", label=str(sv), args=slider_step(sv)) for sv in slider_values]
    buttons = [dict(method="update", label=f"{menu_name}: {m}", args=menu_entry(m)) for m in menu_values]
    fig.update_layout(
        title=dict(text=question + (f"<br><span style='font-size:12px'>{note}</span>" if note else ""),
                   font=dict(size=14), x=0.0, xanchor="left", y=0.96, yanchor="top"),
        sliders=[dict(active=slider_values.index(start[0]), steps=steps,
                      currentvalue=dict(prefix=f"{slider_name} = "), pad=dict(t=30, b=0), len=1.0, x=0.0)],
        updatemenus=[dict(buttons=buttons, active=menu_values.index(start[1]), direction="down",
                          x=1.0, xanchor="right", y=1.0, yanchor="bottom", pad=dict(b=48),
                          showactive=True)],
        height=height, autosize=True, margin=dict(l=10, r=10, t=125, b=10),
        font=dict(size=12),
    )
    return fig


# ---------------------------------------------------------------------------------------------------
# merged kernels


def branch_choices(K: int) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """A few branch sets for a KxK block, all derived from the authors' table (reparam.BRANCHES)."""
    ks, rs = BRANCHES[K]
    return {
        "authors' branches": (ks, rs),
        "dense KxK only": ((), ()),
        "undilated k=5 only": (ks[:1], rs[:1]),
        "dilated ones only (r > 1)": (ks[1:], rs[1:]),
    }


@torch.no_grad()
def kernel_states(sizes: Sequence[int] | None = None, seed: int = 0) -> dict[tuple, list]:
    """(K, branch choice) -> [footprint count, merged kernel] for every K of the branch table."""

    states = {}
    for K in sizes or sorted(BRANCHES):
        for name, (ks, rs) in branch_choices(K).items():
            block = randomize_(DilatedReparamBlock(1, K, branches=(ks, rs)), seed=seed).eval()
            count = sum(f for _, f in plots.branch_footprints(K, ks, rs))
            merged = plots.block_kernels(block, 0)[-1][1]
            states[(K, name)] = [(f"branches that see each pixel<br>(centre: {int(count.max())})", count),
                                 (f"merged {K}x{K} kernel<br>(random weights, BN folded)", merged)]
    return states


def kernel_figure(K: int = 13, seed: int = 0):
    """The merged-kernel explorer for a static page: slider K, menu branch choice."""
    sizes = sorted(BRANCHES)
    states = kernel_states(sizes, seed)
    names = list(branch_choices(sizes[0]))
    return state_figure(states, ("K", sizes), ("branches", names), (K, names[0]), KERNEL_QUESTION,
                        note="one-channel Dilated Reparam Block, random weights and BN statistics",
                        styles=[dict(colorscale="Viridis", range="data",
                                     colorbar=dict(title=dict(text="branches", side="right"), dtick=1)),
                                dict(colorscale="RdBu_r", range="symmetric")], height=440)


# ---------------------------------------------------------------------------------------------------
# effective receptive fields

ERF_KERNELS = (3, 5, 7, 9, 11, 13, 15, 17)


def erf_states(kernels: Sequence[int] = ERF_KERNELS, stages: Sequence[int] = (1, 2, 3, 4),
               resolution: int = 128, n_images: int = 4, seed: int = 0,
               source: str = "photos") -> dict[tuple, list]:
    """(K, "stage s") -> [ERF of K = 3, ERF of K], random-init UniRepLKNet-A, decades scale.

    Panel titles give the high-contribution area ratios (RepLKNet's measure): the share of the image
    covered by the smallest centred square holding 50% and 99% of the contribution.
    """

    images = erf_lib.load_images(source, n_images, resolution, seed=seed)
    maps = {}
    for K in sorted(set(kernels) | {3}):
        model = erf_lib.build_model("unireplknet_a", lk_size=K, seed=seed)
        model = reparameterize(model.eval())  # the same function in eval mode, one conv per block
        for s in stages:
            maps[(K, s)] = erf_lib.compute_erf(model, images, stage=s - 1, progress=False,
                                               label=f"K={K}, stage {s}")
    states = {}
    for K in kernels:
        for s in stages:
            panels = []
            for k in (3, K):
                e = maps[(k, s)]
                r = e.area_ratios((0.5, 0.99))
                panels.append((f"K = {k}<br>50% within {r[0.5]:.1%}, 99% within {r[0.99]:.0%}",
                               e.decades(4.0)))
            states[(K, f"stage {s}")] = panels
    return states


def erf_figure(kernels: Sequence[int] = ERF_KERNELS, stages: Sequence[int] = (1, 2, 3, 4),
               resolution: int = 128, n_images: int = 4, seed: int = 0, K: int = 13, stage: int = 3,
               source: str = "photos"):
    """The ERF explorer for a static page: slider K, menu stage; K = 3 drawn alongside."""
    states = erf_states(kernels, stages, resolution, n_images, seed, source)
    menu = [f"stage {s}" for s in stages]
    return state_figure(
        states, ("K", list(kernels)), ("stage", menu), (K, f"stage {stage}"), ERF_QUESTION,
        styles=[dict(colorscale="Magma", range="decades")] * 2, height=440,
        note=f"ERF of a random-init UniRepLKNet-A, {resolution} x {resolution} input; left: K = 3")
