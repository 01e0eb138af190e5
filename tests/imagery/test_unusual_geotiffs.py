"""Local files as they come in the wild: held-out-like sensors and layouts, alpha bands, band labels, nodata
conventions, S2 offsets, reflectance and dB values, dates in file names, scenes smaller than a chip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from gen_data import s2_scene, smooth_field, write_raster
from rasterio.transform import from_origin

from clay_explore.core.errors import ImageryError, NoScenesError
from clay_explore.core.sensors import get_sensor
from clay_explore.core.workspace import Workspace
from clay_explore.imagery.bands import resolve_band_map
from clay_explore.imagery.chipping import ChipSettings
from clay_explore.imagery.geotiff import ingest_geotiff

RNG = np.random.default_rng(7)


def _field(c: int, h: int, w: int, lo: float, hi: float, dtype) -> np.ndarray:
    f = smooth_field((h, w), RNG)
    return np.stack([lo + (hi - lo) * f * (0.8 + 0.05 * i) for i in range(c)]).astype(dtype)


def test_scene_smaller_than_chip_suggests_a_chip_size(tmp_path):
    f = write_raster(tmp_path / "tiny.tif", _field(10, 50, 64, 100, 3000, np.uint16))
    with pytest.raises(NoScenesError, match=r"50 x 64 px, smaller than one 128 px chip: use --chip-size 48"):
        ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(128))
    assert ingest_geotiff(f, tmp_path / "ok", sensor="sentinel-2-l2a", chips=ChipSettings(64))["chips"] == 1


def _s2_with(path: Path, data: np.ndarray, *, scales=None, offsets=None, tags=None) -> Path:
    c, h, w = data.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        count=c,
        height=h,
        width=w,
        dtype=data.dtype.name,
        crs="EPSG:32633",
        transform=from_origin(400000, 5300000, 10, 10),
        nodata=0,
    ) as ds:
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
        rec = ingest_geotiff(f, tmp_path / name, sensor="sentinel-2-l2a", chips=ChipSettings(64))
        chip = Workspace.open(tmp_path / name).read_chips([0])[0]
        np.testing.assert_array_equal(chip, data.astype(np.float32) - 1000, err_msg=name)
        assert rec["values"] != "values used as stored"
    old = _s2_with(
        tmp_path / "old.tif",
        s2_scene((64, 64)),
        tags={"TILE_SOURCE": "S2A_MSIL1C_20170613T101031_N0205_R022_T33UUP_20170613T101608.SAFE"},
    )
    ingest_geotiff(old, tmp_path / "old", sensor="sentinel-2-l2a", chips=ChipSettings(64))
    np.testing.assert_array_equal(Workspace.open(tmp_path / "old").read_chips([0])[0], s2_scene((64, 64)))


def test_rgba_alpha_band_is_a_mask_not_a_band_count_error(tmp_path):
    rgba = np.concatenate([_field(3, 64, 64, 10, 250, np.uint8), np.full((1, 64, 64), 255, np.uint8)])
    rgba[3, :, :16] = 0
    f = tmp_path / "linz_rgba.tif"
    with rasterio.open(
        f,
        "w",
        driver="GTiff",
        count=4,
        height=64,
        width=64,
        dtype="uint8",
        crs="EPSG:2193",
        transform=from_origin(1750000, 5900000, 0.5, 0.5),
        photometric="RGB",
        alpha="YES",
    ) as ds:
        ds.write(rgba)
    ingest_geotiff(f, tmp_path / "ws", sensor="linz", chips=ChipSettings(64))
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
        with rasterio.open(
            f,
            "w",
            driver="GTiff",
            count=7,
            height=64,
            width=64,
            dtype="int16",
            nodata=-28672,
            crs=rasterio.crs.CRS.from_proj4(SINUSOIDAL),
            transform=from_origin(-8e6, 5e6, 463.3127, 463.3127),
        ) as ds:
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
    ingest_geotiff(f, tmp_path / "ws", sensor=sensor, chips=ChipSettings(64))
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
    data[0, 40, 40] = 0.0  # one band at 0 is a (clipped) value, not fill
    f = write_raster(tmp_path / "s1.tif", data, nodata=None)
    ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-1-rtc", chips=ChipSettings(64))
    chip = Workspace.open(tmp_path / "ws").read_chips([0])[0]
    assert np.isnan(chip[:, :, :8]).all() and np.isfinite(chip[:, :, 8:]).all()
    np.testing.assert_array_equal(chip[:, :, 8:], data[:, :, 8:])
    ok = _field(3, 64, 64, 10, 250, np.uint8)  # other sensors keep their zeros as values
    ok[:, :, :8] = 0
    ingest_geotiff(
        write_raster(tmp_path / "naip.tif", ok, epsg=26914, res=1.0, nodata=None),
        tmp_path / "n",
        sensor="naip",
        chips=ChipSettings(64),
        file_bands="red,green,blue",
    )
    assert np.isfinite(Workspace.open(tmp_path / "n").read_chips([0])[0]).all()


def test_float_reflectance_file_of_a_dn_sensor_is_converted_to_dn(tmp_path):
    """An S2 export scaled to 0-1 reflectance normalised as DN gave chips of ~-1 z everywhere, silently."""
    dn = s2_scene((64, 64))
    f = write_raster(tmp_path / "refl.tif", (dn * 1e-4).astype(np.float32), nodata=None)
    rec = ingest_geotiff(f, tmp_path / "auto", sensor="sentinel-2-l2a", chips=ChipSettings(64))
    np.testing.assert_allclose(Workspace.open(tmp_path / "auto").read_chips([0])[0], dn, rtol=1e-5, atol=0.05)
    assert "look like 0-1 reflectance" in rec["values"] and "--values dn" in rec["values"]
    ingest_geotiff(f, tmp_path / "dn", sensor="sentinel-2-l2a", chips=ChipSettings(64), values="dn")  # as stored
    assert Workspace.open(tmp_path / "dn").read_chips([0])[0].max() <= 1.5
    ls = _field(6, 64, 64, 0.02, 0.4, np.float32)  # Landsat SR: DN = (refl + 0.2) / 2.75e-5
    ingest_geotiff(
        write_raster(tmp_path / "ls.tif", ls, nodata=None),
        tmp_path / "ls",
        sensor="landsat-c2l2-sr",
        chips=ChipSettings(64),
        file_bands="red,green,blue,nir08,swir16,swir22",
    )
    np.testing.assert_allclose(Workspace.open(tmp_path / "ls").read_chips([0])[0], (ls + 0.2) / 2.75e-5, rtol=1e-5)
    big = write_raster(tmp_path / "dnf.tif", dn.astype(np.float32), nodata=None)  # float DN stays DN
    ingest_geotiff(big, tmp_path / "dnf", sensor="sentinel-2-l2a", chips=ChipSettings(64))
    np.testing.assert_array_equal(Workspace.open(tmp_path / "dnf").read_chips([0])[0], dn)
    s1 = write_raster(tmp_path / "s1.tif", _field(2, 64, 64, 0.001, 0.3, np.float32), nodata=None)
    with pytest.raises(ImageryError, match="drop --values reflectance"):
        ingest_geotiff(s1, tmp_path / "s1", sensor="sentinel-1-rtc", chips=ChipSettings(64), values="reflectance")


def test_sentinel1_file_in_decibels_is_converted_to_linear_power(tmp_path):
    """A dB file was read as linear power: every value <= 0 became -100 dB, silently."""
    power = _field(2, 64, 64, 0.002, 0.3, np.float32)
    db = (10 * np.log10(power)).astype(np.float32)
    f = write_raster(tmp_path / "s1db.tif", db, nodata=-9999.0)
    rec = ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-1-rtc", chips=ChipSettings(64))
    assert "decibels" in rec["values"] and "--values dn" in rec["values"]
    np.testing.assert_allclose(Workspace.open(tmp_path / "ws").read_chips([0])[0], power, rtol=1e-4)
    filled = power.copy()
    filled[:, :, :20] = -9999.0  # linear, with an undeclared fill value
    lin = write_raster(tmp_path / "s1lin.tif", filled, nodata=None)  # linear stays linear
    ingest_geotiff(lin, tmp_path / "lin", sensor="sentinel-1-rtc", chips=ChipSettings(64))
    np.testing.assert_array_equal(Workspace.open(tmp_path / "lin").read_chips([0])[0], filled)
    ingest_geotiff(f, tmp_path / "forced", sensor="sentinel-1-rtc", chips=ChipSettings(64), values="dn")
    np.testing.assert_array_equal(Workspace.open(tmp_path / "forced").read_chips([0])[0], db)
    with pytest.raises(ImageryError, match="--values db is for backscatter"):
        ingest_geotiff(
            write_raster(tmp_path / "s2.tif", s2_scene((64, 64))),
            tmp_path / "s2",
            sensor="sentinel-2-l2a",
            chips=ChipSettings(64),
            values="db",
        )


def test_modis_year_and_day_of_year_in_file_names():
    from clay_explore.imagery.geotiff import date_from_name

    assert date_from_name("MOD09A1.A2021177.h08v05.061.2021186.tif").date().isoformat() == "2021-06-26"
    assert date_from_name("MYD09A1.A2020366.h08v05.tif").date().isoformat() == "2020-12-31"  # leap year
    assert date_from_name("MOD09A1.A2021366.h08v05.tif") is None  # no day 366
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
