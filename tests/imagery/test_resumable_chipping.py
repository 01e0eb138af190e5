"""The resumable chip writer: a progress log per batch that survives a torn line, bounded batches, a SIGKILL
mid-ingest then a rerun equal to a clean run, and a cancelled fetch resumed after the endpoint comes back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gen_data import s2_scene, write_raster
from test_stac import FAST, INSIDE_A

from clay_explore.core.errors import CancelledError, NetworkError
from clay_explore.core.workspace import Workspace
from clay_explore.imagery.chipping import PROGRESS, ChipSettings, batch_for, read_progress
from clay_explore.imagery.geotiff import ingest_geotiff
from clay_explore.imagery.stac import fetch_stac

HERE = Path(__file__).resolve().parent


def _same_workspaces(a: Path, b: Path) -> None:
    wa, wb = Workspace.open(a), Workspace.open(b)
    np.testing.assert_array_equal(wa.read_chips(slice(None)), wb.read_chips(slice(None)))
    assert list(wa.chip_table()["chip_id"]) == list(wb.chip_table()["chip_id"])


def test_progress_log_appends_per_batch_and_ignores_a_torn_line(tmp_path):
    """The log was rewritten whole after every batch (quadratic: minutes for 15k windows)."""
    f = write_raster(tmp_path / "s.tif", s2_scene((128, 256)))
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(CancelledError):
        ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(32), cancel=cancel)
    log = tmp_path / "ws" / PROGRESS
    lines = log.read_bytes().splitlines()
    assert len(lines) == 2  # header + the windows finished before cancel
    with open(log, "ab") as fh:  # a crash mid-append leaves a torn line
        fh.write(b'{"next_row": 9, "windows": {"5": {"ro')
    assert len(read_progress(Workspace.open(tmp_path / "ws"))["windows"]) == 5
    ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(32))
    ingest_geotiff(f, tmp_path / "clean", sensor="sentinel-2-l2a", chips=ChipSettings(32))
    _same_workspaces(tmp_path / "ws", tmp_path / "clean")


def test_batches_grow_for_small_chips_but_stay_bounded():
    assert batch_for(256, 10) >= 8 and batch_for(256, 10) * 4 * 10 * 256 * 256 <= 64 * 2**20
    assert batch_for(64, 4) > 100  # 15k windows of 64 px -> ~30 log lines, not 2000
    assert batch_for(512, 13) == 8


_CHILD = """
import sys, time
sys.path.insert(0, {here!r})
from clay_explore.imagery import chipping, geotiff
chipping.BATCH_BYTES = 1                      # smallest batches: many commits to interrupt
read = geotiff.GeoTiffSource.read
def slow(self, *a):
    time.sleep(0.02)
    return read(self, *a)
geotiff.GeoTiffSource.read = slow
geotiff.ingest_geotiff({f!r}, {ws!r}, sensor="sentinel-2-l2a", chips=chipping.ChipSettings(32))
"""


def test_sigkill_mid_ingest_then_rerun_matches_clean_run(tmp_path):
    f = write_raster(tmp_path / "k.tif", s2_scene((192, 256)))
    ws = tmp_path / "ws"
    code = _CHILD.format(here=str(HERE), f=str(f), ws=str(ws))
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            log = ws / PROGRESS
            if log.exists() and len(log.read_bytes().splitlines()) >= 4:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the child finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert Workspace.open(ws).stage("chips")["status"] == "partial"
    rec = ingest_geotiff(f, ws, sensor="sentinel-2-l2a", chips=ChipSettings(32))
    assert rec["chips"] == 48
    ingest_geotiff(f, tmp_path / "clean", sensor="sentinel-2-l2a", chips=ChipSettings(32))
    _same_workspaces(ws, tmp_path / "clean")


def test_fetch_cancelled_then_endpoint_down_then_back_resumes(gen_scene_dir, tmp_path):
    from stac_server import start_stac_server

    args = (INSIDE_A, "2023-06-01", "2023-06-30")
    srv = start_stac_server(gen_scene_dir, workdir=tmp_path / "a1")
    try:
        calls = {"n": 0}
        with pytest.raises(CancelledError):
            fetch_stac(
                *args,
                tmp_path / "ws",
                stac_url=srv.url,
                chips=ChipSettings(32),
                cancel=lambda: calls.__setitem__("n", calls["n"] + 1) or calls["n"] > 4,
                **FAST,
            )
        fetch_stac(*args, tmp_path / "clean", stac_url=srv.url, chips=ChipSettings(32), **FAST)
    finally:
        srv.stop()
    done = len(read_progress(Workspace.open(tmp_path / "ws"))["windows"])
    assert done == 4
    with pytest.raises(NetworkError, match="try again later"):
        fetch_stac(*args, tmp_path / "ws", stac_url=srv.url, chips=ChipSettings(32), timeout=1.0, retries=0)
    assert len(read_progress(Workspace.open(tmp_path / "ws"))["windows"]) == done  # nothing lost
    srv2 = start_stac_server(gen_scene_dir, workdir=tmp_path / "a2")  # back, at a new address
    try:
        fetch_stac(*args, tmp_path / "ws", stac_url=srv2.url, chips=ChipSettings(32), **FAST)
    finally:
        srv2.stop()
    _same_workspaces(tmp_path / "ws", tmp_path / "clean")
