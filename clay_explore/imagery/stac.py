"""STAC search (pystac-client) and loading (odc-stac) into chips on one UTM grid.

Flow: validate the area -> search the collection in the date range (cloud filter on the server
where the collection has ``eo:cloud_cover``) -> pick the least-cloudy scenes that together cover
the area -> load each on the same grid (lazy, dask-chunked per chip) -> per window, mosaic the
scenes (least cloudy first; a pixel that is nodata or cloudy in one scene is taken from the next),
remove Sentinel-2's BOA offset (processing baseline >= 04.00) and mask nodata (incl. SCL classes
0/1) as NaN -> chipping writes the chips.

Asset names differ between endpoints (Earth Search v1: ``blue``/``red``/``scl``; Planetary
Computer and older catalogues: ``B02``/``B04``/``SCL``; NAIP: one 4-band ``image`` asset); they
are matched to registry bands through the registry's names/aliases and the assets' ``eo:bands``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from clay_explore.core.defaults import (
    DEFAULT_CHIP_SIZE,
    DEFAULT_COLLECTION,
    DEFAULT_MAX_CLOUD,
    DEFAULT_MAX_KM,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
)
from clay_explore.core.errors import ImageryError, NetworkError, NoScenesError, SensorError
from clay_explore.core.lock import writes_workspace
from clay_explore.core.progress import Cancel, ProgressFn
from clay_explore.core.sensors import Sensor, get_sensor
from clay_explore.imagery.aoi import AOI, validate_bbox
from clay_explore.imagery.bands import band_name
from clay_explore.imagery.chipping import (
    ChipSettings,
    WindowData,
    band_scale,
    chip_source,
)
from clay_explore.imagery.dn import S2_OFFSET_BASELINE, S2_OFFSET_DN, S2_SENSOR, mask_zero_fill, zero_fill_is_nodata
from clay_explore.imagery.net import (
    RETRY_STATUS,
    NetPolicy,
    PlanetarySigner,
    check_web_url,
    is_planetary,
    with_retries,
)

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
PLANETARY_COMPUTER_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
MAX_ITEMS = 500  # search results considered
COVER_TARGET = 0.999  # share of the area the chosen scenes must cover
MAX_SCENES = 6  # most scenes mosaicked into one area
SCL_NODATA = (0, 1)  # no data, saturated/defective
SCL_CLOUD = (3, 8, 9, 10)  # cloud shadow, cloud medium/high probability, thin cirrus
SCL_KEYS = ("scl", "SCL")
READ_THREADS = 8  # parallel HTTP range reads per window (bands are read concurrently)

#: STAC collection -> registry sensor.
COLLECTION_SENSORS = {
    "sentinel-2-l2a": "sentinel-2-l2a",
    "sentinel-2-c1-l2a": "sentinel-2-l2a",
    "sentinel-s2-l2a-cogs": "sentinel-2-l2a",
    "landsat-c2-l2": "landsat-c2l2-sr",
    "landsat-c2l2-sr": "landsat-c2l2-sr",
    "landsat-c2-l1": "landsat-c2l1",
    "naip": "naip",
    "sentinel-1-rtc": "sentinel-1-rtc",
    "modis-09A1-061": "modis",
}
CLOUDY_SENSORS = ("sentinel-2-l2a", "landsat-c2l2-sr", "landsat-c2l1", "modis")


# ----------------------------------------------------------------------------- search
def parse_day(text: str | date, what: str) -> date:
    """A date from YYYY-MM-DD; ImageryError naming the option otherwise."""
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(str(text))
    except ValueError as err:
        raise ImageryError(f"{what} {text!r} is not a date; give YYYY-MM-DD (e.g. 2024-06-01).") from err


def sensor_for(collection: str, sensor: str | None = None) -> Sensor:
    """The registry sensor of a collection (``sensor`` overrides); a clear error when unknown."""
    name = sensor or COLLECTION_SENSORS.get(collection)
    if name is None:
        raise SensorError(
            f"Collection '{collection}' has no known sensor. Say which registry sensor it is with --sensor "
            f"(known collections: {', '.join(COLLECTION_SENSORS)})."
        )
    return get_sensor(name)


def open_client(url: str, policy: NetPolicy) -> Any:
    """pystac-client Client with timeouts and bounded retries (connect, read, 429/5xx)."""
    url = check_web_url(url)  # never a local path
    import pystac_client
    from pystac_client.stac_api_io import StacApiIO
    from urllib3.util.retry import Retry

    retry = Retry(
        total=policy.retries,
        connect=policy.retries,
        read=policy.retries,
        status=policy.retries,
        backoff_factor=policy.backoff,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,
        raise_on_status=True,
    )
    stac_io = StacApiIO(timeout=policy.timeout, max_retries=retry)

    def _open():
        return pystac_client.Client.open(url, stac_io=stac_io, timeout=policy.timeout)

    return _api_call(_open, url, policy)


def _api_call(fn: Callable[[], Any], url: str, policy: NetPolicy) -> Any:
    """Run a STAC API call; network failures become NetworkError (urllib3 already retried)."""
    import requests
    from pystac_client.exceptions import APIError

    try:
        return fn()
    except (requests.exceptions.RequestException, APIError, ConnectionError, TimeoutError) as err:
        text = str(err)
        kind = "timed out" if "timed out" in text.lower() or "timeout" in type(err).__name__.lower() else "failed"
        raise NetworkError(
            f"The STAC API at {url} {kind} after {policy.retries + 1} tries with a {policy.timeout:g} s timeout "
            f"({type(err).__name__}: {text[:300]}). Check the --stac-url and your connection, or try again later."
        ) from err


def search_scenes(
    aoi: AOI,
    start: str | date,
    end: str | date,
    *,
    stac_url: str = EARTH_SEARCH_URL,
    collection: str = DEFAULT_COLLECTION,
    max_cloud: float | None = DEFAULT_MAX_CLOUD,
    policy: NetPolicy | None = None,
    client: Any = None,
) -> list:
    """Items of ``collection`` over ``aoi`` between two dates, least cloudy first.

    Raises NoScenesError saying which filter to relax (dates, cloud limit, collection).
    """
    policy = policy or NetPolicy()
    d0, d1 = parse_day(start, "--start"), parse_day(end, "--end")
    if d0 > d1:
        raise ImageryError(f"--start {d0} is after --end {d1}. Swap them.")
    client = client or open_client(stac_url, policy)
    known = _api_call(lambda: [c.id for c in client.get_collections()], stac_url, policy)
    if known and collection not in known:
        raise NoScenesError(
            f"The STAC API at {stac_url} has no collection '{collection}'. Use --collection with one of: "
            f"{', '.join(sorted(known))}."
        )
    sens = COLLECTION_SENSORS.get(collection)
    use_cloud = max_cloud is not None and (sens in CLOUDY_SENSORS or sens is None)
    when = f"{d0.isoformat()}T00:00:00Z/{d1.isoformat()}T23:59:59Z"

    def run(query: dict | None) -> list:
        search = client.search(
            collections=[collection], bbox=list(aoi.bbox), datetime=when, query=query, max_items=MAX_ITEMS, limit=100
        )
        return list(search.items())

    query = {"eo:cloud_cover": {"lte": float(max_cloud)}} if use_cloud else None
    found = _api_call(lambda: run(query), stac_url, policy)
    if use_cloud and not found:
        # servers drop items without eo:cloud_cover from a `query`; such items are still usable
        found = _api_call(lambda: run(None), stac_url, policy)
    items = found
    if use_cloud:  # also filter here: not every server honours `query`
        items = [it for it in found if _cloud(it) is None or _cloud(it) <= float(max_cloud)]
    if not items:
        _explain_empty(aoi, d0, d1, collection, max_cloud if use_cloud else None, stac_url, found)
    # least cloudy first; unknown cloud cover after every known one
    return sorted(items, key=lambda it: (_cloud(it) is None, _cloud(it) or 0.0, _when(it)))


def _when(item) -> str:
    """Sortable acquisition time: datetime, else start_datetime (items may have datetime null)."""
    return str(item.datetime or item.properties.get("start_datetime") or "")


def _cloud(item) -> float | None:
    v = item.properties.get("eo:cloud_cover")
    return None if v is None else float(v)


def _explain_empty(aoi, d0, d1, collection, max_cloud, url, any_items) -> None:
    where = f"{collection} scenes over bbox {tuple(round(v, 4) for v in aoi.bbox)} between {d0} and {d1}"
    if max_cloud is not None:
        if any_items:
            least = min((_cloud(it) for it in any_items if _cloud(it) is not None), default=0.0)
            raise NoScenesError(
                f"Found {len(any_items)} {where}, but all have more than {max_cloud:g}% cloud "
                f"(least cloudy: {least:g}%). Raise --max-cloud to at least {int(np.ceil(least or 0))}, "
                "or widen the date range."
            )
    raise NoScenesError(
        f"No {where} at {url}. Widen the date range (--start/--end), check the area, or choose another --collection."
    )


def select_cover(items: Sequence, aoi: AOI, *, max_scenes: int = MAX_SCENES) -> list:
    """Least-cloudy items that together cover the area (greedy; items come least cloudy first)."""
    from shapely.geometry import box, shape

    area = box(*aoi.bbox)
    covered = None
    chosen = []
    for it in items:
        geom = shape(it.geometry) if it.geometry else box(*it.bbox)
        part = geom.intersection(area)
        if part.is_empty:
            continue
        if covered is not None and part.difference(covered).area <= 1e-12 * area.area:
            continue
        chosen.append(it)
        covered = part if covered is None else covered.union(part)
        if covered.area >= COVER_TARGET * area.area or len(chosen) >= max_scenes:
            break
    if not chosen:
        raise NoScenesError(f"None of the {len(items)} scenes found overlaps the area. Check the bbox.")
    return chosen


# ----------------------------------------------------------------------------- assets
def asset_bands(item: Any, sensor: Sensor, bands: Sequence[str] | None = None) -> dict[str, tuple[str, str, int]]:
    """{registry band: (odc-stac band name, asset key, 1-based band index)} for one item.

    Asset keys are matched to band names/aliases first (``blue``, ``B02``), then the assets'
    ``eo:bands`` names/common names (multi-band assets become ``asset.N``).
    """
    want = [b.name for b in sensor.resolve_bands(bands)]
    found: dict[str, tuple[str, str, int]] = {}
    for key, asset in item.assets.items():
        if "data" not in (asset.roles or ["data"]):
            continue
        name = band_name(sensor, key)
        eo = asset.extra_fields.get("eo:bands") or []
        if name and name not in found and len(eo) <= 1:
            found[name] = (key, key, 1)
    for key, asset in item.assets.items():
        eo = asset.extra_fields.get("eo:bands") or []
        for i, b in enumerate(eo, start=1):
            name = band_name(sensor, b.get("common_name")) or band_name(sensor, b.get("name"))
            if name and name not in found:
                found[name] = (key if len(eo) == 1 else f"{key}.{i}", key, i)
    if any(w not in found for w in want):
        found.update({k: v for k, v in _unlabelled_multiband(item, sensor).items() if k not in found})
    missing = [w for w in want if w not in found]
    if missing:
        raise ImageryError(
            f"Item {item.id} has no asset for band(s) {missing} (assets: {', '.join(item.assets)}). "
            "Choose another --collection or fewer --bands."
        )
    return {w: found[w] for w in want}


def _unlabelled_multiband(item, sensor: Sensor) -> dict[str, tuple[str, str, int]]:
    """Bands of the one data asset with no eo:bands whose raster:bands count is the sensor's (plus an
    optional alpha band), in registry order: aerial RGB(A)/RGBN products are often catalogued so."""
    skip = {"thumbnail", "overview", "metadata", "visual"}
    n = len(sensor.bands)
    candidates = [
        key
        for key, asset in item.assets.items()
        if not skip & set(asset.roles or [])
        and not asset.extra_fields.get("eo:bands")
        and len(asset.extra_fields.get("raster:bands") or []) in (n, n + 1)
    ]
    if len(candidates) != 1:
        return {}
    key = candidates[0]
    return {b.name: (f"{key}.{i}", key, i) for i, b in enumerate(sensor.bands, start=1)}


def scl_asset(item: Any) -> str | None:
    """The scene-classification asset key, when the item has one."""
    return next((k for k in SCL_KEYS if k in item.assets), None)


def boa_offset_dn(item: Any, sensor: Sensor) -> float:
    """DN to add so Sentinel-2 L2A values are reflectance x 10000 (baseline >= 04.00: -1000)."""
    if sensor.name != S2_SENSOR:
        return 0.0
    props = item.properties
    if props.get("earthsearch:boa_offset_applied") is True:
        return 0.0
    baseline = props.get("s2:processing_baseline")
    if baseline is not None:
        try:
            return S2_OFFSET_DN if float(baseline) >= S2_OFFSET_BASELINE else 0.0
        except ValueError:
            pass
    for asset in item.assets.values():  # fall back on the raster extension's declared offset
        for rb in asset.extra_fields.get("raster:bands") or []:
            off, scale = rb.get("offset"), rb.get("scale")
            if off and scale:
                return float(off) / float(scale)
    return 0.0


def native_resolution(item: Any, keys: Sequence[str], fallback: float) -> float:
    """Finest pixel size (CRS units) among the assets ``keys``, from proj:transform / raster:bands."""
    res = []
    for key in keys:
        a = item.assets[key]
        tr = a.extra_fields.get("proj:transform") or item.properties.get("proj:transform")
        if tr:
            res.append(abs(float(tr[0])))
            continue
        for rb in a.extra_fields.get("raster:bands") or []:
            if rb.get("spatial_resolution"):
                res.append(float(rb["spatial_resolution"]))
    if not res and item.properties.get("gsd"):
        res.append(float(item.properties["gsd"]))
    return min(res) if res else float(fallback)


def _nodata(item, key: str, index: int) -> float | None:
    rbs = item.assets[key].extra_fields.get("raster:bands") or []
    if len(rbs) >= index and rbs[index - 1].get("nodata") is not None:
        return float(rbs[index - 1]["nodata"])
    return None


# ----------------------------------------------------------------------------- loading
@contextmanager
def _no_georef_warning() -> Iterator[None]:
    """Hide rasterio's NotGeoreferencedWarning, and nothing else, while odc-stac reads.

    odc-stac's reprojection opens in-memory arrays without a transform and so triggers it for some
    band subsets (NAIP, Landsat); the values are right, the warning only confuses users.
    """
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
        yield


def _quiet_load(item: Any, kw: dict[str, Any]) -> Any:
    """``odc.stac.load([item], **kw)`` without NotGeoreferencedWarning."""
    import odc.stac

    with _no_georef_warning():
        return odc.stac.load([item], **kw)


@dataclass
class _Scene:
    item: Any
    ds: Any  # lazy xarray Dataset on the shared grid (no time dim)
    names: list[str]  # odc band names in registry order
    nodata: list[float | None]
    scl: str | None
    offset_dn: float
    datetime: datetime | None


class StacMosaicSource:
    """Selected STAC items loaded lazily on one grid; ``read`` mosaics them per window."""

    def __init__(
        self,
        items: Sequence,
        sensor: Sensor,
        aoi: AOI,
        *,
        bands: Sequence[str] | None = None,
        chip_size: int = DEFAULT_CHIP_SIZE,
        resolution: float | None = None,
        policy: NetPolicy | None = None,
        patch_url: Callable[[str], str] | None = None,
        geobox: Any = None,
    ):
        # geobox: load on this grid (a tile of a large area, imagery.tiles) instead of the area's own
        self.sensor = sensor
        self.policy = policy or NetPolicy()
        self.bands = tuple(b.name for b in sensor.resolve_bands(bands))
        self.labels = None
        self.aoi = aoi
        self._items = list(items)
        _configure_gdal(self.policy)
        first = asset_bands(self._items[0], sensor, self.bands)
        res = resolution or native_resolution(self._items[0], [v[1] for v in first.values()], sensor.gsd)
        self.resolution = float(res)
        self.scenes: list[_Scene] = []
        if geobox is None:
            geobox = at_least_one_chip(aoi, self.resolution, chip_size)  # None: the area's own grid
        for item in self._items:
            amap = asset_bands(item, sensor, self.bands)
            names = [amap[b][0] for b in self.bands]
            scl = scl_asset(item)
            load_bands = names + ([scl] if scl else [])
            kw: dict[str, Any] = dict(
                bands=load_bands,
                chunks={"x": chip_size, "y": chip_size},
                groupby="id",
                resampling="nearest",
                patch_url=patch_url,
                fail_on_error=True,
            )
            if geobox is None:
                kw.update(crs=f"EPSG:{aoi.epsg}", resolution=self.resolution, bbox=aoi.bbox)
            else:
                kw.update(geobox=geobox)
            ds = with_retries(
                lambda item=item, kw=kw: _quiet_load(item, kw),
                self.policy,
                f"Opening the assets of {item.id}",
                "Check the connection, or try again later.",
            )
            if geobox is None:
                geobox = ds.odc.geobox
            ds = ds.isel(time=0)
            nod = [_nodata(item, amap[b][1], amap[b][2]) for b in self.bands]
            when = _item_time(item)
            self.scenes.append(_Scene(item, ds, names, nod, scl, boa_offset_dn(item, sensor), when))
        self.geobox = geobox
        self.crs = _rio_crs(geobox.crs)
        self.transform = geobox.affine
        self.height, self.width = geobox.shape.y, geobox.shape.x
        self.scale, self.offset = band_scale(sensor, self.bands)
        self.has_cloud_mask = any(s.scl for s in self.scenes)

    def identity(self) -> dict[str, Any]:
        return {
            "kind": "stac",
            "items": [s.item.id for s in self.scenes],
            "bbox": list(self.aoi.bbox),
            "epsg": self.aoi.epsg,
            "resolution": self.resolution,
            "collection": self.scenes[0].item.collection_id,
        }

    def _load(self, scene: _Scene, row: int, col: int, height: int, width: int):
        sub = scene.ds.isel(y=slice(row, row + height), x=slice(col, col + width))

        def compute():
            import dask

            with dask.config.set(scheduler="threads", num_workers=READ_THREADS), _no_georef_warning():
                return sub.compute()

        return with_retries(
            compute,
            self.policy,
            f"Reading pixels of {scene.item.id}",
            "Check the connection, or try again later; finished chips are kept, re-run to resume.",
        )

    def read(self, row: int, col: int, height: int, width: int) -> WindowData:
        c = len(self.bands)
        out = np.full((c, height, width), np.nan, dtype=np.float32)
        cloud = np.zeros((height, width), dtype=bool)
        filled = np.zeros((height, width), dtype=bool)  # has a valid pixel
        clear = np.zeros((height, width), dtype=bool)  # has a valid, cloud-free pixel
        used: dict[str, int] = {}
        when: dict[str, datetime | None] = {}
        for scene in self.scenes:
            if clear.all():
                break
            win = self._load(scene, row, col, height, width)
            data = np.stack([np.asarray(win[n].values, dtype=np.float32) for n in scene.names])  # [C,h,w]
            for i, nd in enumerate(scene.nodata):
                if nd is not None:
                    data[i][data[i] == np.float32(nd)] = np.nan
            if zero_fill_is_nodata(self.sensor, any(nd is not None for nd in scene.nodata)):
                mask_zero_fill(data)
            scene_cloud = np.zeros((height, width), dtype=bool)
            if scene.scl:
                scl = np.asarray(win[scene.scl].values)
                data[:, np.isin(scl, SCL_NODATA)] = np.nan
                scene_cloud = np.isin(scl, SCL_CLOUD)
            if scene.offset_dn:
                data = np.maximum(data + np.float32(scene.offset_dn), 0.0)  # NaN stays NaN
            valid = np.isfinite(data).all(axis=0)
            take = valid & (~filled | (~clear & ~scene_cloud))
            if take.any():
                out[:, take] = data[:, take]
                cloud[take] = scene_cloud[take]
                used[scene.item.id] = used.get(scene.item.id, 0) + int(take.sum())
                when[scene.item.id] = scene.datetime
            filled |= valid
            clear |= valid & ~scene_cloud
        main = max(used, key=used.get) if used else ""
        return WindowData(out, cloud if self.has_cloud_mask else None, "+".join(used), when.get(main))


def at_least_one_chip(aoi: AOI, resolution: float, chip_size: int) -> Any:
    """A grid centred on an area smaller than one chip, grown to one chip per side; else None.

    Without it a tiny area yields a mostly padded chip that is dropped as 'too little valid data'
    although the scene has pixels all around it.
    """
    from odc.geo.geobox import GeoBox
    from odc.geo.geom import BoundingBox

    crs = f"EPSG:{aoi.epsg}"
    bb = BoundingBox(*aoi.bbox, crs="EPSG:4326").to_crs(crs)
    side = chip_size * resolution
    if bb.right - bb.left >= side and bb.top - bb.bottom >= side:
        return None
    cx, cy = (bb.left + bb.right) / 2, (bb.bottom + bb.top) / 2
    half_w, half_h = max(bb.right - bb.left, side) / 2, max(bb.top - bb.bottom, side) / 2
    x0 = math.floor((cx - half_w) / resolution) * resolution  # snap to whole pixels
    y1 = math.ceil((cy + half_h) / resolution) * resolution
    width = max(chip_size, math.ceil(2 * half_w / resolution))
    height = max(chip_size, math.ceil(2 * half_h / resolution))
    return GeoBox.from_bbox((x0, y1 - height * resolution, x0 + width * resolution, y1), crs, shape=(height, width))


def _item_time(item) -> datetime | None:
    """UTC acquisition time: ``datetime``, else the middle of start/end_datetime, else None."""
    if item.datetime:
        return item.datetime.astimezone(UTC)
    try:
        t0 = datetime.fromisoformat(str(item.properties.get("start_datetime")).replace("Z", "+00:00"))
        t1 = datetime.fromisoformat(str(item.properties.get("end_datetime")).replace("Z", "+00:00"))
    except ValueError:
        return None
    mid = t0 + (t1 - t0) / 2
    return (mid if mid.tzinfo else mid.replace(tzinfo=UTC)).astimezone(UTC)


def _rio_crs(crs: Any):
    from rasterio.crs import CRS

    return CRS.from_wkt(crs.to_wkt())


def _configure_gdal(policy: NetPolicy) -> None:
    """GDAL's own HTTP timeouts/retries for COG reads (odc-stac passes these to rasterio)."""
    import odc.stac

    odc.stac.configure_rio(
        cloud_defaults=False,
        GDAL_HTTP_TIMEOUT=str(int(max(1, policy.timeout))),
        GDAL_HTTP_CONNECTTIMEOUT=str(int(max(1, policy.timeout))),
        GDAL_HTTP_MAX_RETRY=str(policy.retries),
        GDAL_HTTP_RETRY_DELAY=str(policy.backoff),
        GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
        GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
        VSI_CACHE="FALSE",
    )


# ----------------------------------------------------------------------------- pipeline
def scene_mosaic(
    aoi: AOI,
    start: str | date,
    end: str | date,
    sens: Sensor,
    *,
    url: str,
    collection: str,
    max_cloud: float | None,
    bands: Sequence[str] | None,
    chip_size: int,
    resolution: float | None,
    policy: NetPolicy,
    sign: bool | None,
    token_url: str | None = None,
    client: Any = None,
    geobox: Any = None,
) -> tuple[StacMosaicSource, list]:
    """One request's imagery: search ``aoi``, choose the least-cloudy cover, sign it where the endpoint needs
    it and mosaic it (on ``geobox`` when given: a tile of a large area). Returns (source, scenes found)."""
    found = search_scenes(
        aoi, start, end, stac_url=url, collection=collection, max_cloud=max_cloud, policy=policy, client=client
    )
    chosen = select_cover(found, aoi)
    if sign or (sign is None and is_planetary(url)):
        signer = (
            PlanetarySigner(policy=policy)
            if token_url is None
            else PlanetarySigner(token_url=token_url, hosts=("",), policy=policy)
        )
        signer.sign_items(chosen)
    src = StacMosaicSource(
        chosen, sens, aoi, bands=bands, chip_size=chip_size, resolution=resolution, policy=policy, geobox=geobox
    )
    return src, found


@writes_workspace("fetch")
def fetch_stac(
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
    max_area_km: float = DEFAULT_MAX_KM,
    epsg: int | None = None,
    resolution: float | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    sign: bool | None = None,
    token_url: str | None = None,
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
) -> dict[str, Any]:
    """Search, select, load and chip imagery for an area into a workspace; returns the 'chips' stage.

    ``chips`` is how the mosaic is cut (chip size, stride, valid and cloudy share limits). ``sign`` adds
    Planetary Computer SAS tokens to asset URLs (default: on for Planetary Computer URLs); ``token_url``
    overrides where tokens come from.
    """
    from clay_explore.core.workspace import Workspace

    url = check_web_url((stac_url or EARTH_SEARCH_URL).rstrip("/"))
    if token_url is not None:
        check_web_url(token_url, "token URL")
    aoi = validate_bbox(bbox, max_km=max_area_km, epsg=epsg)
    sens = sensor_for(collection, sensor)
    settings = chips
    policy = NetPolicy(timeout=timeout, retries=retries)
    src, found = scene_mosaic(
        aoi,
        start,
        end,
        sens,
        url=url,
        collection=collection,
        max_cloud=max_cloud,
        bands=bands,
        chip_size=settings.chip_size,
        resolution=resolution,
        policy=policy,
        sign=sign,
        token_url=token_url,
    )
    ws = Workspace.create(
        workspace,
        sensor=sens.name,
        bands=list(src.bands),
        chip_size=settings.chip_size,
        source={
            "kind": "stac",
            "url": url,
            "collection": collection,
            "bbox": list(aoi.bbox),
            "start": str(start),
            "end": str(end),
            "max_cloud": max_cloud,
        },
        settings={
            "stride": settings.stride,
            "min_valid": settings.min_valid,
            "max_chip_cloud": settings.max_chip_cloud,
            "epsg": aoi.epsg,
            "resolution": src.resolution,
        },
    )
    info = {
        "scenes": [
            {
                "id": s.item.id,
                "datetime": s.datetime.isoformat() if s.datetime else None,
                "cloud_cover": _cloud(s.item),
                "boa_offset_dn": s.offset_dn,
                "scl": bool(s.scl),
            }
            for s in src.scenes
        ],
        "scenes_found": len(found),
        "epsg": aoi.epsg,
        "resolution": src.resolution,
    }
    return chip_source(ws, src, settings, info=info, progress=progress, cancel=cancel)
