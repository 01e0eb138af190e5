"""Area checks and band mapping (pure functions)."""

from __future__ import annotations

import pytest

from clay_explore.core.errors import AreaError, ImageryError
from clay_explore.core.sensors import get_sensor
from clay_explore.imagery.aoi import utm_epsg, validate_bbox
from clay_explore.imagery.bands import resolve_band_map


def test_valid_bbox_picks_utm_zone():
    aoi = validate_bbox([-75.70, 37.60, -75.60, 37.70])
    assert aoi.epsg == 32618
    assert utm_epsg(151.2, -33.9) == 32756


def test_area_too_large_names_cap_and_fix():
    with pytest.raises(AreaError, match=r"larger than the 30 x 30 km cap.*--max-area-km"):
        validate_bbox([10.0, 45.0, 11.0, 46.0])
    assert validate_bbox([10.0, 45.0, 11.0, 46.0], max_km=200).epsg == 32632  # configurable cap


@pytest.mark.parametrize(
    "bbox, match",
    [
        ([1, 2, 3], "four numbers"),
        (["a", 1, 2, 3], "four numbers"),
        ([0, 0, 0, 1], "no area"),
        ([0, 1, 0.1, 0.5], "no area"),
        ([0, 95, 0.1, 96], "latitudes"),
        ([200, 0, 201, 1], "longitudes"),
        ([float("nan"), 0, 1, 1], "finite"),
    ],
)
def test_invalid_bbox(bbox, match):
    with pytest.raises(AreaError, match=match):
        validate_bbox(bbox)


def test_antimeridian_crossing():
    with pytest.raises(AreaError, match="antimeridian.*Split"):
        validate_bbox([179.9, -17.0, -179.9, -16.9])


def test_utm_zone_crossing_and_override():
    with pytest.raises(AreaError, match=r"UTM zone boundary at longitude 12.*--epsg"):
        validate_bbox([11.95, 47.0, 12.05, 47.1])
    assert validate_bbox([11.95, 47.0, 12.05, 47.1], epsg=32632).epsg == 32632


def test_band_map_from_descriptions_skips_unknown_bands():
    ls = get_sensor("landsat-c2l2-sr")
    bm = resolve_band_map(
        ls,
        7,
        descriptions=[
            "SR_B1 coastal",
            "SR_B2 blue",
            "SR_B3 green",
            "SR_B4 red",
            "SR_B5 nir08",
            "SR_B6 swir16",
            "SR_B7 swir22",
        ],
    )
    assert bm.names == ("red", "green", "blue", "nir08", "swir16", "swir22")
    assert bm.indexes == (4, 3, 2, 5, 6, 7)


def test_band_map_native_layout_registry_order_and_override():
    ls = get_sensor("landsat-c2l2-sr")
    assert resolve_band_map(ls, 6).indexes == (3, 2, 1, 4, 5, 6)  # SR_B2..SR_B7 stack
    naip = get_sensor("naip")
    assert resolve_band_map(naip, 4).names == ("red", "green", "blue", "nir")
    bm = resolve_band_map(naip, 4, file_bands=["blue", "green", "red", "-"])
    assert bm.names == ("red", "green", "blue") and bm.indexes == (3, 2, 1)
    assert resolve_band_map(naip, 4, select=["nir", "red"]).names == ("red", "nir")


def test_band_count_mismatch_names_fix():
    with pytest.raises(ImageryError, match=r"3 bands but sensor naip has 4.*--file-bands"):
        resolve_band_map(get_sensor("naip"), 3)
    with pytest.raises(ImageryError, match="--file-bands names 2 bands but the file has 4"):
        resolve_band_map(get_sensor("naip"), 4, file_bands=["red", "green"])
    with pytest.raises(ImageryError, match="both map to 'red'"):
        resolve_band_map(get_sensor("naip"), 2, file_bands=["red", "red"])
