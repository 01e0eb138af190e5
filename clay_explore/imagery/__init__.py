"""Imagery in, chips out: STAC search/load, local GeoTIFF ingest, the offline demo scene, chipping.

Importing this package is cheap: the heavy libraries (rasterio, odc-stac, pystac-client, zarr)
are imported inside the functions that need them. Entry points, one per source:

- :func:`clay_explore.imagery.stac.fetch_stac` -- search a STAC API, load, mosaic, chip.
- :func:`clay_explore.imagery.geotiff.ingest_geotiff` -- chip a local GeoTIFF/COG (appends to a
  compatible workspace); :func:`~clay_explore.imagery.geotiff.ingest_geotiffs` -- several files.
- :func:`clay_explore.imagery.demo.ingest_demo` -- chip the offline demo scene.

Each takes how to cut chips as one :class:`clay_explore.imagery.chipping.ChipSettings` (``chips=``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "fetch_stac": "clay_explore.imagery.stac",
    "search_scenes": "clay_explore.imagery.stac",
    "ingest_geotiff": "clay_explore.imagery.geotiff",
    "ingest_geotiffs": "clay_explore.imagery.geotiff",
    "ingest_demo": "clay_explore.imagery.demo",
    "validate_bbox": "clay_explore.imagery.aoi",
    "chip_source": "clay_explore.imagery.chipping",
    "ChipSettings": "clay_explore.imagery.chipping",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clay_explore.imagery' has no attribute {name!r}")
