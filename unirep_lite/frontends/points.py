"""Point-cloud front-end: B x P x 3 points -> three orthogonal views, B x 3 x H x W (C' = 3).

Each view looks along one axis: its two other axes give the pixel (column, row) and the looked-along
axis gives the depth. Points are splatted bilinearly onto the four pixels around them, which makes
the image a smooth function of the coordinates, so gradients reach the points (and, with
`learnable=True`, the projection itself). Points are expected in the unit ball, as the datasets in
`unirep_lite.data.points` give them; coordinate -1 maps to the first pixel centre, +1 to the last.

Per pixel, with m = the summed splat weights and h = the weighted mean height (d + 1) / 2 in [0, 1]
(d the depth coordinate; points nearer a viewer on the + side are brighter):
  mode="occupancy": 1 - exp(-m)           (soft occupancy, 0 where no point lands)
  mode="depth":     (1 - exp(-m)) * h     (a soft depth map)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

# (column axis, row axis, depth axis) of each view; rows grow downwards, so row = -(vertical axis)
VIEWS = {"side": (1, 2, 0), "front": (0, 2, 1), "top": (0, 1, 2)}
MODES = ("occupancy", "depth")


def view_matrices() -> Tensor:
    """3 views x 3 x 3: row 0 picks the column axis, row 1 the (upward) vertical axis, row 2 depth."""
    eye = torch.eye(3)
    return torch.stack([eye[list(axes)] for axes in VIEWS.values()])


def splat(uvd: Tensor, height: int, width: int, mode: str = "depth") -> Tensor:
    """Bilinear splatting of view coordinates B x P x 3 (u, v, d in [-1, 1]) into B x H x W images.

    u runs left to right, v bottom to top; points (or their corner weights) outside the image drop out.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    b = uvd.shape[0]
    col = (uvd[..., 0] + 1) / 2 * (width - 1)
    row = (1 - uvd[..., 1]) / 2 * (height - 1)
    height_value = ((uvd[..., 2] + 1) / 2).clamp(0, 1)
    c0, r0 = col.floor(), row.floor()
    fc, fr = col - c0, row - r0  # differentiable: the weights below move with the points
    batch = torch.arange(b, device=uvd.device).view(b, 1)
    mass = uvd.new_zeros(b * height * width)
    depth_mass = uvd.new_zeros(b * height * width)
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        r, c = (r0 + dr).long(), (c0 + dc).long()
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        index = ((batch * height + r.clamp(0, height - 1)) * width + c.clamp(0, width - 1)).reshape(-1)
        w = (w * inside).reshape(-1)
        mass = mass.index_add(0, index, w)
        depth_mass = depth_mass.index_add(0, index, w * height_value.reshape(-1))
    occupancy = 1 - torch.exp(-mass)
    if mode == "occupancy":
        out = occupancy
    else:
        out = occupancy * depth_mass / mass.clamp_min(1e-6)
    return out.view(b, height, width)


class PointProjection(nn.Module):
    """B x P x 3 points (unit ball) -> B x 3 x H x W: one channel per view (side, front, top).

    learnable=False: the fixed orthogonal views. learnable=True: the three 3 x 3 view matrices are
    parameters, initialised to the orthogonal views and trained with the backbone (the paper's
    learnable projection), so the network may turn and stretch each view.
    """

    def __init__(self, image_size: int | tuple[int, int] = 224, mode: str = "depth", learnable: bool = False):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.height, self.width = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.mode = mode
        if learnable:
            self.views = nn.Parameter(view_matrices())
        else:
            self.register_buffer("views", view_matrices())

    def forward(self, points: Tensor) -> Tensor:
        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"expected points of shape (B, P, 3), got {tuple(points.shape)}")
        uvd = torch.einsum("bpj,vij->vbpi", points, self.views.to(points.dtype))  # V x B x P x 3
        return torch.stack([splat(uvd[v], self.height, self.width, self.mode) for v in range(len(uvd))], dim=1)
