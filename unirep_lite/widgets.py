"""ipywidgets explorers for the notebooks: merged kernels and effective receptive fields.

Each explorer is a thin layer over a plain function (`render_block`, `ERFExplorer.compute`) that the
tests call directly. A choice the library rejects (an even K, a branch wider than K, a kernel size
for a timm model, a missing folder) shows the library's own error message in the widget, in red,
instead of a traceback. Widgets also work headless (nbclient, CI): they just are not interactive.
On a static page (the book) a widget is only its saved first state: the notebooks show the plotly
versions of `unirep_lite.explorers` there instead.
"""
from __future__ import annotations

import html
import numbers
from typing import Sequence

import torch

from . import erf as erf_lib
from . import plots
from .explorers import ERF_QUESTION, KERNEL_QUESTION
from .blocks import DilatedReparamBlock
from .reparam import BRANCHES, default_branches
from .testing import randomize_

ERROR_STYLE = "color:#b00020;font-family:monospace;white-space:pre-wrap"
MAX_K = 51  # the explorer draws every pixel of a K x K kernel per branch; the paper's largest is 31


def parse_ints(text: str, what: str = "values") -> tuple[int, ...]:
    """'5, 7,3' -> (5, 7, 3); anything else is a ValueError that says what was expected."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated integers such as '5, 7, 3', got {text!r}") from None


def error_html(err: Exception) -> str:
    return f'<div style="{ERROR_STYLE}">{type(err).__name__}: {html.escape(str(err))}</div>'


def question_html(question: str) -> str:
    """The explorer's guiding question, shown above its controls."""
    return f"<b>{html.escape(question)}</b>"


@torch.no_grad()
def render_block(K: int, ks: Sequence[int], rs: Sequence[int], seed: int = 0, channel: int = 0):
    """A one-channel Dilated Reparam Block with random weights and BN statistics, drawn by plots.plot_block.

    Random BatchNorm statistics make each branch's fold visible (fresh BNs are the identity).
    """

    if isinstance(K, bool) or not isinstance(K, numbers.Integral) or not 1 <= K <= MAX_K:
        raise ValueError(f"K must be an odd integer from 1 to {MAX_K} in this explorer, got {K!r}")
    torch.manual_seed(seed)
    block = randomize_(DilatedReparamBlock(1, int(K), branches=(tuple(ks), tuple(rs))), seed=seed).eval()
    return plots.plot_block(block, channel)


def _show(out, fig) -> None:
    import matplotlib.pyplot as plt
    from IPython.display import display

    with out:
        display(fig)
    plt.close(fig)


def kernel_explorer(K: int = 13, seed: int = 0):
    """Choose K and the branches' (k, r); see each branch's sparse kernel, the merged kernel and the
    input pixels each branch sees. Returns the widget box (display it, or let a cell end with it)."""
    import ipywidgets as w

    ks, rs = BRANCHES.get(K, ((), ()))
    k_box = w.IntText(value=K, description="K", layout=w.Layout(width="140px"))
    ks_box = w.Text(value=", ".join(map(str, ks)), description="branch k", layout=w.Layout(width="260px"))
    rs_box = w.Text(value=", ".join(map(str, rs)), description="dilation r", layout=w.Layout(width="260px"))
    seed_box = w.IntText(value=seed, description="seed", layout=w.Layout(width="140px"))
    authors = w.Button(description="authors' branches for K", layout=w.Layout(width="200px"))
    message = w.HTML()
    out = w.Output()

    def update(*_):
        out.clear_output(wait=True)
        message.value = ""
        ui.figure = None
        try:
            fig = render_block(k_box.value, parse_ints(ks_box.value, "branch k"),
                               parse_ints(rs_box.value, "dilation r"), seed_box.value)
        except ValueError as err:
            message.value = error_html(err)
            return
        ui.figure = fig  # the last figure drawn (None after an error)
        _show(out, fig)

    def use_authors(_):
        try:
            a_ks, a_rs = default_branches(k_box.value)
        except ValueError as err:
            message.value = error_html(err)
            return
        ks_box.value, rs_box.value = ", ".join(map(str, a_ks)), ", ".join(map(str, a_rs))
        update()

    question = w.HTML(question_html(KERNEL_QUESTION))
    ui = w.VBox([question, w.HBox([k_box, seed_box, authors]), w.HBox([ks_box, rs_box]), message, out])
    authors.on_click(use_authors)
    for box in (k_box, ks_box, rs_box, seed_box):
        box.observe(update, names="value")
    update()
    ui.update = update  # for tests and for notebooks that drive it from code
    ui.controls = {"K": k_box, "ks": ks_box, "rs": rs_box, "seed": seed_box, "message": message, "out": out,
                   "question": question}
    return ui


class ERFExplorer:
    """Compute and cache ERFs by (model, kernel size, stage, resolution, images), then draw them.

    ERFs take seconds, so the widget computes on a button press and only redraws when just the
    threshold or the scale changes. It opens on the decades scale, which shows the spread of a
    random-init network's ERF (see `unirep_lite.explorers.erf_figure` for the static-page version).
    """

    MODELS = ("unireplknet_a", "convnextv2_atto", "resnet18")

    def __init__(self, source: str = "photos", seed: int = 0, progress: bool = True):
        self.source, self.seed, self.progress = source, seed, progress
        self.cache: dict[tuple, erf_lib.ERF] = {}

    def compute(self, model: str, kernel_size: int | None, stage: int, resolution: int,
                n_images: int) -> erf_lib.ERF:
        """ERF of stage `stage` (1..4, as in the paper) of a random-init model; ValueErrors pass through."""
        if stage not in (1, 2, 3, 4):
            raise ValueError(f"stage must be 1, 2, 3 or 4, got {stage!r}")
        key = (model, kernel_size, stage, resolution, n_images, str(self.source))
        if key not in self.cache:
            net = erf_lib.build_model(model, lk_size=kernel_size, seed=self.seed)
            images = erf_lib.load_images(self.source, n_images, resolution, seed=self.seed)
            label = f"{model}" + (f" K={kernel_size}" if kernel_size else "") + f", stage {stage}"
            self.cache[key] = erf_lib.compute_erf(net, images, stage=stage - 1, progress=self.progress,
                                                  label=label)
        return self.cache[key]

    def widget(self, resolutions: Sequence[int] = (64, 128, 224, 320), n_images: int = 8,
               compute_now: bool = True, resolution: int | None = None):
        import ipywidgets as w

        model = w.Dropdown(options=self.MODELS, value=self.MODELS[0], description="model")
        kernel = w.Dropdown(options=[("model's own", None)] + [(str(k), k) for k in (3, 5, 7, 9, 11, 13, 15, 17)],
                            value=13, description="kernel K")
        stage = w.IntSlider(value=3, min=1, max=4, description="stage")
        if resolution is None:
            resolution = 224 if 224 in resolutions else resolutions[0]
        if resolution not in resolutions:
            raise ValueError(f"resolution {resolution} is not one of the offered resolutions {tuple(resolutions)}")
        res = w.Dropdown(options=list(resolutions), value=resolution, description="resolution")
        thresh = w.Dropdown(options=list(erf_lib.THRESHOLDS), value=0.5, description="threshold")
        # decades below the peak: at random init RepLKNet's log10(x + 1) shows little but the peak
        scale = w.Dropdown(options=list(plots.SCALES), value="decades", description="scale")
        n = w.IntSlider(value=n_images, min=1, max=32, description="images")
        source = w.Text(value=str(self.source), description="images from",
                        placeholder="photos, noise, or a folder path")
        go = w.Button(description="compute ERF", button_style="primary")
        message = w.HTML()
        out = w.Output()
        state = {"erf": None}

        def draw(*_):
            out.clear_output(wait=True)
            e = state["erf"]
            if e is None:
                return
            fig = plots.plot_erfs([e], threshold=thresh.value, scale=scale.value)
            ratios = e.area_ratios()
            text = ", ".join(f"t={t}: {r:.4f}" for t, r in ratios.items())
            message.value = f"area ratios {text}; theoretical RF {e.theoretical_rf} px"
            _show(out, fig)

        def run(*_):
            message.value = "computing ..."
            self.source = source.value.strip() or "photos"
            try:
                state["erf"] = self.compute(model.value, kernel.value, stage.value, res.value, n.value)
            except (ValueError, FileNotFoundError) as err:
                state["erf"] = None
                out.clear_output()
                message.value = error_html(err)
                return
            draw()

        go.on_click(run)
        thresh.observe(draw, names="value")
        scale.observe(draw, names="value")
        if compute_now:
            run()
        question = w.HTML(question_html(ERF_QUESTION))
        ui = w.VBox([question, w.HBox([model, kernel, stage]), w.HBox([res, n, thresh]),
                     w.HBox([source, scale, go]), message, out])
        ui.run, ui.draw = run, draw
        ui.controls = {"model": model, "kernel": kernel, "stage": stage, "resolution": res, "threshold": thresh,
                       "scale": scale,
                       "images": n, "source": source, "message": message, "out": out, "question": question}
        return ui


def erf_explorer(source: str = "photos", seed: int = 0, **kwargs):
    """The ERF explorer widget (model, stage, kernel size, resolution, threshold)."""
    return ERFExplorer(source, seed).widget(**kwargs)
