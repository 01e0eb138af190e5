"""Validation without trained weights: the evaluation must find information that is planted where
it can be checked. Token sets are written past the encoder so that what a chip shows sits only in
*where* its tokens are: every chip has half its patches bright and half dark (left, right, top or
bottom), and its tokens are a position code plus +/- one direction. Mean pooling gives every chip
the same vector, so it provably cannot tell the four apart; a spatial squeeze (linear maps,
attention) can. The evaluation must call linear and attention better than mean, with an interval
that excludes zero; two identical methods must come out indistinguishable."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from clay_explore.core.sensors import get_sensor
from clay_explore.core.workspace import CHIPS_ZARR, EMBEDDINGS_ZARR, Workspace
from clay_explore.model.mae import unpatchify
from clay_explore.research.evaluate import evaluate_workspace
from clay_explore.research.fit import fit_method
from clay_explore.research.stats import paired_comparison

from .conftest import SENSOR, _row, make_workspace

CHIP = 32  # 4 x 4 patches of 8 px with the tiny model
GRID = CHIP // 8
N_CHIPS = 32
HALVES = ("left", "right", "top", "bottom")


def _bright(half: str) -> np.ndarray:
    """[GRID, GRID] True where the patch is bright."""
    r, c = np.meshgrid(np.arange(GRID), np.arange(GRID), indexing="ij")
    return {"left": c < GRID // 2, "right": c >= GRID // 2, "top": r < GRID // 2, "bottom": r >= GRID // 2}[half]


@pytest.fixture(scope="module")
def planted(tmp_path_factory, tiny_model):
    """Chips whose pixels are what Clay's (tiny, frozen) decoder renders from planted tokens.

    Rendering the targets with the same decoder the methods must use keeps them reachable, so the
    test measures what the vector keeps, not what a random decoder can draw.
    """
    from clay_explore.research.embed import embed_workspace
    from clay_explore.research.inputs import chip_meta, waves_of

    mean, std, _ = get_sensor(SENSOR).stats()
    halves = [HALVES[i % len(HALVES)] for i in range(N_CHIPS)]
    rows = [_row(i, 45.0 + 0.01 * (i // 8), 7.0 + 0.01 * (i % 8), None, 10.0, None, 1.0) for i in range(N_CHIPS)]
    placeholder = np.broadcast_to(mean[None, :, None, None], (N_CHIPS, len(mean), CHIP, CHIP)).astype(np.float32)
    root = tmp_path_factory.mktemp("planted") / "ws"
    ws = make_workspace(root, placeholder, rows, chip_size=CHIP)
    dim = int(tiny_model.config.dim)
    rng = np.random.default_rng(0)
    position = rng.normal(size=(GRID, GRID, dim))  # a fixed code per patch position
    direction = 2.0 * rng.normal(size=dim)
    sign = np.stack([np.where(_bright(h), 1.0, -1.0) for h in halves])  # [N, GRID, GRID]
    tokens = (position[None] + sign[..., None] * direction).astype(np.float16)  # [N, g, g, D]: same mean for all
    meta = chip_meta(ws)
    with torch.inference_mode():
        full = torch.cat([torch.zeros(N_CHIPS, 1, dim), torch.from_numpy(tokens.astype(np.float32)).flatten(1, 2)], 1)
        z = tiny_model.decode(
            full, torch.from_numpy(meta.time), torch.from_numpy(meta.latlon), 10.0, torch.from_numpy(waves_of(ws))
        )  # [N, L, C*P*P] normalised pixels
        z = unpatchify(z, len(mean), 8).numpy()  # [N, C, H, W]
    pixels = mean[None, :, None, None] + std[None, :, None, None] * z
    ws.open_array(CHIPS_ZARR, "pixels", mode="r+")[:] = pixels.astype(np.float32)
    embed_workspace(ws, model=tiny_model, batch_size=8, show_progress=False)  # the record; tokens replaced below
    ws.open_array(EMBEDDINGS_ZARR, "patches", mode="r+")[:] = tokens
    ws.open_array(EMBEDDINGS_ZARR, "cls", mode="r+")[:] = np.zeros((N_CHIPS, dim), np.float16)
    return root


def test_mean_pooling_cannot_see_the_planted_signal(planted):
    ws = Workspace.open(planted)
    patches = np.asarray(ws.open_array(EMBEDDINGS_ZARR, "patches")[:], np.float32)
    means = patches.reshape(N_CHIPS, -1, patches.shape[-1]).mean(1)
    assert np.abs(means - means[0]).max() < 1e-2  # every chip: the same mean vector


def _fit_and_evaluate(planted, tmp_path, tiny_model, methods):
    root = tmp_path / "ws"
    shutil.copytree(planted, root)
    kwargs = {
        "model": tiny_model,
        "epochs": 8,
        "seeds": 2,
        "batch_size": 4,
        "lr": 1e-2,
        "patience": 8,
        "show_progress": False,
    }
    for method in ("mean", *methods):
        fit_method(root, method, **kwargs)
    report = evaluate_workspace(root, model=tiny_model, batch_size=8, show_progress=False)
    assert report["split"]["test"] >= 6
    return report, {c["method"]: c for c in report["comparisons"] if c["against"] == "mean" and c["metric"] == "psnr"}


def test_evaluation_finds_what_mean_pooling_loses(planted, tmp_path, tiny_model):
    report, vs_mean = _fit_and_evaluate(planted, tmp_path, tiny_model, ["linear"])
    c = vs_mean["linear"]
    assert c["verdict"] == "better" and c["ci95"][0] > 0, c
    assert "linear beats mean pooling" in report["verdict"]


def test_attention_finds_what_mean_pooling_loses(planted, tmp_path, tiny_model):
    _, vs_mean = _fit_and_evaluate(planted, tmp_path, tiny_model, ["attention"])
    c = vs_mean["attention"]
    assert c["verdict"] == "better" and c["ci95"][0] > 0, c


def test_identical_methods_are_indistinguishable():
    rng = np.random.default_rng(3)
    scores = rng.normal(25.0, 2.0, size=(12, 3))  # [test chips, seeds]
    same = paired_comparison(scores, scores.copy(), "psnr")
    assert same["verdict"] == "indistinguishable" and same["diff"] == 0.0
    # the same method refitted: other seeds, same distribution -> the interval holds zero
    again = paired_comparison(scores, scores + rng.normal(0.0, 0.05, size=scores.shape), "psnr")
    assert again["verdict"] == "indistinguishable" and again["ci95"][0] < 0 < again["ci95"][1]
    better = paired_comparison(scores + 1.0, scores, "psnr")
    assert better["verdict"] == "better" and better["ci95"][0] > 0
    lower_angle = paired_comparison(scores - 1.0, scores, "sam_deg")  # a smaller angle error is better
    assert lower_angle["verdict"] == "better"


def test_bootstrap_is_deterministic():
    from clay_explore.research.stats import describe

    x = np.random.default_rng(1).normal(size=(9, 3))
    assert describe(x) == describe(x.copy())
    assert torch.equal(torch.tensor(describe(x)["ci95"]), torch.tensor(describe(x)["ci95"]))
