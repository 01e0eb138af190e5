"""Stage inputs the research stages share: per-chip model metadata, normalised chips, gsd batches, token reads.

Embed reads chips through these; fit, evaluate, vectors and reconstruct read the stored tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from clay_explore.core.sensors import encode_latlon, encode_time, normalize
from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace, read_rows

EMBED_STAGE = "embed"
#: Decimals to which chip gsd values are rounded before grouping them into batches.
GSD_DECIMALS = 6


@dataclass(frozen=True)
class ChipMeta:
    """Per-chip model inputs from the chip table: time [N, 4], latlon [N, 4], gsd [N] (metres)."""

    time: np.ndarray
    latlon: np.ndarray
    gsd: np.ndarray

    @cached_property
    def meta(self) -> np.ndarray:
        """[N, 8] = time then latlon, the aggregators' metadata input (built once, read per batch)."""
        return np.concatenate([self.time, self.latlon], axis=1).astype(np.float32)


def _maybe_float(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def chip_meta(ws: Workspace) -> ChipMeta:
    """Clay's time/lat-lon encodings and the gsd of every chip (zeros / sensor gsd when unknown)."""
    table = ws.chip_table()
    n = len(table)
    dt = table["datetime"] if "datetime" in table else [None] * n
    lat = table["lat"] if "lat" in table else [None] * n
    lon = table["lon"] if "lon" in table else [None] * n
    gsd_col = table["gsd"] if "gsd" in table else [None] * n
    time = np.stack([encode_time(t) for t in dt]) if n else np.zeros((0, 4), np.float32)
    latlon = (
        np.stack([encode_latlon(_maybe_float(a), _maybe_float(b)) for a, b in zip(lat, lon, strict=True)])
        if n
        else np.zeros((0, 4), np.float32)
    )
    gsd = np.array([_maybe_float(g) or ws.sensor.gsd for g in gsd_col], dtype=np.float64)
    return ChipMeta(time.astype(np.float32), latlon.astype(np.float32), gsd)


def normalised_chips(ws: Workspace, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(pixels [n, C, H, W] z-scores with nodata set to 0 = band mean, valid mask [n, C, H, W])."""
    raw = ws.read_chips(rows)
    valid = np.isfinite(raw)
    z = normalize(np.where(valid, raw, 0.0), ws.sensor, ws.bands, axis=1)
    return np.where(valid, z, 0.0).astype(np.float32), valid


def batches_by_gsd(rows: Sequence[int], gsd: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Split ``rows`` into batches of one gsd each (Clay takes one gsd per batch), in row order."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return
    keys = np.round(gsd[rows], GSD_DECIMALS)
    for value in np.unique(keys):
        group = rows[keys == value]
        for start in range(0, len(group), batch_size):
            yield group[start : start + batch_size]


def waves_of(ws: Workspace) -> np.ndarray:
    """Central wavelengths (µm) of the workspace's bands, in channel order."""
    return ws.sensor.stats(ws.bands)[2]


# ---------------------------------------------------------------------------- token reads
def embeddings_info(ws: Workspace) -> dict[str, Any]:
    """The embed stage record; StageMissingError naming `clay-explore embed` when it is missing."""
    return ws.require_stage(EMBED_STAGE, f"`clay-explore embed --workspace {ws.root}`")


def read_tokens(ws: Workspace, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(cls [n, D], patches [n, L, D]) as float32 for the given chip rows (read chunk by chunk)."""
    cls_arr = ws.open_array(EMBEDDINGS_ZARR, "cls")
    patch_arr = ws.open_array(EMBEDDINGS_ZARR, "patches")
    cls, patches = read_rows(cls_arr, rows), read_rows(patch_arr, rows)
    n, h, w, d = patches.shape
    return cls.astype(np.float32), patches.reshape(n, h * w, d).astype(np.float32)
