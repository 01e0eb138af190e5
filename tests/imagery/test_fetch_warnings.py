"""Fetching a reprojected scene prints no library warnings (NotGeoreferencedWarning)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from gen_data import smooth_field, write_raster
from rasterio.errors import NotGeoreferencedWarning
from stac_server import start_stac_server

from clay_explore.imagery.chipping import ChipSettings
from clay_explore.imagery.stac import fetch_stac


def _naip_scene(folder: Path) -> Path:
    """A 4-band uint8 NAIP-like file in NAD83 / UTM 14N (fetch reprojects it to WGS84 UTM)."""
    rng = np.random.default_rng(3)
    f = smooth_field((240, 240), rng)
    data = np.stack([40 + 150 * f * (0.8 + 0.1 * i) for i in range(4)]).astype(np.uint8)
    return write_raster(
        folder / "naip" / "m_4709963_se_14_1_20180716.tif",
        data,
        epsg=26914,
        origin=(491_000.0, 5_206_000.0),
        res=1.0,
        nodata=None,
    )


def test_fetch_shows_no_not_georeferenced_warning(tmp_path):
    _naip_scene(tmp_path / "scenes")
    srv = start_stac_server(tmp_path / "scenes", workdir=tmp_path / "assets")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rec = fetch_stac(
                [-99.1180, 47.0056, -99.1156, 47.0072],
                "2018-07-01",
                "2018-07-31",
                tmp_path / "ws",
                stac_url=srv.url,
                collection="naip",
                chips=ChipSettings(64),
                timeout=5.0,
                retries=1,
            )
    finally:
        srv.stop()
    assert rec["chips"] >= 1
    assert not [w for w in caught if issubclass(w.category, NotGeoreferencedWarning)]
