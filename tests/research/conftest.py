"""Fixtures for the research core: small workspaces with real or generated chips, the tiny model.

Real chips are 64 px windows of the BigEarthNet Sentinel-2 samples in ../shared (4 overlapping
windows per 120 px file, with the files' labels, dates and places); generated chips are smooth
random fields in Sentinel-2 DN with a nodata corner, so every code path also runs without ../shared.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from clay_explore.core.sensors import get_sensor
from clay_explore.core.workspace import CHIP_TABLE, CHIPS_ZARR, Workspace

SENSOR = "sentinel-2-l2a"
CHIP = 64
BIGEARTHNET = (
    "s2l2a_bigearthnet_austria_20170613_87_48_10band.tif",
    "s2l2a_bigearthnet_ireland_20170617_36_85_10band.tif",
    "s2l2a_bigearthnet_finland_20170924_69_24_10band.tif",
)


def make_workspace(root: Path, pixels: np.ndarray, rows: list[dict], *, chip_size: int = CHIP) -> Workspace:
    """Write a workspace holding ``pixels`` [N, C, H, W] (raw DN, NaN nodata) and a chip table."""
    import geopandas as gpd
    from shapely.geometry import box

    sensor = get_sensor(SENSOR)
    ws = Workspace.create(root, sensor=SENSOR, bands=sensor.band_names, chip_size=chip_size, source={"kind": "test"})
    arr = ws.create_array(CHIPS_ZARR, "pixels", shape=pixels.shape, dtype="float32")
    arr[:] = pixels.astype(np.float32)
    ws.mark_done(CHIPS_ZARR, "pixels", range(len(pixels)))
    table = pd.DataFrame(rows)
    geoms = [box(r["lon"] - 0.003, r["lat"] - 0.003, r["lon"] + 0.003, r["lat"] + 0.003) for r in rows]
    gdf = gpd.GeoDataFrame(table, geometry=geoms, crs="EPSG:4326")
    ws.write_table(CHIP_TABLE, gdf)
    ws.set_stage("chips", status="complete", n_chips=len(pixels))
    return ws


def _row(i: int, lat: float, lon: float, when: datetime | None, gsd: float, labels: str | None, valid: float) -> dict:
    return {
        "chip_id": f"chip-{i:03d}",
        "crs": "EPSG:4326",
        "transform": [1.0, 0.0, 0.0, 0.0, -1.0, 0.0],
        "row": 0,
        "col": 0,
        "lat": lat,
        "lon": lon,
        "datetime": pd.Timestamp(when) if when is not None else pd.NaT,
        "gsd": gsd,
        "valid_fraction": valid,
        "cloud_fraction": None,
        "source": "test",
        "labels": labels,
    }


def generated_chips(n: int = 10, size: int = CHIP, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    """Smooth random fields in Sentinel-2 DN (per-band mean/std), one chip with a NaN corner."""
    mean, std, _ = get_sensor(SENSOR).stats()
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.normal(size=(n, 1, size, size)), sigma=(0, 0, 4, 4))
    field /= field.std() + 1e-9
    noise = 0.2 * rng.normal(size=(n, len(mean), size, size))
    pixels = (mean[None, :, None, None] + std[None, :, None, None] * 0.5 * (field + noise)).clip(1, None)
    pixels = pixels.astype(np.float32)
    pixels[0, :, :8, :8] = np.nan
    when = datetime(2021, 6, 1, 11, tzinfo=UTC)
    labels = ["forest", "water"]
    rows = [
        _row(i, 45.0 + 0.01 * i, 7.0 + 0.01 * i, when if i % 3 else None, 10.0, labels[i % 2], 1.0 if i else 0.98)
        for i in range(n)
    ]
    return pixels, rows


def real_chips(samples: Path, size: int = CHIP) -> tuple[np.ndarray, list[dict]]:
    """4 overlapping 64 px windows of each BigEarthNet sample (real L2A DN, nodata 0 -> NaN)."""
    import rasterio
    from rasterio.warp import transform_bounds

    chips, rows = [], []
    for name in BIGEARTHNET:
        with rasterio.open(samples / "sentinel2" / name) as src:
            data = src.read().astype(np.float32)
            west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
            when = datetime.strptime(src.tags()["ACQUISITION_DATETIME"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            labels = src.tags().get("LABELS")
        data[data == 0] = np.nan
        h, w = data.shape[1:]
        for r0 in (0, h - size):
            for c0 in (0, w - size):
                chips.append(data[:, r0 : r0 + size, c0 : c0 + size])
                rows.append(
                    _row(
                        len(rows),
                        (south + north) / 2,
                        (west + east) / 2,
                        when,
                        10.0,
                        labels,
                        float(np.isfinite(chips[-1]).all(0).mean()),
                    )
                )
    return np.stack(chips), rows


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint):
    """The parity fixture's tiny Clay (random weights, dim 64, decoder 32)."""
    from clay_explore.model import ClayModel

    return ClayModel.from_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="session")
def generated_template(tmp_path_factory) -> Path:
    """A workspace of generated chips (no tokens yet)."""
    root = tmp_path_factory.mktemp("gen") / "ws"
    pixels, rows = generated_chips()
    make_workspace(root, pixels, rows)
    return root


@pytest.fixture(scope="session")
def real_template(tmp_path_factory, samples_dir) -> Path:
    """A workspace of 12 real BigEarthNet chips (no tokens yet)."""
    root = tmp_path_factory.mktemp("real") / "ws"
    pixels, rows = real_chips(samples_dir)
    make_workspace(root, pixels, rows)
    return root


def _embedded(template: Path, tmp_path_factory, tiny_model, name: str) -> Path:
    from clay_explore.research.embed import embed_workspace

    root = tmp_path_factory.mktemp(name) / "ws"
    shutil.copytree(template, root)
    embed_workspace(root, model=tiny_model, batch_size=4, show_progress=False)
    return root


@pytest.fixture(scope="session")
def generated_embedded(generated_template, tmp_path_factory, tiny_model) -> Path:
    return _embedded(generated_template, tmp_path_factory, tiny_model, "genemb")


@pytest.fixture(scope="session")
def real_embedded(real_template, tmp_path_factory, tiny_model) -> Path:
    return _embedded(real_template, tmp_path_factory, tiny_model, "realemb")


@pytest.fixture
def copy_ws(tmp_path):
    """Copy a template workspace into this test's tmp folder (tests may write into it)."""

    def _copy(template: Path) -> Path:
        dest = tmp_path / "ws"
        shutil.copytree(template, dest)
        return dest

    return _copy


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
