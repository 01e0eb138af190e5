"""Large areas in one fetch: chip-aligned tiles of one request each, in one CRS, into one workspace.

An area larger than one request (``tile_km`` on a side) or crossing a UTM zone boundary is split
into tiles instead of being refused. The choice made here: **one workspace, reprojected into one
UTM zone** -- the zone of the area's centre (or ``epsg`` when given). Scenes from a neighbouring zone
are resampled onto that grid (nearest neighbour), so every later stage sees one area in one CRS;
within a few degrees of the zone the scale error stays below about 1 %.

Tiles are rectangles on that CRS's chip grid (multiples of chip size x resolution from the CRS
origin), so neighbouring tiles' chips neither overlap nor leave gaps when the stride is the chip size
(with a smaller stride, windows straddling a tile seam are not made). Each tile is searched,
mosaicked and chipped like a small fetch and appended to the workspace as its own source: a finished
tile is skipped when the command is re-run (resume), and a tile without usable scenes is skipped
and reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from clay_explore.core.defaults import (
    DEFAULT_CHIP_SIZE,
    DEFAULT_COLLECTION,
    DEFAULT_MAX_AREA_KM,
    DEFAULT_MAX_CLOUD,
    DEFAULT_RETRIES,
    DEFAULT_TILE_KM,
    DEFAULT_TIMEOUT_S,
)
from clay_explore.core.errors import AreaError, CancelledError, NoScenesError
from clay_explore.core.lock import writes_workspace
from clay_explore.core.progress import Cancel, ProgressFn, is_cancelled
from clay_explore.imagery.aoi import AOI, MAX_UTM_LAT, MIN_UTM_LAT, side_lengths_km, utm_epsg, utm_zone, validate_bbox
from clay_explore.imagery.chipping import ChipSettings

#: Points per edge when a box is reprojected (its projected envelope bulges between corners).
DENSIFY_POINTS = 21
M_PER_KM = 1000.0


@dataclass(frozen=True)
class Tile:
    """One request: a chip-aligned rectangle in the target CRS and its lon/lat envelope."""

    index: int
    bounds: tuple[float, float, float, float]  # x0, y0, x1, y1 in the target CRS (metres)
    shape: tuple[int, int]  # (height, width) in pixels
    aoi: AOI  # lon/lat envelope (search, scene cover) + target EPSG

    def geobox(self) -> Any:
        """The odc-geo GeoBox the tile is loaded on."""
        from odc.geo.geobox import GeoBox

        return GeoBox.from_bbox(self.bounds, f"EPSG:{self.aoi.epsg}", shape=self.shape)


@dataclass(frozen=True)
class TilePlan:
    """How an area is fetched: target CRS, resolution, tiles and the UTM zones it spans."""

    bbox: tuple[float, float, float, float]
    epsg: int
    resolution: float
    tiles: list[Tile]
    zones: list[int]
    size_km: tuple[float, float]
    tile_km: float
    forced_epsg: bool

    @property
    def tiled(self) -> bool:
        return len(self.tiles) > 1 or (len(self.zones) > 1 and not self.forced_epsg)

    def describe(self) -> str:
        """One sentence for the CLI and the app: the split and the CRS choice."""
        w, h = self.size_km
        split = (
            f"split into {len(self.tiles)} tiles of up to {self.tile_km:g} km"
            if len(self.tiles) > 1
            else "fetched as one tile"
        )
        if len(self.zones) > 1 and not self.forced_epsg:
            crs = (
                f"it crosses UTM zones {', '.join(map(str, self.zones))}; every tile is reprojected into one "
                f"zone, EPSG:{self.epsg} (the zone of the area's centre), so it stays one workspace"
            )
        else:
            crs = f"all in EPSG:{self.epsg}"
        return f"Area {w:.1f} x {h:.1f} km: {split}; {crs}."


def needs_tiles(bbox: Sequence[float], tile_km: float = DEFAULT_TILE_KM, epsg: int | None = None) -> bool:
    """True when the area is larger than one request or (without ``epsg``) crosses a UTM zone boundary."""
    west, south, east, north = (float(v) for v in bbox)
    if west > east:
        return False  # malformed or antimeridian: the single-request checks explain it
    width, height = side_lengths_km(west, south, east, north)
    return width > tile_km or height > tile_km or (epsg is None and utm_zone(west) != utm_zone(east))


def plan_tiles(
    bbox: Sequence[float],
    *,
    chip_size: int = DEFAULT_CHIP_SIZE,
    resolution: float = 10.0,
    tile_km: float = DEFAULT_TILE_KM,
    max_km: float = DEFAULT_MAX_AREA_KM,
    epsg: int | None = None,
) -> TilePlan:
    """Split a lon/lat box into chip-aligned tiles of at most ``tile_km`` in one CRS (see module doc)."""
    if not (tile_km > 0 and math.isfinite(tile_km)):
        raise AreaError(f"--tile-km must be a positive number of kilometres, got {tile_km}.")
    target = epsg
    if target is None:
        west, south, east, north = _floats(bbox)
        if north > MAX_UTM_LAT or south < MIN_UTM_LAT:
            raise AreaError(
                f"The bbox {list(bbox)!r} reaches beyond UTM's latitude range (80 S to 84 N). Give a target CRS "
                "explicitly (--epsg, e.g. a polar stereographic code)."
            )
        target = utm_epsg((west + east) / 2, (south + north) / 2)
    aoi = validate_bbox(bbox, max_km=max_km, epsg=target)  # malformed boxes and the whole-area cap
    step = chip_size * float(resolution)  # metres per chip
    x0, y0, x1, y1 = _to_crs(aoi.bbox, "EPSG:4326", f"EPSG:{target}")
    x0, y0 = math.floor(x0 / step) * step, math.floor(y0 / step) * step
    x1, y1 = math.ceil(x1 / step) * step, math.ceil(y1 / step) * step
    per_tile = max(1, int(tile_km * M_PER_KM // step)) * step  # tile side, whole chips
    tiles = []
    for ty in _edges(y1, y0, -per_tile):  # north to south, then west to east: row-major
        for tx in _edges(x0, x1, per_tile):
            bounds = (tx, max(ty - per_tile, y0), min(tx + per_tile, x1), ty)
            shape = (round((bounds[3] - bounds[1]) / resolution), round((bounds[2] - bounds[0]) / resolution))
            west, south, east, north = _to_crs(bounds, f"EPSG:{target}", "EPSG:4326")
            tiles.append(Tile(len(tiles), bounds, shape, AOI(west, south, east, north, int(target))))
    zones = list(range(utm_zone(aoi.west), utm_zone(aoi.east) + 1))
    return TilePlan(
        aoi.bbox,
        int(target),
        float(resolution),
        tiles,
        zones,
        side_lengths_km(*aoi.bbox),
        float(tile_km),
        epsg is not None,
    )


def area_aoi(bbox: Sequence[float], *, max_km: float = DEFAULT_MAX_AREA_KM, epsg: int | None = None) -> AOI:
    """The whole area as one AOI in the CRS its tiles use (to list its scenes), checked like a fetch."""
    if not needs_tiles(bbox, epsg=epsg):
        return validate_bbox(bbox, epsg=epsg)
    plan = plan_tiles(bbox, max_km=max_km, epsg=epsg)
    return AOI(*plan.bbox, plan.epsg)


def _floats(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError):
        validate_bbox(bbox)  # raises the usual "give four numbers" error
        raise
    return west, south, east, north


def _edges(start: float, stop: float, step: float) -> list[float]:
    """Tile origins from ``start`` towards ``stop`` every ``step`` (negative: downwards)."""
    n = max(1, math.ceil(abs(stop - start) / abs(step) - 1e-9))
    return [start + i * step for i in range(n)]


def _to_crs(bounds: Sequence[float], src: str, dst: str) -> tuple[float, float, float, float]:
    from rasterio.warp import transform_bounds

    return tuple(transform_bounds(src, dst, *bounds, densify_pts=DENSIFY_POINTS))  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------ fetch
@writes_workspace("fetch")
def fetch_area(
    bbox: Sequence[float],
    start: str | date,
    end: str | date,
    workspace: str | Path,
    *,
    stac_url: str | None = None,
    collection: str = DEFAULT_COLLECTION,
    max_cloud: float | None = DEFAULT_MAX_CLOUD,
    chips: ChipSettings = ChipSettings(),
    sensor: str | None = None,
    bands: Sequence[str] | None = None,
    tile_km: float = DEFAULT_TILE_KM,
    max_area_km: float = DEFAULT_MAX_AREA_KM,
    epsg: int | None = None,
    resolution: float | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    sign: bool | None = None,
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
) -> dict[str, Any]:
    """Fetch an area of any size: one request (``stac.fetch_stac``) when it fits, else tiles (module doc).

    ``chips`` is how every request's mosaic is cut. The result is the chips stage record; a tiled fetch
    adds ``tiling`` (the plan's sentence, CRS, zones) and ``tiles`` (per tile: chips, or why it was
    skipped), with counts summed over tiles.
    """
    from clay_explore.imagery.stac import fetch_stac

    common = dict(
        stac_url=stac_url,
        collection=collection,
        max_cloud=max_cloud,
        chips=chips,
        sensor=sensor,
        bands=bands,
        epsg=epsg,
        resolution=resolution,
        timeout=timeout,
        retries=retries,
        sign=sign,
        progress=progress,
        cancel=cancel,
    )
    if not needs_tiles(bbox, tile_km, epsg):
        return fetch_stac(bbox, start, end, workspace, max_area_km=max_area_km, **common)
    return _fetch_tiles(bbox, start, end, workspace, tile_km=tile_km, max_area_km=max_area_km, **common)


def _fetch_tiles(
    bbox,
    start,
    end,
    workspace,
    *,
    stac_url,
    collection,
    max_cloud,
    chips,
    sensor,
    bands,
    tile_km,
    max_area_km,
    epsg,
    resolution,
    timeout,
    retries,
    sign,
    progress,
    cancel,
) -> dict[str, Any]:
    from clay_explore.core.workspace import Workspace
    from clay_explore.imagery.chipping import chip_grid
    from clay_explore.imagery.net import NetPolicy
    from clay_explore.imagery.stac import EARTH_SEARCH_URL, open_client, scene_mosaic, sensor_for

    url = (stac_url or EARTH_SEARCH_URL).rstrip("/")
    sens = sensor_for(collection, sensor)
    settings = chips
    plan = plan_tiles(
        bbox,
        chip_size=settings.chip_size,
        resolution=float(resolution or sens.gsd),
        tile_km=tile_km,
        max_km=max_area_km,
        epsg=epsg,
    )
    policy = NetPolicy(timeout=timeout, retries=retries)
    client = open_client(url, policy)
    mosaic = partial(
        scene_mosaic,
        start=start,
        end=end,
        sens=sens,
        url=url,
        collection=collection,
        max_cloud=max_cloud,
        bands=bands,
        chip_size=settings.chip_size,
        resolution=plan.resolution,
        policy=policy,
        sign=sign,
        client=client,
    )
    source = {
        "kind": "stac",
        "url": url,
        "collection": collection,
        "bbox": list(plan.bbox),
        "start": str(start),
        "end": str(end),
        "max_cloud": max_cloud,
        "tiles": len(plan.tiles),
    }
    setup = {
        "stride": settings.stride,
        "min_valid": settings.min_valid,
        "max_chip_cloud": settings.max_chip_cloud,
        "epsg": plan.epsg,
        "resolution": plan.resolution,
        "tile_km": tile_km,
    }
    ws = Workspace.create(
        workspace,
        sensor=sens.name,
        bands=[b.name for b in sens.resolve_bands(bands)],
        chip_size=settings.chip_size,
        source=source,
        settings=setup,
    )
    _check_same_fetch(ws, source, setup)
    windows = [len(chip_grid(t.shape[0], t.shape[1], settings.chip_size, int(settings.stride))) for t in plan.tiles]
    total, results = sum(windows), []
    for tile, n_win in zip(plan.tiles, windows, strict=True):
        if is_cancelled(cancel):
            raise CancelledError(
                f"Fetch cancelled after {tile.index} of {len(plan.tiles)} tiles; finished tiles "
                "are kept. Run the same command again to resume."
            )
        offset = sum(windows[: tile.index])
        tile_progress = (
            None
            if progress is None
            # the tile's windows counted after the earlier tiles'
            else (lambda d, _t, info, o=offset: progress(o + d, total, {"position": o + info.get("position", d)}))
        )
        try:
            rec = _fetch_tile(ws, tile, plan, mosaic, settings, tile_progress, cancel)
            results.append(
                {
                    "tile": tile.index,
                    "bbox": list(tile.aoi.bbox),
                    "chips": int(rec.get("chips", 0)),
                    "windows": int(rec.get("windows", n_win)),
                    "scenes": [s["id"] for s in rec.get("scenes", [])],
                    "dropped_nodata": int(rec.get("dropped_nodata", 0)),
                    "dropped_cloud": int(rec.get("dropped_cloud", 0)),
                    "resumed": bool(rec.get("resumed")),
                }
            )
        except NoScenesError as err:
            results.append(
                {"tile": tile.index, "bbox": list(tile.aoi.bbox), "chips": 0, "windows": n_win, "skipped": str(err)}
            )
    return _summary(ws, plan, results)


def _check_same_fetch(ws, source: dict[str, Any], setup: dict[str, Any]) -> None:
    """Refuse to add tiles to a workspace made by another command or another tiling (chips would repeat)."""
    import json

    from clay_explore.core.errors import WorkspaceError

    def same(stored: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
        wanted = json.loads(json.dumps(wanted))  # lists, not tuples, as the manifest stores them
        return all((stored or {}).get(k) == v for k, v in wanted.items())

    if not (same(ws.manifest.get("source"), source) and same(ws.manifest.get("settings"), setup)):
        raise WorkspaceError(
            f"Workspace {ws.root} holds chips of another fetch or tiling (area, dates, --tile-km, --epsg or chip "
            "settings differ). Re-run with the settings used then, or choose a new --workspace folder."
        )


def _fetch_tile(
    ws, tile: Tile, plan: TilePlan, mosaic: Callable[..., tuple[Any, list]], settings: ChipSettings, progress, cancel
) -> dict[str, Any]:
    """Search, mosaic and chip one tile into ``ws`` as an appended source (``mosaic``: ``stac.scene_mosaic``
    with the fetch's search settings bound)."""
    from clay_explore.imagery.chipping import chip_source

    src, found = mosaic(tile.aoi, geobox=tile.geobox())
    info = {
        "tile": tile.index,
        "scenes_found": len(found),
        "epsg": plan.epsg,
        "resolution": plan.resolution,
        "scenes": [{"id": s.item.id, "datetime": s.datetime.isoformat() if s.datetime else None} for s in src.scenes],
    }
    return chip_source(ws, src, settings, info=info, append=True, progress=progress, cancel=cancel)


def _summary(ws, plan: TilePlan, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The chips stage with counts summed over tiles; NoScenesError when no tile kept a chip."""
    kept = [r for r in results if r.get("chips")]
    if not kept:
        reasons = "; ".join(f"tile {r['tile']}: {r.get('skipped', 'no chip kept')}" for r in results[:3])
        raise NoScenesError(
            f"No tile of the area gave a usable chip ({reasons}). Widen the dates or the cloud "
            "limit, or check the collection covers the area."
        )
    stage = ws.stage("chips") or {}
    return {
        **{k: v for k, v in stage.items() if k != "sources"},
        "chips": int(stage.get("chips", sum(r["chips"] for r in results))),
        "chip_size": ws.chip_size,
        "windows": sum(r["windows"] for r in results),
        "dropped_nodata": sum(r.get("dropped_nodata", 0) for r in results),
        "dropped_cloud": sum(r.get("dropped_cloud", 0) for r in results),
        "resumed": all(r.get("resumed") for r in results),
        "tiling": {
            "note": plan.describe(),
            "epsg": plan.epsg,
            "zones": plan.zones,
            "tiles": len(plan.tiles),
            "tile_km": plan.tile_km,
            "resolution": plan.resolution,
        },
        "tiles": results,
    }
