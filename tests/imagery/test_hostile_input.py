"""Bad input and faults on the imagery commands: one `Error:` line (exit 2), nothing half-written marked complete."""

from __future__ import annotations

import errno
import os
import re
import shutil
import threading

import numpy as np
import pytest
from click.testing import CliRunner
from gen_data import s2_scene, write_raster

from clay_explore.cli.main import cli
from clay_explore.core.workspace import CHIPS_ZARR, Workspace

S2 = "sentinel-2-l2a"


def _run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_error(res, *needles: str) -> str:
    """The one `Error:` line (a cleared progress bar may share its terminal line), exit 2, no traceback."""
    assert res.exit_code == 2, res.output
    found = [ln[ln.index("Error: ") :] for ln in re.split(r"[\r\n]", res.output) if "Error: " in ln]
    assert len(found) == 1 and "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    for needle in needles:
        assert needle in found[0], found[0]
    return found[0]


@pytest.fixture
def scene(tmp_path):
    return write_raster(tmp_path / "in" / "s_20200601.tif", s2_scene((128, 128)))


def _ingest(scene, ws):
    return _run("ingest", scene, "--sensor", S2, "--chip-size", 64, "-w", ws)


def test_huge_chip_size_fails_fast_and_leaves_no_workspace(tmp_path, scene):
    _one_error(_run("ingest", scene, "--sensor", S2, "--chip-size", 100000, "-w", tmp_path / "ws"), "at most 1,024")
    assert not (tmp_path / "ws").exists()
    _one_error(
        _run("ingest", scene, "--sensor", S2, "--chip-size", 64, "--stride", 0, "-w", tmp_path / "ws"),
        "Stride",
        "at least 1",
    )
    assert not (tmp_path / "ws").exists()


def test_workspace_path_through_a_file(tmp_path, scene):
    (tmp_path / "somefile").write_text("x")
    _one_error(_ingest(scene, tmp_path / "somefile" / "sub"), "is a file, not a folder")


def test_disk_full_while_chipping_is_one_error_then_resumes(tmp_path, scene, monkeypatch):
    from clay_explore.imagery import chipping

    assert _ingest(scene, tmp_path / "clean").exit_code == 0

    def full(ws, rec):
        raise OSError(errno.ENOSPC, "No space left on device", str(ws.path(chipping.PROGRESS)))

    monkeypatch.setattr(chipping, "_append_progress", full)
    _one_error(_ingest(scene, tmp_path / "ws"), "No space left", "run the same command again")
    assert Workspace.open(tmp_path / "ws").stage("chips")["status"] == "partial"
    monkeypatch.undo()
    res = _ingest(scene, tmp_path / "ws")
    assert res.exit_code == 0, res.output
    ws, clean = Workspace.open(tmp_path / "ws"), Workspace.open(tmp_path / "clean")
    assert ws.stage("chips")["status"] == "complete"
    np.testing.assert_array_equal(ws.read_chips(slice(None)), clean.read_chips(slice(None)))


def test_permission_denied_is_one_error(tmp_path, scene, monkeypatch):
    import tempfile

    from clay_explore.core import workspace

    def denied(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(workspace.tempfile, "mkstemp", denied)
    _one_error(_ingest(scene, tmp_path / "ws"), "not writable (permission denied)")
    monkeypatch.setattr(workspace.tempfile, "mkstemp", tempfile.mkstemp)
    assert not (tmp_path / "ws" / "manifest.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the monkeypatched test covers it")
def test_read_only_workspace_is_one_error(tmp_path, scene):
    assert _ingest(scene, tmp_path / "ws").exit_code == 0
    os.chmod(tmp_path / "ws", 0o555)
    try:
        _one_error(_run("demo", "-w", tmp_path / "ws"), "permission denied")
    finally:
        os.chmod(tmp_path / "ws", 0o755)


def test_deleted_chips_are_not_complete_and_the_same_ingest_rebuilds_them(tmp_path, scene):
    ws_dir = tmp_path / "ws"
    assert _ingest(scene, ws_dir).exit_code == 0
    before = Workspace.open(ws_dir).read_chips(slice(None))
    shutil.rmtree(ws_dir / CHIPS_ZARR)
    res = _run("info", "-w", ws_dir)
    assert res.exit_code == 0 and "stage chips: partial" in res.output and "chips.zarr missing" in res.output
    res = _ingest(scene, ws_dir)
    assert res.exit_code == 0, res.output
    assert "Already complete" not in res.output and "Stored 4 chips" in res.output
    ws = Workspace.open(ws_dir)
    assert ws.stage("chips")["status"] == "complete"
    np.testing.assert_array_equal(ws.read_chips(slice(None)), before)


@pytest.mark.parametrize("url", ["/etc/passwd", "file:///etc/passwd", "ftp://example.org/stac", "http://", "x"])
def test_stac_url_must_be_http_and_is_refused_before_any_request(tmp_path, monkeypatch, url):
    import pystac_client

    def never(*a, **k):
        raise AssertionError("a request was made")

    monkeypatch.setattr(pystac_client.Client, "open", never)
    res = _run(
        "fetch",
        "--bbox",
        13.66,
        47.84,
        13.67,
        47.85,
        "--start",
        "2023-06-01",
        "--end",
        "2023-06-30",
        "--stac-url",
        url,
        "-w",
        tmp_path / "ws",
    )
    _one_error(res, "not a web address", "https://")
    assert not (tmp_path / "ws").exists()


def test_search_refuses_a_local_path_too():
    from clay_explore.core.errors import ImageryError
    from clay_explore.imagery.aoi import validate_bbox
    from clay_explore.imagery.stac import search_scenes

    with pytest.raises(ImageryError, match="not a web address"):
        search_scenes(validate_bbox((13.66, 47.84, 13.67, 47.85)), "2023-06-01", "2023-06-30", stac_url="/etc/passwd")


def test_workspace_names_use_a_full_match():
    from clay_explore.app import state as S
    from clay_explore.core.errors import WorkspaceError

    assert S.named_workspace("demo").name == "demo"
    for bad in ("demo\n", "demo\r", "../demo", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(WorkspaceError):
            S.named_workspace(bad)


def test_ingest_while_another_process_writes_is_refused_and_changes_nothing(tmp_path, scene):
    from clay_explore.core.lock import workspace_writer

    ws_dir = tmp_path / "ws"
    assert _ingest(scene, ws_dir).exit_code == 0
    other = write_raster(tmp_path / "in" / "t_20200602.tif", s2_scene((128, 128), seed=5))
    manifest = (ws_dir / "manifest.json").read_bytes()
    held, done = threading.Event(), threading.Event()

    def embed_elsewhere() -> None:  # another writer (a thread here; a process is the same to the lock)
        with workspace_writer(ws_dir, "embed"):
            held.set()
            done.wait(120)

    t = threading.Thread(target=embed_elsewhere, daemon=True)
    t.start()
    assert held.wait(120)
    try:
        line = _one_error(
            _run("ingest", other, "--sensor", S2, "--chip-size", 64, "-w", ws_dir),
            f"'embed' (pid {os.getpid()}",
            "--wait",
        )
        assert "since" in line and "command:" in line
    finally:
        done.set()
        t.join(120)
    assert (ws_dir / "manifest.json").read_bytes() == manifest  # the embed's record was not rewritten
