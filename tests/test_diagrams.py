"""Diagrams: drawn from the model's own configuration, readable, and the book's copies up to date."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from unirep_lite import diagrams  # noqa: E402
from unirep_lite.model import VARIANTS, default_kernel_sizes  # noqa: E402
from unirep_lite.reparam import BRANCHES  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "book" / "_assets"


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_block_parts_follow_the_library():
    for K, (ks, rs) in BRANCHES.items():
        parts = diagrams.block_parts(K)
        if K >= 7:
            assert parts["kind"] == "LarK" and parts["branches"] == [(K, 1), *zip(ks, rs)]
        else:  # K = 5 has branches in the table, but the block uses a plain conv there
            assert parts["kind"] == "SmaK" and parts["branches"] == [(K, 1)]
    assert diagrams.block_parts(3) == {"kind": "SmaK", "branches": [(3, 1)], "ffn": 4}


@pytest.mark.parametrize("K", [3, 7, 13, 17])
def test_block_draws_every_branch(K):
    fig = diagrams.block(K)
    words = " ".join(texts(fig))
    for k, r in diagrams.block_parts(K)["branches"][1:]:
        assert f"{k}x{k}\nr = {r}" in texts(fig)
    for step in ("BN", "GRN", "GELU", "layer scale", "Linear C -> 4C"):
        assert step in words
    assert tuple(fig.get_size_inches()) == (7.0, 5.4)
    plt.close(fig)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_architecture_shows_the_variants_blocks(variant):
    fig = diagrams.architecture(variant.upper())
    v = VARIANTS[variant]
    words = texts(fig)
    assert any(f"depths {v.depths}" in t and f"{v.dims}" in t for t in words)
    kernels = default_kernel_sizes(v.depths, v.stage3_pattern)
    squares = [t for t in words if t.isdigit()]  # one label per block: its K
    assert squares == [str(k) for stage in kernels for k in stage]
    assert fig.get_size_inches()[0] == 7.0
    plt.close(fig)


def test_architecture_rejects_unknown_variants():
    with pytest.raises(ValueError, match="variant must be one of"):
        diagrams.architecture("Q")


def test_diagram_text_is_readable_and_inside_the_figure():
    for fig in (diagrams.block(13), diagrams.architecture("S")):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box = fig.bbox
        for ax in fig.axes:
            for t in ax.texts:
                assert t.get_fontsize() >= 8, t.get_text()
                extent = t.get_window_extent(renderer)
                assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1, t.get_text()
                assert extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1, t.get_text()
        plt.close(fig)


def test_the_books_diagrams_are_up_to_date(tmp_path):
    """book/_assets holds what BOOK_FIGURES draws now; if this fails, redraw them:
    python -c "from unirep_lite import diagrams; diagrams.write_book_figures('book/_assets')" """
    for path in diagrams.write_book_figures(tmp_path):
        committed = ASSETS / path.name
        assert committed.is_file(), f"{committed} missing: run diagrams.write_book_figures('book/_assets')"
        if committed.read_bytes() == path.read_bytes():
            continue
        new, old = plt.imread(path), plt.imread(committed)  # other font rendering: pixels nearly equal
        assert new.shape == old.shape and np.abs(new - old).mean() < 0.01, (
            f"{committed} is out of date: run diagrams.write_book_figures('book/_assets')")
