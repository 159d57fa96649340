"""Time-series front-end: Corrformer's embedding into 1 x H x W images, and a forecasting head back.

As in the paper (section 3.4): a window B x L x D (L hours, D channels, e.g. stations x features) is
split into n nodes of D/n channels, B*n x L x D/n; each node's hours are embedded as L tokens of D'
numbers, and each node's L x D' map is one single-channel image, B*n x 1 x H x W with H*W = L*D'
(H = L, W = D' unless told otherwise). Two embeddings (`kind=`):
  "corrformer": Corrformer's (Informer's) DataEmbedding, the paper's: token embedding (a 1-D conv over
      time, kernel 3, circular padding, no bias) + time-feature embedding (a linear map of the hour of
      day and day of year, each scaled to [-0.5, 0.5], from the data's timestamps) + the fixed
      sinusoidal positional embedding;
  "linear": one linear layer per hour's D/n values (a simpler stand-in, the baseline). The backbone (`create_model(..., in_chans=1, num_classes=0)`)
pools each node's image into features; the head maps them to the node's horizon x D/n forecast,
and the nodes are put back together as B x horizon x D.

Nodes are processed independently by the backbone; here the nodes share no information (Corrformer's
decoder, which mixes them, is not part of this lite version).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import checks
from ..model import create_model

KINDS = ("corrformer", "linear")


def split_nodes(x: Tensor, n_nodes: int) -> Tensor:
    """B x L x D -> B*n x L x D/n: node k holds channels k*D/n ... (k+1)*D/n - 1."""
    checks.positive_int("n_nodes", n_nodes)
    b, length, d = x.shape
    if d % n_nodes:
        raise ValueError(f"D = {d} channels do not split into {n_nodes} equal nodes")
    return x.reshape(b, length, n_nodes, d // n_nodes).permute(0, 2, 1, 3).reshape(b * n_nodes, length, d // n_nodes)


def merge_nodes(y: Tensor, n_nodes: int) -> Tensor:
    """B*n x T x D/n -> B x T x D, the inverse of `split_nodes`."""
    checks.positive_int("n_nodes", n_nodes)
    bn, t, per_node = y.shape
    b = bn // n_nodes
    return y.reshape(b, n_nodes, t, per_node).permute(0, 2, 1, 3).reshape(b, t, n_nodes * per_node)


def positional_embedding(length: int, d_model: int) -> Tensor:
    """The Transformer's fixed sinusoidal positions, L x D': sin on even, cos on odd columns."""
    checks.positive_int("length", length), checks.positive_int("d_model", d_model)
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
    return pe.float()


def time_features(marks: Tensor) -> Tensor:
    """(..., 2) hour of day 0..23 and day of year 0..364 -> Informer's 'timeF' features in [-0.5, 0.5]."""
    marks = marks.float()
    return torch.stack([marks[..., 0] / 23.0 - 0.5, marks[..., 1] / 365.0 - 0.5], dim=-1)


class CorrformerEmbedding(nn.Module):
    """B x L x D (+ time marks B x L x 2) -> B*n x 1 x H x W (H*W = L*D'); ValueError naming the expected shape.

    kind="corrformer": token conv + time features + positions; kind="linear": one Linear per hour.
    The time marks (hour of day, day of year per input hour; `unirep_lite.data.weather.calendar`) feed
    the time-feature term; without them (marks=None) that term is left out.
    """

    def __init__(self, input_len: int, channels: int, n_nodes: int, d_model: int,
                 image_size: tuple[int, int] | None = None, kind: str = "linear"):
        super().__init__()
        for name, value in (("input_len", input_len), ("channels", channels), ("n_nodes", n_nodes),
                            ("d_model", d_model)):
            checks.positive_int(name, value)
        if channels % n_nodes:
            raise ValueError(f"channels D = {channels} must be divisible by n_nodes = {n_nodes}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.input_len, self.channels, self.n_nodes, self.d_model = input_len, channels, n_nodes, d_model
        self.kind = kind
        self.image_size = (input_len, d_model) if image_size is None else checks.size_2d("image_size", image_size)
        if self.image_size[0] * self.image_size[1] != input_len * d_model:
            raise ValueError(f"image_size {self.image_size} must hold L*D' = {input_len * d_model} pixels")
        per_node = channels // n_nodes
        if kind == "linear":
            self.proj = nn.Linear(per_node, d_model)
        else:
            self.token = nn.Conv1d(per_node, d_model, 3, padding=1, padding_mode="circular", bias=False)
            nn.init.kaiming_normal_(self.token.weight, mode="fan_in", nonlinearity="leaky_relu")  # as Corrformer
            self.time = nn.Linear(2, d_model, bias=False)
            self.register_buffer("position", positional_embedding(input_len, d_model), persistent=False)

    def tokens(self, x: Tensor, marks: Tensor | None = None) -> Tensor:
        """The embedded tokens before the reshape: B*n x L x D'."""
        if x.ndim != 3 or x.shape[1:] != (self.input_len, self.channels):
            raise ValueError(f"expected a window of shape (B, L={self.input_len}, D={self.channels}), "
                             f"got {tuple(x.shape)}")
        nodes = split_nodes(x, self.n_nodes)  # B*n x L x D/n
        if self.kind == "linear":
            return self.proj(nodes)
        out = self.token(nodes.transpose(1, 2)).transpose(1, 2) + self.position.to(x.dtype)
        if marks is not None:
            if marks.shape != (x.shape[0], self.input_len, 2):
                raise ValueError(f"expected time marks of shape (B={x.shape[0]}, L={self.input_len}, 2) "
                                 f"(hour of day, day of year), got {tuple(marks.shape)}")
            t = self.time(time_features(marks).to(x.dtype))  # B x L x D', the same for every node
            out = out + t.repeat_interleave(self.n_nodes, dim=0)
        return out

    def forward(self, x: Tensor, marks: Tensor | None = None) -> Tensor:
        return self.tokens(x, marks).reshape(-1, 1, *self.image_size)


class ForecastHead(nn.Module):
    """Pooled backbone features B*n x C -> forecast B x horizon x D (each node's horizon x D/n)."""

    def __init__(self, in_features: int, horizon: int, channels: int, n_nodes: int):
        super().__init__()
        for name, value in (("in_features", in_features), ("horizon", horizon), ("channels", channels),
                            ("n_nodes", n_nodes)):
            checks.positive_int(name, value)
        if channels % n_nodes:
            raise ValueError(f"channels D = {channels} must be divisible by n_nodes = {n_nodes}")
        self.horizon, self.n_nodes, self.per_node = horizon, n_nodes, channels // n_nodes
        self.proj = nn.Linear(in_features, horizon * self.per_node)

    def forward(self, features: Tensor) -> Tensor:
        if features.ndim != 2 or features.shape[0] % self.n_nodes or features.shape[1] != self.proj.in_features:
            raise ValueError(f"expected features of shape (B*n, {self.proj.in_features}) with n = {self.n_nodes}, "
                             f"got {tuple(features.shape)}")
        y = self.proj(features).reshape(-1, self.horizon, self.per_node)
        return merge_nodes(y, self.n_nodes)


class TimeSeriesForecaster(nn.Module):
    """Embedding + UniRepLKNet backbone (1 input channel, no classifier) + forecasting head.

    window B x L x D, or a pair (window, time marks B x L x 2) -> forecast B x horizon x D.
    embedding: "corrformer" or "linear" (`CorrformerEmbedding`'s kind). instance_norm=True (default)
    removes each window's per-channel mean and std before the embedding and puts them back on the
    forecast, so the network learns the shape of what comes next rather than each station's level;
    False embeds the raw window. `backbone` is a name for `create_model` (extra keywords go to it, e.g.
    dims=, depths=, lk_size=) or a ready model with `num_features` and `forward_features`.
    """

    def __init__(self, input_len: int, horizon: int, channels: int, n_nodes: int = 1, d_model: int = 48,
                 backbone="unireplknet_a", image_size=None, instance_norm: bool = True,
                 embedding: str = "linear", **backbone_kwargs):
        super().__init__()
        checks.positive_int("horizon", horizon)
        checks.boolean("instance_norm", instance_norm)
        checks.one_of("embedding", embedding, KINDS)
        embed = CorrformerEmbedding(input_len, channels, n_nodes, d_model, image_size, kind=embedding)  # checked first
        if isinstance(backbone, str):
            backbone = create_model(backbone, in_chans=1, num_classes=0, **backbone_kwargs)
        if not (hasattr(backbone, "num_features") and hasattr(backbone, "forward_features")):
            raise TypeError(f"backbone must be a model name or a model with num_features and forward_features, "
                            f"got {type(backbone).__name__}")
        self.embed = embed
        self.backbone = backbone
        self.head = ForecastHead(backbone.num_features, horizon, channels, n_nodes)
        self.instance_norm = instance_norm

    def forward(self, x) -> Tensor:
        x, marks = x if isinstance(x, (tuple, list)) else (x, None)
        if self.instance_norm:
            if x.ndim != 3:  # the embedding's own check runs after normalising; catch other ranks first
                raise ValueError(f"expected a window of shape (B, L={self.embed.input_len}, "
                                 f"D={self.embed.channels}), got {tuple(x.shape)}")
            mean = x.mean(dim=1, keepdim=True)
            std = (x.var(dim=1, keepdim=True, unbiased=False) + 1e-5).sqrt()
            x = (x - mean) / std
        y = self.head(self.backbone.forward_features(self.embed(x, marks)))
        return y * std + mean if self.instance_norm else y
