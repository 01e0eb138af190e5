"""Imagery fixtures: generated scenes and real local STAC API servers on 127.0.0.1.

``stac_server`` serves the real samples in ../shared/data/samples (skips when absent);
``gen_stac_server`` serves generated scenes, so the STAC path is covered without ../shared.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from gen_data import write_s2  # noqa: E402
from stac_server import start_stac_server  # noqa: E402

# Generated S2 area: UTM 33N, 10 m; origin x 400000 / y 5300000 is about 13.65 E, 47.85 N.
GEN_ORIGIN = (400_000.0, 5_300_000.0)
SCL_VEGETATION, SCL_CLOUD_HIGH = 4, 9


def _gen_scenes(folder: Path) -> Path:
    h, w = 200, 300
    # A: least cloudy, new processing baseline (+1000 DN), left 2/3 of the area, SCL all clear
    write_s2(
        folder,
        "S2A_gen_20230610_A",
        shape=(h, w),
        origin=GEN_ORIGIN,
        offset_dn=1000,
        scl=np.full((h, w), SCL_VEGETATION),
        properties={"eo:cloud_cover": 5.0, "s2:processing_baseline": "05.09"},
        tags={"ACQUISITION_DATETIME": "2023-06-10T10:20:00Z"},
        seed=1,
    )
    # B: cloudier, old baseline, shifted 2 km east: completes the mosaic
    write_s2(
        folder,
        "S2B_gen_20230612_B",
        shape=(h, w),
        origin=(GEN_ORIGIN[0] + 2000, GEN_ORIGIN[1]),
        scl=np.full((h, w), SCL_VEGETATION),
        properties={"eo:cloud_cover": 15.0, "s2:processing_baseline": "02.14"},
        tags={"ACQUISITION_DATETIME": "2023-06-12T10:20:00Z"},
        seed=2,
    )
    # C: fully clouded scene a month later, same place as A
    write_s2(
        folder,
        "S2A_gen_20230710_C",
        shape=(h, w),
        origin=GEN_ORIGIN,
        scl=np.full((h, w), SCL_CLOUD_HIGH),
        properties={"eo:cloud_cover": 60.0, "s2:processing_baseline": "05.09"},
        tags={"ACQUISITION_DATETIME": "2023-07-10T10:20:00Z"},
        seed=3,
    )
    return folder


@pytest.fixture(scope="session")
def gen_scene_dir(tmp_path_factory) -> Path:
    """Folder of generated S2 scenes (with SCL and STAC property sidecars)."""
    return _gen_scenes(tmp_path_factory.mktemp("gen_scenes"))


@pytest.fixture(scope="session")
def gen_stac_server(gen_scene_dir, tmp_path_factory):
    """STAC API (Earth Search style asset keys) over the generated scenes."""
    srv = start_stac_server(gen_scene_dir, workdir=tmp_path_factory.mktemp("gen_assets"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def gen_stac_server_pc(gen_scene_dir, tmp_path_factory):
    """The same scenes with Planetary-Computer-style asset keys (B02.., SCL)."""
    srv = start_stac_server(gen_scene_dir, workdir=tmp_path_factory.mktemp("gen_assets_pc"), style="planetary-computer")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def stac_server(samples_dir, tmp_path_factory):
    """STAC API over the real samples in ../shared/data/samples (assets converted to COGs)."""
    srv = start_stac_server(samples_dir, workdir=tmp_path_factory.mktemp("sample_assets"))
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _reset_faults(request):
    """Clear injected faults after every test that used a server."""
    yield
    for name in ("gen_stac_server", "gen_stac_server_pc", "stac_server"):
        if name in request.fixturenames:
            srv = request.getfixturevalue(name)
            srv.faults.delay, srv.faults.status, srv.faults.count, srv.faults.hits = 0.0, None, 0, 0
            srv.faults.assets = srv.faults.only_assets = False


def pytest_configure(config):
    # affine 2.4 deprecates `*` for composition; odc-geo/rasterio still use it (not our code)
    config.addinivalue_line("filterwarnings", "ignore:Use `@` matmul:PendingDeprecationWarning")
