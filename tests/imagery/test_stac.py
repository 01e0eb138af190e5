"""The STAC path against real local STAC API servers (generated scenes, and the real samples)."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from conftest import GEN_ORIGIN
from gen_data import s2_scene
from pyproj import Transformer

from clay_explore.core.errors import AreaError, NetworkError, NoScenesError
from clay_explore.core.workspace import CHIP_COLUMNS, Workspace
from clay_explore.imagery.aoi import validate_bbox
from clay_explore.imagery.chipping import ChipSettings
from clay_explore.imagery.net import NetPolicy
from clay_explore.imagery.stac import fetch_stac, search_scenes, select_cover

FAST = dict(timeout=2.0, retries=1)


def _bbox(x0, y0, x1, y1, epsg=32633):
    t = Transformer.from_crs(epsg, 4326, always_xy=True)
    (w, e), (s, n) = t.transform([x0, x1], [y0, y1])[0], t.transform([x0, x1], [y0, y1])[1]
    return [min(w, e), min(s, n), max(w, e), max(s, n)]


X0, Y0 = GEN_ORIGIN
INSIDE_A = _bbox(X0 + 300, Y0 - 1700, X0 + 1500, Y0 - 300)  # only scene A
ACROSS = _bbox(X0 + 1000, Y0 - 1700, X0 + 4600, Y0 - 300)  # needs A and B


def test_server_speaks_stac_and_ranges(gen_stac_server):
    srv = gen_stac_server
    landing = json.loads(urllib.request.urlopen(srv.url + "/").read())
    assert any("item-search" in c for c in landing["conformsTo"])
    item = srv.items[0]
    href = srv.url + "/" + item["assets"]["blue"]["href"]
    req = urllib.request.Request(href, headers={"Range": "bytes=0-15"})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 206 and len(resp.read()) == 16
    assert {"proj:epsg", "proj:transform"} <= set(item["properties"])
    assert "raster:bands" in item["assets"]["blue"] and "eo:bands" in item["assets"]["blue"]


def test_fetch_removes_boa_offset_and_keeps_scale(gen_stac_server, gen_scene_dir, tmp_path):
    rec = fetch_stac(
        INSIDE_A,
        "2023-06-01",
        "2023-06-30",
        tmp_path / "ws",
        stac_url=gen_stac_server.url,
        chips=ChipSettings(32),
        **FAST,
    )
    assert [s["id"] for s in rec["scenes"]] == ["S2A_gen_20230610_A"]
    assert rec["scenes"][0]["boa_offset_dn"] == -1000.0
    ws = Workspace.open(tmp_path / "ws")
    table = ws.chip_table()
    assert set(CHIP_COLUMNS) <= set(table.columns)
    assert (table["cloud_fraction"] == 0).all() and (table["gsd"] == 10.0).all()
    assert str(table["datetime"].iloc[0]) == "2023-06-10 10:20:00+00:00"
    raw = s2_scene((200, 300), seed=1, offset_dn=1000).astype(np.float32)
    # the chip grid starts where the bbox snaps; find the chip's pixel offset in scene A
    x, y = table["transform"].iloc[0][2], table["transform"].iloc[0][5]
    col0, row0 = int(round((x - X0) / 10)), int(round((Y0 - y) / 10))
    chip = ws.read_chips([0])[0]
    np.testing.assert_allclose(chip[:, 5, 5], raw[:, row0 + 5, col0 + 5] - 1000)
    assert ws.open_array("chips.zarr", "pixels").attrs["offset"] == [0.0] * 10


def test_fetch_mosaics_two_scenes(gen_stac_server, tmp_path):
    rec = fetch_stac(
        ACROSS,
        "2023-06-01",
        "2023-06-30",
        tmp_path / "ws",
        stac_url=gen_stac_server.url,
        chips=ChipSettings(32),
        **FAST,
    )
    ids = [s["id"] for s in rec["scenes"]]
    assert ids == ["S2A_gen_20230610_A", "S2B_gen_20230612_B"]  # least cloudy first
    table = Workspace.open(tmp_path / "ws").chip_table()
    sources = set(table["source"])
    assert "S2A_gen_20230610_A" in sources and "S2B_gen_20230612_B" in sources
    assert table["valid_fraction"].min() >= 0.5


def test_planetary_computer_asset_names_and_signing(gen_stac_server_pc, tmp_path):
    srv = gen_stac_server_pc
    rec = fetch_stac(
        INSIDE_A,
        "2023-06-01",
        "2023-06-30",
        tmp_path / "ws",
        stac_url=srv.url,
        chips=ChipSettings(32),
        sign=True,
        token_url=srv.url + "/api/sas/v1/token/{collection}",
        **FAST,
    )
    assert rec["chips"] > 0 and rec["scenes"][0]["scl"] is True
    assert "GET /api/sas/v1/token/sentinel-2-l2a" in srv.requests


def test_all_chips_cloudy(gen_stac_server, tmp_path):
    with pytest.raises(NoScenesError, match="Every chip was dropped.*cloud.*--max-chip-cloud"):
        fetch_stac(
            INSIDE_A,
            "2023-07-01",
            "2023-07-30",
            tmp_path / "ws",
            stac_url=gen_stac_server.url,
            chips=ChipSettings(32),
            max_cloud=80,
            **FAST,
        )
    assert Workspace.open(tmp_path / "ws").stage("chips")["dropped_cloud"] > 0


def test_no_scenes_says_which_filter_to_relax(gen_stac_server, tmp_path):
    with pytest.raises(NoScenesError, match=r"more than 10% cloud.*least cloudy: 60%.*--max-cloud to at least 60"):
        fetch_stac(
            INSIDE_A, "2023-07-01", "2023-07-30", tmp_path / "a", stac_url=gen_stac_server.url, max_cloud=10, **FAST
        )
    with pytest.raises(NoScenesError, match=r"between 2001-01-01 and 2001-02-01.*Widen the date range"):
        fetch_stac(INSIDE_A, "2001-01-01", "2001-02-01", tmp_path / "b", stac_url=gen_stac_server.url, **FAST)
    with pytest.raises(NoScenesError, match="no collection 'nope'.*sentinel-2-l2a"):
        fetch_stac(
            INSIDE_A,
            "2023-06-01",
            "2023-06-30",
            tmp_path / "c",
            stac_url=gen_stac_server.url,
            collection="nope",
            sensor="naip",
            **FAST,
        )
    assert not (tmp_path / "a").exists()


def test_bad_area_is_refused_before_any_request(gen_stac_server, tmp_path):
    n = len(gen_stac_server.requests)
    with pytest.raises(AreaError):
        fetch_stac([13.0, 47.0, 14.0, 48.0], "2023-06-01", "2023-06-30", tmp_path / "ws", stac_url=gen_stac_server.url)
    assert len(gen_stac_server.requests) == n


def test_endpoint_unreachable(tmp_path):
    with pytest.raises(NetworkError, match=r"127.0.0.1:9.*failed.*--stac-url"):
        fetch_stac(
            INSIDE_A, "2023-06-01", "2023-06-30", tmp_path / "ws", stac_url="http://127.0.0.1:9", timeout=1, retries=1
        )


def test_endpoint_5xx_bounded_retries(gen_stac_server, tmp_path):
    srv = gen_stac_server
    srv.faults.status = 503
    n = len(srv.requests)
    with pytest.raises(NetworkError, match="failed after 3 tries"):
        fetch_stac(INSIDE_A, "2023-06-01", "2023-06-30", tmp_path / "ws", stac_url=srv.url, timeout=2, retries=2)
    assert len(srv.requests) - n == 3  # one try + two retries, then stop


def test_endpoint_transient_5xx_recovers(gen_stac_server, tmp_path):
    srv = gen_stac_server
    srv.faults.status, srv.faults.count = 502, 1
    rec = fetch_stac(
        INSIDE_A,
        "2023-06-01",
        "2023-06-30",
        tmp_path / "ws",
        stac_url=srv.url,
        chips=ChipSettings(32),
        timeout=2,
        retries=2,
    )
    assert rec["chips"] > 0 and srv.faults.hits == 1


def test_endpoint_slow_times_out(gen_stac_server, tmp_path):
    srv = gen_stac_server
    srv.faults.delay = 1.5
    with pytest.raises(NetworkError, match="timed out"):
        fetch_stac(INSIDE_A, "2023-06-01", "2023-06-30", tmp_path / "ws", stac_url=srv.url, timeout=0.3, retries=1)


def test_select_cover_prefers_least_cloudy(gen_stac_server):
    aoi = validate_bbox(ACROSS)
    items = search_scenes(
        aoi,
        "2023-06-01",
        "2023-07-30",
        stac_url=gen_stac_server.url,
        max_cloud=100,
        policy=NetPolicy(timeout=2, retries=1),
    )
    assert [i.id for i in items][0] == "S2A_gen_20230610_A"
    assert [i.id for i in select_cover(items, aoi)] == ["S2A_gen_20230610_A", "S2B_gen_20230612_B"]


# ----------------------------------------------------------------------------- real samples
SAMPLE_CASES = {
    "s2-100m": ("sentinel-2-l2a", [-11.60, 24.90, -11.45, 25.05], "2020-02-01", "2020-02-28", 64, 100.0),
    "s2-bigearthnet": ("sentinel-2-l2a", [13.714, 48.218, 13.728, 48.227], "2017-06-01", "2017-06-30", 64, 10.0),
    "landsat": ("landsat-c2-l2", [-3.19, 53.45, -3.01, 53.51], "2020-09-01", "2020-09-30", 128, 30.0),
    "naip": ("naip", [-99.18, 47.005, -99.13, 47.035], "2018-01-01", "2018-12-31", 256, 5.0),
}


@pytest.mark.parametrize("case", sorted(SAMPLE_CASES))
def test_fetch_real_samples(stac_server, tmp_path, case):
    collection, bbox, start, end, chip, gsd = SAMPLE_CASES[case]
    rec = fetch_stac(
        bbox,
        start,
        end,
        tmp_path / "ws",
        stac_url=stac_server.url,
        collection=collection,
        chips=ChipSettings(chip),
        max_cloud=50,
        **FAST,
    )
    ws = Workspace.open(tmp_path / "ws")
    table = ws.chip_table()
    assert rec["chips"] == len(table) >= 1
    assert table["gsd"].iloc[0] == pytest.approx(gsd)
    x = ws.read_chips([0])
    assert np.nanmean(x) > 0


def test_asset_errors_retried_then_reported(gen_scene_dir, tmp_path):
    from stac_server import start_stac_server

    srv = start_stac_server(gen_scene_dir, workdir=tmp_path / "assets")  # fresh URLs: nothing in GDAL's cache
    try:
        srv.faults.status, srv.faults.only_assets = 503, True
        with pytest.raises(NetworkError, match=r"S2A_gen_20230610_A failed after 2 tries.*try again later"):
            fetch_stac(
                INSIDE_A,
                "2023-06-01",
                "2023-06-30",
                tmp_path / "ws",
                stac_url=srv.url,
                chips=ChipSettings(32),
                timeout=2,
                retries=1,
            )
        assert srv.faults.hits >= 2
    finally:
        srv.stop()
