"""Regression tests for bugs found by QA (held-out-like files, interrupted runs, odd STAC items)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from clay_explore.core.errors import CancelledError, ImageryError, NetworkError, NoScenesError
from clay_explore.imagery.bands import resolve_band_map
from clay_explore.imagery.chipping import PROGRESS, batch_for, read_progress
from clay_explore.imagery.geotiff import ingest_geotiff
from clay_explore.imagery.stac import fetch_stac
from clay_explore.core.sensors import get_sensor
from clay_explore.core.workspace import Workspace
from gen_data import s2_scene, smooth_field, write_raster
from test_stac import FAST, INSIDE_A, X0, Y0, _bbox

HERE = Path(__file__).resolve().parent
RNG = np.random.default_rng(7)


def _field(c: int, h: int, w: int, lo: float, hi: float, dtype) -> np.ndarray:
    f = smooth_field((h, w), RNG)
    return np.stack([lo + (hi - lo) * f * (0.8 + 0.05 * i) for i in range(c)]).astype(dtype)


def _same_workspaces(a: Path, b: Path) -> None:
    wa, wb = Workspace.open(a), Workspace.open(b)
    np.testing.assert_array_equal(wa.read_chips(slice(None)), wb.read_chips(slice(None)))
    assert list(wa.chip_table()["chip_id"]) == list(wb.chip_table()["chip_id"])


# ----------------------------------------------------------------------------- progress log
def test_progress_log_appends_per_batch_and_ignores_a_torn_line(tmp_path):
    """The log was rewritten whole after every batch (quadratic: minutes for 15k windows)."""
    f = write_raster(tmp_path / "s.tif", s2_scene((128, 256)))
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(CancelledError):
        ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chip_size=32, cancel=cancel)
    log = tmp_path / "ws" / PROGRESS
    lines = log.read_bytes().splitlines()
    assert len(lines) == 2                               # header + the windows finished before cancel
    with open(log, "ab") as fh:                          # a crash mid-append leaves a torn line
        fh.write(b'{"next_row": 9, "windows": {"5": {"ro')
    assert len(read_progress(Workspace.open(tmp_path / "ws"))["windows"]) == 5
    ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chip_size=32)
    ingest_geotiff(f, tmp_path / "clean", sensor="sentinel-2-l2a", chip_size=32)
    _same_workspaces(tmp_path / "ws", tmp_path / "clean")


def test_batches_grow_for_small_chips_but_stay_bounded():
    assert batch_for(256, 10) >= 8 and batch_for(256, 10) * 4 * 10 * 256 * 256 <= 64 * 2**20
    assert batch_for(64, 4) > 100          # 15k windows of 64 px -> ~30 log lines, not 2000
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
geotiff.ingest_geotiff({f!r}, {ws!r}, sensor="sentinel-2-l2a", chip_size=32)
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
    rec = ingest_geotiff(f, ws, sensor="sentinel-2-l2a", chip_size=32)
    assert rec["chips"] == 48
    ingest_geotiff(f, tmp_path / "clean", sensor="sentinel-2-l2a", chip_size=32)
    _same_workspaces(ws, tmp_path / "clean")


# ----------------------------------------------------------------------------- held-out-like files
def test_scene_smaller_than_chip_suggests_a_chip_size(tmp_path):
    f = write_raster(tmp_path / "tiny.tif", _field(10, 50, 64, 100, 3000, np.uint16))
    with pytest.raises(NoScenesError, match=r"50 x 64 px, smaller than one 128 px chip: use --chip-size 48"):
        ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chip_size=128)
    assert ingest_geotiff(f, tmp_path / "ok", sensor="sentinel-2-l2a", chip_size=64)["chips"] == 1


def _s2_with(path: Path, data: np.ndarray, *, scales=None, offsets=None, tags=None) -> Path:
    c, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", count=c, height=h, width=w, dtype=data.dtype.name,
                       crs="EPSG:32633", transform=from_origin(400000, 5300000, 10, 10), nodata=0) as ds:
        ds.write(data)
        if scales:
            ds.scales, ds.offsets = scales, offsets
        if tags:
            ds.update_tags(**tags)
    return path


def test_s2_baseline_offset_removed_from_declared_offset_or_product_name(tmp_path):
    data = s2_scene((64, 64), offset_dn=1000)
    cases = {
        "declared": dict(scales=[1e-4] * 10, offsets=[-0.1] * 10),
        "tag": dict(tags={"SOURCE_PRODUCT": "S2B_MSIL2A_20230101T101029_N0509_R022_T33UUP_20230101T120000"}),
    }
    for name, kw in cases.items():
        f = _s2_with(tmp_path / f"{name}.tif", data, **kw)
        rec = ingest_geotiff(f, tmp_path / name, sensor="sentinel-2-l2a", chip_size=64)
        chip = Workspace.open(tmp_path / name).read_chips([0])[0]
        np.testing.assert_array_equal(chip, data.astype(np.float32) - 1000, err_msg=name)
        assert rec["values"] != "values used as stored"
    old = _s2_with(tmp_path / "old.tif", s2_scene((64, 64)),
                   tags={"TILE_SOURCE": "S2A_MSIL1C_20170613T101031_N0205_R022_T33UUP_20170613T101608.SAFE"})
    ingest_geotiff(old, tmp_path / "old", sensor="sentinel-2-l2a", chip_size=64)
    np.testing.assert_array_equal(Workspace.open(tmp_path / "old").read_chips([0])[0], s2_scene((64, 64)))


def test_rgba_alpha_band_is_a_mask_not_a_band_count_error(tmp_path):
    rgba = np.concatenate([_field(3, 64, 64, 10, 250, np.uint8), np.full((1, 64, 64), 255, np.uint8)])
    rgba[3, :, :16] = 0
    f = tmp_path / "linz_rgba.tif"
    with rasterio.open(f, "w", driver="GTiff", count=4, height=64, width=64, dtype="uint8", crs="EPSG:2193",
                       transform=from_origin(1750000, 5900000, 0.5, 0.5), photometric="RGB", alpha="YES") as ds:
        ds.write(rgba)
    ingest_geotiff(f, tmp_path / "ws", sensor="linz", chip_size=64)
    ws = Workspace.open(tmp_path / "ws")
    chip = ws.read_chips([0])[0]
    assert ws.bands == ["red", "green", "blue"] and np.isnan(chip[:, :, :16]).all()
    np.testing.assert_array_equal(chip[:, :, 16:], rgba[:3, :, 16:])
    assert ws.chip_table()["gsd"].iloc[0] == pytest.approx(0.5)


def test_band_labels_without_zero_padding_and_landsat_l1_all_bands():
    s2 = resolve_band_map(get_sensor("sentinel-2-l2a"), 4, descriptions=("B2", "B3", "B4", "B8"))
    assert s2.names == ("blue", "green", "red", "nir") and s2.indexes == (1, 2, 3, 4)
    l1 = resolve_band_map(get_sensor("landsat-c2l1"), 11)
    assert l1.names == ("red", "green", "blue", "nir08", "swir16", "swir22") and l1.indexes == (4, 3, 2, 5, 6, 7)


SINUSOIDAL = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"


@pytest.mark.parametrize("case", ["s1-nan", "modis-sinusoidal", "naip-int16-m9999", "naip-epsg4326"])
def test_held_out_like_files(tmp_path, case):
    f = tmp_path / f"{case}.tif"
    if case == "s1-nan":
        data = _field(2, 64, 64, 0.001, 0.3, np.float32)
        data[:, :, :8] = np.nan
        write_raster(f, data, nodata=float("nan"))
        sensor, gsd = "sentinel-1-rtc", 10.0
    elif case == "modis-sinusoidal":
        data = _field(7, 64, 64, 100, 4000, np.int16)
        with rasterio.open(f, "w", driver="GTiff", count=7, height=64, width=64, dtype="int16", nodata=-28672,
                           crs=rasterio.crs.CRS.from_proj4(SINUSOIDAL),
                           transform=from_origin(-8e6, 5e6, 463.3127, 463.3127)) as ds:
            ds.write(data)
        sensor, gsd = "modis", 463.3127
    elif case == "naip-int16-m9999":
        data = _field(4, 64, 64, 10, 250, np.int16)
        data[:, :8] = -9999
        write_raster(f, data, epsg=26914, res=1.0, nodata=-9999)
        sensor, gsd = "naip", 1.0
    else:  # degrees: the gsd must come out in metres
        data = _field(4, 64, 64, 10, 250, np.uint8)
        write_raster(f, data, epsg=4326, transform=from_origin(-99.2, 47.03, 1e-5, 1e-5), nodata=None)
        sensor, gsd = "naip", 0.92
    ingest_geotiff(f, tmp_path / "ws", sensor=sensor, chip_size=64)
    ws = Workspace.open(tmp_path / "ws")
    table, chip = ws.chip_table(), ws.read_chips([0])[0]
    assert table["gsd"].iloc[0] == pytest.approx(gsd, rel=0.01)
    assert -90 <= table["lat"].iloc[0] <= 90 and table.geometry.iloc[0].is_valid
    expect = data.astype(np.float32)
    expect[expect == -9999] = np.nan
    np.testing.assert_array_equal(np.isnan(chip), np.isnan(expect))
    np.testing.assert_array_equal(chip[np.isfinite(chip)], expect[np.isfinite(expect)])


def test_sentinel1_without_declared_nodata_treats_all_zero_pixels_as_fill(tmp_path):
    """RTC files often declare no nodata and fill outside the swath with 0, which became -100 dB."""
    data = _field(2, 64, 64, 0.001, 0.3, np.float32)
    data[:, :, :8] = 0.0
    data[0, 40, 40] = 0.0                                # one band at 0 is a (clipped) value, not fill
    f = write_raster(tmp_path / "s1.tif", data, nodata=None)
    ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-1-rtc", chip_size=64)
    chip = Workspace.open(tmp_path / "ws").read_chips([0])[0]
    assert np.isnan(chip[:, :, :8]).all() and np.isfinite(chip[:, :, 8:]).all()
    np.testing.assert_array_equal(chip[:, :, 8:], data[:, :, 8:])
    ok = _field(3, 64, 64, 10, 250, np.uint8)          # other sensors keep their zeros as values
    ok[:, :, :8] = 0
    ingest_geotiff(write_raster(tmp_path / "naip.tif", ok, epsg=26914, res=1.0, nodata=None), tmp_path / "n",
                   sensor="naip", chip_size=64, file_bands="red,green,blue")
    assert np.isfinite(Workspace.open(tmp_path / "n").read_chips([0])[0]).all()


def test_float_reflectance_file_of_a_dn_sensor_is_converted_to_dn(tmp_path):
    """An S2 export scaled to 0-1 reflectance normalised as DN gave chips of ~-1 z everywhere, silently."""
    dn = s2_scene((64, 64))
    f = write_raster(tmp_path / "refl.tif", (dn * 1e-4).astype(np.float32), nodata=None)
    rec = ingest_geotiff(f, tmp_path / "auto", sensor="sentinel-2-l2a", chip_size=64)
    np.testing.assert_allclose(Workspace.open(tmp_path / "auto").read_chips([0])[0], dn, rtol=1e-5, atol=0.05)
    assert "look like 0-1 reflectance" in rec["values"] and "--values dn" in rec["values"]
    ingest_geotiff(f, tmp_path / "dn", sensor="sentinel-2-l2a", chip_size=64, values="dn")  # as stored
    assert Workspace.open(tmp_path / "dn").read_chips([0])[0].max() <= 1.5
    ls = _field(6, 64, 64, 0.02, 0.4, np.float32)           # Landsat SR: DN = (refl + 0.2) / 2.75e-5
    ingest_geotiff(write_raster(tmp_path / "ls.tif", ls, nodata=None), tmp_path / "ls", sensor="landsat-c2l2-sr",
                   chip_size=64, file_bands="red,green,blue,nir08,swir16,swir22")
    np.testing.assert_allclose(Workspace.open(tmp_path / "ls").read_chips([0])[0], (ls + 0.2) / 2.75e-5, rtol=1e-5)
    big = write_raster(tmp_path / "dnf.tif", dn.astype(np.float32), nodata=None)  # float DN stays DN
    ingest_geotiff(big, tmp_path / "dnf", sensor="sentinel-2-l2a", chip_size=64)
    np.testing.assert_array_equal(Workspace.open(tmp_path / "dnf").read_chips([0])[0], dn)
    s1 = write_raster(tmp_path / "s1.tif", _field(2, 64, 64, 0.001, 0.3, np.float32), nodata=None)
    with pytest.raises(ImageryError, match="drop --values reflectance"):
        ingest_geotiff(s1, tmp_path / "s1", sensor="sentinel-1-rtc", chip_size=64, values="reflectance")


def test_sentinel1_file_in_decibels_is_converted_to_linear_power(tmp_path):
    """A dB file was read as linear power: every value <= 0 became -100 dB, silently."""
    power = _field(2, 64, 64, 0.002, 0.3, np.float32)
    db = (10 * np.log10(power)).astype(np.float32)
    f = write_raster(tmp_path / "s1db.tif", db, nodata=-9999.0)
    rec = ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-1-rtc", chip_size=64)
    assert "decibels" in rec["values"] and "--values dn" in rec["values"]
    np.testing.assert_allclose(Workspace.open(tmp_path / "ws").read_chips([0])[0], power, rtol=1e-4)
    filled = power.copy()
    filled[:, :, :20] = -9999.0                                        # linear, with an undeclared fill value
    lin = write_raster(tmp_path / "s1lin.tif", filled, nodata=None)    # linear stays linear
    ingest_geotiff(lin, tmp_path / "lin", sensor="sentinel-1-rtc", chip_size=64)
    np.testing.assert_array_equal(Workspace.open(tmp_path / "lin").read_chips([0])[0], filled)
    ingest_geotiff(f, tmp_path / "forced", sensor="sentinel-1-rtc", chip_size=64, values="dn")
    np.testing.assert_array_equal(Workspace.open(tmp_path / "forced").read_chips([0])[0], db)
    with pytest.raises(ImageryError, match="--values db is for backscatter"):
        ingest_geotiff(write_raster(tmp_path / "s2.tif", s2_scene((64, 64))), tmp_path / "s2",
                       sensor="sentinel-2-l2a", chip_size=64, values="db")


# ----------------------------------------------------------------------------- STAC
def test_items_without_cloud_cover_or_datetime_are_used(gen_stac_server, tmp_path):
    """The server drops them from an eo:cloud_cover query; the old code then crashed formatting None."""
    item = next(it for it in gen_stac_server.items if it["id"] == "S2A_gen_20230610_A")
    saved = dict(item["properties"])
    try:
        del item["properties"]["eo:cloud_cover"]
        item["properties"].update(datetime=None, start_datetime="2023-06-10T00:00:00Z",
                                  end_datetime="2023-06-10T23:59:59Z")
        rec = fetch_stac(INSIDE_A, "2023-06-01", "2023-06-30", tmp_path / "ws", stac_url=gen_stac_server.url,
                         chip_size=32, max_cloud=10, **FAST)
    finally:
        item["properties"].clear()
        item["properties"].update(saved)
    assert rec["chips"] > 0 and rec["scenes"][0]["cloud_cover"] is None
    assert rec["scenes"][0]["datetime"].startswith("2023-06-10T")


@pytest.mark.parametrize("broken", ["missing", "corrupt"])
def test_unusable_asset_is_an_imagery_error_not_a_network_error(gen_stac_server, tmp_path, broken):
    """A 404 or a non-raster asset is not retried and not blamed on the network."""
    item = next(it for it in gen_stac_server.items if it["id"] == "S2A_gen_20230610_A")
    key = next(k for k in ("red", "B04") if k in item["assets"])
    saved = item["assets"][key]["href"]
    if broken == "missing":
        item["assets"][key]["href"] = saved.replace(".tif", "-gone.tif")
    else:
        item["assets"][key]["href"] = saved.replace(key + ".tif", "not-a-raster.tif")
        (gen_stac_server.asset_dir / item["id"] / "not-a-raster.tif").write_bytes(b"<html>moved</html>" * 100)
    try:
        with pytest.raises(ImageryError) as err:
            fetch_stac(INSIDE_A, "2023-06-10", "2023-06-10", tmp_path / "ws", stac_url=gen_stac_server.url,
                       chip_size=32, **FAST)
    finally:
        item["assets"][key]["href"] = saved
    assert not isinstance(err.value, NetworkError), err.value
    assert "S2A_gen_20230610_A" in str(err.value) and "other scenes" in str(err.value)
    assert ("does not exist" if broken == "missing" else "not a readable raster") in str(err.value)


def test_fetch_sentinel1_rtc_from_stac_masks_undeclared_zero_fill(tmp_path):
    """Sentinel-1 through STAC: vv/vh assets without eo:bands; the swath's 0 fill is nodata, not -100 dB."""
    from stac_server import start_stac_server

    data = _field(2, 256, 256, 0.001, 0.3, np.float32)
    data[:, :, :64] = 0.0
    write_raster(tmp_path / "scenes" / "S1A_IW_20230610T050000_gen.tif", data, nodata=None,
                 origin=(X0, Y0), descriptions=["VV", "VH"])
    srv = start_stac_server(tmp_path / "scenes", workdir=tmp_path / "assets")
    try:
        bbox = _bbox(X0 + 10, Y0 - 2550, X0 + 2550, Y0 - 10)
        rec = fetch_stac(bbox, "2023-06-01", "2023-06-30", tmp_path / "ws", stac_url=srv.url,
                         collection="sentinel-1-rtc", chip_size=64, min_valid=0.0, **FAST)
    finally:
        srv.stop()
    ws = Workspace.open(tmp_path / "ws")
    assert ws.sensor.name == "sentinel-1-rtc" and ws.bands == ["vv", "vh"] and rec["chips"] >= 9
    chips = ws.read_chips(slice(None))
    table = ws.chip_table()
    west = table["col"] == table["col"].min()
    assert np.isnan(chips[west.to_numpy()][:, :, :, :32]).any()        # the fill strip is NaN ...
    valid = chips[np.isfinite(chips)]
    assert valid.size and valid.min() > 0                              # ... and no zero reaches the dB transform


def test_multiband_asset_without_eo_bands_is_read_in_registry_order(tmp_path):
    """Aerial RGB(A) items often carry raster:bands but no eo:bands; the odc-stac result is checked too."""
    from datetime import datetime

    import odc.stac
    import pystac

    from clay_explore.imagery.stac import asset_bands

    rgba = np.concatenate([_field(3, 64, 64, 10, 250, np.uint8), np.full((1, 64, 64), 255, np.uint8)])
    f = tmp_path / "aerial.tif"
    with rasterio.open(f, "w", driver="GTiff", count=4, height=64, width=64, dtype="uint8", crs="EPSG:2193",
                       transform=from_origin(1750000, 5900000, 0.5, 0.5)) as ds:
        ds.write(rgba)
    with rasterio.open(f) as ds:
        w, s, e, n = rasterio.warp.transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    item = pystac.Item(id="aerial", geometry=mapping(box(w, s, e, n)), bbox=[w, s, e, n],
                       datetime=datetime(2020, 1, 1), properties={})
    item.add_asset("image", pystac.Asset(href=str(f), roles=["data"], extra_fields={
        "raster:bands": [{"data_type": "uint8"}] * 4, "proj:epsg": 2193, "proj:shape": [64, 64],
        "proj:transform": [0.5, 0, 1750000, 0, -0.5, 5900000]}))
    item.add_asset("thumbnail", pystac.Asset(href="thumb.png", roles=["thumbnail"]))
    amap = asset_bands(item, get_sensor("linz"))
    assert amap == {"red": ("image.1", "image", 1), "green": ("image.2", "image", 2), "blue": ("image.3", "image", 3)}
    from odc.geo.geobox import GeoBox

    grid = GeoBox((64, 64), from_origin(1750000, 5900000, 0.5, 0.5), "EPSG:2193")
    ds = odc.stac.load([item], bands=[v[0] for v in amap.values()], geobox=grid)
    np.testing.assert_array_equal(ds["image.3"].values[0], rgba[2])
    with pytest.raises(ImageryError, match="no asset for band"):
        asset_bands(item, get_sensor("sentinel-2-l2a"))


def test_bbox_smaller_than_a_chip_gets_one_full_chip(gen_stac_server, tmp_path):
    tiny = _bbox(X0 + 1000, Y0 - 1050, X0 + 1050, Y0 - 1000)   # 50 m: 5 px at 10 m
    rec = fetch_stac(tiny, "2023-06-01", "2023-06-30", tmp_path / "ws", stac_url=gen_stac_server.url,
                     chip_size=32, **FAST)
    table = Workspace.open(tmp_path / "ws").chip_table()
    assert rec["chips"] == 1 and table["valid_fraction"].iloc[0] == 1.0
    assert table.geometry.iloc[0].contains(box(*tiny))


def test_fetch_cancelled_then_endpoint_down_then_back_resumes(gen_scene_dir, tmp_path):
    from stac_server import start_stac_server

    args = (INSIDE_A, "2023-06-01", "2023-06-30")
    srv = start_stac_server(gen_scene_dir, workdir=tmp_path / "a1")
    try:
        calls = {"n": 0}
        with pytest.raises(CancelledError):
            fetch_stac(*args, tmp_path / "ws", stac_url=srv.url, chip_size=32,
                       cancel=lambda: calls.__setitem__("n", calls["n"] + 1) or calls["n"] > 4, **FAST)
        fetch_stac(*args, tmp_path / "clean", stac_url=srv.url, chip_size=32, **FAST)
    finally:
        srv.stop()
    done = len(read_progress(Workspace.open(tmp_path / "ws"))["windows"])
    assert done == 4
    with pytest.raises(NetworkError, match="try again later"):
        fetch_stac(*args, tmp_path / "ws", stac_url=srv.url, chip_size=32, timeout=1.0, retries=0)
    assert len(read_progress(Workspace.open(tmp_path / "ws"))["windows"]) == done   # nothing lost
    srv2 = start_stac_server(gen_scene_dir, workdir=tmp_path / "a2")        # back, at a new address
    try:
        fetch_stac(*args, tmp_path / "ws", stac_url=srv2.url, chip_size=32, **FAST)
    finally:
        srv2.stop()
    _same_workspaces(tmp_path / "ws", tmp_path / "clean")


def test_modis_year_and_day_of_year_in_file_names():
    from clay_explore.imagery.geotiff import date_from_name

    assert date_from_name("MOD09A1.A2021177.h08v05.061.2021186.tif").date().isoformat() == "2021-06-26"
    assert date_from_name("MYD09A1.A2020366.h08v05.tif").date().isoformat() == "2020-12-31"   # leap year
    assert date_from_name("MOD09A1.A2021366.h08v05.tif") is None                              # no day 366
    assert date_from_name("LC08_L2SP_204023_20200927_20201005_02_T1.tif").date().isoformat() == "2020-09-27"


def test_labels_of_another_sensor_are_refused_not_shifted():
    """A Sentinel-2 stack ingested as Landsat mapped B05 (red edge) to nir08, B06 to swir16... silently."""
    s2 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    with pytest.raises(ImageryError, match="more than any landsat-c2l1 product.*--sensor sentinel-2-l2a"):
        resolve_band_map(get_sensor("landsat-c2l1"), 12, descriptions=s2)
    with pytest.raises(ImageryError, match="Only 6 of the file's 10 band labels.*--sensor sentinel-2-l2a"):
        resolve_band_map(get_sensor("landsat-c2l1"), 10, descriptions=[b for b in s2 if b not in ("B01", "B09")])
    with pytest.raises(ImageryError, match="name no landsat-c2l2-sr band, which look like sentinel-2-l2a"):
        resolve_band_map(get_sensor("landsat-c2l2-sr"), 12, descriptions=s2)
    with pytest.raises(ImageryError, match="Only 6 of the file's 10 band labels.*--sensor sentinel-2-l2a"):
        resolve_band_map(get_sensor("landsat-c2l1"), 10, band_order_tag="B02 B03 B04 B05 B06 B07 B08 B8A B11 B12")
    # a real Landsat L1 stack keeps working although Sentinel-2 also names some of B1..B11
    l1 = resolve_band_map(get_sensor("landsat-c2l1"), 11, descriptions=[f"B{i}" for i in range(1, 12)])
    assert l1.names == ("red", "green", "blue", "nir08", "swir16", "swir22") and l1.indexes == (4, 3, 2, 5, 6, 7)


def test_planetscope_four_band_product_layout():
    ps = resolve_band_map(get_sensor("planetscope-sr"), 4)
    assert ps.names == ("blue", "green", "red", "nir") and ps.indexes == (1, 2, 3, 4)
