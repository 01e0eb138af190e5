"""Seeded generators of small georeferenced rasters, so imagery tests run without ../shared."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20241121
S2_CODES = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
S2_MEANS = (1105, 1355, 1552, 1887, 2422, 2630, 2743, 2785, 2388, 1835)


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, scale: int = 16) -> np.ndarray:
    """A spatially coherent field in [0, 1] (blocky noise, bilinearly smoothed)."""
    h, w = shape
    coarse = rng.random((h // scale + 2, w // scale + 2))
    yi = np.linspace(0, coarse.shape[0] - 1.001, h)
    xi = np.linspace(0, coarse.shape[1] - 1.001, w)
    y0, x0 = yi.astype(int), xi.astype(int)
    fy, fx = (yi - y0)[:, None], (xi - x0)[None, :]
    c = coarse
    return (
        (1 - fy) * (1 - fx) * c[y0][:, x0]
        + fy * (1 - fx) * c[y0 + 1][:, x0]
        + (1 - fy) * fx * c[y0][:, x0 + 1]
        + fy * fx * c[y0 + 1][:, x0 + 1]
    )


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    epsg: int | None = 32633,
    origin: tuple[float, float] = (400_000.0, 5_300_000.0),
    res: float = 10.0,
    nodata: float | None = 0,
    tags: dict[str, str] | None = None,
    descriptions: Sequence[str] | None = None,
    transform: Any = None,
) -> Path:
    """Write [C, H, W] ``data`` as a tiled GeoTIFF."""
    import rasterio
    from rasterio.transform import from_origin

    path.parent.mkdir(parents=True, exist_ok=True)
    c, h, w = data.shape
    prof: dict[str, Any] = dict(
        driver="GTiff",
        count=c,
        height=h,
        width=w,
        dtype=data.dtype.name,
        tiled=True,
        blockxsize=64,
        blockysize=64,
        compress="deflate",
    )
    if epsg is not None:
        prof["crs"] = f"EPSG:{epsg}"
    if transform is not False:
        prof["transform"] = transform or from_origin(origin[0], origin[1], res, res)
    if nodata is not None:
        prof["nodata"] = nodata
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(data)
        if tags:
            ds.update_tags(**tags)
        for i, d in enumerate(descriptions or (), start=1):
            ds.set_band_description(i, d)
    return path


def s2_scene(shape: tuple[int, int] = (200, 300), *, seed: int = SEED, offset_dn: int = 0) -> np.ndarray:
    """uint16 [10, H, W] Sentinel-2-like DN (reflectance x 10000 + ``offset_dn``)."""
    rng = np.random.default_rng(seed)
    base = smooth_field(shape, rng)
    bands = [np.clip(m * (0.5 + base) + rng.normal(0, 30, shape), 1, 10000) + offset_dn for m in S2_MEANS]
    return np.stack(bands).astype(np.uint16)


def write_s2(
    folder: Path,
    name: str,
    *,
    shape: tuple[int, int] = (200, 300),
    origin: tuple[float, float] = (400_000.0, 5_300_000.0),
    epsg: int = 32633,
    res: float = 10.0,
    seed: int = SEED,
    offset_dn: int = 0,
    scl: np.ndarray | None = None,
    properties: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> Path:
    """A 10-band S2 stack (+ optional SCL sidecar and STAC property sidecar for the test server)."""
    path = write_raster(
        folder / f"{name}.tif",
        s2_scene(shape, seed=seed, offset_dn=offset_dn),
        epsg=epsg,
        origin=origin,
        res=res,
        descriptions=[f"{c}" for c in S2_CODES],
        tags=tags,
    )
    if scl is not None:
        write_raster(
            folder / f"{name}.scl.tif", scl[None].astype(np.uint8), epsg=epsg, origin=origin, res=res, nodata=None
        )
    if properties:
        (folder / f"{name}.json").write_text(json.dumps(properties))
    return path
