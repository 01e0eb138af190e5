"""Metrics agree with scikit-image / scikit-learn on known inputs."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.neighbors import NearestNeighbors

from clay_explore.research.metrics import (
    image_metrics,
    knn_agreement,
    label_probe,
    neighbour_sets,
    neighbourhood_preservation,
    pairwise_sq_dists,
    primary_labels,
    psnr,
    spectral_angle,
    ssim,
)


@pytest.fixture
def images():
    rng = np.random.default_rng(1)
    ref = rng.uniform(0.0, 0.6, size=(3, 40, 48))
    pred = np.clip(ref + rng.normal(scale=0.05, size=ref.shape), 0, 1)
    return ref, pred


def test_psnr_matches_skimage(images):
    ref, pred = images
    for c in range(ref.shape[0]):
        assert psnr(ref[c], pred[c], 1.0) == pytest.approx(
            peak_signal_noise_ratio(ref[c], pred[c], data_range=1.0), rel=1e-10
        )
    assert psnr(ref[0], ref[0], 1.0) == 100.0  # capped, finite for JSON


def test_psnr_skips_nodata(images):
    ref, pred = images
    holed = ref[0].copy()
    holed[:5] = np.nan
    expected = peak_signal_noise_ratio(ref[0][5:], pred[0][5:], data_range=1.0)
    assert psnr(holed, pred[0], 1.0) == pytest.approx(expected, rel=1e-10)


def test_ssim_matches_skimage(images):
    ref, pred = images
    for c in range(ref.shape[0]):
        expected = structural_similarity(
            ref[c], pred[c], data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert ssim(ref[c], pred[c], 1.0) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert ssim(ref[0], ref[0], 1.0) == pytest.approx(1.0)


def test_spectral_angle_known_values_and_sklearn(images):
    a = np.zeros((3, 2, 2))
    a[0] = 1.0
    b = np.zeros((3, 2, 2))
    b[1] = 1.0
    assert spectral_angle(a, b) == pytest.approx(90.0)
    assert spectral_angle(a, 3.0 * a) == pytest.approx(0.0, abs=1e-6)
    ref, pred = images
    cos = np.diag(cosine_similarity(ref.reshape(3, -1).T, pred.reshape(3, -1).T))
    assert spectral_angle(ref, pred) == pytest.approx(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(), rel=1e-9)


def test_image_metrics_bundle(images):
    ref, pred = images
    m = image_metrics(ref, pred, 1.0)
    assert len(m["psnr"]) == len(m["ssim"]) == 3
    assert m["psnr_mean"] == pytest.approx(np.mean(m["psnr"]))


def test_neighbour_sets_match_sklearn():
    x = np.random.default_rng(2).normal(size=(40, 6))
    ours = neighbour_sets(pairwise_sq_dists(x), 10)
    theirs = NearestNeighbors(n_neighbors=11).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    for i in range(len(x)):
        assert set(ours[i]) == set(theirs[i])


def test_neighbourhood_preservation_known_values():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 5))
    d = pairwise_sq_dists(x)
    assert neighbourhood_preservation(d, d, 10) == 1.0
    assert neighbourhood_preservation(d, pairwise_sq_dists(2 * x + 1), 10) == 1.0  # similarity-invariant
    # against sklearn neighbour sets of an unrelated embedding
    y = rng.normal(size=(50, 5))
    nx = NearestNeighbors(n_neighbors=11).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    ny = NearestNeighbors(n_neighbors=11).fit(y).kneighbors(y, return_distance=False)[:, 1:]
    expected = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(nx, ny, strict=True)])
    assert neighbourhood_preservation(d, pairwise_sq_dists(y), 10) == pytest.approx(expected)
    # fewer points than k+2: k shrinks to n-2 (with k = n-1 every point would be a neighbour: 1.0 always)
    n5x = NearestNeighbors(n_neighbors=4).fit(x[:5]).kneighbors(x[:5], return_distance=False)[:, 1:]
    n5y = NearestNeighbors(n_neighbors=4).fit(y[:5]).kneighbors(y[:5], return_distance=False)[:, 1:]
    expected5 = np.mean([len(set(a) & set(b)) / 3 for a, b in zip(n5x, n5y, strict=True)])
    assert neighbourhood_preservation(d[:5, :5], pairwise_sq_dists(y[:5]), 10) == pytest.approx(expected5)
    assert np.isnan(neighbourhood_preservation(d[:2, :2], pairwise_sq_dists(y[:2]), 10))  # not measurable


def test_knn_agreement_is_symmetric():
    rng = np.random.default_rng(4)
    v = {"a": rng.normal(size=(30, 4)), "b": rng.normal(size=(30, 8))}
    out = knn_agreement(v, k=5)
    assert out["a"]["a"] == 1.0 and out["a"]["b"] == out["b"]["a"]


def test_primary_labels_parses_every_form():
    raw = ['["Pastures", "Forest"]', "water; sand", "a|b", None, "", ["x", "y"], np.array(["z"])]
    assert primary_labels(raw) == ["Pastures", "water", "a", None, None, "x", "z"]


def test_label_probe_separable_and_degenerate():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 1, (12, 4)), rng.normal(6, 1, (12, 4))])
    y = ["a"] * 12 + ["b"] * 12
    out = label_probe(x, y)
    assert out["knn_accuracy"] == pytest.approx(1.0) and out["logreg_accuracy"] == pytest.approx(1.0)
    assert out["chance"] == 0.5 and out["n_classes"] == 2
    one_class = label_probe(x, ["a"] * 24)
    assert "knn_accuracy" not in one_class and "a: 24" in one_class["skipped"] and one_class["n_classes"] == 1
    assert "skipped" in label_probe(x, ["a"] + [None] * 23)
    rare = label_probe(x, ["a"] * 12 + ["b"] * 11 + ["c"])  # a class of one chip is left out, not fatal
    assert rare["n_classes"] == 2 and rare["classes_left_out"] == ["c"]


def test_label_probe_with_few_chips_gives_numbers_not_nan():
    """5 chips in 2 folds: the kNN must fit on the smallest training fold (2 chips), not report NaN."""
    x = np.random.default_rng(7).normal(size=(5, 4))
    out = label_probe(x, list("aabbb"))
    assert out["folds"] == 2 and np.isfinite(out["knn_accuracy"]) and np.isfinite(out["logreg_accuracy"])


def test_token_set_sketch_keeps_neighbourhoods():
    """Wide tokens are sketched per position (D -> 64) for the reference distances; neighbours survive."""
    import torch

    from clay_explore.research.metrics import SKETCH_DIM, TokenSketch

    rng = np.random.default_rng(6)
    centres = rng.normal(size=(5, 1, 16, 256))
    tokens = (centres + 0.3 * rng.normal(size=(5, 8, 16, 256))).reshape(40, 16, 256).astype(np.float32)
    sketch = TokenSketch(40, 16, 256, exact=False)
    assert not sketch.exact and sketch(torch.from_numpy(tokens)).shape == (40, 16 * SKETCH_DIM)
    exact = pairwise_sq_dists(tokens.reshape(40, -1))
    approx = pairwise_sq_dists(sketch(torch.from_numpy(tokens)))
    assert neighbourhood_preservation(exact, approx, 7) == 1.0  # each chip's 7 cluster mates
    np.testing.assert_allclose(approx[exact > 0] / exact[exact > 0], 1.0, atol=0.25)
    assert TokenSketch(40, 16, 64).exact and TokenSketch(10, 64, 1024).exact  # small: exact distances
    np.testing.assert_allclose(sketch(tokens[:3]), sketch(torch.from_numpy(tokens))[:3], rtol=1e-4, atol=1e-4)


def test_sketch_agrees_with_exact_distances_at_clay_width():
    """D = 1024, token content of rank 256 plus a component every token shares: NP@10 >= 0.95 vs exact.

    Chips differ through a few latent numbers, mixed differently at every position into a rank-256
    subspace of the 1,024 token dimensions, so the exact distances have real neighbourhoods to keep.
    """
    from clay_explore.research.metrics import TokenSketch

    rng = np.random.default_rng(0)
    n, length, dim, rank, latent = 60, 128, 1024, 256, 8
    basis = rng.normal(size=(rank, dim)) / np.sqrt(rank)  # content rank 256
    mix = rng.normal(size=(length, latent, rank))  # per position: latent -> content
    content = np.einsum("nk,lkr->nlr", rng.uniform(size=(n, latent)), mix)  # [n, L, rank]
    shared = 3.0 * rng.normal(size=(1, 1, dim))  # what every token of every chip has in common
    tokens = (content @ basis + shared).astype(np.float32)  # [n, L, D]
    exact = pairwise_sq_dists(tokens.reshape(n, -1))
    approx = pairwise_sq_dists(TokenSketch(n, length, dim, exact=False)(tokens))
    assert neighbourhood_preservation(exact, approx, 10) >= 0.95


def test_np_chance_level():
    from clay_explore.research.metrics import np_chance

    assert np_chance(63, 10) == pytest.approx(10 / 62)
    assert np_chance(5, 10) == pytest.approx(3 / 4) and np_chance(2, 10) is None


def test_ssim_leaves_nodata_out(images):
    """Two unrelated images: nodata (filled with the prediction before) must not raise SSIM."""
    rng = np.random.default_rng(8)
    ref = rng.uniform(0.0, 0.6, size=(64, 64))
    other = rng.uniform(0.0, 0.6, size=(64, 64))
    base = ssim(ref, other, 1.0)
    holed = ref.copy()
    holed[:, :32] = np.nan  # half the image is nodata
    assert ssim(holed, other, 1.0) <= base + 0.05
    expected = structural_similarity(
        ref[:, 32:], other[:, 32:], data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )  # the valid half alone, its own border cropped
    assert ssim(holed, other, 1.0) == pytest.approx(expected, abs=0.03)
    assert ssim(holed, holed, 1.0) == pytest.approx(1.0)  # identical where valid
    assert np.isnan(ssim(np.full((16, 16), np.nan), other[:16, :16], 1.0))


def test_ssim_of_all_bands_at_once_equals_band_by_band():
    from clay_explore.research.metrics import ssim_bands

    rng = np.random.default_rng(9)
    ref = rng.uniform(0, 0.6, size=(3, 40, 48))
    pred = np.clip(ref + rng.normal(scale=0.05, size=ref.shape), 0, 1)
    ref[1, :10, :10] = np.nan
    ref[2] = np.nan
    want = [ssim(ref[c], pred[c], 1.0) for c in range(3)]
    np.testing.assert_allclose(ssim_bands(ref, pred, 1.0), want, rtol=1e-10, atol=1e-12)
