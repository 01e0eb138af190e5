"""Regression tests for QA round 2: empty bands, swapped bboxes, -w, fetch warnings."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning

from clay_explore.cli.main import cli
from clay_explore.core.errors import AreaError, CancelledError, NoScenesError
from clay_explore.imagery.aoi import validate_bbox
from clay_explore.imagery.chipping import ChipSettings, WindowData, chip_source
from clay_explore.imagery.geotiff import ingest_geotiff
from clay_explore.imagery.stac import fetch_stac
from clay_explore.core.workspace import Workspace
from gen_data import s2_scene, smooth_field, write_raster
from stac_server import start_stac_server

S2 = "sentinel-2-l2a"
OTHERS = "blue,green,red,rededge2,rededge3,nir,nir08,swir16,swir22"   # every S2 band but rededge1
ALL_S2 = ["blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir16", "swir22"]
REDEDGE1 = 3                                                           # its index in the file


def _nan_band_file(folder: Path) -> Path:
    """A 10-band S2 file whose rededge1 (B05) is nodata everywhere."""
    data = s2_scene((96, 96))
    data[REDEDGE1] = 0                     # the file's nodata value
    return write_raster(folder / "s2_nanband_20200601.tif", data, nodata=0)


# ----------------------------------------------------------------------------- bug 6: a band without data
@pytest.mark.parametrize("min_valid", [0.5, 0.0])
def test_all_dropped_names_the_empty_band_and_the_bands_to_keep(tmp_path, min_valid):
    f = _nan_band_file(tmp_path)
    with pytest.raises(NoScenesError) as err:
        ingest_geotiff(f, tmp_path / "ws", sensor=S2, chip_size=32, min_valid=min_valid)
    msg = str(err.value)
    assert "band rededge1 has no valid pixel" in msg
    assert f"--bands {OTHERS}" in msg
    assert "lower --min-valid" not in msg and "0% valid" not in msg
    rec = ingest_geotiff(f, tmp_path / "ws", sensor=S2, chip_size=32, bands=OTHERS.split(","))
    assert rec["chips"] == 9                           # the advice works, in the same (chip-less) workspace


def test_empty_band_is_remembered_across_a_resume(tmp_path):
    f = _nan_band_file(tmp_path)
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    with pytest.raises(CancelledError):
        ingest_geotiff(f, tmp_path / "ws", sensor=S2, chip_size=32, cancel=cancel)
    with pytest.raises(NoScenesError, match=f"band rededge1 has no valid pixel.*--bands {OTHERS}"):
        ingest_geotiff(f, tmp_path / "ws", sensor=S2, chip_size=32)


def test_too_few_valid_pixels_still_suggests_lowering_min_valid(tmp_path):
    data = s2_scene((64, 64))
    data[:, :, :] = 0
    data[:, :2, :2] = 500                  # a few valid pixels pass the file checks, too few for a chip
    data[:, 40:, :] = 500
    f = write_raster(tmp_path / "s2_sparse_20200601.tif", data, nodata=0)
    with pytest.raises(NoScenesError) as err:   # the corner chip has a few valid pixels
        ingest_geotiff(f, tmp_path / "ws", sensor=S2, chip_size=32, stride=32, min_valid=0.9)
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


# ----------------------------------------------------------------------------- bug 8: swapped bbox
@pytest.mark.parametrize("bbox", [[13.73, 48.22, 13.71, 48.21], [10.0, 0.0, -10.0, 1.0], [-10.0, 0.0, -20.0, 1.0]])
def test_swapped_bbox_is_not_called_an_antimeridian_crossing(bbox):
    with pytest.raises(AreaError) as err:
        validate_bbox(bbox)
    msg = str(err.value)
    assert "antimeridian" not in msg
    assert "Swap" in msg and "WEST SOUTH EAST NORTH" in msg


def test_swapped_bbox_example_is_a_valid_bbox():
    with pytest.raises(AreaError) as err:
        validate_bbox([13.73, 48.22, 13.71, 48.21])
    example = str(err.value).split("--bbox ")[1].rstrip(".").split()
    assert validate_bbox([float(v) for v in example]).bbox == (13.71, 48.21, 13.73, 48.22)


def test_antimeridian_crossing_still_reported():
    with pytest.raises(AreaError, match="antimeridian.*Split"):
        validate_bbox([179.9, -17.0, -179.9, -16.9])
    with pytest.raises(AreaError, match="antimeridian"):
        validate_bbox([170.0, -17.0, -170.0, -16.9])


# ----------------------------------------------------------------------------- bug 10: -w everywhere
@pytest.mark.parametrize("command", ["ingest", "fetch", "demo", "info"])
def test_short_workspace_option(command):
    res = CliRunner().invoke(cli, [command, "--help"])
    assert res.exit_code == 0
    assert "-w, --workspace" in res.output


def test_ingest_and_info_with_short_workspace_option(tmp_path):
    f = write_raster(tmp_path / "s2_20200601.tif", s2_scene((64, 64)))
    res = CliRunner().invoke(cli, ["ingest", str(f), "--sensor", S2, "--chip-size", "32", "-w", str(tmp_path / "ws")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["info", "-w", str(tmp_path / "ws")])
    assert res.exit_code == 0 and "4 chips" in res.output


# ----------------------------------------------------------------------------- bug 11: fetch warnings
def _naip_scene(folder: Path) -> Path:
    """A 4-band uint8 NAIP-like file in NAD83 / UTM 14N (fetch reprojects it to WGS84 UTM)."""
    rng = np.random.default_rng(3)
    f = smooth_field((240, 240), rng)
    data = np.stack([40 + 150 * f * (0.8 + 0.1 * i) for i in range(4)]).astype(np.uint8)
    return write_raster(folder / "naip" / "m_4709963_se_14_1_20180716.tif", data, epsg=26914,
                        origin=(491_000.0, 5_206_000.0), res=1.0, nodata=None)


def test_fetch_shows_no_not_georeferenced_warning(tmp_path):
    _naip_scene(tmp_path / "scenes")
    srv = start_stac_server(tmp_path / "scenes", workdir=tmp_path / "assets")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rec = fetch_stac([-99.1180, 47.0056, -99.1156, 47.0072], "2018-07-01", "2018-07-31", tmp_path / "ws",
                             stac_url=srv.url, collection="naip", chip_size=64, timeout=5.0, retries=1)
    finally:
        srv.stop()
    assert rec["chips"] >= 1
    assert not [w for w in caught if issubclass(w.category, NotGeoreferencedWarning)]
