"""Sinusoidal codes: band wavelengths (1-D) and the GSD-scaled patch grid (2-D) plus metadata.

Both follow docs/model.md (Wavelength code; Position and metadata encoding) to the letter, including
the unusual GSD exponent; the operations run in float32 in the same order as the reference so
results match bit for bit.
"""

from __future__ import annotations

import torch

TEMPERATURE = 10000.0


def wavelength_code(waves: torch.Tensor, dim: int) -> torch.Tensor:
    """[C] wavelengths (µm) -> [C, dim] code: sin half first, omega_k = T^(-k/(dim/2 - 1))."""
    half = dim // 2
    omega = torch.arange(half, dtype=torch.float32, device=waves.device) / (half - 1)
    omega = 1.0 / (TEMPERATURE**omega)  # [half]
    angles = waves.float()[:, None] * omega[None, :]  # [C, half]
    return torch.cat((angles.sin(), angles.cos()), dim=1)


def grid_code(grid: int, dim: int, gsd: torch.Tensor) -> torch.Tensor:
    """[grid*grid, dim] code of each patch (row-major), column terms first, frequencies * gsd.

    ``dim`` is the token width minus the 8 metadata channels.
    """
    n = dim // 4
    device = gsd.device
    rows, cols = torch.meshgrid(torch.arange(grid, device=device), torch.arange(grid, device=device), indexing="ij")
    omega = torch.arange(n, device=device) / (n - 1)
    omega = 1.0 / (TEMPERATURE ** (2 * omega / dim))
    omega = omega * gsd.float().reshape(-1)[0]  # [n]; one gsd per batch
    cols = cols.flatten()[:, None] * omega[None, :]  # [L, n]
    rows = rows.flatten()[:, None] * omega[None, :]  # [L, n]
    return torch.cat((cols.sin(), cols.cos(), rows.sin(), rows.cos()), dim=1).float()  # [L, dim]


def position_and_metadata(
    grid: int, dim: int, gsd: torch.Tensor, time: torch.Tensor, latlon: torch.Tensor
) -> torch.Tensor:
    """[B, grid*grid, dim]: the grid code (dim - 8 wide) with time (4) and lat/lon (4) appended."""
    meta_dim = time.shape[-1] + latlon.shape[-1]
    pos = grid_code(grid, dim - meta_dim, gsd)  # [L, dim-8]
    batch = time.shape[0]
    meta = torch.cat((time, latlon), dim=-1).float()  # [B, 8]
    pos = pos[None].expand(batch, -1, -1)
    meta = meta[:, None, :].expand(-1, pos.shape[1], -1)
    return torch.cat((pos, meta), dim=-1)  # [B, L, dim]
