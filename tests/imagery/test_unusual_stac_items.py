"""STAC items as catalogues serve them: no cloud cover or datetime, missing or corrupt assets, Sentinel-1 RTC
without eo:bands, multiband assets, and an area smaller than one chip."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rasterio.warp
from gen_data import smooth_field, write_raster
from rasterio.transform import from_origin
from shapely.geometry import box, mapping
from test_stac import FAST, INSIDE_A, X0, Y0, _bbox

from clay_explore.core.errors import ImageryError, NetworkError
from clay_explore.core.sensors import get_sensor
from clay_explore.core.workspace import Workspace
from clay_explore.imagery.chipping import ChipSettings
from clay_explore.imagery.stac import fetch_stac

RNG = np.random.default_rng(7)


def _field(c: int, h: int, w: int, lo: float, hi: float, dtype) -> np.ndarray:
    f = smooth_field((h, w), RNG)
    return np.stack([lo + (hi - lo) * f * (0.8 + 0.05 * i) for i in range(c)]).astype(dtype)


def test_items_without_cloud_cover_or_datetime_are_used(gen_stac_server, tmp_path):
    """The server drops them from an eo:cloud_cover query; the old code then crashed formatting None."""
    item = next(it for it in gen_stac_server.items if it["id"] == "S2A_gen_20230610_A")
    saved = dict(item["properties"])
    try:
        del item["properties"]["eo:cloud_cover"]
        item["properties"].update(
            datetime=None, start_datetime="2023-06-10T00:00:00Z", end_datetime="2023-06-10T23:59:59Z"
        )
        rec = fetch_stac(
            INSIDE_A,
            "2023-06-01",
            "2023-06-30",
            tmp_path / "ws",
            stac_url=gen_stac_server.url,
            chips=ChipSettings(32),
            max_cloud=10,
            **FAST,
        )
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
            fetch_stac(
                INSIDE_A,
                "2023-06-10",
                "2023-06-10",
                tmp_path / "ws",
                stac_url=gen_stac_server.url,
                chips=ChipSettings(32),
                **FAST,
            )
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
    write_raster(
        tmp_path / "scenes" / "S1A_IW_20230610T050000_gen.tif",
        data,
        nodata=None,
        origin=(X0, Y0),
        descriptions=["VV", "VH"],
    )
    srv = start_stac_server(tmp_path / "scenes", workdir=tmp_path / "assets")
    try:
        bbox = _bbox(X0 + 10, Y0 - 2550, X0 + 2550, Y0 - 10)
        rec = fetch_stac(
            bbox,
            "2023-06-01",
            "2023-06-30",
            tmp_path / "ws",
            stac_url=srv.url,
            collection="sentinel-1-rtc",
            chips=ChipSettings(64, min_valid=0.0),
            **FAST,
        )
    finally:
        srv.stop()
    ws = Workspace.open(tmp_path / "ws")
    assert ws.sensor.name == "sentinel-1-rtc" and ws.bands == ["vv", "vh"] and rec["chips"] >= 9
    chips = ws.read_chips(slice(None))
    table = ws.chip_table()
    west = table["col"] == table["col"].min()
    assert np.isnan(chips[west.to_numpy()][:, :, :, :32]).any()  # the fill strip is NaN ...
    valid = chips[np.isfinite(chips)]
    assert valid.size and valid.min() > 0  # ... and no zero reaches the dB transform


def test_multiband_asset_without_eo_bands_is_read_in_registry_order(tmp_path):
    """Aerial RGB(A) items often carry raster:bands but no eo:bands; the odc-stac result is checked too."""
    from datetime import datetime

    import odc.stac
    import pystac

    from clay_explore.imagery.stac import asset_bands

    rgba = np.concatenate([_field(3, 64, 64, 10, 250, np.uint8), np.full((1, 64, 64), 255, np.uint8)])
    f = tmp_path / "aerial.tif"
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
    ) as ds:
        ds.write(rgba)
    with rasterio.open(f) as ds:
        w, s, e, n = rasterio.warp.transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    item = pystac.Item(
        id="aerial", geometry=mapping(box(w, s, e, n)), bbox=[w, s, e, n], datetime=datetime(2020, 1, 1), properties={}
    )
    item.add_asset(
        "image",
        pystac.Asset(
            href=str(f),
            roles=["data"],
            extra_fields={
                "raster:bands": [{"data_type": "uint8"}] * 4,
                "proj:epsg": 2193,
                "proj:shape": [64, 64],
                "proj:transform": [0.5, 0, 1750000, 0, -0.5, 5900000],
            },
        ),
    )
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
    tiny = _bbox(X0 + 1000, Y0 - 1050, X0 + 1050, Y0 - 1000)  # 50 m: 5 px at 10 m
    rec = fetch_stac(
        tiny, "2023-06-01", "2023-06-30", tmp_path / "ws", stac_url=gen_stac_server.url, chips=ChipSettings(32), **FAST
    )
    table = Workspace.open(tmp_path / "ws").chip_table()
    assert rec["chips"] == 1 and table["valid_fraction"].iloc[0] == 1.0
    assert table.geometry.iloc[0].contains(box(*tiny))
