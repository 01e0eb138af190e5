"""Pure grid maths of chipping: where the windows lie, what a chip's valid and cloud fractions are,
whether it is kept, and where its footprint and ground sample distance are.

No I/O and no workspace: ``imagery.chipping`` (the resumable writer) calls these, and they are
tested on their own. Arrays are numpy; grids are (height, width) pixels with an affine transform.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from clay_explore.core.bounds import check_chip_size_bound, check_window_count
from clay_explore.core.errors import ImageryError

#: Clay's patch side: a chip side must be a multiple of it.
PATCH_PX = 8
#: Metres per degree of latitude (for grids in geographic coordinates).
METRES_PER_DEGREE = 111_320.0
#: Points per chip edge when projecting footprints to EPSG:4326 (edges curve after reprojection).
FOOTPRINT_POINTS = 8
#: Why a window is not kept as a chip.
DROPPED_NODATA, DROPPED_CLOUD = "nodata", "cloud"


def check_chip_size(chip_size: int) -> int:
    """Chip size must be a positive multiple of 8 (Clay's patch size)."""
    if int(chip_size) != chip_size or chip_size < PATCH_PX or chip_size % PATCH_PX:
        raise ImageryError(f"Chip size {chip_size} must be a multiple of 8 (e.g. 64, 128 or 256 px).")
    check_chip_size_bound(chip_size)  # the upper limit, before any chip is allocated
    return int(chip_size)


def chip_grid(height: int, width: int, chip: int, stride: int) -> list[tuple[int, int]]:
    """Top-left (row, col) of every chip window covering a height x width grid, row-major.

    Windows start every ``stride`` px; the last one in each direction may run past the edge
    (it is padded), and a scene smaller than one chip still gets one window.
    """

    def starts(n: int) -> list[int]:
        last = max(n - chip, 0)
        out = list(range(0, last + 1, stride))
        if out[-1] + chip < n:  # cover the remainder with one more (padded) window
            out.append(out[-1] + stride)
        return out

    rows, cols = starts(height), starts(width)
    check_window_count(len(rows) * len(cols))  # before the list of windows is built
    return [(r, c) for r in rows for c in cols]


def chip_fractions(data: np.ndarray, cloud: np.ndarray | None) -> tuple[float, float | None]:
    """(valid fraction, cloud fraction of the valid pixels or None when unknown) of a chip [C, H, W]."""
    valid = np.isfinite(data).all(axis=0)
    vf = float(valid.mean())
    if cloud is None:
        return vf, None
    n_valid = int(valid.sum())
    return vf, float((cloud & valid).sum() / n_valid) if n_valid else 0.0


def drop_reason(
    valid_fraction: float, cloud_fraction: float | None, min_valid: float, max_chip_cloud: float
) -> str | None:
    """Why a chip with these fractions is dropped (``DROPPED_NODATA`` / ``DROPPED_CLOUD``), None to keep it.

    A chip without any valid pixel is dropped even with ``min_valid`` 0.
    """
    if valid_fraction < min_valid or valid_fraction == 0:
        return DROPPED_NODATA
    if cloud_fraction is not None and cloud_fraction > max_chip_cloud:
        return DROPPED_CLOUD
    return None


def footprint_ring(chip: int, points: int = FOOTPRINT_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (col, row) coordinates around a chip's edge, ``points`` per side, for its footprint polygon."""
    edge = np.linspace(0, chip, points + 1)
    cols = np.concatenate([edge, np.full_like(edge, chip), edge[::-1], np.zeros_like(edge)])
    rows = np.concatenate([np.zeros_like(edge), edge, np.full_like(edge, chip), edge[::-1]])
    return cols, rows


def apply_affine(t: Any, col: Any, row: Any) -> tuple[Any, Any]:
    """Map pixel (col, row) through affine ``t`` to CRS (x, y); works on arrays."""
    return t.a * col + t.b * row + t.c, t.d * col + t.e * row + t.f


def gsd_metres(crs: Any, transform: Any, lat: float) -> float:
    """Ground sample distance in metres from the grid's transform (not the registry)."""
    pixel = math.sqrt(abs(transform.a * transform.e - transform.b * transform.d))
    if crs is not None and crs.is_geographic:
        return pixel * METRES_PER_DEGREE * math.sqrt(abs(math.cos(math.radians(lat))))
    factor = 1.0
    try:
        factor = float(crs.linear_units_factor[1])
    except Exception:  # unknown units: assume metres
        factor = 1.0
    return pixel * factor


def crs_string(crs: Any) -> str:
    """'EPSG:xxxx' when the CRS has a code, else its WKT."""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()
