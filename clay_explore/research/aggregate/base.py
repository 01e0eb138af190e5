"""The aggregator interface: a chip's patch tokens (+ CLS, time, lat/lon) -> one image vector.

Every aggregator is an ``nn.Module`` with the same ``forward(patches, cls, meta)`` so that fitting,
evaluation and the app treat them alike. ``config()`` holds exactly the arguments needed to
rebuild it, so a fitted aggregator is saved as safetensors weights + that config.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

#: Width of the per-chip metadata vector: Clay's 4 time numbers then its 4 lat/lon numbers.
META_DIM = 8


class Aggregator(nn.Module):
    """Base class. Subclasses set ``name`` and implement ``forward``.

    Args:
        dim: width D of the encoder tokens.
        grid: side h (= w) of the patch grid, so L = grid * grid.
        out_dim: width D' of the image vector; defaults to D.
    """

    name: ClassVar[str] = ""

    def __init__(self, *, dim: int, grid: int, out_dim: int | None = None):
        super().__init__()
        if dim < 1 or grid < 1:
            raise ValueError(f"dim and grid must be positive, got dim={dim}, grid={grid}")
        self.dim = int(dim)
        self.grid = int(grid)
        self.out_dim = int(out_dim or dim)

    @property
    def n_patches(self) -> int:
        return self.grid * self.grid

    @property
    def n_params(self) -> int:
        """Number of learned parameters (0 for parameter-free pooling)."""
        return sum(p.numel() for p in self.parameters())

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this aggregator with ``build_aggregator``."""
        return {"name": self.name, "dim": self.dim, "grid": self.grid, "out_dim": self.out_dim}

    def forward(self, patches: Tensor, cls: Tensor, meta: Tensor) -> Tensor:  # pragma: no cover - abstract
        """patches [B, L, D], cls [B, D], meta [B, 8] -> image vector [B, D']."""
        raise NotImplementedError

    def check_inputs(self, patches: Tensor) -> None:
        """Refuse token sets of another geometry with a clear message."""
        if patches.ndim != 3 or patches.shape[1] != self.n_patches or patches.shape[2] != self.dim:
            raise ValueError(
                f"{self.name} aggregator expects patch tokens [B, {self.n_patches}, {self.dim}], "
                f"got {list(patches.shape)}"
            )


def zero_linear(in_dim: int, out_dim: int, bias: bool = True) -> nn.Linear:
    """A Linear layer whose output starts at exactly zero (for optional inputs added later)."""
    layer = nn.Linear(in_dim, out_dim, bias=bias)
    nn.init.zeros_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def default_heads(dim: int, preferred: int = 8) -> int:
    """The largest head count <= ``preferred`` that divides ``dim``."""
    for h in range(min(preferred, dim), 0, -1):
        if dim % h == 0:
            return h
    return 1


def as_float(x: Tensor) -> Tensor:
    """Stored tokens are float16; pool in float32 so sums do not lose precision."""
    return x if x.dtype == torch.float32 else x.float()
