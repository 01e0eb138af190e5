"""Parameter-free aggregators: mean, max and GeM pooling over patches, and Clay's own CLS token."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from clay_explore.research.aggregate.base import Aggregator, as_float

#: GeM exponent: p=1 is the mean, p -> inf approaches the max of |x| (Radenovic et al. use 3).
GEM_P = 3.0


class _TokenWidth(Aggregator):
    """A pooling aggregator: parameter-free at the token width D; with ``out_dim`` D' != D it adds one
    learned linear map D -> D' (so "mean at 64 numbers" is mean pooling then a fitted projection)."""

    def __init__(self, *, dim: int, grid: int, out_dim: int | None = None):
        super().__init__(dim=dim, grid=grid, out_dim=out_dim or dim)
        self.proj = nn.Linear(dim, self.out_dim) if self.out_dim != dim else None

    def project(self, pooled: Tensor) -> Tensor:
        """[B, D] -> [B, D'] (identity at the token width)."""
        return pooled if self.proj is None else self.proj(pooled)


class MeanPool(_TokenWidth):
    """Average of the patch tokens (what 'image embedding = mean' means in most tutorials)."""

    name = "mean"

    def forward(self, patches: Tensor, cls: Tensor, meta: Tensor) -> Tensor:
        self.check_inputs(patches)
        return self.project(as_float(patches).mean(dim=1))  # [B, D']


class MaxPool(_TokenWidth):
    """Channel-wise maximum over patches (keeps the strongest response, loses the sign balance)."""

    name = "max"

    def forward(self, patches: Tensor, cls: Tensor, meta: Tensor) -> Tensor:
        self.check_inputs(patches)
        return self.project(as_float(patches).amax(dim=1))  # [B, D']


class GeMPool(_TokenWidth):
    """Generalised mean for signed tokens: sign(m) |m|^(1/p) with m = mean(sign(x) |x|^p).

    Clay's tokens are LayerNorm outputs, so they are signed; the classic GeM (clamp to > 0 first)
    would throw away every negative channel. The signed power mean keeps the sign and, for p > 1,
    weights strong responses more than the plain mean does. p = 1 gives the mean exactly.
    """

    name = "gem"

    def __init__(self, *, dim: int, grid: int, out_dim: int | None = None, p: float = GEM_P):
        super().__init__(dim=dim, grid=grid, out_dim=out_dim)
        if p <= 0:
            raise ValueError(f"GeM exponent p must be > 0, got {p}")
        self.p = float(p)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "p": self.p}

    def forward(self, patches: Tensor, cls: Tensor, meta: Tensor) -> Tensor:
        self.check_inputs(patches)
        x = as_float(patches)
        m = (torch.sign(x) * x.abs().pow(self.p)).mean(dim=1)  # [B, D]
        return self.project(torch.sign(m) * m.abs().pow(1.0 / self.p))


class ClsToken(_TokenWidth):
    """Clay's own image embedding: the encoder's CLS token (index 0 of its output)."""

    name = "cls"

    def forward(self, patches: Tensor, cls: Tensor, meta: Tensor) -> Tensor:
        if cls.ndim != 2 or cls.shape[1] != self.dim:
            raise ValueError(f"cls aggregator expects CLS tokens [B, {self.dim}], got {list(cls.shape)}")
        return self.project(as_float(cls))
