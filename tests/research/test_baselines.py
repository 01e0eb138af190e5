"""Baselines without Clay: band mean of the training chips, each chip's own mean, a thumbnail."""

from __future__ import annotations

import numpy as np

from clay_explore.research.baselines import (
    BandMeanAccumulator,
    band_mean_image,
    band_means,
    chip_mean_image,
    thumbnail_image,
    thumbnail_side,
)


def _chips(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(100, 2000, size=(3, 4, 32, 32)).astype(np.float32)
    x[0, :, :4, :4] = np.nan
    return x


def test_band_and_chip_means_ignore_nodata():
    x = _chips()
    acc = BandMeanAccumulator(4)
    acc.add(x[:2])
    acc.add(x[2:])
    np.testing.assert_allclose(acc.mean(), np.nanmean(x, axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(band_means(x), acc.mean(), rtol=1e-6)
    img = chip_mean_image(x)
    assert img.shape == x.shape and np.isfinite(img).all()
    np.testing.assert_allclose(img[0, :, 0, 0], np.nanmean(x[0], axis=(1, 2)), rtol=1e-5)
    assert band_mean_image(acc.mean(), x.shape).shape == x.shape


def test_thumbnail_uses_about_the_budget_and_improves_with_it():
    x = _chips()
    assert thumbnail_side(1024, 10, 256) == 10  # 10 bands x 10 x 10 = 1,000 numbers for a 1,024-wide vector
    assert thumbnail_side(16, 10, 256) == 1 and thumbnail_side(10**9, 4, 32) == 32
    smooth = np.cumsum(np.cumsum(np.nan_to_num(x, nan=1000.0), axis=2), axis=3)  # smooth fields
    errors = []
    for budget in (4, 64, 1024):
        img, used = thumbnail_image(smooth, budget)
        assert used <= budget and img.shape == smooth.shape and np.isfinite(img).all()
        errors.append(float(np.mean((img - smooth) ** 2)))
    assert errors[0] > errors[1] > errors[2]
    full, used = thumbnail_image(smooth, 4 * 32 * 32)
    np.testing.assert_allclose(full, smooth, rtol=1e-5)  # the whole chip: nothing lost


def test_chip_mean_beats_band_mean_on_real_imagery(real_embedded, copy_ws, tiny_model):
    """BigEarthNet samples (Austria, Ireland, Finland): a chip's own mean beats the training chips' mean."""
    from clay_explore.research.evaluate import evaluate_workspace

    root = copy_ws(real_embedded)
    report = evaluate_workspace(root, model=tiny_model, compare=[("chip_mean", "band_mean")], show_progress=False)
    base = report["baselines"]
    assert base["chip_mean"]["test"]["psnr"] > base["band_mean"]["test"]["psnr"]
    c = next(c for c in report["comparisons"] if c["method"] == "chip_mean" and c["metric"] == "psnr")
    assert c["against"] == "band_mean" and c["verdict"] == "better" and c["ci95"][0] > 0
    assert base["chip_mean"]["n_numbers"] == 10 and base["band_mean"]["n_numbers"] == 0
    assert len(base["band_mean"]["band_means"]) == 10
    assert report["split"]["test"] == base["chip_mean"]["test"]["n_chips"] > 0
    assert report["verdict"].startswith("No method is fitted yet")
