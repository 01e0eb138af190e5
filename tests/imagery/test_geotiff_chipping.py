"""Local GeoTIFF ingest and chipping: real samples (when ../shared exists) and generated files."""

from __future__ import annotations

import numpy as np
import pytest
from gen_data import s2_scene, smooth_field, write_raster

from clay_explore.core.errors import CancelledError, ImageryError, NoScenesError, WorkspaceError
from clay_explore.core.workspace import CHIP_COLUMNS, Workspace
from clay_explore.imagery.chipping import ChipSettings, chip_grid, read_progress
from clay_explore.imagery.geotiff import date_from_name, ingest_geotiff


def test_chip_grid_odd_sizes_and_stride():
    assert chip_grid(267, 433, 128, 128) == [(r, c) for r in (0, 128, 256) for c in (0, 128, 256, 384)]
    assert chip_grid(100, 100, 128, 128) == [(0, 0)]
    g = chip_grid(267, 433, 128, 64)
    assert g[0] == (0, 0) and max(c for _, c in g) + 128 >= 433 and max(r for r, _ in g) + 128 >= 267


def test_ingest_generated_odd_size_with_padding_and_nodata(tmp_path):
    data = s2_scene((267, 433))
    data[:, :20, :30] = 0  # nodata corner
    f = write_raster(tmp_path / "odd_20210704.tif", data, res=100.0)
    rec = ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(64, min_valid=0.3))
    ws = Workspace.open(tmp_path / "ws")
    table = ws.chip_table()
    assert set(CHIP_COLUMNS) <= set(table.columns)
    assert rec["chips"] == len(table) == ws.n_chips()
    assert rec["windows"] == 5 * 7 and rec["chips"] + rec["dropped_nodata"] == rec["windows"]
    assert (table["gsd"] == 100.0).all()  # from the transform, not the registry
    assert str(table["datetime"].iloc[0].date()) == "2021-07-04"  # from the file name
    chips = ws.read_chips(list(range(len(table))))
    first = chips[0]
    assert np.isnan(first[:, :20, :30]).all() and np.isfinite(first[:, 20:, 30:]).all()
    np.testing.assert_allclose(first[:, 30, 40], data[:, 30, 40])  # raw values kept
    edge = table[table["col"] == 384].iloc[0]
    assert edge["valid_fraction"] == pytest.approx((433 - 384) / 64 * min(1.0, (267 - edge["row"]) / 64))
    arr = ws.open_array("chips.zarr", "pixels")
    assert arr.attrs["scale"] == [1e-4] * 10 and arr.attrs["bands"] == ws.bands


def test_ingest_subset_dates_and_missing_date(tmp_path):
    data = s2_scene((96, 96))
    f = write_raster(tmp_path / "nodate.tif", data)
    rec = ingest_geotiff(f, tmp_path / "a", sensor="sentinel-2-l2a", chips=ChipSettings(64), bands=["nir", "red"])
    ws = Workspace.open(tmp_path / "a")
    assert ws.bands == ["red", "nir"] and rec["date_from"] == "unknown"
    assert ws.chip_table()["datetime"].isna().all()
    np.testing.assert_allclose(ws.read_chips([0])[0, :, 5, 5], data[[2, 6], 5, 5])
    rec = ingest_geotiff(f, tmp_path / "b", sensor="sentinel-2-l2a", chips=ChipSettings(64), date="2020-03-01")
    assert rec["datetime"].startswith("2020-03-01") and rec["date_from"] == "option"
    g = write_raster(
        tmp_path / "tagged.tif", data, tags={"ACQUISITION_DATE": "2019-01-14", "SCENE_CENTER_TIME": "12:57:13.18Z"}
    )
    rec = ingest_geotiff(g, tmp_path / "c", sensor="sentinel-2-l2a", chips=ChipSettings(64))
    assert rec["datetime"] == "2019-01-14T12:57:13+00:00" and rec["date_from"] == "tags"
    assert date_from_name("m_4112001_sw_10_060_20220716.tif").day == 16
    with pytest.raises(ImageryError, match="YYYY-MM-DD"):
        ingest_geotiff(f, tmp_path / "d", sensor="sentinel-2-l2a", chips=ChipSettings(64), date="yesterday")


def test_not_a_raster(tmp_path):
    f = tmp_path / "notes.tif"
    f.write_text("this is not an image")
    with pytest.raises(ImageryError, match="not a raster"):
        ingest_geotiff(f, tmp_path / "ws", sensor="naip")
    assert not (tmp_path / "ws").exists()
    with pytest.raises(ImageryError, match="does not exist"):
        ingest_geotiff(tmp_path / "missing.tif", tmp_path / "ws", sensor="naip")


def test_unknown_crs(tmp_path):
    data = (smooth_field((64, 64), np.random.default_rng(0)) * 200).astype(np.uint8)[None].repeat(4, 0)
    f = write_raster(tmp_path / "nocrs.tif", data, epsg=None)
    with pytest.raises(ImageryError, match="no coordinate reference system"):
        ingest_geotiff(f, tmp_path / "ws", sensor="naip", chips=ChipSettings(64))


def test_band_count_mismatch(tmp_path):
    data = np.ones((3, 64, 64), dtype=np.uint8)
    f = write_raster(tmp_path / "rgb.tif", data)
    with pytest.raises(ImageryError, match="3 bands but sensor naip has 4"):
        ingest_geotiff(f, tmp_path / "ws", sensor="naip", chips=ChipSettings(64))
    rec = ingest_geotiff(f, tmp_path / "ws", sensor="naip", chips=ChipSettings(64), file_bands=["red", "green", "blue"])
    assert rec["chips"] == 1


def test_chip_size_must_be_multiple_of_8(tmp_path):
    f = write_raster(tmp_path / "x.tif", s2_scene((64, 64)))
    with pytest.raises(ImageryError, match="multiple of 8"):
        ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(100))


def test_all_nodata_is_reported(tmp_path):
    f = write_raster(tmp_path / "empty.tif", np.zeros((10, 64, 64), dtype=np.uint16))
    with pytest.raises(NoScenesError, match="Every chip was dropped"):
        ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(64))


def test_interrupt_then_resume_matches_uninterrupted_run(tmp_path):
    f = write_raster(tmp_path / "big_20200101.tif", s2_scene((256, 320)))
    full = ingest_geotiff(f, tmp_path / "full", sensor="sentinel-2-l2a", chips=ChipSettings(32))
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3  # stop after three windows

    with pytest.raises(CancelledError, match="resume"):
        ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(32), cancel=cancel)
    ws = Workspace.open(tmp_path / "ws")
    assert ws.stage("chips")["status"] == "partial"
    assert len(read_progress(ws)["windows"]) == 3  # cancel is polled per window; finished ones are kept
    assert ws.done_mask("chips.zarr", "pixels", 80).sum() == 3
    seen = []
    rec = ingest_geotiff(
        f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(32), progress=lambda d, t, info: seen.append(d)
    )
    assert seen[0] == 3 and seen[-1] == 80  # resumed, did not redo finished chips
    assert rec["chips"] == full["chips"] == 80
    a, b = Workspace.open(tmp_path / "ws"), Workspace.open(tmp_path / "full")
    np.testing.assert_array_equal(a.read_chips(slice(None)), b.read_chips(slice(None)))
    assert list(a.chip_table()["chip_id"]) == list(b.chip_table()["chip_id"])
    again = ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(32))
    assert again["resumed"] is True


def test_crash_mid_ingest_keeps_no_half_chip(tmp_path, monkeypatch):
    """A crash (not a clean cancel) between chips: rerun finishes and equals a clean run."""
    from clay_explore.imagery import geotiff

    f = write_raster(tmp_path / "s.tif", s2_scene((128, 128)))
    real_read = geotiff.GeoTiffSource.read
    count = {"n": 0}

    def flaky(self, *a):
        count["n"] += 1
        if count["n"] == 11:
            raise KeyboardInterrupt
        return real_read(self, *a)

    monkeypatch.setattr(geotiff.GeoTiffSource, "read", flaky)
    with pytest.raises(KeyboardInterrupt):
        ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(32))
    monkeypatch.setattr(geotiff.GeoTiffSource, "read", real_read)
    ws = Workspace.open(tmp_path / "ws")
    assert ws.done_mask("chips.zarr", "pixels", 16).sum() == 10  # the ten chips read before the crash
    rec = ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(32))
    assert rec["chips"] == 16
    ingest_geotiff(f, tmp_path / "clean", sensor="sentinel-2-l2a", chips=ChipSettings(32))
    np.testing.assert_array_equal(
        Workspace.open(tmp_path / "ws").read_chips(slice(None)),
        Workspace.open(tmp_path / "clean").read_chips(slice(None)),
    )


def test_other_source_is_refused_where_appending_is_not_asked_for(tmp_path):
    """fetch/demo keep one source per workspace (chip_source without append); ingest appends."""
    from clay_explore.core.sensors import get_sensor
    from clay_explore.imagery.chipping import ChipSettings, chip_source
    from clay_explore.imagery.geotiff import GeoTiffSource

    f = write_raster(tmp_path / "a.tif", s2_scene((64, 64), seed=1))
    g = write_raster(tmp_path / "b.tif", s2_scene((64, 64), seed=2))
    ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-2-l2a", chips=ChipSettings(64))
    ws = Workspace.open(tmp_path / "ws")
    before = ws.read_chips([0])
    src = GeoTiffSource(g, get_sensor("sentinel-2-l2a"))
    with pytest.raises(WorkspaceError, match="already holds chips from a.tif"):
        chip_source(ws, src, ChipSettings(64))
    src.close()
    after = Workspace.open(tmp_path / "ws")
    np.testing.assert_array_equal(after.read_chips(slice(None)), before)
    assert after.stage("chips")["status"] == "complete"


SAMPLES = {
    "sentinel2/s2l2a_bigearthnet_austria_20170613_87_48_10band.tif": ("sentinel-2-l2a", 64, 10.0),
    "sentinel2/s2l2a_T29RKH_20200219_100m_10band.tif": ("sentinel-2-l2a", 256, 100.0),
    "landsat/LC08_204023_20200927_liverpool_sr_b1-b7.tif": ("landsat-c2l2-sr", 128, 30.0),
    "landsat/LC08_218074_20190114_brumadinho_sr_b2-b7.tif": ("landsat-c2l2-sr", 128, 30.0),
    "naip/m_4709963_se_14_1_20180716.tif": ("naip", 256, 5.0),
    "naip/m_3211605_ne_11_060_20200415.tif": ("naip", 128, 0.599),
    "naip/m_4112001_sw_10_060_20220716.tif": ("naip", 128, 22.0),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_ingest_real_samples(samples_dir, tmp_path, name):
    sensor, chip, gsd = SAMPLES[name]
    rec = ingest_geotiff(samples_dir / name, tmp_path / "ws", sensor=sensor, chips=ChipSettings(chip))
    ws = Workspace.open(tmp_path / "ws")
    table = ws.chip_table()
    assert rec["chips"] == len(table) >= 1
    assert table["gsd"].iloc[0] == pytest.approx(gsd, rel=0.01)
    assert table["datetime"].notna().all()
    x = ws.read_chips([0])
    assert np.nanmax(x) > 0 and x.shape == (1, len(ws.bands), chip, chip)
    if sensor == "landsat-c2l2-sr":
        assert ws.bands == ["red", "green", "blue", "nir08", "swir16", "swir22"]
        assert rec["band_map"] == "from the file's band descriptions"
    if "bigearthnet" in name:
        assert "Non-irrigated arable land" in list(table["labels"].iloc[0])
