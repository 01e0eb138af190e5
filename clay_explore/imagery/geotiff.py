"""Local GeoTIFF / COG ingest through rioxarray, read window by window.

Band order comes from the sensor registry (see :mod:`clay_explore.imagery.bands`), overridable;
the date from the option, the file's tags or its name; the file's nodata value (and an extra
alpha band's transparent pixels) become NaN; a declared scale/offset or Sentinel-2 baseline offset
is applied so values are on the registry's DN scale (:mod:`clay_explore.imagery.dn`).
The grid's gsd is taken from the file's transform, not from the registry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from clay_explore.core.errors import ImageryError, NoScenesError
from clay_explore.core.lock import writes_workspace
from clay_explore.core.progress import Cancel, ProgressFn
from clay_explore.core.sensors import Sensor, get_sensor
from clay_explore.imagery.bands import BandMap, resolve_band_map
from clay_explore.imagery.chipping import (
    NO_CLOUD_LIMIT,
    ChipSettings,
    WindowData,
    band_scale,
    chip_source,
)
from clay_explore.imagery.dn import dn_rescale, mask_zero_fill, zero_fill_is_nodata

#: Tags that may hold the acquisition date/time, most specific first.
DATE_TAGS = (
    "ACQUISITION_DATETIME",
    "DATETIME_ACQUIRED",
    "SENSING_TIME",
    "DATE_ACQUIRED",
    "ACQUISITION_DATE",
    "datetime",
    "DATE",
)
TIME_TAGS = ("SCENE_CENTER_TIME",)
#: How stored values are read: "auto" detects 0-1 reflectance in float files of DN sensors and
#: decibels in Sentinel-1 files; "dn" keeps them as stored; "reflectance" / "db" force a conversion.
VALUE_MODES = ("auto", "dn", "reflectance", "db")
#: Share of negative values that marks backscatter as dB (linear power is never negative).
DB_NEGATIVE_SHARE = 0.05
DB_PLAUSIBLE = (-80.0, 40.0)  # backscatter in dB lies well inside this range
#: Reflectance rarely exceeds this (bright cloud, snow); a DN sensor's stored values do, by far.
REFLECTANCE_MAX = 1.5
#: Sensors whose DN -> physical scale is below this store DN (integers in 0..255 or 0..10000s).
DN_SCALE_MAX = 0.1
SAMPLE_GRID = 3  # sample windows per side when checking the value range
SAMPLE_SIZE = 128  # pixels per side of each sample window
_NAME_YEAR_DAY = re.compile(r"(?:^|[._])A((?:19[7-9]\d|20\d\d))(\d{3})(?=[._])")  # MOD09A1.A2021177.h08v05...
_NAME_DATE = re.compile(r"(?<!\d)((?:19[7-9]\d|20\d\d))-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])(?!\d)")


def parse_date(value: str | datetime | None) -> datetime | None:
    """A UTC datetime from an ISO date/time string (date-only means 00:00), or None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip().replace("Z", "+00:00")
        m = re.match(r"^(\d{4}):(\d{2}):(\d{2})(.*)$", text)  # TIFF style 2020:01:31 10:00:00
        if m:
            text = f"{m[1]}-{m[2]}-{m[3]}{m[4]}"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as err:
            raise ImageryError(
                f"Cannot read the date {value!r}. Give it as YYYY-MM-DD (e.g. --date 2020-06-01)."
            ) from err
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def date_from_tags(tags: dict[str, str]) -> datetime | None:
    """Acquisition time from GeoTIFF tags (e.g. ACQUISITION_DATE + SCENE_CENTER_TIME), or None."""
    for key in DATE_TAGS:
        if tags.get(key):
            try:
                dt = parse_date(tags[key])
            except ImageryError:
                continue
            if dt and dt.hour == dt.minute == 0 and len(tags[key].strip()) <= len("YYYY-MM-DD"):
                for tkey in TIME_TAGS:
                    t = re.match(r"^(\d{2}):(\d{2}):(\d{2})", tags.get(tkey, ""))
                    if t:
                        dt = dt.replace(hour=int(t[1]), minute=int(t[2]), second=int(t[3]))
            return dt
    return None


def date_from_name(path: str | Path) -> datetime | None:
    """A date such as 20200927, 2020-09-27 or MODIS's A2020271 (year + day of year) in a file name, or None."""
    name = Path(path).name
    m = _NAME_DATE.search(name)
    if m:
        try:
            return datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
        except ValueError:
            pass
    m = _NAME_YEAR_DAY.search(name)
    if m and 1 <= int(m[2]) <= 366:
        day = datetime(int(m[1]), 1, 1, tzinfo=UTC) + timedelta(days=int(m[2]) - 1)
        return day if day.year == int(m[1]) else None
    return None


def _labels_from_tags(tags: dict[str, str]) -> list[str] | None:
    raw = tags.get("LABELS")
    if not raw:
        return None
    try:
        val = json.loads(raw)
    except json.JSONDecodeError:
        val = [s.strip() for s in raw.split(";") if s.strip()]
    return [str(v) for v in val] if isinstance(val, list) else [str(val)]


def _open_raster(path: Path) -> Any:
    """The raster at ``path`` as a lazy xarray DataArray [band, y, x]; ImageryError when GDAL cannot read it."""
    import rioxarray as rxr

    if not path.exists():
        raise ImageryError(f"{path} does not exist. Check the file path.")
    try:
        da = rxr.open_rasterio(path, cache=False, lock=False, masked=False, parse_coordinates=False)
    except Exception as err:  # rasterio raises RasterioIOError, xarray other things
        raise ImageryError(
            f"{path} is not a raster GDAL can read ({type(err).__name__}: {err}). Give a GeoTIFF/COG file."
        ) from err
    if isinstance(da, list):
        raise ImageryError(f"{path} holds several sub-datasets; give one GeoTIFF/COG file.")
    return da


class GeoTiffSource:
    """A local raster (GeoTIFF/COG, or anything GDAL reads) as a chipping source."""

    def __init__(
        self,
        path: str | Path,
        sensor: Sensor,
        *,
        file_bands: Sequence[str] | None = None,
        select: Sequence[str] | None = None,
        date: str | datetime | None = None,
        nodata: float | None = None,
        values: str = "auto",
    ):
        if values not in VALUE_MODES:
            raise ImageryError(f"values must be one of {', '.join(VALUE_MODES)}, not {values!r}.")
        self.path = Path(path)
        self.sensor = sensor
        self._da = da = _open_raster(self.path)  # [band, y, x], lazily read
        self._set_grid()
        tags = {str(k): str(v) for k, v in da.attrs.items()}
        meta = _band_meta(self.path)
        tags.update(meta["tags"])
        self._set_bands(meta, tags, file_bands, select)
        self.nodata = nodata if nodata is not None else da.rio.nodata
        self._zero_fill = zero_fill_is_nodata(sensor, self.nodata is not None)
        self._set_value_conversion(meta, tags, values)
        tagged = None if date else date_from_tags(tags)
        self.datetime = parse_date(date) if date else (tagged or date_from_name(self.path))
        self.date_from = "option" if date else ("tags" if tagged else ("file name" if self.datetime else "unknown"))
        self.labels = _labels_from_tags(tags)

    def _set_grid(self) -> None:
        """CRS, transform and size of the raster; refuse one that cannot be placed on the map."""
        da = self._da
        self.crs = da.rio.crs
        if self.crs is None:
            raise ImageryError(
                f"{self.path} has no coordinate reference system, so its chips cannot be placed on the map. "
                "Assign one first (e.g. `gdal_edit.py -a_srs EPSG:32633 FILE`) and ingest again."
            )
        self.transform = da.rio.transform(recalc=False)
        if self.transform.is_identity:
            raise ImageryError(
                f"{self.path} has a CRS but no geotransform (pixel coordinates only). Georeference it "
                "first (e.g. with gdal_translate -a_ullr) and ingest again."
            )
        self.height, self.width = int(da.shape[1]), int(da.shape[2])

    def _set_bands(
        self, meta: dict[str, Any], tags: dict[str, str], file_bands: Sequence[str] | None, select: Sequence[str] | None
    ) -> None:
        """Which file band is which sensor band (``band_map``), an alpha mask band, and the kept bands."""
        da, sensor = self._da, self.sensor
        count = int(da.shape[0])
        # an extra last band tagged alpha (RGBA aerial imagery) is a mask, not a sensor band
        self._alpha = (
            count - 1
            if (file_bands is None and count == len(sensor.bands) + 1 and meta["colorinterp"][-1] == "alpha")
            else None
        )
        n_data = count - (self._alpha is not None)
        descriptions = da.attrs.get("long_name")
        if isinstance(descriptions, str):
            descriptions = (descriptions,)
        descriptions = tuple(descriptions)[:n_data] if descriptions else ()
        self.band_map: BandMap = resolve_band_map(
            sensor,
            n_data,
            file_bands=file_bands,
            descriptions=descriptions,
            band_order_tag=tags.get("BAND_ORDER"),
            select=select,
        )
        self.bands = self.band_map.names
        self.scale, self.offset = band_scale(sensor, self.bands)
        self._index = [i - 1 for i in self.band_map.indexes]  # 0-based positions of the kept bands in the file

    def _set_value_conversion(self, meta: dict[str, Any], tags: dict[str, str], values: str) -> None:
        """How stored values become the sensor's DN: declared scales/offsets, 0-1 reflectance, or dB."""
        sensor, idx = self.sensor, self._index
        rescale, self.rescale_note = dn_rescale(
            sensor, [meta["scales"][i] for i in idx], [meta["offsets"][i] for i in idx], tags, self.path
        )
        self._rescale = None if all(ab == (1.0, 0.0) for ab in rescale) else np.asarray(rescale, np.float32)
        declared = any((meta["scales"][i], meta["offsets"][i]) not in ((1.0, 0.0), (None, None)) for i in idx)
        dn_sensor = sensor.scale < DN_SCALE_MAX
        if values == "reflectance" and not dn_sensor:
            raise ImageryError(
                f"Sensor {sensor.name} stores {sensor.units}, not DN with a reflectance scale; "
                "drop --values reflectance."
            )
        if values == "db" and sensor.transform != "db":
            raise ImageryError(f"--values db is for backscatter sensors; {sensor.name} stores {sensor.units}.")
        self._from_db = sensor.transform == "db" and (values == "db" or (values == "auto" and self._looks_like_db()))
        if self._from_db:
            how = "--values db" if values == "db" else "values look like decibels (many are negative)"
            self.rescale_note = f"{how}: converted to linear power; pass --values dn to keep them as stored"
        elif dn_sensor and (
            values == "reflectance"
            or (
                values == "auto"
                and not declared
                and np.issubdtype(self._da.dtype, np.floating)
                and self._looks_like_reflectance()
            )
        ):
            how = "--values reflectance" if values == "reflectance" else "values look like 0-1 reflectance"
            self._rescale = np.asarray([(1.0 / sensor.scale, -sensor.offset / sensor.scale)] * len(idx), np.float32)
            self.rescale_note = (
                f"{how}: converted to DN (DN = (value - {sensor.offset:g}) / {sensor.scale:g}); "
                "pass --values dn to keep them as stored"
            )

    def _looks_like_reflectance(self) -> bool:
        """True when a DN sensor's file holds 0-1 reflectance instead (e.g. exported scaled by 1e-4)."""
        valid = self._sample()
        return valid.size > 0 and valid.max() > 0 and float(np.percentile(valid, 99)) <= REFLECTANCE_MAX

    def _looks_like_db(self) -> bool:
        """True when backscatter is stored in decibels (linear power is never negative).

        Only values in a plausible dB range count, so an undeclared fill such as -9999 in a linear
        file is not mistaken for decibels.
        """
        valid = self._sample()
        valid = valid[(valid > DB_PLAUSIBLE[0]) & (valid < DB_PLAUSIBLE[1])]
        return valid.size > 0 and float(np.mean(valid < 0)) > DB_NEGATIVE_SHARE

    def _sample(self) -> np.ndarray:
        """Valid values of the kept bands in a few small windows spread over the file (a few blocks)."""
        size = min(SAMPLE_SIZE, self.height, self.width)
        rows = np.linspace(0, self.height - size, SAMPLE_GRID).astype(int)
        cols = np.linspace(0, self.width - size, SAMPLE_GRID).astype(int)
        parts = []
        for r in sorted(set(rows)):
            for c in sorted(set(cols)):
                win = self._da.isel(band=self._index, y=slice(r, r + size), x=slice(c, c + size))
                parts.append(np.asarray(win.values, dtype=np.float32).ravel())
        sample = np.concatenate(parts)
        valid = sample[np.isfinite(sample)]
        if self.nodata is not None and not np.isnan(self.nodata):
            valid = valid[valid != np.float32(self.nodata)]
        return valid

    def identity(self) -> dict[str, Any]:
        st = self.path.stat()
        return {
            "kind": "file",
            "path": str(self.path.resolve()),
            "size": st.st_size,
            "mtime": int(st.st_mtime),
            "bands": self.band_map.how,
            "datetime": self.datetime.isoformat() if self.datetime else None,
            "values": self.rescale_note,
            "alpha_mask": self._alpha is not None,
            "nodata": (None if self.nodata is None or np.isnan(self.nodata) else float(self.nodata))
            if not self._zero_fill
            else "0 in every band (no nodata declared)",
        }

    def read(self, row: int, col: int, height: int, width: int) -> WindowData:
        index = self._index + ([self._alpha] if self._alpha is not None else [])
        win = self._da.isel(band=index, y=slice(row, row + height), x=slice(col, col + width))
        data = np.asarray(win.values, dtype=np.float32)  # [C(+alpha), h, w]
        if self._alpha is not None:
            data, alpha = data[:-1], data[-1]
            data[:, alpha == 0] = np.nan
        if self.nodata is not None and not np.isnan(self.nodata):
            data[data == np.float32(self.nodata)] = np.nan
        elif self._zero_fill:
            mask_zero_fill(data)
        if self._from_db:  # the registry (and Clay's dB transform) expect linear power
            data = np.power(np.float32(10.0), data / np.float32(10.0))
        if self._rescale is not None:  # onto the registry's DN scale; NaN stays NaN
            a, b = self._rescale[:, 0, None, None], self._rescale[:, 1, None, None]
            data = data * a + b
            if (self._rescale[:, 1] < 0).any():
                data = np.maximum(data, 0.0, where=np.isfinite(data), out=data)
        return WindowData(data, None, str(self.path.name), self.datetime)

    def close(self) -> None:
        self._da.close()


def _band_meta(path: Path) -> dict[str, Any]:
    """Per-band colour interpretation, GDAL scale/offset, and dataset + band tags of a raster."""
    import rasterio

    with rasterio.open(path) as ds:
        tags = dict(ds.tags())
        for i in ds.indexes:  # band-level tags such as BOA_ADD_OFFSET
            for k, v in ds.tags(i).items():
                tags.setdefault(k, v)
        return {
            "colorinterp": [c.name for c in ds.colorinterp],
            "scales": list(ds.scales),
            "offsets": list(ds.offsets),
            "tags": tags,
        }


@writes_workspace("ingest")
def ingest_geotiff(
    path: str | Path,
    workspace: str | Path,
    *,
    sensor: str,
    bands: Sequence[str] | None = None,
    file_bands: Sequence[str] | None = None,
    date: str | None = None,
    chips: ChipSettings = ChipSettings(),
    nodata: float | None = None,
    values: str = "auto",
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
) -> dict[str, Any]:
    """Chip a local GeoTIFF/COG into a workspace; returns the file's chips record.

    ``bands`` keeps a subset of sensor bands; ``file_bands`` names every file band in file order
    (``-`` skips one) when the file's own labels or the registry order are wrong. ``values``: "auto"
    converts float files of DN sensors that hold 0-1 reflectance to DN and Sentinel-1 dB to linear
    power; "dn" keeps values as stored; "reflectance" / "db" force a conversion. A workspace that
    already holds chips of other files with the same sensor, bands and chip size takes this file's
    after them (``total_chips``/``n_sources`` in the result); the same file again is a no-op or a
    resume. A workspace of another sensor, band set or chip size is refused. ``chips`` is how the file is
    cut; a file carries no cloud mask, so its chip cloud limit is always ``NO_CLOUD_LIMIT`` (none is cloudy).
    """
    from dataclasses import replace

    from clay_explore.core.workspace import Workspace

    sens = get_sensor(sensor)
    settings = replace(chips, max_chip_cloud=NO_CLOUD_LIMIT)
    src = GeoTiffSource(path, sens, file_bands=file_bands, select=bands, date=date, nodata=nodata, values=values)
    try:
        source = {"kind": "file", "path": str(Path(path).resolve())}
        ws = Workspace.create(
            workspace,
            sensor=sens.name,
            bands=list(src.bands),
            chip_size=settings.chip_size,
            source=source,
            settings={
                "stride": settings.stride,
                "min_valid": settings.min_valid,
                "max_chip_cloud": settings.max_chip_cloud,
            },
        )
        info = {
            "band_map": src.band_map.how,
            "values": src.rescale_note,
            "date_from": src.date_from,
            "datetime": src.datetime.isoformat() if src.datetime else None,
            "labels": src.labels,
        }
        return chip_source(ws, src, settings, info=info, append=True, source=source, progress=progress, cancel=cancel)
    finally:
        src.close()


def _check_files(files: Sequence[Path], sensor: Sensor, **options: Any) -> tuple[str, ...]:
    """Open every file (raster, CRS, band mapping) before anything is written; all must give one band set.

    ``options`` are GeoTiffSource's (file_bands, select, date, nodata, values). Returns the common bands.
    """
    first: tuple[str, ...] | None = None
    for f in files:
        src = GeoTiffSource(f, sensor, **options)
        src.close()
        if first is None:
            first = tuple(src.bands)
        elif tuple(src.bands) != first:
            raise ImageryError(
                f"{f.name} gives bands {list(src.bands)} but {files[0].name} gives {list(first)}; one workspace "
                "holds one band set. Pass --bands to keep the common ones, or ingest them into separate workspaces."
            )
    return first or ()


@writes_workspace("ingest")
def ingest_geotiffs(
    paths: Sequence[str | Path],
    workspace: str | Path,
    *,
    sensor: str,
    bands: Sequence[str] | None = None,
    file_bands: Sequence[str] | None = None,
    date: str | None = None,
    chips: ChipSettings = ChipSettings(),
    nodata: float | None = None,
    values: str = "auto",
    progress: ProgressFn | None = None,
    on_file: Callable[[int, int, Path], None] | None = None,
    cancel: Cancel = None,
) -> dict[str, Any]:
    """Chip several local files of one sensor into one workspace, one after the other.

    Every file is opened and checked first (raster, CRS, bands), so a bad file is reported before
    anything is written. Each file then goes through :func:`ingest_geotiff`: finished files are
    skipped on a re-run and an interrupted one resumes. ``progress(done, total, info)`` counts the
    windows of the current file; ``on_file(i, n, path)`` is called before file ``i`` (0-based).
    ``date`` applies to every file (default: each file's tags or name). A file whose every chip is
    dropped is skipped (its record says why) unless no file gives a chip. Returns ``{"files":
    [record per file], "chips": chips in the workspace, "n_sources", "added": chips new this call}``.
    """
    files = list({Path(p).resolve(): Path(p) for p in paths}.values())  # a file named twice is ingested once
    if not files:
        raise ImageryError("No file given. Name one or more GeoTIFF/COG files to ingest.")
    _check_files(
        files, get_sensor(sensor), file_bands=file_bands, select=bands, date=date, nodata=nodata, values=values
    )
    out: list[dict[str, Any]] = []
    for i, f in enumerate(files):
        if on_file is not None:
            on_file(i, len(files), f)
        try:
            rec = ingest_geotiff(
                f,
                workspace,
                sensor=sensor,
                bands=bands,
                file_bands=file_bands,
                date=date,
                chips=chips,
                nodata=nodata,
                values=values,
                progress=progress,
                cancel=cancel,
            )
        except NoScenesError as err:  # one empty or cloudy file does not stop the others
            if len(files) == 1:
                raise
            rec = {"chips": 0, "skipped": str(err)}
        out.append({**rec, "file": str(f)})
    kept = [r for r in out if "skipped" not in r]
    if not kept:
        raise NoScenesError(f"No file gave a chip: {out[-1]['skipped']}")
    return {
        "files": out,
        "chips": kept[-1]["total_chips"],
        "n_sources": kept[-1]["n_sources"],
        "added": sum(int(r["chips"]) for r in kept if not r.get("resumed")),
    }
