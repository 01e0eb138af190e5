"""Baselines without Clay: what a handful of numbers per chip reconstructs on its own.

- ``band_mean``: every pixel set to the per-band mean of the *training* chips (one constant image
  for all chips; 0 numbers per chip).
- ``chip_mean``: every pixel set to the chip's own per-band mean (C numbers per chip).
- ``thumbnail``: the chip averaged down to C x k x k (about as many numbers as a vector of width D')
  and scaled back up bilinearly: "the same budget without Clay".

All work in model units (DN; dB for Sentinel-1) with NaN = nodata, like the decoder's outputs, so
the same metrics apply.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

BAND_MEAN = "band_mean"
CHIP_MEAN = "chip_mean"
THUMBNAIL = "thumbnail"
BASELINES = (BAND_MEAN, CHIP_MEAN, THUMBNAIL)
DESCRIPTIONS = {
    BAND_MEAN: "every pixel = per-band mean of the training chips (no Clay; 0 numbers per chip)",
    CHIP_MEAN: "every pixel = the chip's own per-band mean (no Clay; C numbers per chip)",
    THUMBNAIL: "chip averaged down to C x k x k numbers and scaled back up bilinearly (no Clay; same budget)",
}


def _nanmean(x: np.ndarray, axis: Any) -> np.ndarray:
    with warnings.catch_warnings():  # an all-nodata band stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def band_means(chips: np.ndarray) -> np.ndarray:
    """Per-band mean over the valid pixels of chips [n, C, H, W] -> [C] (0 where a band has none)."""
    return np.nan_to_num(_nanmean(np.asarray(chips, np.float64), axis=(0, 2, 3)), nan=0.0)


class BandMeanAccumulator:
    """Running per-band sum and count over batches of chips (training chips streamed once)."""

    def __init__(self, n_bands: int):
        self.total = np.zeros(n_bands, np.float64)
        self.count = np.zeros(n_bands, np.float64)

    def add(self, chips: np.ndarray) -> None:
        x = np.asarray(chips, np.float64)  # [n, C, H, W]
        valid = np.isfinite(x)
        self.total += np.where(valid, x, 0.0).sum(axis=(0, 2, 3))
        self.count += valid.sum(axis=(0, 2, 3))

    def mean(self) -> np.ndarray:
        return np.where(self.count > 0, self.total / np.maximum(self.count, 1), 0.0)


def band_mean_image(means: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The constant image [n, C, H, W] of ``means`` [C]."""
    n, c, h, w = shape
    return np.broadcast_to(np.asarray(means, np.float32)[None, :, None, None], (n, c, h, w)).copy()


def chip_mean_image(chips: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """Each chip's per-band mean over its valid pixels, as a constant image [n, C, H, W]."""
    m = _nanmean(np.asarray(chips, np.float64), axis=(2, 3))  # [n, C]
    if fallback is not None:
        m = np.where(np.isfinite(m), m, np.asarray(fallback)[None, :])
    return np.broadcast_to(m[:, :, None, None], chips.shape).astype(np.float32)


def thumbnail_side(n_numbers: int, n_bands: int, chip: int) -> int:
    """Side k of a C x k x k thumbnail holding at most ``n_numbers`` numbers (at least 1, at most chip)."""
    return int(min(chip, max(1, math.isqrt(max(1, int(n_numbers) // max(1, n_bands))))))


def thumbnail_image(chips: np.ndarray, n_numbers: int, fill: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(chips averaged to C x k x k over valid pixels then scaled back up bilinearly, numbers used)."""
    x = np.asarray(chips, np.float32)  # [n, C, H, W]
    n, c, h, w = x.shape
    k = thumbnail_side(n_numbers, c, min(h, w))
    valid = np.isfinite(x)
    t = torch.from_numpy(np.where(valid, x, 0.0).astype(np.float32))
    v = torch.from_numpy(valid.astype(np.float32))
    sums, counts = F.adaptive_avg_pool2d(t, k), F.adaptive_avg_pool2d(v, k)  # [n, C, k, k]
    small = sums / counts.clamp_min(1e-12)
    # cells without a valid pixel take the chip's band mean (else the given fill, else 0)
    band = chip_mean_image(x, fill)[:, :, :1, :1] if valid.any() else np.zeros((n, c, 1, 1), np.float32)
    small = torch.where(counts > 0, small, torch.from_numpy(np.nan_to_num(band)).expand_as(small))
    up = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return up.numpy().astype(np.float32), int(c * k * k)
