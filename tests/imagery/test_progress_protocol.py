"""Imagery reports progress and takes cancel through ``core.progress``, the protocol of the research stages:
``progress(done, total, info)`` from the first moment, and a threading.Event or a callable as cancel."""

from __future__ import annotations

import threading

import pytest
from gen_data import s2_scene, write_raster

from clay_explore.core.errors import CancelledError
from clay_explore.core.workspace import Workspace
from clay_explore.imagery.chipping import ChipSettings
from clay_explore.imagery.geotiff import ingest_geotiff
from clay_explore.imagery.grid import DROPPED_CLOUD, DROPPED_NODATA, drop_reason


def test_progress_calls_carry_the_total_from_the_start_and_the_shared_info(tmp_path) -> None:
    f = write_raster(tmp_path / "s2_20200601.tif", s2_scene((128, 128)))
    calls = []
    ingest_geotiff(
        f,
        tmp_path / "ws",
        sensor="sentinel-2-l2a",
        chips=ChipSettings(32),
        progress=lambda done, total, info: calls.append((done, total, info)),
    )
    assert calls[0][:2] == (0, 16)
    assert calls[-1][:2] == (16, 16)
    info = calls[-1][2]
    assert info["stage"] == "chips" and info["unit"] == "chip" and "eta_s" in info and "rate" in info


def test_an_event_cancels_chipping_and_keeps_finished_chips(tmp_path) -> None:
    f = write_raster(tmp_path / "s2_20200601.tif", s2_scene((128, 128)))
    stop = threading.Event()

    def progress(done: int, total: int, info: dict) -> None:
        if done:
            stop.set()  # after the first reported windows

    with pytest.raises(CancelledError, match="resume"):
        ingest_geotiff(
            f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(32), progress=progress, cancel=stop
        )
    ws = Workspace.open(tmp_path / "ws")
    assert ws.stage("chips")["status"] == "partial"
    assert 0 < ws.done_mask("chips.zarr", "pixels", 16).sum() < 16


def test_drop_reason_keeps_valid_clear_chips_only() -> None:
    assert drop_reason(1.0, None, 0.5, 0.5) is None
    assert drop_reason(0.4, None, 0.5, 0.5) == DROPPED_NODATA
    assert drop_reason(0.0, None, 0.0, 0.5) == DROPPED_NODATA  # no valid pixel at all, even with min_valid 0
    assert drop_reason(0.9, 0.6, 0.5, 0.5) == DROPPED_CLOUD
    assert drop_reason(0.9, 0.5, 0.5, 0.5) is None
