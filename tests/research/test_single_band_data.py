"""Single-band data (Sentinel-1 VH only): the spectral angle is absent (None / '-') everywhere, and evaluation,
the CLI table and the comparison PNG still work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from clay_explore.cli.main import cli
from clay_explore.core.workspace import CHIP_TABLE, CHIPS_ZARR, EVALUATION, Workspace
from clay_explore.research.evaluate import evaluate_workspace, summarise
from clay_explore.research.fit import fit_method
from clay_explore.research.metrics import image_metrics, spectral_angle

CHIP = 32


S1 = "sentinel-1-rtc"


def _s1_vh_workspace(root: Path, n: int = 6) -> Workspace:
    """A Sentinel-1 workspace holding only the VH band: smooth linear backscatter fields."""
    import geopandas as gpd
    from shapely.geometry import box

    rng = np.random.default_rng(5)
    pixels = 10 ** (rng.normal(-1.8, 0.3, size=(n, 1, 1, 1)) + 0.05 * rng.normal(size=(n, 1, CHIP, CHIP)))
    ws = Workspace.create(root, sensor=S1, bands=["vh"], chip_size=CHIP, source={"kind": "test"})
    arr = ws.create_array(CHIPS_ZARR, "pixels", shape=pixels.shape, dtype="float32")
    arr[:] = pixels.astype(np.float32)
    ws.mark_done(CHIPS_ZARR, "pixels", range(n))
    rows = [
        {
            "chip_id": f"chip-{i:03d}",
            "crs": "EPSG:4326",
            "transform": [1.0, 0.0, 0.0, 0.0, -1.0, 0.0],
            "row": 0,
            "col": 0,
            "lat": 45.0 + 0.01 * i,
            "lon": 7.0,
            "datetime": pd.Timestamp("2021-06-10", tz="UTC"),
            "gsd": 10.0,
            "valid_fraction": 1.0,
            "cloud_fraction": None,
            "source": "test",
        }
        for i in range(n)
    ]
    geoms = [box(r["lon"] - 0.003, r["lat"] - 0.003, r["lon"] + 0.003, r["lat"] + 0.003) for r in rows]
    ws.write_table(CHIP_TABLE, gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs="EPSG:4326"))
    ws.set_stage("chips", status="complete", n_chips=n)
    return ws


def test_spectral_angle_is_none_for_one_band():
    rng = np.random.default_rng(0)
    a, b = rng.random((1, 16, 16)) + 0.1, rng.random((1, 16, 16)) + 0.1
    assert spectral_angle(a, b) is None
    assert image_metrics(a, b, 1.0)["sam_deg"] is None
    assert image_metrics(np.concatenate([a, b]), np.concatenate([b, a]), 1.0)["sam_deg"] > 0


def test_summarise_copes_with_missing_spectral_angles():
    one_band = {"psnr": [20.0], "ssim": [0.5], "sam_deg": None}
    out = summarise([one_band, one_band])
    assert out["sam_deg"] is None and out["psnr"] == pytest.approx(20.0)
    assert json.loads(json.dumps(out))["sam_deg"] is None
    mixed = summarise([{"psnr": [20.0], "ssim": [0.5], "sam_deg": 4.0}, one_band])
    assert mixed["sam_deg"] == pytest.approx(4.0)


def test_single_band_evaluation_reports_null_spectral_angle(tmp_path, tiny_model):
    from clay_explore.app.ui import evaluation_table
    from clay_explore.research.embed import embed_workspace

    ws = _s1_vh_workspace(tmp_path / "ws")
    embed_workspace(ws, model=tiny_model, batch_size=3, show_progress=False)
    fit_method(ws, "mean", model=tiny_model, epochs=1, seeds=1, batch_size=3, show_progress=False)
    report = evaluate_workspace(ws, model=tiny_model, batch_size=3, show_progress=False)
    stored = json.loads(ws.path(EVALUATION).read_text())
    for group, name in (
        ("references", "all_tokens"),
        ("references", "cls_only"),
        ("methods", "mean"),
        ("baselines", "chip_mean"),
    ):
        assert report[group][name]["reconstruction"]["all"]["sam_deg"] is None
        assert stored[group][name]["reconstruction"]["all"]["sam_deg"] is None
        assert np.isfinite(stored[group][name]["reconstruction"]["all"]["psnr"])
        sam = stored[group][name]["test"]["sam_deg"]
        assert sam is None or sam["mean"] is None  # plain number (references, baselines) or mean ± sd (methods)
    table = evaluation_table(stored)
    assert table["SAM (deg)"].isna().all() and table["PSNR (dB)"].notna().any()


def test_single_band_evaluate_cli_text_shows_a_dash(tmp_path, tiny_model, tiny_checkpoint):
    from clay_explore.research.embed import embed_workspace

    ws = _s1_vh_workspace(tmp_path / "ws")
    embed_workspace(ws, model=tiny_model, batch_size=3, show_progress=False)
    res = CliRunner().invoke(
        cli, ["evaluate", "-w", str(ws.root), "--checkpoint", str(tiny_checkpoint)], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    full = next(line for line in res.output.splitlines() if line.startswith("reference all_tokens"))
    sam_column = full[10 + 28 + 16 + 16 : 10 + 28 + 16 + 16 + 15]  # kind, row, PSNR, SSIM, then SAM (text_table)
    assert sam_column.strip() == "-" and "nan" not in full.lower()


def test_single_band_reconstruct_png(tmp_path, tiny_model):
    from clay_explore.research.embed import embed_workspace
    from clay_explore.research.reconstruct import write_comparison

    ws = _s1_vh_workspace(tmp_path / "ws")
    embed_workspace(ws, model=tiny_model, batch_size=3, show_progress=False)
    result = write_comparison(ws, "chip-001", tmp_path / "chip.png", model=tiny_model)
    assert (tmp_path / "chip.png").exists()
    assert all(m is None or m["sam_deg"] is None for m in result["metrics"].values())
