"""A small, real STAC API on 127.0.0.1, built from a folder of GeoTIFFs (for tests and benchmarks).

Every GeoTIFF under the folder becomes one item: each band is written as its own COG asset
(keys in Earth Search v1 style ``blue``/``red``... or Planetary Computer style ``B02``/``B04``...),
NAIP-like 4-band files as one multi-band ``image`` asset, Sentinel-1 RTC files (``S1A_*``) as one
``vv``/``vh`` asset per polarisation in ``sentinel-1-rtc``. Items carry the proj, raster and eo
extensions. Optional sidecars beside a GeoTIFF:

- ``<stem>.scl.tif``: a one-band Sentinel-2 scene-classification raster, served as ``scl``/``SCL``;
- ``<stem>.json``: extra item properties (e.g. ``{"eo:cloud_cover": 80, "s2:processing_baseline": "05.00"}``)
  and an optional ``"collection"``.

Endpoints: ``/`` (landing page + conformance), ``/conformance``, ``/collections[/{id}]``,
``/search`` (GET and POST: bbox, datetime, collections, ids, limit with next-page links,
``query`` on ``eo:cloud_cover``), ``/assets/...`` (byte ranges, HEAD) and a Planetary-Computer-like
``/api/sas/v1/token/{collection}``. ``server.faults`` injects delays or HTTP errors into API calls.

Run as a script: ``python tests/imagery/stac_server.py --port 8123 DIR`` (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

S2_KEYS_ES = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B11": "swir16",
    "B12": "swir22",
}
S2_WAVE = {
    "B02": 0.49,
    "B03": 0.56,
    "B04": 0.665,
    "B05": 0.704,
    "B06": 0.74,
    "B07": 0.783,
    "B08": 0.842,
    "B8A": 0.865,
    "B11": 1.61,
    "B12": 2.19,
}
LS_KEYS = {
    "SR_B1": "coastal",
    "SR_B2": "blue",
    "SR_B3": "green",
    "SR_B4": "red",
    "SR_B5": "nir08",
    "SR_B6": "swir16",
    "SR_B7": "swir22",
}
NAIP_BANDS = ("red", "green", "blue", "nir")
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
EXTENSIONS = [
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
]
COG_BLOCK = 256
DEFAULT_LIMIT = 10


@dataclass
class Faults:
    """Faults injected into API (non-asset) requests: a delay and/or an HTTP status, ``count`` times."""

    delay: float = 0.0
    status: int | None = None
    count: int = 0  # 0 = every request while set
    assets: bool = False  # also apply to asset requests
    only_assets: bool = False  # apply to asset requests only
    hits: int = 0

    def active(self) -> bool:
        return (self.delay > 0 or self.status is not None) and (self.count == 0 or self.hits < self.count)


@dataclass
class StacServer:
    """A running server: ``url`` (no trailing slash), ``stop()``, the ``items`` it serves."""

    url: str
    stop: Callable[[], None]
    items: list[dict[str, Any]]
    faults: Faults
    requests: list[str] = field(default_factory=list)
    asset_dir: Path | None = None


# ----------------------------------------------------------------------------- building items
def _kind(path: Path, ds) -> str:
    name = path.name.lower()
    if "naip" in str(path).lower() or re.match(r"m_\d{7}_", name):
        return "naip"
    if "lc08" in name or "lc09" in name or "landsat" in str(path).lower():
        return "landsat"
    if re.match(r"s1[abc]_", name) or "sentinel-1" in str(path).lower() or "sentinel1" in str(path).lower():
        return "sentinel1"
    return "sentinel2"


def _datetime(path: Path, tags: dict[str, str]) -> str:
    for key in ("ACQUISITION_DATETIME", "ACQUISITION_DATE"):
        if tags.get(key):
            text = tags[key].replace("Z", "").replace(" ", "T")
            if key == "ACQUISITION_DATE" and tags.get("SCENE_CENTER_TIME"):
                text += "T" + tags["SCENE_CENTER_TIME"][:8]
            dt = datetime.fromisoformat(text)
            return dt.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    m = re.search(r"(20\d\d)(\d\d)(\d\d)", path.name)
    if m:
        return f"{m[1]}-{m[2]}-{m[3]}T00:00:00Z"
    return "2020-01-01T00:00:00Z"


def _write_cog(src_path: Path, dst: Path, bands: list[int] | None = None) -> None:
    """Copy (some bands of) a raster into a COG, block by block (bounded memory)."""
    import rasterio
    from rasterio.shutil import copy as rio_copy
    from rasterio.windows import Window

    with rasterio.open(src_path) as src:
        bands = bands or list(range(1, src.count + 1))
        prof = src.profile.copy()
        prof.update(
            driver="GTiff",
            count=len(bands),
            tiled=True,
            blockxsize=COG_BLOCK,
            blockysize=COG_BLOCK,
            compress="deflate",
            photometric=None,
        )
        prof.pop("photometric", None)
        tmp = dst.with_suffix(".tmp.tif")
        with rasterio.open(tmp, "w", **prof) as out:
            for r in range(0, src.height, COG_BLOCK * 4):
                win = Window(0, r, src.width, min(COG_BLOCK * 4, src.height - r))
                out.write(src.read(bands, window=win), window=win)
            out.update_tags(**src.tags())
            for i, b in enumerate(bands, start=1):
                if src.descriptions[b - 1]:
                    out.set_band_description(i, src.descriptions[b - 1])
        rio_copy(tmp, dst, driver="COG", blocksize=COG_BLOCK, compress="deflate", overviews="none")
        tmp.unlink()


def _proj(ds) -> dict[str, Any]:
    epsg = ds.crs.to_epsg() if ds.crs else None
    return {"proj:epsg": epsg, "proj:shape": [ds.height, ds.width], "proj:transform": list(ds.transform)[:6]}


def _raster_band(ds, scale: float | None = None, offset: float | None = None) -> dict[str, Any]:
    rb: dict[str, Any] = {"data_type": ds.dtypes[0], "spatial_resolution": abs(ds.transform.a)}
    if ds.nodata is not None:
        rb["nodata"] = ds.nodata
    if scale is not None:
        rb["scale"] = scale
        rb["offset"] = offset or 0.0
    return rb


def build_items(folder: Path, asset_dir: Path, *, style: str = "earth-search") -> list[dict[str, Any]]:
    """Convert every GeoTIFF under ``folder`` into per-band COGs in ``asset_dir`` and STAC item dicts."""
    import rasterio
    from rasterio.warp import transform_bounds

    items = []
    for path in sorted(folder.rglob("*.tif")):
        if path.name.endswith(".scl.tif"):
            continue
        with rasterio.open(path) as ds:
            tags = ds.tags()
            kind = _kind(path, ds)
            sidecar = path.with_suffix(".json")
            extra = json.loads(sidecar.read_text()) if sidecar.exists() else {}
            w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
            item_id = path.stem
            item_dir = asset_dir / item_id
            item_dir.mkdir(parents=True, exist_ok=True)
            props: dict[str, Any] = {"datetime": _datetime(path, tags), **_proj(ds)}
            assets: dict[str, Any] = {}
            descs = [(d or "").split()[0] if d else "" for d in ds.descriptions]
            if kind == "naip":
                collection = "naip"
                dst = item_dir / "image.tif"
                _write_cog(path, dst)
                assets["image"] = {
                    "href": f"assets/{item_id}/image.tif",
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "roles": ["data"],
                    "eo:bands": [{"name": b.title(), "common_name": b} for b in NAIP_BANDS[: ds.count]],
                    "raster:bands": [_raster_band(ds) for _ in range(ds.count)],
                    **_proj(ds),
                }
                props["gsd"] = abs(ds.transform.a)
            elif kind == "sentinel1":  # RTC backscatter: one asset per polarisation, no eo:bands
                collection = "sentinel-1-rtc"
                props.update({"platform": "sentinel-1a", "sar:instrument_mode": "IW", "constellation": "sentinel-1"})
                pols = [
                    d.lower() if d.lower() in ("vv", "vh", "hh", "hv") else ("vv", "vh")[i % 2]
                    for i, d in enumerate(descs)
                ]
                props["sar:polarizations"] = [p.upper() for p in pols]
                for b, pol in enumerate(pols, start=1):
                    _write_cog(path, item_dir / f"{pol}.tif", [b])
                    assets[pol] = {
                        "href": f"assets/{item_id}/{pol}.tif",
                        "roles": ["data"],
                        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                        "raster:bands": [_raster_band(ds)],
                        **_proj(ds),
                    }
            else:
                landsat = kind == "landsat"
                collection = "landsat-c2-l2" if landsat else "sentinel-2-l2a"
                if landsat:
                    props["eo:cloud_cover"] = float(tags.get("SCENE_CLOUD_COVER", 0.0))
                    props["platform"] = "landsat-8"
                else:
                    props["eo:cloud_cover"] = float(tags.get("CLOUD_COVER", 1.0))
                    props["platform"] = "sentinel-2a"
                    m = re.search(r"_N(\d\d)(\d\d)_", tags.get("SOURCE_PRODUCT", "") + tags.get("TILE_SOURCE", ""))
                    if m:
                        props["s2:processing_baseline"] = f"{m[1]}.{m[2]}"
                for b, code in enumerate(descs, start=1):
                    if landsat:
                        key = LS_KEYS.get(code, code.lower() or f"b{b}")
                        scale, offset = 2.75e-05, -0.2
                        eo = {"name": code, "common_name": key}
                    else:
                        key = (
                            S2_KEYS_ES.get(code, code or f"b{b}") if style == "earth-search" else (code or f"B{b:02d}")
                        )
                        scale, offset = 1e-4, 0.0
                        eo = {
                            "name": code,
                            "common_name": S2_KEYS_ES.get(code, code),
                            "center_wavelength": S2_WAVE.get(code),
                        }
                    dst = item_dir / f"{key}.tif"
                    _write_cog(path, dst, [b])
                    assets[key] = {
                        "href": f"assets/{item_id}/{key}.tif",
                        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                        "roles": ["data"],
                        "eo:bands": [eo],
                        "raster:bands": [_raster_band(ds, scale, offset)],
                        **_proj(ds),
                    }
                scl = path.with_name(path.stem + ".scl.tif")
                if scl.exists():
                    key = "scl" if style == "earth-search" else "SCL"
                    _write_cog(scl, item_dir / f"{key}.tif")
                    with rasterio.open(scl) as sds:
                        assets[key] = {
                            "href": f"assets/{item_id}/{key}.tif",
                            "roles": ["data"],
                            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                            "raster:bands": [_raster_band(sds)],
                            **_proj(sds),
                        }
            collection = extra.pop("collection", collection)
            props.update(extra)
            items.append(
                {
                    "type": "Feature",
                    "stac_version": "1.0.0",
                    "stac_extensions": EXTENSIONS,
                    "id": item_id,
                    "collection": collection,
                    "bbox": [w, s, e, n],
                    "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
                    "properties": props,
                    "assets": assets,
                    "links": [],
                }
            )
    return items


# ----------------------------------------------------------------------------- search
def _parse_dt(text: str) -> datetime | None:
    if text in ("", ".."):
        return None
    text = text.replace("Z", "+00:00")
    if len(text) == 10:
        text += "T00:00:00+00:00"
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _match(item: dict[str, Any], p: dict[str, Any]) -> bool:
    if p.get("collections") and item["collection"] not in p["collections"]:
        return False
    if p.get("ids") and item["id"] not in p["ids"]:
        return False
    if p.get("bbox"):
        w, s, e, n = p["bbox"]
        iw, is_, ie, in_ = item["bbox"]
        if iw > e or ie < w or is_ > n or in_ < s:
            return False
    if p.get("datetime"):
        parts = str(p["datetime"]).split("/")
        start, end = (_parse_dt(parts[0]), _parse_dt(parts[-1]))
        if len(parts) == 1 and start is not None and len(parts[0]) == 10:
            end = start.replace(hour=23, minute=59, second=59)
        props = item["properties"]
        if props.get("datetime"):
            t0 = t1 = _parse_dt(props["datetime"])
        else:  # STAC: datetime null, range in start_datetime/end_datetime (either may be open)
            t0, t1 = _parse_dt(props.get("start_datetime") or ""), _parse_dt(props.get("end_datetime") or "")
        if (start and t1 and t1 < start) or (end and t0 and t0 > end):
            return False
    for prop, ops in (p.get("query") or {}).items():
        v = item["properties"].get(prop)
        for op, ref in ops.items():
            ok = {
                "lt": lambda: v < ref,
                "lte": lambda: v <= ref,
                "gt": lambda: v > ref,
                "gte": lambda: v >= ref,
                "eq": lambda: v == ref,
                "neq": lambda: v != ref,
            }.get(op, lambda: True)
            if v is None or not ok():
                return False
    return True


class _Handler(BaseHTTPRequestHandler):
    server_version = "TestSTAC/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    # -- helpers
    @property
    def ctx(self) -> StacServer:
        return self.server.ctx  # type: ignore[attr-defined]

    def _base(self) -> str:
        return self.ctx.url

    def _send_json(self, obj: Any, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fault(self, is_asset: bool) -> bool:
        f = self.ctx.faults
        if not f.active() or (is_asset and not (f.assets or f.only_assets)) or (f.only_assets and not is_asset):
            return False
        f.hits += 1
        if f.delay:
            time.sleep(f.delay)
        if f.status is not None:
            self._send_json({"code": "Injected", "description": f"injected HTTP {f.status}"}, f.status)
            return True
        return False

    # -- verbs
    def do_HEAD(self) -> None:
        self._asset(head=True)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.ctx.requests.append(f"GET {url.path}")
        if url.path.startswith("/assets/"):
            return self._asset()
        if self._fault(False):
            return
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/") or "/"
        if path == "/":
            return self._send_json(self._landing())
        if path == "/conformance":
            return self._send_json({"conformsTo": CONFORMANCE})
        if path == "/collections":
            return self._send_json({"collections": [self._collection(c) for c in self._collection_ids()], "links": []})
        m = re.match(r"^/collections/([^/]+)$", path)
        if m:
            if m[1] not in self._collection_ids():
                return self._send_json({"code": "NotFound", "description": f"no collection {m[1]}"}, 404)
            return self._send_json(self._collection(m[1]))
        m = re.match(r"^/api/sas/v1/token/([^/]+)$", path)
        if m:
            return self._send_json({"msft:expiry": "2999-01-01T00:00:00Z", "token": f"sv=test&sig={m[1]}"})
        if path == "/search":
            params: dict[str, Any] = {}
            if "bbox" in q:
                params["bbox"] = [float(v) for v in q["bbox"].split(",")]
            for key in ("collections", "ids"):
                if key in q:
                    params[key] = q[key].split(",")
            for key in ("datetime", "limit", "token"):
                if key in q:
                    params[key] = q[key]
            if "query" in q:
                params["query"] = json.loads(q["query"])
            return self._search(params, method="GET")
        self._send_json({"code": "NotFound", "description": self.path}, 404)

    def do_POST(self) -> None:
        url = urlparse(self.path)
        self.ctx.requests.append(f"POST {url.path}")
        if self._fault(False):
            return
        length = int(self.headers.get("Content-Length", 0))
        try:
            params = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            return self._send_json({"code": "BadRequest", "description": "body is not JSON"}, 400)
        if url.path.rstrip("/") == "/search":
            return self._search(params, method="POST")
        self._send_json({"code": "NotFound", "description": self.path}, 404)

    # -- API documents
    def _collection_ids(self) -> list[str]:
        return sorted({it["collection"] for it in self.ctx.items})

    def _landing(self) -> dict[str, Any]:
        b = self._base()
        return {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "test-stac",
            "description": "local test STAC API",
            "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": f"{b}/", "type": "application/json"},
                {"rel": "root", "href": f"{b}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{b}/conformance", "type": "application/json"},
                {"rel": "data", "href": f"{b}/collections", "type": "application/json"},
                {"rel": "search", "href": f"{b}/search", "type": "application/geo+json", "method": "GET"},
                {"rel": "search", "href": f"{b}/search", "type": "application/geo+json", "method": "POST"},
            ]
            + [
                {"rel": "child", "href": f"{b}/collections/{c}", "type": "application/json"}
                for c in self._collection_ids()
            ],
        }

    def _collection(self, cid: str) -> dict[str, Any]:
        b = self._base()
        boxes = [it["bbox"] for it in self.ctx.items if it["collection"] == cid]
        bbox = [min(x[0] for x in boxes), min(x[1] for x in boxes), max(x[2] for x in boxes), max(x[3] for x in boxes)]
        times = sorted(
            it["properties"].get("datetime") or it["properties"].get("start_datetime") or ""
            for it in self.ctx.items
            if it["collection"] == cid
        )
        return {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": cid,
            "description": f"{cid} (test)",
            "license": "various",
            "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [[times[0], times[-1]]]}},
            "links": [
                {"rel": "self", "href": f"{b}/collections/{cid}"},
                {"rel": "root", "href": f"{b}/"},
                {"rel": "items", "href": f"{b}/collections/{cid}/items"},
            ],
        }

    def _search(self, params: dict[str, Any], method: str) -> None:
        b = self._base()
        found = [it for it in self.ctx.items if _match(it, params)]
        limit = int(params.get("limit") or DEFAULT_LIMIT)
        start = int(params.get("token") or 0)
        page = found[start : start + limit]
        feats = []
        for it in page:
            it = json.loads(json.dumps(it))
            for a in it["assets"].values():
                a["href"] = f"{b}/{a['href']}"
            it["links"] = [
                {"rel": "self", "href": f"{b}/collections/{it['collection']}/items/{it['id']}"},
                {"rel": "collection", "href": f"{b}/collections/{it['collection']}"},
                {"rel": "root", "href": f"{b}/"},
            ]
            feats.append(it)
        links = []
        if start + limit < len(found):
            nxt = start + limit
            if method == "POST":
                links.append(
                    {
                        "rel": "next",
                        "href": f"{b}/search",
                        "method": "POST",
                        "body": {**params, "token": str(nxt)},
                        "merge": False,
                    }
                )
            else:
                from urllib.parse import urlencode

                qp = {
                    k: (",".join(map(str, v)) if isinstance(v, list) else (json.dumps(v) if isinstance(v, dict) else v))
                    for k, v in params.items()
                    if k != "token"
                }
                links.append({"rel": "next", "href": f"{b}/search?{urlencode({**qp, 'token': nxt})}", "method": "GET"})
        self._send_json(
            {
                "type": "FeatureCollection",
                "features": feats,
                "links": links,
                "numberMatched": len(found),
                "numberReturned": len(feats),
            }
        )

    # -- assets with byte ranges
    def _asset(self, head: bool = False) -> None:
        url = urlparse(self.path)
        if self._fault(True):
            return
        rel = url.path[len("/assets/") :]
        root = self.ctx.asset_dir
        path = (root / rel).resolve() if root else None
        if path is None or root not in path.parents or not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = path.stat().st_size
        rng = self.headers.get("Range")
        start, end = 0, size - 1
        status = 200
        if rng:
            m = re.match(r"bytes=(\d*)-(\d*)", rng)
            if not m:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if m[1]:
                start = int(m[1])
                end = min(int(m[2]), size - 1) if m[2] else size - 1
            else:  # suffix range
                start, end = max(size - int(m[2]), 0), size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(left, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)


def start_stac_server(
    folder: str | Path,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    style: str = "earth-search",
    workdir: str | Path | None = None,
) -> StacServer:
    """Build items from the GeoTIFFs under ``folder`` and serve them; returns url, stop(), items, faults."""
    own_tmp = workdir is None
    asset_dir = Path(tempfile.mkdtemp(prefix="stac-assets-")) if own_tmp else Path(workdir)
    asset_dir.mkdir(parents=True, exist_ok=True)
    items = build_items(Path(folder), asset_dir, style=style)
    httpd = ThreadingHTTPServer((host, port), _Handler)
    httpd.daemon_threads = True
    url = f"http://{host}:{httpd.server_address[1]}"
    faults = Faults()

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()
        if own_tmp:
            shutil.rmtree(asset_dir, ignore_errors=True)

    ctx = StacServer(url=url, stop=stop, items=items, faults=faults, asset_dir=asset_dir.resolve())
    httpd.ctx = ctx  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, name="stac-server", daemon=True).start()
    return ctx


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="folder of GeoTIFFs (searched recursively)")
    ap.add_argument("--port", type=int, default=8123)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--style", choices=("earth-search", "planetary-computer"), default="earth-search")
    args = ap.parse_args(argv)
    srv = start_stac_server(args.folder, port=args.port, host=args.host, style=args.style)
    print(f"STAC API at {srv.url} with {len(srv.items)} items; Ctrl-C stops it.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
