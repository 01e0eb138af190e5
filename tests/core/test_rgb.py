"""One RGB renderer: the app's panels and the CLI/export PNGs stretch alike and paint nodata the same grey."""

from __future__ import annotations

import numpy as np

from clay_explore.core.rgb import NODATA_RGB, stretch_limits, to_uint8


def _chip(seed: int = 0) -> np.ndarray:
    img = np.random.default_rng(seed).uniform(100, 3000, size=(3, 16, 16)).astype(np.float32)
    img[:, :2, :2] = np.nan  # a nodata corner
    return img


def test_nodata_is_dark_grey_and_valid_pixels_are_stretched() -> None:
    out = to_uint8(_chip())
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == NODATA_RGB
    assert out[4:].min() == 0 and out[4:].max() == 255  # 2-98 % stretch saturates both ends


def test_constant_or_empty_bands_do_not_divide_by_zero() -> None:
    lims = stretch_limits(np.stack([np.full((4, 4), 5.0), np.full((4, 4), np.nan), np.zeros((4, 4))]))
    assert np.all(lims[:, 1] > lims[:, 0])


def test_cli_comparison_png_uses_the_app_renderer() -> None:
    from clay_explore.research.reconstruct import ORIGINAL, to_rgb8
    from clay_explore.viz import views

    original = np.concatenate([_chip(), _chip(1)[:1]])  # 4 bands
    recon = original * 1.1
    rgb = to_rgb8({ORIGINAL: original, "mean": recon}, [2, 1, 0])
    limits = stretch_limits(original[[2, 1, 0]])
    np.testing.assert_array_equal(rgb[ORIGINAL], views.to_uint8(original[[2, 1, 0]], limits))
    np.testing.assert_array_equal(rgb["mean"], views.to_uint8(recon[[2, 1, 0]], limits))
    assert tuple(rgb["mean"][0, 0]) == views.NODATA_RGB == NODATA_RGB
