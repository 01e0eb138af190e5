"""Pixels -> uint8 RGB: the one display stretch and the one nodata colour of every picture.

The app's panels and thumbnails (``viz.views``), the CLI's comparison PNGs and the exported
reconstructions (``research.reconstruct``) all call ``to_uint8``, so a chip looks the same
everywhere and nodata is always the same dark grey. Pure numpy; lives in ``core`` because both the
research stages and ``viz`` draw pictures and research never imports ``viz``.
"""

from __future__ import annotations

import numpy as np

#: Robust display range of a band: its 2nd and 98th percentile over valid pixels.
STRETCH_PERCENTILES = (2.0, 98.0)
#: Dark grey where a chip has no data (any band NaN), distinct from black (dark but valid pixels).
NODATA_RGB = (40, 40, 40)
#: Smallest display range of a band (a constant band would otherwise divide by zero).
MIN_SPAN = 1e-6
#: Display limits of a band with no valid pixel.
EMPTY_LIMITS = (0.0, 1.0)


#: A span below this fraction of the band's level counts as constant (float32 cannot resolve less).
RELATIVE_MIN_SPAN = 1e-3


def stretch_limits(img: np.ndarray, percentiles: tuple[float, float] = STRETCH_PERCENTILES) -> np.ndarray:
    """Per-band (low, high) display limits [k, 2] of ``img`` [k, H, W] from robust percentiles of valid pixels."""
    flat = np.asarray(img, dtype=np.float32).reshape(img.shape[0], -1)
    lims = np.zeros((img.shape[0], 2), dtype=np.float32)
    for b in range(img.shape[0]):
        vals = flat[b][np.isfinite(flat[b])]
        lo, hi = np.percentile(vals, percentiles) if vals.size else EMPTY_LIMITS
        span = max(MIN_SPAN, abs(float(lo)) * RELATIVE_MIN_SPAN)
        if hi - lo < span:  # a constant band (e.g. a band-mean panel): centre it, mid-grey, not black
            lo, hi = lo - span / 2, lo + span / 2
        lims[b] = (lo, hi)
    return lims


def to_uint8(img: np.ndarray, limits: np.ndarray | None = None) -> np.ndarray:
    """Display image [k, H, W] (k = 1 or 3) -> uint8 [H, W, 3]; pixels with any band NaN become ``NODATA_RGB``.

    ``limits`` [k, 2] fixes the stretch (pass the original's limits to compare reconstructions
    on the same scale); by default each band is stretched between its 2nd and 98th percentile.
    """
    img = np.asarray(img, dtype=np.float32)
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"expected [1 or 3, H, W], got {img.shape}")
    lims = stretch_limits(img) if limits is None else np.asarray(limits, dtype=np.float32)
    scaled = (img - lims[:, :1, None]) / (lims[:, 1:, None] - lims[:, :1, None])
    nodata = ~np.all(np.isfinite(img), axis=0)  # [H, W]
    out = (np.clip(np.nan_to_num(scaled), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if out.shape[0] == 1:
        out = np.repeat(out, 3, axis=0)
    out = np.moveaxis(out, 0, -1).copy()  # [H, W, 3]
    out[nodata] = NODATA_RGB
    return out
