"""Workspace: manifest, schema checks, atomic writes, done-lists for resumable stages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clay_explore.core.errors import StageMissingError, WorkspaceError
from clay_explore.core.workspace import CHIPS_ZARR, SCHEMA_VERSION, Workspace, atomic_write_json


def _ws(tmp_path, **kw):
    args = dict(sensor="sentinel-2-l2a", bands=["B02", "B03", "B04"], chip_size=64, source={"kind": "test"})
    args.update(kw)
    return Workspace.create(tmp_path / "ws", **args)


def test_create_open_and_reopen_compatible(tmp_path):
    ws = _ws(tmp_path)
    assert ws.bands == ["blue", "green", "red"]
    again = _ws(tmp_path)
    assert again.manifest["created"] == ws.manifest["created"]
    # no chip stored yet (e.g. a first ingest that dropped everything): a new set-up starts afresh
    assert _ws(tmp_path, chip_size=128).chip_size == 128
    ws = _ws(tmp_path)
    ws.create_array(CHIPS_ZARR, "pixels", shape=(1, 3, 64, 64), dtype="float32")
    assert _ws(tmp_path, chip_size=128).chip_size == 128  # rows allocated but none written: still empty
    ws = _ws(tmp_path)
    ws.create_array(CHIPS_ZARR, "pixels", shape=(1, 3, 64, 64), dtype="float32")
    ws.mark_done(CHIPS_ZARR, "pixels", [0])
    with pytest.raises(WorkspaceError, match="cannot also take"):
        _ws(tmp_path, chip_size=128)
    assert Workspace.open(tmp_path / "ws").n_chips() == 1  # nothing stored was touched


def test_not_a_workspace_and_newer_schema(tmp_path):
    with pytest.raises(WorkspaceError, match="not a clay-explore workspace"):
        Workspace.open(tmp_path)
    ws = _ws(tmp_path)
    manifest = json.loads(ws.path("manifest.json").read_text())
    manifest["schema_version"] = SCHEMA_VERSION + 1
    atomic_write_json(ws.path("manifest.json"), manifest)
    with pytest.raises(WorkspaceError, match="newer than this clay-explore"):
        Workspace.open(ws.root)
    ws.path("manifest.json").write_text("{broken")
    with pytest.raises(WorkspaceError, match="unreadable"):
        Workspace.open(ws.root)


def test_refuses_non_empty_folder(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "thesis.docx").write_text("precious")
    with pytest.raises(WorkspaceError, match="not an empty folder"):
        _ws(tmp_path)


def test_stages_and_done_lists(tmp_path):
    ws = _ws(tmp_path)
    with pytest.raises(StageMissingError, match="clay-explore embed"):
        ws.require_stage("embeddings", "`clay-explore embed`")
    arr = ws.create_array("chips.zarr", "pixels", shape=(4, 3, 8, 8), dtype="float32")
    arr[2] = np.ones((3, 8, 8), dtype=np.float32)
    ws.mark_done("chips.zarr", "pixels", [2])
    assert ws.done_mask("chips.zarr", "pixels", 4).tolist() == [False, False, True, False]
    assert np.isnan(ws.read_chips([0])).all() and (ws.read_chips([2]) == 1).all()
    # reopening with the same shape keeps data; another shape starts over and forgets progress
    assert ws.create_array("chips.zarr", "pixels", shape=(4, 3, 8, 8), dtype="float32")[2].sum() == 3 * 64
    ws.create_array("chips.zarr", "pixels", shape=(5, 3, 8, 8), dtype="float32")
    assert not ws.done_mask("chips.zarr", "pixels", 5).any()
    ws.set_stage("chips", status="partial", n=1)
    reopened = Workspace.open(ws.root)
    assert reopened.stage("chips")["status"] == "partial"
    with pytest.raises(StageMissingError, match="incomplete"):
        reopened.require_stage("chips", "`clay-explore ingest`")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_summary_without_chips(tmp_path):
    s = _ws(tmp_path).summary()
    assert s["chips"] == 0 and s["bands"] == ["blue", "green", "red"] and s["stages"] == {}
