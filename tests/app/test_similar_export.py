"""similar (top-k per method, agreement) and export (GeoParquet, zarr, PNG) on generated and real workspaces."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr

from clay_explore.core.workspace import Workspace
from clay_explore.research import export as E
from clay_explore.research import similar as S


def test_cosine_neighbours_excludes_self_and_nan():
    v = np.array([[1, 0], [0.9, 0.1], [0, 1], [np.nan, np.nan], [1, 0.01]], dtype=np.float32)
    rows, sims = S.cosine_neighbours(v, 0, 3)
    assert list(rows) == [4, 1, 2] and sims[0] > sims[1] > sims[2]
    with pytest.raises(S.SimilarError):
        S.cosine_neighbours(v, 3, 2)


def test_top_k_agreement_consensus(synthetic_ws):
    ws = Workspace.open(synthetic_ws)
    nb = S.top_k(ws, 2, k=3)
    assert set(nb["method"]) == {"cls", "mean", "max", "linear"}
    assert (nb.groupby("method").size() == 3).all() and 2 not in set(nb["row"])
    ag = S.agreement(nb)
    assert np.allclose(np.diag(ag.to_numpy()), 1) and ((ag.to_numpy() >= 0) & (ag.to_numpy() <= 1)).all()
    cons = S.consensus(nb)
    assert cons["votes"].is_monotonic_decreasing
    with pytest.raises(S.SimilarError):
        S.top_k(ws, 99)
    with pytest.raises(Exception, match="No image vectors"):
        S.top_k(ws, 0, methods=["attention"])


def test_image_embeddings_geoparquet_opens_in_geopandas(synthetic_ws, tmp_path):
    ws = Workspace.open(synthetic_ws)
    path = E.export_image_embeddings(ws, tmp_path / "img.parquet")
    g = gpd.read_parquet(path)
    assert g.crs.to_epsg() == 4326 and len(g) == 6
    assert {"emb_cls", "emb_mean", "emb_linear"} <= set(g.columns)
    assert np.allclose(np.asarray(g["emb_mean"].iloc[1]), ws.open_array("vectors.zarr", "mean")[1])
    assert g.geometry.is_valid.all()


def test_patch_exports_zarr_and_geoparquet(synthetic_ws, tmp_path):
    ws = Workspace.open(synthetic_ws)
    z = E.export_patch_embeddings(ws, tmp_path / "p.zarr", "zarr")
    ds = xr.open_zarr(z)
    assert ds["tokens"].shape == (6, 4, 4, 16) and list(ds["chip"].values[:2]) == ["chip-000", "chip-001"]
    assert np.allclose(ds["tokens"].values[3], ws.open_array("embeddings.zarr", "patches")[3])
    p = E.export_patch_embeddings(ws, tmp_path / "p.parquet", "parquet", rows=[0, 1])
    g = gpd.read_parquet(p)
    assert len(g) == 2 * 16 and g.crs.to_epsg() == 4326
    chip0 = ws.chip_table().geometry.iloc[0]
    patches0 = g[g["chip_id"] == "chip-000"]
    assert patches0.geometry.union_all().buffer(1e-9).contains(chip0.buffer(-1e-7))  # patches tile the chip

    def centre(r, c):
        return patches0[(patches0["patch_row"] == r) & (patches0["patch_col"] == c)].geometry.iloc[0].centroid

    assert centre(0, 0).y > centre(3, 0).y and centre(0, 0).x < centre(0, 3).x  # row 0 north, col 0 west
    with pytest.raises(E.ExportError):
        E.export_patch_embeddings(ws, tmp_path / "x", "csv")


def test_reconstruction_pngs_with_tiny_model(model_ws, tmp_path):
    from PIL import Image

    ws = Workspace.open(model_ws)
    out = E.export(ws, tmp_path / "out", what=("image", "reconstructions"), rows=[0, 1])
    assert [p.name for p in out["reconstructions"]] == ["chip-000.png", "chip-001.png"]
    assert Image.open(out["reconstructions"][0]).size[0] > 256
    assert "emb_linear" in gpd.read_parquet(out["image"]).columns
    with pytest.raises(E.ExportError):
        E.export(ws, tmp_path / "o2", what=("nope",))
