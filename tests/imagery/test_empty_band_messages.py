"""A band without data, or too few valid pixels: the chipping error names the empty band and the bands to keep
(or suggests lowering --min-valid), also across a resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from gen_data import s2_scene, write_raster
from rasterio.crs import CRS

from clay_explore.core.errors import CancelledError, NoScenesError
from clay_explore.core.workspace import Workspace
from clay_explore.imagery.chipping import ChipSettings, WindowData, chip_source
from clay_explore.imagery.geotiff import ingest_geotiff

S2 = "sentinel-2-l2a"


OTHERS = "blue,green,red,rededge2,rededge3,nir,nir08,swir16,swir22"  # every S2 band but rededge1


ALL_S2 = ["blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir16", "swir22"]


REDEDGE1 = 3  # its index in the file


def _nan_band_file(folder: Path) -> Path:
    """A 10-band S2 file whose rededge1 (B05) is nodata everywhere."""
    data = s2_scene((96, 96))
    data[REDEDGE1] = 0  # the file's nodata value
    return write_raster(folder / "s2_nanband_20200601.tif", data, nodata=0)


@pytest.mark.parametrize("min_valid", [0.5, 0.0])
def test_all_dropped_names_the_empty_band_and_the_bands_to_keep(tmp_path, min_valid):
    f = _nan_band_file(tmp_path)
    with pytest.raises(NoScenesError) as err:
        ingest_geotiff(f, tmp_path / "ws", sensor=S2, chips=ChipSettings(32, min_valid=min_valid))
    msg = str(err.value)
    assert "band rededge1 has no valid pixel" in msg
    assert f"--bands {OTHERS}" in msg
    assert "lower --min-valid" not in msg and "0% valid" not in msg
    rec = ingest_geotiff(f, tmp_path / "ws", sensor=S2, chips=ChipSettings(32), bands=OTHERS.split(","))
    assert rec["chips"] == 9  # the advice works, in the same (chip-less) workspace


def test_empty_band_is_remembered_across_a_resume(tmp_path):
    f = _nan_band_file(tmp_path)
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    with pytest.raises(CancelledError):
        ingest_geotiff(f, tmp_path / "ws", sensor=S2, chips=ChipSettings(32), cancel=cancel)
    with pytest.raises(NoScenesError, match=f"band rededge1 has no valid pixel.*--bands {OTHERS}"):
        ingest_geotiff(f, tmp_path / "ws", sensor=S2, chips=ChipSettings(32))


def test_too_few_valid_pixels_still_suggests_lowering_min_valid(tmp_path):
    data = s2_scene((64, 64))
    data[:, :, :] = 0
    data[:, :2, :2] = 500  # a few valid pixels pass the file checks, too few for a chip
    data[:, 40:, :] = 500
    f = write_raster(tmp_path / "s2_sparse_20200601.tif", data, nodata=0)
    with pytest.raises(NoScenesError) as err:  # the corner chip has a few valid pixels
        ingest_geotiff(f, tmp_path / "ws", sensor=S2, chips=ChipSettings(32, stride=32, min_valid=0.9))
    assert "lower --min-valid" in str(err.value) and "the best has" in str(err.value)
    assert "rededge1" not in str(err.value)


class _EmptySource:
    """A 64 x 64 px source whose every pixel is nodata in every band."""

    crs = CRS.from_epsg(32633)
    transform = Affine(10.0, 0.0, 400_000.0, 0.0, -10.0, 5_300_000.0)
    height = width = 64
    bands = tuple(ALL_S2)
    scale, offset, labels = (1e-4,) * len(ALL_S2), (0.0,) * len(ALL_S2), None

    def identity(self) -> dict:
        return {"kind": "empty"}

    def read(self, row: int, col: int, height: int, width: int) -> WindowData:
        return WindowData(np.full((len(ALL_S2), height, width), np.nan, np.float32))


def test_min_valid_zero_with_no_valid_pixel_in_any_window(tmp_path):
    ws = Workspace.create(tmp_path / "ws", sensor=S2, bands=ALL_S2, chip_size=32, source={})
    with pytest.raises(NoScenesError) as err:
        chip_source(ws, _EmptySource(), ChipSettings(32, min_valid=0.0))
    msg = str(err.value)
    assert "none of the 4 windows has a single valid pixel" in msg
    assert "0% valid" not in msg and "--min-valid" not in msg and "--bands" not in msg
