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

Two front-ends use it:
  `PointProjection`: the fixed views above, one channel per view, nothing learned (the baseline);
  `LearnedProjection`: the paper's "series of conv layers to generate three-view projections" in the
    spirit of P2P: a small point encoder gives every point a feature vector from its k nearest
    neighbours (shared MLP on the offsets, max over the neighbours), the features are scattered onto
    the three view planes (the same bilinear weights, averaged per pixel), and a few conv layers
    shared by the views turn each plane into one channel of the 3 x H x W image.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import checks

# (column axis, row axis, depth axis) of each view; rows grow downwards, so row = -(vertical axis)
VIEWS = {"side": (1, 2, 0), "front": (0, 2, 1), "top": (0, 1, 2)}
MODES = ("occupancy", "depth")


def view_matrices() -> Tensor:
    """3 views x 3 x 3: row 0 picks the column axis, row 1 the (upward) vertical axis, row 2 depth."""
    eye = torch.eye(3)
    return torch.stack([eye[list(axes)] for axes in VIEWS.values()])


def bilinear_scatter(uv: Tensor, values: Tensor, height: int, width: int) -> Tensor:
    """Scatter per-point values B x P x C at view coordinates uv (B x P x 2, u, v in [-1, 1]) onto
    B x H x W x C pixel sums, each point spread over its four nearest pixels with bilinear weights.

    u runs left to right, v bottom to top; weight that falls outside the image drops out. The weights
    are differentiable in uv (and the sums in `values`), so gradients reach the points.
    """
    b, p, c = values.shape
    col = (uv[..., 0] + 1) / 2 * (width - 1)
    row = (1 - uv[..., 1]) / 2 * (height - 1)
    c0, r0 = col.floor(), row.floor()
    fc, fr = col - c0, row - r0  # differentiable: the weights below move with the points
    batch = torch.arange(b, device=uv.device).view(b, 1)
    out = values.new_zeros(b * height * width, c)
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        r, cc = (r0 + dr).long(), (c0 + dc).long()
        inside = (r >= 0) & (r < height) & (cc >= 0) & (cc < width)
        index = ((batch * height + r.clamp(0, height - 1)) * width + cc.clamp(0, width - 1)).reshape(-1)
        out = out.index_add(0, index, ((w * inside).unsqueeze(-1) * values).reshape(-1, c))
    return out.view(b, height, width, c)


def splat(uvd: Tensor, height: int, width: int, mode: str = "depth") -> Tensor:
    """Bilinear splatting of view coordinates B x P x 3 (u, v, d in [-1, 1]) into B x H x W images.

    u runs left to right, v bottom to top; points (or their corner weights) outside the image drop out.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    height_value = ((uvd[..., 2] + 1) / 2).clamp(0, 1)
    sums = bilinear_scatter(uvd[..., :2], torch.stack([torch.ones_like(height_value), height_value], -1),
                            height, width)
    mass, depth_mass = sums[..., 0], sums[..., 1]
    occupancy = 1 - torch.exp(-mass)
    if mode == "occupancy":
        return occupancy
    return occupancy * depth_mass / mass.clamp_min(1e-6)


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
        self.height, self.width = checks.size_2d("image_size", image_size)
        checks.boolean("learnable", learnable)
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


def knn_indices(points: Tensor, k: int) -> Tensor:
    """B x P x 3 -> B x P x k indices of each point's k nearest points (itself first), by distance."""
    k = min(k, points.shape[1])
    return torch.cdist(points, points).topk(k, dim=-1, largest=False).indices


class PointEncoder(nn.Module):
    """Per-point features from each point's neighbourhood (a one-layer DGCNN / PointNet++ style encoder).

    B x P x 3 -> B x P x C: for point i with neighbours j, a shared MLP sees [p_j - p_i, p_i] and
    the features are the max over the k neighbours, so they describe the local shape around the point.
    """

    def __init__(self, dim: int = 32, k: int = 16, hidden: int = 32):
        super().__init__()
        self.k = checks.positive_int("k", k)
        checks.positive_int("dim", dim), checks.positive_int("hidden", hidden)
        self.mlp = nn.Sequential(nn.Linear(6, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, points: Tensor) -> Tensor:
        b, p, _ = points.shape
        idx = knn_indices(points.detach(), self.k)  # B x P x k (which points are neighbours is not learned)
        neighbours = points[torch.arange(b, device=points.device).view(b, 1, 1), idx]  # B x P x k x 3
        centre = points.unsqueeze(2).expand_as(neighbours)
        return self.mlp(torch.cat([neighbours - centre, centre], dim=-1)).amax(dim=2)


class LearnedProjection(nn.Module):
    """B x P x 3 points (unit ball) -> B x 3 x H x W: a learned three-view projection (P2P style).

    For each view (side, front, top): scatter the encoder's per-point features onto the plane,
    average them per pixel, add the fixed view's soft occupancy and depth as two more channels, and
    map the plane to one channel with conv layers shared by the three views (3x3 conv, BN, GELU,
    3x3 conv, BN, GELU, 1x1 conv). Output channel v is view v, as in `PointProjection`.
    """

    def __init__(self, image_size: int | tuple[int, int] = 224, dim: int = 16, k: int = 16, hidden: int = 16):
        super().__init__()
        self.height, self.width = checks.size_2d("image_size", image_size)
        checks.positive_int("hidden", hidden)
        self.encoder = PointEncoder(dim, k)
        self.register_buffer("views", view_matrices())
        self.convs = nn.Sequential(
            nn.Conv2d(dim + 2, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.GELU(),
            nn.Conv2d(hidden, 1, 1))

    def planes(self, points: Tensor) -> Tensor:
        """The conv layers' input: B x 3 views x (dim + 2) x H x W (mean features, occupancy, depth)."""
        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"expected points of shape (B, P, 3), got {tuple(points.shape)}")
        feats = self.encoder(points)  # B x P x dim
        uvd = torch.einsum("bpj,vij->vbpi", points, self.views.to(points.dtype))  # V x B x P x 3
        out = []
        for v in range(len(uvd)):
            height_value = ((uvd[v, ..., 2] + 1) / 2).clamp(0, 1).unsqueeze(-1)
            sums = bilinear_scatter(uvd[v, ..., :2], torch.cat([feats, torch.ones_like(height_value), height_value], -1),
                                    self.height, self.width)  # B x H x W x (dim + 2)
            mass = sums[..., -2:-1]
            occupancy = 1 - torch.exp(-mass)
            mean = sums / mass.clamp_min(1e-6)  # per-pixel average of the features (0 where nothing lands)
            out.append(torch.cat([mean[..., :-2], occupancy, occupancy * mean[..., -1:]], -1).permute(0, 3, 1, 2))
        return torch.stack(out, dim=1)

    def forward(self, points: Tensor) -> Tensor:
        planes = self.planes(points)
        b, v = planes.shape[:2]
        return self.convs(planes.flatten(0, 1)).view(b, v, self.height, self.width)
