"""The exported image-embedding GeoParquet says which model made it: model, checkpoint sha256, precision,
untrained flag and the clay-explore version (beside GeoParquet's own "geo" metadata)."""

from __future__ import annotations

import geopandas as gpd
import pyarrow.parquet as pq

from clay_explore import __version__
from clay_explore.core.workspace import Workspace
from clay_explore.research import export


def test_image_embeddings_carry_provenance(synthetic_ws, tmp_path):
    ws = Workspace.open(synthetic_ws)
    rec = dict(ws.stage("embed"))
    rec.update(sha256="ab" * 32, precision="bf16", preset="tiny", untrained=True)
    ws.manifest["stages"]["embed"] = rec
    ws.save()
    out = export.export_image_embeddings(ws, tmp_path / "img.parquet")
    meta = export.read_parquet_metadata(out)
    assert meta["clay_explore_version"] == __version__
    assert meta["checkpoint_sha256"] == "ab" * 32 and meta["precision"] == "bf16" and meta["untrained"] is True
    assert meta["model"].startswith("Clay v1.5")
    assert b"geo" in pq.read_schema(out).metadata  # still a GeoParquet
    g = gpd.read_parquet(out)
    assert g.crs.to_epsg() == 4326 and len(g) == ws.n_chips()
