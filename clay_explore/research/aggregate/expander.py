"""The expander: one image vector -> the h x w patch tokens (plus a CLS slot) Clay's decoder reads.

Each grid position has a learned query (initialised with a 2-D sine/cosine code so positions are
distinct from the first step). The image vector modulates every query (FiLM: scale and shift),
a small residual MLP mixes position and content, and a linear layer maps to the encoder width D.
The result is fed, as ``[CLS-like token; patch tokens]``, to Clay's frozen decoder, which adds its
own position/gsd encoding and the time/lat-lon numbers to every patch token before rendering.

The same expander architecture is trained for every aggregator, so the comparison is fair.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

#: Default hidden width of the per-position MLP (small: the decoder dominates the cost).
DEFAULT_HIDDEN = 256
#: Default number of residual MLP blocks.
DEFAULT_DEPTH = 2
#: MLP expansion ratio inside each block.
MLP_RATIO = 2
#: Base of the sine/cosine frequencies of the query initialisation.
SINCOS_BASE = 10000.0


def sincos_2d(grid: int, width: int) -> Tensor:
    """A 2-D sine/cosine position code [grid*grid, width], row-major (column varies fastest)."""
    quarter = max(width // 4, 1)
    omega = 1.0 / SINCOS_BASE ** (torch.arange(quarter, dtype=torch.float32) / quarter)  # [Q]
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    r = rows.reshape(-1, 1).float() * omega  # [L, Q]
    c = cols.reshape(-1, 1).float() * omega
    code = torch.cat([c.sin(), c.cos(), r.sin(), r.cos()], dim=1)  # [L, 4Q]
    out = torch.zeros(grid * grid, width)
    out[:, : min(width, code.shape[1])] = code[:, :width]
    return out


class _ResMLP(nn.Module):
    """x + MLP(LN(x))."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width * MLP_RATIO)
        self.fc2 = nn.Linear(width * MLP_RATIO, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm(x))))


class Expander(nn.Module):
    """Image vector [B, D'] -> tokens [B, 1+L, D] (CLS-like slot at index 0).

    Args:
        in_dim: width D' of the image vector.
        dim: encoder width D (what the decoder's enc_to_dec expects).
        grid: patch grid side h (= w).
        hidden: width of the per-position queries and MLP.
        depth: number of residual MLP blocks.
    """

    def __init__(self, *, in_dim: int, dim: int, grid: int, hidden: int = DEFAULT_HIDDEN, depth: int = DEFAULT_DEPTH):
        super().__init__()
        self.in_dim, self.dim, self.grid = int(in_dim), int(dim), int(grid)
        self.hidden, self.depth = int(hidden), int(depth)
        self.queries = nn.Parameter(sincos_2d(self.grid, self.hidden))  # [L, H]
        self.in_norm = nn.LayerNorm(self.in_dim)
        self.film = nn.Linear(self.in_dim, 2 * self.hidden)  # -> (scale, shift)
        self.blocks = nn.ModuleList(_ResMLP(self.hidden) for _ in range(self.depth))
        self.out_norm = nn.LayerNorm(self.hidden)
        self.to_tokens = nn.Linear(self.hidden, self.dim)
        self.to_cls = nn.Linear(self.in_dim, self.dim)
        nn.init.normal_(self.film.weight, std=1.0 / math.sqrt(self.in_dim))
        nn.init.zeros_(self.film.bias)

    def config(self) -> dict[str, Any]:
        return {"in_dim": self.in_dim, "dim": self.dim, "grid": self.grid, "hidden": self.hidden, "depth": self.depth}

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, vector: Tensor) -> Tensor:
        v = self.in_norm(vector.float())  # [B, D']
        scale, shift = self.film(v).unsqueeze(1).chunk(2, dim=-1)  # [B, 1, H] each
        h = self.queries.unsqueeze(0) * (1 + scale) + shift  # [B, L, H]
        for block in self.blocks:
            h = block(h)
        patches = self.to_tokens(self.out_norm(h))  # [B, L, D]
        cls = self.to_cls(v).unsqueeze(1)  # [B, 1, D]
        return torch.cat([cls, patches], dim=1)  # [B, 1+L, D]
