"""Clay v1.5 encoder and decoder (inference only: no masking noise, no teacher, no loss).

Shapes: B batch, C bands, H = W chip side, P patch (8), g = H / P, L = g*g patches,
D encoder width, Dd decoder width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from clay_explore.core.errors import ModelInputError
from clay_explore.model.config import ClayConfig
from clay_explore.model.dynamic import DynamicEmbedding
from clay_explore.model.encodings import position_and_metadata
from clay_explore.model.layers import Transformer

TIME_DIM = 4
LATLON_DIM = 4


class Encoder(nn.Module):
    """Dynamic patch embedding + GSD/metadata encoding + CLS + pre-norm transformer."""

    def __init__(self, cfg: ClayConfig):
        super().__init__()
        self.dim = cfg.dim
        self.cls_token = nn.Parameter(torch.randn(1, 1, cfg.dim) * 0.02)
        self.patch_embedding = DynamicEmbedding(cfg.dim, cfg.patch_size, with_bias=True)
        self.transformer = Transformer(cfg.dim, cfg.depth, cfg.heads, cfg.dim_head, cfg.dim * cfg.mlp_ratio)

    def forward(self, pixels, time, latlon, gsd, waves) -> torch.Tensor:
        """pixels [B, C, H, W] -> tokens [B, 1+L, D], CLS at index 0."""
        patches = self.patch_embedding.embed(pixels, waves)  # [B, L, D]
        grid = math.isqrt(patches.shape[1])
        patches = patches + position_and_metadata(grid, self.dim, gsd, time, latlon)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)  # [B, 1, D]
        return self.transformer(torch.cat((cls, patches), dim=1))


class Decoder(nn.Module):
    """Tokens -> normalised pixels of every patch, optionally with some patches masked."""

    def __init__(self, cfg: ClayConfig):
        super().__init__()
        self.dim = cfg.decoder_dim
        self.mask_patch = nn.Parameter(torch.zeros(cfg.decoder_dim))
        self.enc_to_dec = nn.Linear(cfg.dim, cfg.decoder_dim) if cfg.dim != cfg.decoder_dim else nn.Identity()
        self.transformer = Transformer(
            cfg.decoder_dim,
            cfg.decoder_depth,
            cfg.decoder_heads,
            cfg.decoder_dim_head,
            cfg.decoder_dim * cfg.decoder_mlp_ratio,
        )
        self.embed_to_pixels = DynamicEmbedding(cfg.decoder_dim, cfg.patch_size, with_bias=False)

    def forward(self, tokens, time, latlon, gsd, waves, mask=None) -> torch.Tensor:
        """tokens [B, 1+L, D] -> pixels [B, L, C*P*P]; ``mask`` [B, L] True = patch replaced by mask_patch."""
        x = self.enc_to_dec(tokens)  # [B, 1+L, Dd]
        cls, patches = x[:, :1], x[:, 1:]
        if mask is not None:
            patches = torch.where(mask[..., None], self.mask_patch.to(patches.dtype), patches)
        grid = math.isqrt(patches.shape[1])
        patches = patches + position_and_metadata(grid, self.dim, gsd, time, latlon)
        x = self.transformer(torch.cat((cls, patches), dim=1))
        return self.embed_to_pixels.project(x[:, 1:], waves)  # CLS output dropped


class ClayModel(nn.Module):
    """Clay v1.5 encoder + decoder with checked inputs.

    Use :meth:`from_checkpoint` to load the official Lightning checkpoint (or any preset).
    ``encode``/``decode`` take the same arguments as the reference (docs/model.md, Inputs).
    """

    def __init__(self, cfg: ClayConfig, *, preset: str = "custom"):
        super().__init__()
        self.config = cfg
        self.preset = preset
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.source: dict = {}  # where the weights came from (path, sha256, global_step), set by the loader

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(cls, path, *, verify: bool = True) -> ClayModel:
        """Load a Lightning checkpoint in the official layout (see :mod:`clay_explore.model.checkpoint`)."""
        from clay_explore.model.checkpoint import load_checkpoint

        return load_checkpoint(path, verify=verify)

    @property
    def is_trained(self) -> bool:
        """True only for the v1.5 (large) architecture with weights that went through training.

        Tiny or freshly initialised models make every output say "untrained" (issue 4, Honesty).
        """
        return self.preset == "large" and int(self.source.get("global_step", 0) or 0) > 0

    @property
    def sha256(self) -> str | None:
        return self.source.get("sha256")

    # ------------------------------------------------------------------ inference
    def encode(self, pixels, time, latlon, gsd, waves) -> torch.Tensor:
        """Normalised pixels [B, C, H, W] + metadata -> tokens [B, 1+L, D] (CLS at index 0)."""
        pixels, time, latlon, gsd, waves = self._check(pixels, time, latlon, gsd, waves)
        return self.encoder(pixels, time, latlon, gsd, waves)

    def decode(self, tokens, time, latlon, gsd, waves, mask=None) -> torch.Tensor:
        """Tokens [B, 1+L, D] -> normalised pixels [B, L, C*P*P] (last axis band, row, col).

        ``mask`` [B, L] (bool, True = masked) swaps those patch tokens for the decoder's mask
        token, as in MAE training; None decodes with every patch visible.
        """
        if tokens.ndim != 3 or tokens.shape[-1] != self.config.dim:
            raise ModelInputError(f"tokens must be [B, 1+L, {self.config.dim}], got {list(tokens.shape)}.")
        n_patches = tokens.shape[1] - 1
        if n_patches < 1 or math.isqrt(n_patches) ** 2 != n_patches:
            raise ModelInputError(f"tokens hold {n_patches} patches, which is no square grid (1+L tokens expected).")
        time, latlon, gsd, waves = self._check_meta(tokens.shape[0], time, latlon, gsd, waves, tokens.device)
        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.bool, device=tokens.device)
            if mask.shape != (tokens.shape[0], n_patches):
                raise ModelInputError(f"mask must be [B, L] = {[tokens.shape[0], n_patches]}, got {list(mask.shape)}.")
        return self.decoder(tokens, time, latlon, gsd, waves, mask)

    def decode_from_cls(self, cls, time, latlon, gsd, waves, grid: int) -> torch.Tensor:
        """Clay's own one-vector baseline: CLS [B, D] with every one of grid*grid patches masked."""
        batch = cls.shape[0]
        tokens = torch.cat((cls[:, None, :], cls.new_zeros(batch, grid * grid, cls.shape[-1])), dim=1)
        mask = torch.ones(batch, grid * grid, dtype=torch.bool, device=cls.device)
        return self.decode(tokens, time, latlon, gsd, waves, mask=mask)

    def unpatchify(self, pixels: torch.Tensor, n_bands: int) -> torch.Tensor:
        """Decoder output [B, L, C*P*P] -> image [B, C, H, W]."""
        return unpatchify(pixels, n_bands, self.config.patch_size)

    def to_fast(self, dtype: torch.dtype = torch.bfloat16) -> ClayModel:
        """Half-precision (bf16 or fp16) weights for the transformer matmuls; norms and residuals stay fp32.

        Which precision suits the hardware is chosen by :func:`clay_explore.model.fastpath.apply_fast_path`.
        """
        for transformer in (self.encoder.transformer, self.decoder.transformer):
            for module in transformer.modules():
                if isinstance(module, nn.Linear):
                    module.to(dtype)
        return self

    # ------------------------------------------------------------------ checks
    def _check(self, pixels, time, latlon, gsd, waves):
        pixels = torch.as_tensor(pixels)
        if pixels.ndim != 4:
            raise ModelInputError(f"pixels must be [B, C, H, W], got shape {list(pixels.shape)}.")
        batch, bands, height, width = pixels.shape
        p = self.config.patch_size
        if height != width:
            raise ModelInputError(f"Clay takes square chips only; got {height} x {width}. Crop or pad to a square.")
        if height % p or height == 0:
            raise ModelInputError(
                f"Chip side {height} px is not a multiple of the patch size {p}. Use e.g. {max(p, height // p * p)} px."
            )
        pixels = pixels.float()  # the reference is tied to float32 (numpy gives float64 by default)
        if not torch.isfinite(pixels).all():
            raise ModelInputError(
                "pixels contain NaN or infinite values (nodata?). Fill nodata first, e.g. with 0 after "
                "normalising (the band mean)."
            )
        time, latlon, gsd, waves = self._check_meta(batch, time, latlon, gsd, waves, pixels.device)
        if waves.shape[0] != bands:
            raise ModelInputError(
                f"Band mismatch: pixels have {bands} bands but {waves.shape[0]} wavelengths were given. "
                "Pass one wavelength (µm) per band, in the pixels' band order."
            )
        return pixels, time, latlon, gsd, waves

    @staticmethod
    def _check_meta(batch, time, latlon, gsd, waves, device):
        time = torch.as_tensor(time, dtype=torch.float32, device=device)
        latlon = torch.as_tensor(latlon, dtype=torch.float32, device=device)
        for name, t, width in (("time", time, TIME_DIM), ("latlon", latlon, LATLON_DIM)):
            if t.shape != (batch, width):
                raise ModelInputError(
                    f"{name} must be [B, {width}] = {[batch, width]}, got {list(t.shape)}. Use zeros for unknown."
                )
        if not (torch.isfinite(time).all() and torch.isfinite(latlon).all()):
            raise ModelInputError("time/latlon contain NaN or infinite values; use zeros for unknown metadata.")
        gsd = torch.as_tensor(gsd, dtype=torch.float32, device=device)
        if gsd.numel() != 1 or not torch.isfinite(gsd).all() or float(gsd.reshape(-1)[0]) <= 0:
            raise ModelInputError(f"gsd must be one positive number (metres) for the whole batch, got {gsd.tolist()}.")
        waves = torch.as_tensor(waves, dtype=torch.float32, device=device).reshape(-1)
        if waves.numel() == 0:
            raise ModelInputError("waves is empty: give each band's central wavelength in µm.")
        return time, latlon, gsd, waves


def unpatchify(pixels: torch.Tensor, n_bands: int, patch: int) -> torch.Tensor:
    """Decoder output [B, L, C*P*P] (square grid of L patches) -> image [B, C, H, W]."""
    from einops import rearrange

    grid = math.isqrt(pixels.shape[1])
    return rearrange(pixels, "b (h w) (c i j) -> b c (h i) (w j)", h=grid, w=grid, c=n_bands, i=patch, j=patch)
