"""maps (drawn shape -> bbox, click -> chip, chip grid), app_state (workspace folders) and the views CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from clay_explore.app import state as S
from clay_explore.cli.main import cli
from clay_explore.core.errors import WorkspaceError
from clay_explore.core.workspace import Workspace
from clay_explore.viz import maps


def test_bbox_from_rectangle_and_polygon_drawings():
    rect = {
        "type": "Feature",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[13.6, 47.8], [13.6, 47.9], [13.7, 47.9], [13.7, 47.8], [13.6, 47.8]]],
        },
    }
    assert maps.bbox_from_drawing({"last_active_drawing": rect}) == (13.6, 47.8, 13.7, 47.9)
    poly = {"geometry": {"type": "Polygon", "coordinates": [[[1, 2], [3, 1], [2, 5], [1, 2]]]}}
    assert maps.bbox_from_drawing({"last_active_drawing": None, "all_drawings": [rect, poly]}) == (1, 1, 3, 5)
    assert maps.bbox_from_drawing({}) is None and maps.bbox_from_drawing(None) is None


def test_chip_layer_click_and_map(synthetic_ws):
    ws = Workspace.open(synthetic_ws)
    chips = maps.chip_layer_table(ws, selected=[1], neighbours=[2, 1])
    assert list(chips["status"][:3]) == ["embedded", "selected", "neighbour"]
    c = chips.geometry.iloc[3].centroid
    assert maps.chip_at(chips, {"lat": c.y, "lng": c.x}) == 3
    assert maps.chip_at(chips, {"lat": 0.0, "lng": 0.0}) is None
    html = maps.build_map(chips, (13.6, 47.8, 13.7, 47.9)).get_root().render()
    assert "leaflet.draw" in html and "chip-003" in html
    assert "embedded" in maps.legend_markdown()


def test_fetch_target_keeps_one_source_per_workspace(synthetic_ws, tmp_path):
    ws = Workspace.open(synthetic_ws)
    new = tmp_path / "new"
    assert maps.fetch_target(None, tmp_path / "cur", {"kind": "stac"}, new) == tmp_path / "cur"
    assert maps.fetch_target(ws, synthetic_ws, {"kind": "stac", "bbox": [1, 2, 3, 4]}, new) == new


def test_chips_message():
    msg = maps.chips_message({"chips": 4, "dropped_nodata": 2, "dropped_cloud": 0, "demo": {"note": "L1C demo"}})
    assert msg == "Stored 4 chips. Dropped: 2 (nodata). L1C demo"


def test_workspace_folders(monkeypatch, tmp_path):
    monkeypatch.setenv(S.WORKSPACES_ENV, str(tmp_path))
    assert S.workspaces_root() == tmp_path.resolve()
    assert S.session_workspace("abc") == tmp_path.resolve() / "session-abc"
    assert S.named_workspace("demo") == tmp_path.resolve() / "demo"
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(WorkspaceError):
            S.named_workspace(bad)
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "manifest.json").write_text("{}")
    (tmp_path / "session-1").mkdir()
    (tmp_path / "session-1" / "manifest.json").write_text("{}")
    (tmp_path / "junk").mkdir()
    assert [p.name for p in S.list_workspaces()] == ["demo", "session-1"]
    assert S.new_session_id() != S.new_session_id()


def test_cli_project_and_export(synthetic_ws, tmp_path):
    run = CliRunner().invoke
    r = run(
        cli,
        [
            "project",
            "-w",
            str(synthetic_ws),
            "-s",
            "patches",
            "-s",
            "cls",
            "--n-neighbors",
            "5",
            "--pca",
            "8",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["sources"] == ["patches", "cls"] and info["params"]["n_neighbors"] == 5
    assert (synthetic_ws / "projections" / f"{info['key']}.parquet").exists()
    r = run(cli, ["project", "-w", str(synthetic_ws), "-s", "patches", "-s", "linear"])
    assert r.exit_code == 2 and "side by side" in r.output
    r = run(
        cli,
        [
            "export",
            "-w",
            str(synthetic_ws),
            "-o",
            str(tmp_path / "out"),
            "--what",
            "image",
            "--what",
            "patches",
            "--patch-format",
            "parquet",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "image_embeddings.parquet").exists()
    assert (tmp_path / "out" / "patch_embeddings.parquet").exists()
