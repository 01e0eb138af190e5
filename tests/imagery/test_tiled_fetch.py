"""Large areas in one fetch: tiles of one request each, an area across a UTM zone boundary, resume.

The loopback STAC server serves two generated Sentinel-2 scenes on either side of 12 E at 47 N:
one in UTM zone 32 (EPSG:32632), one in zone 33 (EPSG:32633), as real S2 tiles overlap there.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from gen_data import write_s2
from pyproj import Transformer
from stac_server import start_stac_server

from clay_explore.core.errors import AreaError, WorkspaceError
from clay_explore.core.workspace import Workspace
from clay_explore.imagery.chipping import ChipSettings
from clay_explore.imagery.tiles import fetch_area, needs_tiles, plan_tiles

FAST = dict(timeout=5.0, retries=1)
CHIP = 32  # px; 320 m at 10 m
RES = 10.0
TILE_KM = 1.0  # three chips per tile side: several tiles over the small area below
#: An area crossing the zone 32/33 boundary (12 E); its centre lies in zone 32.
ACROSS_ZONES = [11.985, 47.000, 12.005, 47.010]
SCL_VEGETATION = 4


def _origin(lon: float, lat: float, epsg: int) -> tuple[float, float]:
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    return round(x / RES) * RES, round(y / RES) * RES


@pytest.fixture(scope="module")
def zone_server(tmp_path_factory):
    """STAC API over one scene west of 12 E (zone 32) and one east of it (zone 33)."""
    folder = tmp_path_factory.mktemp("zones")
    shape = (180, 130)  # 1.8 x 1.3 km each, overlapping the boundary a little
    write_s2(
        folder,
        "S2A_zone32_20230610",
        shape=shape,
        origin=_origin(11.982, 47.013, 32632),
        epsg=32632,
        scl=np.full(shape, SCL_VEGETATION),
        properties={"eo:cloud_cover": 5.0, "s2:processing_baseline": "05.09"},
        tags={"ACQUISITION_DATETIME": "2023-06-10T10:20:00Z"},
        seed=5,
    )
    write_s2(
        folder,
        "S2B_zone33_20230612",
        shape=shape,
        origin=_origin(11.997, 47.013, 32633),
        epsg=32633,
        scl=np.full(shape, SCL_VEGETATION),
        properties={"eo:cloud_cover": 8.0, "s2:processing_baseline": "05.09"},
        tags={"ACQUISITION_DATETIME": "2023-06-12T10:20:00Z"},
        seed=6,
    )
    srv = start_stac_server(folder, workdir=tmp_path_factory.mktemp("zone_assets"))
    yield srv
    srv.stop()


def test_plan_tiles_are_chip_aligned_and_cover_the_area():
    plan = plan_tiles(ACROSS_ZONES, chip_size=CHIP, resolution=RES, tile_km=TILE_KM)
    assert plan.epsg == 32632 and plan.zones == [32, 33] and plan.tiled and len(plan.tiles) > 1
    assert "reprojected into one zone, EPSG:32632" in plan.describe()
    step = CHIP * RES
    xs, ys = set(), set()
    for tile in plan.tiles:
        x0, y0, x1, y1 = tile.bounds
        assert all(abs(v / step - round(v / step)) < 1e-9 for v in tile.bounds)  # on the chip grid
        assert x1 - x0 <= TILE_KM * 1000 and y1 - y0 <= TILE_KM * 1000
        assert tile.shape == (round((y1 - y0) / RES), round((x1 - x0) / RES))
        xs.update((x0, x1)), ys.update((y0, y1))
    area = sum((t.bounds[2] - t.bounds[0]) * (t.bounds[3] - t.bounds[1]) for t in plan.tiles)
    assert area == pytest.approx((max(xs) - min(xs)) * (max(ys) - min(ys)))  # no overlap, no gap


def test_what_needs_tiles_and_what_is_refused():
    assert not needs_tiles([13.65, 47.85, 13.70, 47.87])  # small, one zone: one request as before
    assert needs_tiles(ACROSS_ZONES)  # crosses 12 E
    assert not needs_tiles(ACROSS_ZONES, epsg=32633)  # one forced CRS, small: one request
    assert needs_tiles([10.0, 45.0, 10.6, 45.3])  # 47 x 33 km > one 30 km request
    with pytest.raises(AreaError, match="larger than the 100 x 100 km cap"):
        plan_tiles([10.0, 45.0, 12.0, 46.0], max_km=100)
    with pytest.raises(AreaError, match="--epsg"):
        plan_tiles([10.0, 84.1, 10.5, 84.3])


def test_area_across_a_utm_boundary_is_fetched_as_tiles_into_one_zone(zone_server, tmp_path):
    root = tmp_path / "ws"
    seen = []
    rec = fetch_area(
        ACROSS_ZONES,
        "2023-06-01",
        "2023-06-30",
        root,
        stac_url=zone_server.url,
        chips=ChipSettings(CHIP),
        tile_km=TILE_KM,
        progress=lambda done, total, info: seen.append((done, total)),
        **FAST,
    )
    assert rec["tiling"]["epsg"] == 32632 and rec["tiling"]["zones"] == [32, 33]
    assert rec["tiling"]["tiles"] == len(rec["tiles"]) > 1
    ws = Workspace.open(root)
    table = ws.chip_table()
    assert rec["chips"] == ws.n_chips() == len(table) > 0
    assert set(table["crs"]) == {"EPSG:32632"}
    assert ws.stage("chips")["status"] == "complete"
    sources = "+".join(table["source"])
    assert "S2A_zone32_20230610" in sources and "S2B_zone33_20230612" in sources  # both zones' scenes
    step = CHIP * RES
    origins = [(round(t[2], 6), round(t[5], 6)) for t in table["transform"]]
    assert len(set(origins)) == len(origins)  # no chip twice
    assert all(
        abs(x / step - round(x / step)) < 1e-9 and abs(y / step - round(y / step)) < 1e-9 for x, y in origins
    )  # one chip grid across tiles
    assert np.isfinite(ws.read_chips(range(ws.n_chips()))).any(axis=(1, 2, 3)).all()
    assert seen[-1][0] <= seen[-1][1] == sum(t["windows"] for t in rec["tiles"])

    again = fetch_area(
        ACROSS_ZONES,
        "2023-06-01",
        "2023-06-30",
        root,
        stac_url=zone_server.url,
        chips=ChipSettings(CHIP),
        tile_km=TILE_KM,
        **FAST,
    )
    assert again["resumed"] and Workspace.open(root).n_chips() == rec["chips"]  # finished tiles are skipped
    with pytest.raises(WorkspaceError, match="another fetch or tiling"):  # other tiles would repeat chips
        fetch_area(
            ACROSS_ZONES,
            "2023-06-01",
            "2023-06-30",
            root,
            stac_url=zone_server.url,
            chips=ChipSettings(CHIP),
            tile_km=2 * TILE_KM,
            **FAST,
        )
    assert Workspace.open(root).n_chips() == rec["chips"]


def test_cli_fetch_states_the_tiling_choice(zone_server, tmp_path):
    from clay_explore.cli.main import cli

    result = CliRunner().invoke(
        cli,
        [
            "fetch",
            "--bbox",
            *map(str, ACROSS_ZONES),
            "--start",
            "2023-06-01",
            "--end",
            "2023-06-30",
            "--stac-url",
            zone_server.url,
            "--chip-size",
            str(CHIP),
            "--tile-km",
            str(TILE_KM),
            "-w",
            str(tmp_path / "ws"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "crosses UTM zones 32, 33" in result.output and "EPSG:32632" in result.output
    assert "Stored" in result.output
