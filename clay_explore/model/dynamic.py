"""Wavelength-conditioned ("dynamic") patch embedding and pixel projection.

See docs/model.md: Wavelength code and weight generator, Patch embedding, Decoder.

A small transformer reads learned latent tokens, one code per band and a bias token, and emits a
kernel slice per band. The encoder uses it as a stride-P conv (plus a generated bias), the decoder
as a linear map from token to the P x P pixels of every band.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from clay_explore.model.config import KERNEL_SCALE, NUM_LATENT_TOKENS, WAVE_DIM, WAVE_FF_DIM, WAVE_HEADS
from clay_explore.model.encodings import wavelength_code


class FCBlock(nn.Module):
    """Residual two-layer MLP with a GELU after *both* linears: e + GELU(l2(GELU(l1(e))))."""

    def __init__(self, dim: int):
        super().__init__()
        self.l1 = nn.Linear(dim, dim)
        self.l2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [C, dim]
        return x + F.gelu(self.l2(F.gelu(self.l1(x))))


class WeightGenerator(nn.Module):
    """Wave transformer: [latents; band codes; bias token] -> per-band weights (+ optional bias)."""

    def __init__(self, out_per_band: int, bias_dim: int | None):
        super().__init__()
        self.weight_tokens = nn.Parameter(torch.randn(NUM_LATENT_TOKENS, WAVE_DIM) * 0.02)
        self.bias_token = nn.Parameter(torch.randn(1, WAVE_DIM) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=WAVE_DIM,
            nhead=WAVE_HEADS,
            dim_feedforward=WAVE_FF_DIM,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=False,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.fc_weight = nn.Linear(WAVE_DIM, out_per_band)
        self.fc_bias = nn.Linear(WAVE_DIM, bias_dim) if bias_dim else None

    def forward(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """codes [C, 128] -> (weights [C, out_per_band] before the 0.02 scale, bias [bias_dim] | None)."""
        n_bands = codes.shape[0]
        seq = torch.cat((self.weight_tokens, codes, self.bias_token), dim=0)  # [129 + C, 128]
        out = self.encoder(seq[None])[0]  # one unbatched sequence
        band_rows = slice(NUM_LATENT_TOKENS, NUM_LATENT_TOKENS + n_bands)
        weights = self.fc_weight(out[band_rows] + seq[band_rows])  # residual with the layer input
        bias = self.fc_bias(out[-1]) if self.fc_bias is not None else None
        return weights, bias


class DynamicEmbedding(nn.Module):
    """Band-agnostic kernels generated from wavelengths; ``with_bias`` for the encoder side."""

    def __init__(self, dim: int, patch_size: int, *, with_bias: bool):
        super().__init__()
        self.dim = dim
        self.patch_size = patch_size
        self.fclayer = FCBlock(WAVE_DIM)
        self.weight_generator = WeightGenerator(patch_size * patch_size * dim, dim if with_bias else None)

    def generate(self, waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[C] wavelengths (µm) -> (raw weights [C, P*P*dim], bias [dim] | None)."""
        codes = self.fclayer(wavelength_code(waves, WAVE_DIM))  # [C, 128]
        return self.weight_generator(codes)

    def embed(self, pixels: torch.Tensor, waves: torch.Tensor) -> torch.Tensor:
        """Encoder use: pixels [B, C, H, W] -> patch tokens [B, L, dim] (row-major patches)."""
        raw, bias = self.generate(waves)
        p = self.patch_size
        kernel = rearrange(raw, "c (d i j) -> d c i j", d=self.dim, i=p, j=p) * KERNEL_SCALE
        tokens = F.conv2d(pixels, kernel.to(pixels.dtype), bias=bias, stride=p)  # [B, dim, H/P, W/P]
        return rearrange(tokens, "b d h w -> b (h w) d")

    def project(self, tokens: torch.Tensor, waves: torch.Tensor) -> torch.Tensor:
        """Decoder use: tokens [B, N, dim] -> pixels [B, N, C*P*P], last axis (band, row, col)."""
        raw, _ = self.generate(waves)
        p = self.patch_size
        weight = rearrange(raw, "c (i j d) -> (c i j) d", i=p, j=p, d=self.dim) * KERNEL_SCALE
        return F.linear(tokens, weight.to(tokens.dtype))
