"""Video front-end: N_F frames (N_F x 3 x h x w) laid out as one 3 x H x W image.

The paper tiles the frames into a grid, HW / (hw) = N_F (16 frames of 224 -> 896 x 896): frame k sits
whole in row k // cols, column k % cols, so the backbone sees each frame as a picture and time as
position in the grid. The authors' code instead calls reshape(B, C, 4h, 4w) on a B x C x N_F x h x w
tensor. That reads memory in order, so each output row is 4 consecutive rows of one frame side by
side: frame k becomes h/4 full-width strips, and neighbouring pixels of the output come from rows
of the frame that are up to 3 apart. `layout="authors"` reproduces it for comparison.

Layout names: "paper" (the frame grid; also called "grid") and "authors" (also called "reshape").
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import checks


def grid_shape(num_frames: int) -> tuple[int, int]:
    """(rows, cols) of the most square grid that holds exactly num_frames frames (16 -> 4 x 4)."""
    checks.positive_int("num_frames", num_frames)
    rows = int(math.isqrt(num_frames))
    while num_frames % rows:
        rows -= 1
    return rows, num_frames // rows


def _check(frames: torch.Tensor) -> torch.Tensor:
    if frames.ndim == 4:
        frames = frames.unsqueeze(0)
    if frames.ndim != 5:
        raise ValueError("expected frames N_F x C x h x w or B x N_F x C x h x w, "
                         f"got shape {tuple(frames.shape)}")
    if frames.shape[1] < 1:
        raise ValueError(f"expected at least one frame (N_F >= 1), got shape {tuple(frames.shape)}")
    return frames


def check_grid(grid) -> tuple[int, int]:
    """A frame grid: a pair (rows, cols) of positive integers."""
    if not (isinstance(grid, (tuple, list)) and len(grid) == 2):
        raise ValueError(f"grid must be a pair (rows, cols) of positive integers, got {grid!r}")
    return checks.positive_int("grid rows", grid[0]), checks.positive_int("grid cols", grid[1])


def tile_frames(frames: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """True frame grid: (B x) N_F x C x h x w -> (B x) C x rows*h x cols*w, frames in reading order."""
    single = frames.ndim == 4
    x = _check(frames)
    b, n, c, h, w = x.shape
    rows, cols = grid_shape(n) if grid is None else check_grid(grid)
    if rows * cols != n:
        raise ValueError(f"grid {rows} x {cols} does not hold {n} frames")
    # split N_F into (rows, cols), then interleave axes so each frame stays a contiguous h x w block
    out = x.reshape(b, rows, cols, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, rows * h, cols * w)
    return out[0] if single else out


def untile_frames(image: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of tile_frames: (B x) C x rows*h x cols*w -> (B x) N_F x C x h x w."""
    single = image.ndim == 3
    x = image.unsqueeze(0) if single else image
    rows, cols = check_grid(grid)
    if x.ndim != 4:
        raise ValueError(f"expected an image C x H x W or B x C x H x W, got shape {tuple(image.shape)}")
    b, c, hh, ww = x.shape
    if hh % rows or ww % cols:
        raise ValueError(f"a {hh} x {ww} image does not split into a {rows} x {cols} grid")
    out = x.reshape(b, c, rows, hh // rows, cols, ww // cols).permute(0, 2, 4, 1, 3, 5)
    out = out.reshape(b, rows * cols, c, hh // rows, ww // cols)
    return out[0] if single else out


def authors_reshape(frames: torch.Tensor) -> torch.Tensor:
    """The authors' layout: frames as B x C x N_F x h x w, then reshape(B, C, s*h, s*w), s = sqrt(N_F)."""
    single = frames.ndim == 4
    x = _check(frames)
    b, n, c, h, w = x.shape
    s = math.isqrt(n)
    if s * s != n:
        raise ValueError(f"the reshape layout needs a square number of frames, got {n}")
    out = x.transpose(1, 2).contiguous().reshape(b, c, s * h, s * w)
    return out[0] if single else out


LAYOUTS = {"paper": "paper", "grid": "paper", "authors": "authors", "reshape": "authors"}  # name -> layout


class VideoFrontend(nn.Module):
    """(B x) N_F x 3 x h x w frames -> (B x) 3 x H x W image for create_model(..., in_chans=3).

    layout: "paper" (= "grid": a true frame grid) or "authors" (= "reshape": the authors' code).
    """

    def __init__(self, layout: str = "paper"):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be 'paper' (or 'grid') or 'authors' (or 'reshape'), got {layout!r}")
        self.layout = LAYOUTS[layout]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return tile_frames(frames) if self.layout == "paper" else authors_reshape(frames)

    def extra_repr(self) -> str:
        return f"layout={self.layout!r}"
