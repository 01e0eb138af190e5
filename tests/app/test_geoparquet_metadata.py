"""Every export holding model outputs says which model made it: model, checkpoint name and sha256, precision,
device, untrained flag and note, the clay-explore version (and the evaluation's split seed and fingerprint
where its splits or numbers are in the file). GeoParquet: a "clay_explore" schema-metadata entry beside
"geo"; zarr: the group's attrs; CSV: a sidecar ``<name>.json``; PNG: a "clay_explore" text chunk."""

from __future__ import annotations

import json

import geopandas as gpd
import pyarrow.parquet as pq
import pytest
import xarray as xr
from evaluation_fixture import contract_report

from clay_explore import __version__
from clay_explore.core.workspace import EVALUATION, Workspace
from clay_explore.research import export
from clay_explore.research.vectors import embeddings_fingerprint

SHA = "ab" * 32


@pytest.fixture
def ws(synthetic_ws) -> Workspace:
    """The synthetic workspace with a known embed record (tiny, untrained, bf16 on cpu) and an evaluation."""
    ws = Workspace.open(synthetic_ws)
    rec = dict(ws.stage("embed"))
    rec.update(sha256=SHA, precision="bf16", preset="tiny", untrained=True, device="cpu")
    rec.update(checkpoint="/somewhere/private/clay-tiny.ckpt", note="untrained/test model")
    ws.manifest["stages"]["embed"] = rec
    ws.save()
    ws.write_json(EVALUATION, contract_report())
    return ws


def _assert_model_facts(meta: dict, ws: Workspace, evaluation: bool) -> None:
    assert meta["clay_explore_version"] == __version__
    assert meta["model"] == "Clay v1.5 (tiny)" and meta["preset"] == "tiny"
    assert meta["checkpoint"] == "clay-tiny.ckpt"  # the file name, not the local path
    assert meta["checkpoint_sha256"] == SHA and meta["precision"] == "bf16" and meta["device"] == "cpu"
    assert meta["untrained"] is True and meta["note"] == "untrained/test model"
    assert meta["embeddings_fingerprint"] == embeddings_fingerprint(ws)
    if evaluation:
        assert meta["split_seed"] == 7 and len(meta["evaluation_fingerprint"]) == export.FINGERPRINT_CHARS
        assert meta["evaluation_created"] == contract_report()["created"]
    else:
        assert "split_seed" not in meta


def test_one_function_builds_the_facts(ws):
    _assert_model_facts(export.provenance_metadata(ws), ws, evaluation=False)
    before = export.provenance_metadata(ws, evaluation=True)
    _assert_model_facts(before, ws, evaluation=True)
    assert export.provenance_metadata(ws, evaluation=True) == before  # deterministic
    ws.write_json(EVALUATION, {**contract_report(), "created": "2100-01-01T00:00:00+00:00"})
    assert export.provenance_metadata(ws, evaluation=True)["evaluation_fingerprint"] != before["evaluation_fingerprint"]
    ws.write_json(EVALUATION, {})
    assert export.evaluation_provenance(ws) == dict.fromkeys(export.EVALUATION_FACTS)  # no evaluation yet


def test_image_embeddings_carry_provenance(ws, tmp_path):
    out = export.export_image_embeddings(ws, tmp_path / "img.parquet")
    meta = export.read_parquet_metadata(out)
    _assert_model_facts(meta, ws, evaluation=True)  # its split column comes from the evaluation
    assert b"geo" in pq.read_schema(out).metadata  # still a GeoParquet
    g = gpd.read_parquet(out)
    assert g.crs.to_epsg() == 4326 and len(g) == ws.n_chips()


def test_patch_geoparquet_carries_provenance(ws, tmp_path):
    out = export.export_patch_embeddings(ws, tmp_path / "p.parquet", "parquet", rows=[0, 1])
    _assert_model_facts(export.read_parquet_metadata(out), ws, evaluation=False)
    assert b"geo" in pq.read_schema(out).metadata
    g = gpd.read_parquet(out)
    assert g.crs.to_epsg() == 4326 and len(g) == 2 * 16


def test_patch_zarr_group_attrs_carry_provenance(ws, tmp_path):
    out = export.export_patch_embeddings(ws, tmp_path / "p.zarr", "zarr")
    ds = xr.open_zarr(out)
    _assert_model_facts(ds.attrs[export.METADATA_KEY], ws, evaluation=False)
    assert ds["tokens"].shape[0] == ws.n_chips()


def test_evaluation_csv_has_a_sidecar_json(ws, tmp_path):
    out = export.export_evaluation(ws, tmp_path / export.EVALUATION_FILE)
    side = tmp_path / "evaluation_summary.json"
    assert side.exists()
    _assert_model_facts(json.loads(side.read_text())[export.METADATA_KEY], ws, evaluation=True)
    assert out.read_text().startswith("# verdict:")  # the CSV itself is unchanged


def test_export_writes_provenance_into_every_kind(ws, tmp_path):
    result = export.export(ws, tmp_path / "out", what=("image", "patches", "evaluation"), patch_format="parquet")
    for kind in ("image", "patches"):
        assert export.read_parquet_metadata(result[kind])["checkpoint_sha256"] == SHA, kind
    assert result["evaluation_provenance"] == result["evaluation"].with_suffix(".json")
    assert result["evaluation_provenance"].exists()


def test_reconstruction_pngs_carry_provenance(ws, tmp_path, monkeypatch):
    """The PNG gets a text chunk; the reconstruction itself is stubbed (no model needed here)."""
    from PIL import Image

    from clay_explore.research import provenance, reconstruct

    def fake_comparison(ws, chip_id, path, model=None):
        Image.new("RGB", (4, 4)).save(path)

    monkeypatch.setattr(provenance, "model_for_workspace", lambda ws, checkpoint=None, model=None: object())
    monkeypatch.setattr(reconstruct, "write_comparison", fake_comparison)
    paths = export.export_reconstructions(ws, tmp_path / "rec", rows=[0])
    _assert_model_facts(export.read_png_metadata(paths[0]), ws, evaluation=True)
    assert Image.open(paths[0]).size == (4, 4)


def test_export_page_offers_the_csv_sidecar(app_env):
    from app_data import make_workspace, new_app

    root = app_env / "synth1"
    make_workspace(root)
    Workspace.open(root).write_json(EVALUATION, contract_report())
    at = new_app("synth1").run()
    at.switch_page("pages/export.py").run()
    at.button(key="exp_eval").click().run()
    assert not at.exception and not at.error
    assert (root / "exports" / "evaluation_summary.json").exists()
    assert "dl_eval_json" in {b.key for b in at.get("download_button")}
