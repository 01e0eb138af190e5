"""The learned linear aggregator proposed in Clay issue #107.

Instead of flattening [L, D] into a 1-billion-weight layer, it learns a few spatial weight maps
over the h x w grid (one scalar per position and map), pools the tokens with each map and
projects the pooled vectors to D'. It can also take the 8 time/lat-lon numbers.

The weights are stored as offsets from the mean (map 0 starts at 1/L everywhere, the others at 0)
and the projection starts as [I, 0, ...]: at initialisation the output is *exactly* the mean
pooling (bit for bit), so training starts from the usual baseline and can only move away from it
when that helps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from clay_explore.research.aggregate.base import META_DIM, Aggregator, as_float, zero_linear

#: Default number of spatial weight maps. More maps let the vector keep where things are.
DEFAULT_MAPS = 4


class LinearAggregator(Aggregator):
    """Per-position weights (``n_maps`` maps over the grid) + projection (n_maps*D -> D') + meta."""

    name = "linear"

    def __init__(
        self,
        *,
        dim: int,
        grid: int,
        out_dim: int | None = None,
        n_maps: int = DEFAULT_MAPS,
        use_meta: bool = True,
    ):
        super().__init__(dim=dim, grid=grid, out_dim=out_dim)
        if n_maps < 1:
            raise ValueError(f"n_maps must be >= 1, got {n_maps}")
        self.n_maps = int(n_maps)
        self.use_meta = bool(use_meta)
        # offsets of the per-position weights from the mean's 1/L (map 0) or from 0 (maps 1..)
        self.weight_offsets = nn.Parameter(torch.zeros(self.n_maps, self.n_patches))  # [M, L]
        self.proj = nn.Linear(self.n_maps * dim, self.out_dim)
        with torch.no_grad():  # start as "take map 0's pooled vector as it is"
            self.proj.weight.zero_()
            self.proj.bias.zero_()
            k = min(dim, self.out_dim)
            self.proj.weight[:k, :k] = torch.eye(k)
        self.meta_proj = zero_linear(META_DIM, self.out_dim) if self.use_meta else None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "n_maps": self.n_maps, "use_meta": self.use_meta}

    def position_weights(self) -> Tensor:
        """The effective per-position weights [M, h, w] (map 0 includes the mean's 1/L)."""
        w = self.weight_offsets.detach().clone()
        w[0] += 1.0 / self.n_patches
        return w.reshape(self.n_maps, self.grid, self.grid)

    def forward(self, patches: Tensor, cls: Tensor, meta: Tensor) -> Tensor:
        self.check_inputs(patches)
        x = as_float(patches)  # [B, L, D]
        pooled = torch.einsum("ml,bld->bmd", self.weight_offsets, x)  # [B, M, D]
        # add the mean to map 0 separately: with zero offsets this is exactly x.mean(1)
        base = torch.zeros_like(pooled)
        base[:, 0] = x.mean(dim=1)
        out = self.proj((base + pooled).flatten(1))  # [B, D']
        if self.meta_proj is not None:
            out = out + self.meta_proj(meta.to(out.dtype))
        return out
