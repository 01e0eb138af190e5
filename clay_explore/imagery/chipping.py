"""Cut a raster source into chips, window by window, into the workspace (resumable, atomic).

A *source* is anything with a grid (CRS, affine transform, height, width), band names and a
``read(row, col, height, width) -> WindowData`` method for windows inside the grid. Chipping
walks a regular grid of windows (``stride`` apart), pads edge chips with NaN, records each chip's
valid and cloud fraction, drops chips below/above the thresholds and writes the kept ones into
``chips.zarr/pixels`` in batches. Memory is bounded by one batch of chips, not by the scene.
The pure grid maths (windows, fractions, keep/drop, footprints) is in ``imagery.grid``; this module
is the resumable writer around it. Progress and cancel follow ``core.progress``, like the research stages.

Resume: a progress log (``chips.progress.jsonl``) gets one appended line per batch listing each
window decided in it (kept at row k, or dropped and why); the line is appended and fsynced *after*
the chip pixels and ``Workspace.mark_done``, so a crash never leaves a chip that later reads as
valid (a torn last line is ignored and its batch redone), and re-running the same command skips
the finished windows. Appending keeps the cost per batch constant, however large the scene.

Several sources (e.g. local files of one sensor) can share a workspace: each later source is
chipped into ``chips.zarr/pending`` while the earlier chips stay valid, then moved to the end of
``pixels`` and the table (chip ids prefixed ``s<index>_``) in one short step. The 'chips' stage
record lists every finished source (``sources``: rows, counts, fingerprint) and counts appends
in ``revision``; later stages (embed, evaluate) are marked stale when chips are added.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from clay_explore.core.bounds import check_bounds
from clay_explore.core.defaults import DEFAULT_CHIP_SIZE, DEFAULT_MAX_CHIP_CLOUD, DEFAULT_MIN_VALID
from clay_explore.core.errors import CancelledError, ImageryError, NoScenesError, WorkspaceError
from clay_explore.core.progress import Cancel, Progress, ProgressFn, is_cancelled
from clay_explore.core.workspace import CHIP_TABLE, CHIPS_PROGRESS, CHIPS_ZARR, Workspace, atomic_write_bytes
from clay_explore.imagery.grid import (  # the pure grid maths, re-exported for the writer's callers
    DROPPED_CLOUD,
    DROPPED_NODATA,
    apply_affine,
    check_chip_size,
    chip_fractions,
    chip_grid,
    crs_string,
    drop_reason,
    footprint_ring,
    gsd_metres,
)

PIXELS = "pixels"
PENDING = "pending"  # chips.zarr/pending: an appended source's chips until it is finished
PROGRESS = CHIPS_PROGRESS
STAGE = "chips"
MIN_BATCH = 8  # chips held in memory at once, at least ...
MAX_BATCH = 1024  # ... and at most
BATCH_BYTES = 32 * 2**20  # ... and otherwise about this many bytes of chip pixels
GDAL_CACHE_BYTES = 64 * 2**20  # GDAL's block cache would otherwise grow to 5% of RAM with the scene


@dataclass
class WindowData:
    """What a source returns for one window."""

    data: np.ndarray  # float32 [C, h, w], raw sensor units, NaN = nodata
    cloud: np.ndarray | None = None  # bool [h, w] cloud/shadow, None when unknown
    source: str = ""  # item id(s) or file the pixels came from
    datetime: datetime | None = None  # acquisition time of (most of) the window


class RasterSource(Protocol):
    """A scene on one grid that chipping can read window by window."""

    crs: Any  # rasterio CRS
    transform: Any  # affine.Affine of the grid
    height: int
    width: int
    bands: tuple[str, ...]  # canonical sensor band names, in the order of ``read``'s axis 0
    scale: tuple[float, ...]  # physical = value * scale + offset, per band
    offset: tuple[float, ...]
    labels: list[str] | None  # scene-level labels (e.g. BigEarthNet), or None

    def identity(self) -> dict[str, Any]:
        """JSON facts that identify the scene (for resume checks and the manifest)."""

    def read(self, row: int, col: int, height: int, width: int) -> WindowData:
        """Pixels of a window that lies inside the grid."""


#: The chip cloud limit of sources without a cloud mask (local files, the demo scene): none is cloudy.
NO_CLOUD_LIMIT = 1.0


@dataclass(frozen=True)
class ChipSettings:
    """How a scene is cut into chips: passed whole to every imagery entry point (fetch, ingest, demo, upload).

    The numeric limits of ``core.bounds`` are checked here, on construction (the same names and messages as
    a stage's keyword options), so bad settings are refused before any workspace or chip is allocated.
    """

    chip_size: int = DEFAULT_CHIP_SIZE
    stride: int | None = None  # None: the chip size (no overlap)
    min_valid: float = DEFAULT_MIN_VALID
    max_chip_cloud: float = DEFAULT_MAX_CHIP_CLOUD
    batch: int | None = None  # chips per write; None = from BATCH_BYTES (see batch_for)

    def __post_init__(self) -> None:
        check_bounds(
            {
                "chip_size": self.chip_size,
                "stride": self.stride,
                "min_valid": self.min_valid,
                "max_chip_cloud": self.max_chip_cloud,
            }
        )
        check_chip_size(self.chip_size)
        if self.stride is None:
            object.__setattr__(self, "stride", self.chip_size)  # frozen: set once, here
        if int(self.stride) < 1:
            raise ImageryError(f"Stride {self.stride} must be a positive number of pixels (e.g. --stride 128).")
        for name in ("min_valid", "max_chip_cloud"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ImageryError(f"{name} = {v} must be a fraction between 0 and 1.")


def batch_for(chip_size: int, n_bands: int) -> int:
    """Chips per batch: about BATCH_BYTES of float32 pixels, within [MIN_BATCH, MAX_BATCH].

    Small chips get large batches so the per-batch bookkeeping (done list, progress log, fsync)
    stays cheap for scenes with tens of thousands of windows; memory stays bounded.
    """
    per_chip = 4 * max(1, n_bands) * chip_size * chip_size
    return int(min(MAX_BATCH, max(MIN_BATCH, BATCH_BYTES // per_chip)))


def read_chip(src: RasterSource, row: int, col: int, chip: int) -> WindowData:
    """One chip [C, chip, chip] with NaN padding where the window leaves the grid."""
    h = max(0, min(chip, src.height - row))
    w = max(0, min(chip, src.width - col))
    out = np.full((len(src.bands), chip, chip), np.nan, dtype=np.float32)
    cloud = None
    wd = src.read(row, col, h, w) if h and w else WindowData(np.zeros((len(src.bands), 0, 0), np.float32))
    out[:, :h, :w] = wd.data
    if wd.cloud is not None:
        cloud = np.zeros((chip, chip), dtype=bool)
        cloud[:h, :w] = wd.cloud
    return WindowData(out, cloud, wd.source, wd.datetime)


def _fingerprint(src: RasterSource, settings: ChipSettings) -> str:
    facts = {
        "source": src.identity(),
        "grid": [src.height, src.width, list(src.transform)[:6], str(src.crs)],
        "bands": list(src.bands),
        "settings": [settings.chip_size, settings.stride, settings.min_valid, settings.max_chip_cloud],
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def completed_sources(rec: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The finished sources of a 'chips' stage record, in pixel-row order.

    Each holds ``index``, ``rows`` ([start, stop) in chips.zarr/pixels), ``id_prefix`` (of its
    chip ids), ``fingerprint``, ``source`` (identity) and its counts. A record written before
    multi-source ingest (no ``sources`` list) reads as one source when it is complete.
    """
    if not rec:
        return []
    if "sources" in rec:
        return [dict(s) for s in rec["sources"]]
    if rec.get("status") != "complete":
        return []
    first = {k: v for k, v in rec.items() if k not in ("status", "updated")}
    return [{**first, "index": 0, "rows": [0, int(rec.get("chips", 0))], "id_prefix": ""}]


def chip_source(
    ws: Workspace,
    src: RasterSource,
    settings: ChipSettings,
    *,
    info: dict[str, Any] | None = None,
    append: bool = False,
    source: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
) -> dict[str, Any]:
    """Chip ``src`` into ``ws`` (chips.zarr/pixels + chips.parquet + the 'chips' stage).

    Returns this source's record over the stage record: its own counts (``chips``, ``windows``,
    ``dropped_*``, ``rows``, ``index``) plus the workspace's ``total_chips`` and ``n_sources``.
    Re-running with the same source and settings resumes, or returns at once (``resumed``) when
    that source is finished. With ``append``, a workspace holding other sources' chips takes this
    source's after them (its chips wait in chips.zarr/pending until it is finished, so the
    workspace stays valid meanwhile); without it such a workspace is refused. ``info`` adds facts
    to the source's record (product, notes); ``source`` is how the manifest lists it (default:
    ``src.identity()``). ``progress(done, total, info)`` and ``cancel`` follow ``core.progress`` (windows
    decided so far; cancel is checked before every window). Raises NoScenesError when every chip is dropped.
    """
    if list(src.bands) != ws.bands:
        raise WorkspaceError(f"Source bands {list(src.bands)} differ from the workspace's {ws.bands}.")
    fp = _fingerprint(src, settings)
    ws.forget_lost_chips()  # chips.zarr/chips.parquet deleted: rebuild instead of "already complete"
    rec = ws.stage(STAGE)
    done = completed_sources(rec)
    for finished in done:
        if finished.get("fingerprint") == fp:
            return _result(rec, finished, resumed=True)
    state = read_progress(ws)
    resuming = bool(state) and state.get("fingerprint") == fp
    _check_can_add(ws, src, rec, done, state, resuming, append)

    stage_info = {"fingerprint": fp, "source": src.identity(), **(info or {})}
    run = _open_run(ws, src, settings, state if resuming else None, rec, done, stage_info)
    todo = [i for i in range(len(run.windows)) if i not in run.records]
    bar = Progress(
        len(run.windows), stage=STAGE, unit="chip", callback=progress, show=False, done=len(run.windows) - len(todo)
    )
    try:
        with _bounded_gdal_cache():
            _chip_windows(run, todo, bar, cancel)
    finally:
        bar.close()
    empty = [b for b, seen in zip(src.bands, run.finite) if not seen]
    if done:
        return _finish_append(run, stage_info, rec, done, source, empty)
    return _finish(run, stage_info, source, empty)


def _open_run(
    ws: Workspace,
    src: RasterSource,
    settings: ChipSettings,
    state: dict[str, Any] | None,
    rec: dict[str, Any] | None,
    done: list[dict[str, Any]],
    stage_info: dict[str, Any],
) -> _WindowRun:
    """The grid of windows, the array the chips go to and the stage record, resumed from ``state`` when given.

    A first source writes chips.zarr/pixels directly; a later one writes chips.zarr/pending while the
    finished sources stay readable.
    """
    chip = settings.chip_size
    windows = chip_grid(src.height, src.width, chip, int(settings.stride))
    base = sum(int(s["chips"]) for s in done)
    if state is None:
        _start_progress(ws, stage_info["fingerprint"], base)
    target = PENDING if done else PIXELS
    arr = ws.create_array(
        CHIPS_ZARR,
        target,
        shape=(len(windows), len(src.bands), chip, chip),
        dtype="float32",
        attrs=_array_attrs(src, settings),
        overwrite=bool(done) and state is None,
    )
    if done:  # the finished sources stay readable while this one is chipped
        ws.set_stage(
            STAGE,
            status=(rec or {}).get("status", "complete"),
            **_keep(rec),
            appending={**stage_info, "base_row": base},
        )
    else:
        ws.set_stage(STAGE, status="partial", windows=len(windows), **stage_info)
    state = state or {}
    return _WindowRun(
        ws,
        src,
        settings,
        windows,
        records={int(k): v for k, v in state.get("windows", {}).items()},
        arr=arr,
        target=target,
        finite=_finite_so_far(state, len(src.bands)),
        next_row=int(state.get("next_row", 0)),
    )


def _finite_so_far(state: dict[str, Any], n_bands: int) -> np.ndarray:
    """Which bands had a finite value in a window already read (bool [C]), from the progress log.

    A log that does not say (written before this was tracked) counts every band as seen, so no
    band is wrongly blamed for the lack of valid data.
    """
    seen = np.zeros(n_bands, dtype=bool)
    if not state.get("windows"):
        return seen
    indices = state.get("finite_bands")
    if indices is None:
        seen[:] = True
    else:
        seen[[int(i) for i in indices]] = True
    return seen


def _check_can_add(ws, src, rec, done, state, resuming, append) -> None:
    """Refuse a source that would leave another one unfinished or mix incompatible chips.

    A first source that finished with every chip dropped (``emptied``) left nothing to keep.
    """
    emptied = bool(rec) and not done and rec.get("chips") == 0 and len(state.get("windows", {})) == rec.get("windows")
    if state and not resuming and not emptied and state.get("fingerprint") not in {s.get("fingerprint") for s in done}:
        pending = (rec or {}).get("appending") or rec or {}
        raise WorkspaceError(
            f"Workspace {ws.root} holds unfinished chips of {_source_name(pending.get('source'))} or of other "
            "settings. Re-run that command to finish it, or choose a new --workspace folder."
        )
    if not done:
        return
    names = ", ".join(_source_name(s.get("source")) for s in done)
    if not append:
        raise WorkspaceError(
            f"Workspace {ws.root} already holds chips from {names}; it takes no other source here. "
            "Choose a new --workspace folder; nothing stored there was changed."
        )
    ident = src.identity()
    for s in done:
        old = s.get("source") or {}
        if old == ident or (old.get("path") is not None and old.get("path") == ident.get("path")):
            raise WorkspaceError(
                f"Workspace {ws.root} already holds chips of {_source_name(old)} cut with other settings "
                "(--stride, --min-valid, --bands, --date) or from an earlier version of the file. Re-run with "
                "the settings used then, or choose a new --workspace folder; nothing stored there was changed."
            )
    attrs = dict(ws.open_array(CHIPS_ZARR, PIXELS).attrs)
    for key in ("scale", "offset"):
        if key in attrs and [float(v) for v in attrs[key]] != [float(v) for v in getattr(src, key)]:
            raise WorkspaceError(
                f"{_source_name(ident)} stores values with {key} {list(getattr(src, key))}, the workspace's chips "
                f"{attrs[key]}; they cannot share one pixel array. Choose a new --workspace folder."
            )


def _source_name(ident: Any) -> str:
    """A short human name of a source identity (file name, STAC items, demo)."""
    if not isinstance(ident, dict):
        return "another source"
    if ident.get("path"):
        return Path(str(ident["path"])).name
    if ident.get("items"):
        return "STAC items " + ", ".join(map(str, ident["items"]))
    return str(ident.get("kind") or "another source")


def _keep(rec: dict[str, Any] | None) -> dict[str, Any]:
    """A stage record without the fields that set_stage writes or that describe a pending append."""
    return {k: v for k, v in (rec or {}).items() if k not in ("status", "updated", "appending")}


def _result(stage: dict[str, Any], src_rec: dict[str, Any], resumed: bool = False) -> dict[str, Any]:
    """What chip_source returns: the source's record over the stage's, with workspace totals."""
    out = {
        **{k: v for k, v in stage.items() if k != "sources"},
        **src_rec,
        "total_chips": int(stage.get("chips", 0)),
        "n_sources": len(stage.get("sources") or [src_rec]),
    }
    if resumed:
        out["resumed"] = True
    return out


@contextmanager
def _bounded_gdal_cache() -> Iterator[None]:
    """Cap GDAL's raster block cache so memory does not grow with the scene."""
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        yield


def read_progress(ws: Workspace) -> dict[str, Any]:
    """The progress log folded into {"fingerprint", "base_row", "next_row", "windows"}; {} when none.

    ``base_row`` is the number of chips of earlier sources (an appended source's rows start there);
    ``next_row`` and each window's ``out_row`` count rows of the array being written;
    ``finite_bands`` (when windows were read) lists the indices of bands with a finite value so far.

    A line that does not parse (a write torn by a crash) ends the log: its batch is redone.
    """
    path = ws.path(PROGRESS)
    if not path.exists():
        return {}
    state: dict[str, Any] = {"windows": {}}
    good = 0
    with open(path, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                break
            if not line.endswith(b"\n"):
                break
            good += len(line)
            if "fingerprint" in rec:
                state["fingerprint"] = rec["fingerprint"]
                state["base_row"] = int(rec.get("base_row", 0))
            if rec.get("windows"):  # cumulative per line; None when a line predates the tracking
                state["finite_bands"] = rec.get("finite_bands")
            state["windows"].update(rec.get("windows", {}))
            state["next_row"] = rec.get("next_row", state.get("next_row", 0))
    if good < path.stat().st_size:  # drop the torn tail so later appends start on a clean line
        with open(path, "r+b") as f:
            f.truncate(good)
    return state if "fingerprint" in state else {}


def _start_progress(ws: Workspace, fp: str, base: int = 0) -> None:
    """(Re-)start the progress log with its header line, atomically."""
    head = {"fingerprint": fp, "base_row": base}
    atomic_write_bytes(ws.path(PROGRESS), json.dumps(head).encode() + b"\n")


def _append_progress(ws: Workspace, rec: dict[str, Any]) -> None:
    """Append one line to the progress log and make it durable."""
    with open(ws.path(PROGRESS), "ab") as f:
        f.write(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())


@dataclass
class _WindowRun:
    """One source being chipped: where its chips go and what was decided so far (updated in place)."""

    ws: Workspace
    src: RasterSource
    settings: ChipSettings
    windows: list[tuple[int, int]]  # top-left (row, col) of every window of the grid
    records: dict[int, dict[str, Any]]  # window index -> its record (kept at out_row, or dropped and why)
    arr: Any  # zarr array written: pixels, or pending for an appended source
    target: str  # its name in chips.zarr
    finite: np.ndarray  # bool [C]: bands with a finite value in a window read so far
    next_row: int = 0  # next free row of ``arr``


def _read_window(run: _WindowRun, i: int) -> tuple[dict[str, Any], np.ndarray]:
    """Read window ``i``, measure it and decide whether it is kept: (its record, its pixels [C, chip, chip]).

    Marks, in ``run.finite``, every band with a finite value (only bands not yet seen are checked,
    so this soon costs nothing): a band never marked explains why every chip was dropped.
    """
    r, c = run.windows[i]
    wd = read_chip(run.src, r, c, run.settings.chip_size)
    vf, cf = chip_fractions(wd.data, wd.cloud)
    if not run.finite.all():
        unseen = np.flatnonzero(~run.finite)
        run.finite[unseen] = np.isfinite(wd.data[unseen]).any(axis=(1, 2))
    dropped = drop_reason(vf, cf, run.settings.min_valid, run.settings.max_chip_cloud)
    rec = {
        "row": r,
        "col": c,
        "out_row": None,
        "valid_fraction": vf,
        "cloud_fraction": cf,
        "source": wd.source,
        "datetime": wd.datetime.isoformat() if wd.datetime else None,
        "dropped": dropped,
    }
    return rec, wd.data


def _chip_windows(run: _WindowRun, todo: Sequence[int], bar: Progress, cancel: Cancel) -> None:
    """Read, judge and write the windows ``todo`` in batches, committing each batch to the progress log.

    ``cancel`` is polled before every window; on cancel (or any error, Ctrl-C included) the windows
    already read are committed first, so nothing finished is lost.
    """
    size = run.settings.batch or batch_for(run.settings.chip_size, len(run.src.bands))
    kept_rows: list[int] = []
    decided: dict[str, dict[str, Any]] = {}

    def commit() -> None:
        if kept_rows:
            run.ws.mark_done(CHIPS_ZARR, run.target, kept_rows)
        if decided:
            _append_progress(
                run.ws,
                {
                    "next_row": run.next_row,
                    "windows": dict(decided),
                    "finite_bands": np.flatnonzero(run.finite).tolist(),
                },
            )
        kept_rows.clear()
        decided.clear()

    reported = 0
    for n, i in enumerate(todo):
        if is_cancelled(cancel):
            commit()
            raise CancelledError("Chipping cancelled; finished chips are kept. Run the same command to resume.")
        try:
            rec, data = _read_window(run, i)
            if rec["dropped"] is None:
                rec["out_row"] = run.next_row
                run.arr[run.next_row] = data  # [C, chip, chip]; a row half-written here is not yet recorded
        except BaseException:  # Ctrl-C, network failure...: keep the windows finished so far
            commit()
            raise
        if rec["out_row"] is not None:
            kept_rows.append(rec["out_row"])
            run.next_row += 1
        run.records[i] = rec
        decided[str(i)] = rec
        if len(decided) >= size:
            commit()
        if (n + 1) % MIN_BATCH == 0 or n + 1 == len(todo):
            bar.update(n + 1 - reported)
            reported = n + 1
    commit()


def _array_attrs(src: RasterSource, settings: ChipSettings) -> dict[str, Any]:
    return {
        "bands": list(src.bands),
        "scale": list(src.scale),
        "offset": list(src.offset),
        "value_scale": "raw sensor values as Clay's normalisation expects them; physical = value * scale + offset",
        "nodata": "NaN",
        "chip_size": settings.chip_size,
        "stride": settings.stride,
    }


def _counts(run: _WindowRun) -> dict[str, Any]:
    """Kept and dropped chips of one source, with the settings they were cut with."""
    src, settings, records = run.src, run.settings, run.records
    return {
        "chips": run.next_row,
        "windows": len(run.windows),
        "dropped_nodata": sum(1 for r in records.values() if r["dropped"] == DROPPED_NODATA),
        "dropped_cloud": sum(1 for r in records.values() if r["dropped"] == DROPPED_CLOUD),
        "chip_size": settings.chip_size,
        "stride": settings.stride,
        "min_valid": settings.min_valid,
        "max_chip_cloud": settings.max_chip_cloud,
        "scale": list(src.scale),
        "offset": list(src.offset),
    }


def _all_dropped(
    src, settings, counts: dict[str, Any], records: dict[int, dict[str, Any]], empty: Sequence[str] = ()
) -> NoScenesError:
    """The error for a source whose every chip was dropped, saying what to change.

    ``empty`` are the bands with no finite value in any window read: a pixel is valid only when
    every band is, so one such band drops every chip, and leaving it out is the fix.
    """
    if counts["dropped_cloud"]:
        return NoScenesError(
            f"Every chip was dropped: {counts['dropped_cloud']} of {counts['windows']} have more than "
            f"{settings.max_chip_cloud:.0%} cloud and {counts['dropped_nodata']} too little valid data. "
            "Choose another date range (or a lower --max-cloud for the scene search), or allow cloudier "
            "chips with --max-chip-cloud."
        )
    others = [b for b in src.bands if b not in set(empty)]
    if empty and others:
        which = f"band {empty[0]} has" if len(empty) == 1 else f"bands {', '.join(empty)} have"
        return NoScenesError(
            f"Every chip was dropped: {which} no valid pixel (all nodata/NaN) in any of the {counts['windows']} "
            f"windows, and a pixel counts as valid only when every band is. "
            f"Leave {'it' if len(empty) == 1 else 'them'} "
            f"out with --bands {','.join(others)} (the other bands)."
        )
    best = max((float(r["valid_fraction"]) for r in records.values()), default=0.0)
    if best == 0.0:
        return NoScenesError(
            f"Every chip was dropped: none of the {counts['windows']} windows has a single valid pixel (one that "
            "is not nodata/NaN in every band). Check that the area overlaps the imagery and that its nodata "
            "value is right."
        )
    return NoScenesError(
        f"Every chip was dropped: none of the {counts['windows']} windows has {settings.min_valid:.0%} valid "
        f"pixels (the best has {best:.0%}). "
        f"{_small_scene_hint(src, settings) or 'Check that the area overlaps the imagery, or lower --min-valid.'}"
    )


def _totals(sources: list[dict[str, Any]]) -> dict[str, Any]:
    """Stage-level facts: the first source's (what single-source readers expect), counts summed."""
    top = {k: v for k, v in sources[0].items() if k not in ("index", "rows", "id_prefix", "labels")}
    for key in ("chips", "windows", "dropped_nodata", "dropped_cloud"):
        top[key] = sum(int(s.get(key, 0)) for s in sources)
    return top


def _finish(
    run: _WindowRun, stage_info: dict[str, Any], source: dict[str, Any] | None, empty: Sequence[str] = ()
) -> dict[str, Any]:
    """Finish the first source: trim the pixel array, write the table, record the stage."""
    ws, src, settings, records, n_kept, arr = run.ws, run.src, run.settings, run.records, run.next_row, run.arr
    counts = _counts(run)
    if n_kept == 0:
        ws.set_stage(STAGE, status="partial", **counts, **stage_info)
        raise _all_dropped(src, settings, counts, records, empty)
    if arr.shape[0] != n_kept:
        arr.resize((n_kept, *arr.shape[1:]))
    ws.write_table(CHIP_TABLE, chip_table(src, records, settings.chip_size))
    first = {**counts, **stage_info, "index": 0, "rows": [0, n_kept], "id_prefix": ""}
    if source:  # the first source may follow one that was refused for dropping every chip
        ws.manifest["source"] = source
    ws.manifest["sources"] = [source or ws.manifest.get("source") or src.identity()]
    ws.set_stage(STAGE, status="complete", **_totals([first]), revision=1, sources=[first])
    return _result(ws.stage(STAGE), first)


def _finish_append(
    run: _WindowRun,
    stage_info: dict[str, Any],
    rec: dict[str, Any],
    done: list[dict[str, Any]],
    source: dict[str, Any] | None,
    empty: Sequence[str] = (),
) -> dict[str, Any]:
    """Move a finished appended source from chips.zarr/pending to the end of the pixels and table.

    Only while the pixel array and table change is the chips stage 'partial' (and the later stages,
    which describe the old chips, are marked stale first). A crash there is finished by re-running
    the same command: the copy is idempotent and the table is rebuilt from its rows below ``base``.
    A source whose every chip is dropped is forgotten and the workspace left as it was.
    """
    ws, src, settings, records, n_kept, pending = run.ws, run.src, run.settings, run.records, run.next_row, run.arr
    counts = _counts(run)
    base = sum(int(s["chips"]) for s in done)
    if n_kept == 0:
        ws.set_stage(STAGE, status="complete", **_keep(rec))
        ws.delete_array(CHIPS_ZARR, PENDING)
        ws.path(PROGRESS).unlink(missing_ok=True)
        raise NoScenesError(
            f"{_all_dropped(src, settings, counts, records, empty)} "
            f"Nothing of {_source_name(src.identity())} "
            f"was added; workspace {ws.root} still holds its {base} chips."
        )
    index = len(done)
    revision = int(rec.get("revision", 1)) + 1
    src_rec = {**counts, **stage_info, "index": index, "rows": [base, base + n_kept], "id_prefix": f"s{index}_"}
    _mark_dependents_stale(ws, revision)
    ws.set_stage(STAGE, status="partial", **_keep(rec), appending={**stage_info, "base_row": base})

    pixels = ws.resize_rows(CHIPS_ZARR, PIXELS, base + n_kept)
    step = settings.batch or batch_for(settings.chip_size, len(src.bands))
    for start in range(0, n_kept, step):
        stop = min(start + step, n_kept)
        pixels[base + start : base + stop] = pending[start:stop]  # [b, C, chip, chip]
        ws.mark_done(CHIPS_ZARR, PIXELS, range(base + start, base + stop))
    new = chip_table(src, records, settings.chip_size, id_prefix=src_rec["id_prefix"], source_index=index)
    ws.write_table(CHIP_TABLE, concat_tables(ws.chip_table().iloc[:base], new))

    sources = [*done, src_rec]
    ws.manifest["sources"] = [*ws.sources, source or src.identity()]
    ws.set_stage(STAGE, status="complete", **_totals(sources), revision=revision, sources=sources)
    ws.delete_array(CHIPS_ZARR, PENDING)
    return _result(ws.stage(STAGE), src_rec)


def _mark_dependents_stale(ws: Workspace, revision: int) -> None:
    """Mark every finished later stage (embed, evaluate, ...) partial: it describes the old chips.

    Saved with the next ``set_stage``; a stage's readers then ask for it to be run again.
    """
    stages = ws.manifest.setdefault("stages", {})
    for name, rec in list(stages.items()):
        if name != STAGE and rec.get("status") == "complete":
            stages[name] = {
                **rec,
                "status": "partial",
                "stale": f"chips were added (chips revision {revision}); run `clay-explore {name}` again",
            }


def concat_tables(old: Any, new: Any) -> Any:
    """Chip tables of several sources, in row order (older tables get ``source_index`` 0)."""
    import geopandas as gpd
    import pandas as pd

    if "source_index" not in old:
        old = old.assign(source_index=0)
    table = pd.concat([old, new], ignore_index=True)
    if "labels" in table:  # a source without labels gets nulls, lists stay lists of str
        table["labels"] = [
            [str(x) for x in v] if isinstance(v, (list, tuple, np.ndarray)) else None for v in table["labels"]
        ]
    table["source_index"] = table["source_index"].astype("int64")
    return gpd.GeoDataFrame(table, geometry="geometry", crs="EPSG:4326")


def _small_scene_hint(src: RasterSource, settings: ChipSettings) -> str:
    """A sentence suggesting a smaller --chip-size when the scene is smaller than one chip."""
    side = min(src.height, src.width)
    if side >= settings.chip_size:
        return ""
    fit = side - side % 8
    better = f"use --chip-size {fit} (a multiple of 8 that fits) or " if fit >= 8 else ""
    return (
        f"The scene is {src.height} x {src.width} px, smaller than one {settings.chip_size} px chip: "
        f"{better}lower --min-valid to keep the padded chip."
    )


def chip_table(
    src: RasterSource, records: dict[int, dict[str, Any]], chip: int, *, id_prefix: str = "", source_index: int = 0
) -> Any:
    """GeoDataFrame of the kept chips in pixel-array row order (CHIP_COLUMNS, source_index [, labels]).

    ``id_prefix`` keeps chip ids unique when a workspace holds several sources (the first has none).
    """
    import geopandas as gpd
    import pandas as pd
    from affine import Affine
    from pyproj import Transformer
    from shapely.geometry import Polygon

    kept = sorted((r for r in records.values() if r["out_row"] is not None), key=lambda r: r["out_row"])
    to_ll = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
    crs_name = crs_string(src.crs)
    ring_c, ring_r = footprint_ring(chip)
    rows: list[dict[str, Any]] = []
    for rec in kept:
        t = src.transform @ Affine.translation(rec["col"], rec["row"])
        xs, ys = apply_affine(t, ring_c, ring_r)
        lons, lats = to_ll.transform(xs, ys)
        cx, cy = apply_affine(t, chip / 2, chip / 2)
        lon, lat = to_ll.transform(cx, cy)
        rows.append(
            {
                "chip_id": f"{id_prefix}r{rec['row']:06d}_c{rec['col']:06d}",
                "geometry": Polygon(zip(lons, lats)),
                "crs": crs_name,
                "transform": [float(v) for v in list(t)[:6]],
                "row": int(rec["row"]),
                "col": int(rec["col"]),
                "lat": float(lat),
                "lon": float(lon),
                "datetime": rec["datetime"],
                "gsd": gsd_metres(src.crs, src.transform, float(lat)),
                "valid_fraction": float(rec["valid_fraction"]),
                "cloud_fraction": rec["cloud_fraction"],
                "source": rec["source"],
                "source_index": int(source_index),
            }
        )
    df = pd.DataFrame(rows)
    df["datetime"] = pd.to_datetime(df["datetime"], utc=True, format="ISO8601")
    df["cloud_fraction"] = df["cloud_fraction"].astype("float64")
    if src.labels:
        df["labels"] = [list(src.labels)] * len(df)
    return gpd.GeoDataFrame(df, geometry="geometry", crs="EPSG:4326")


def band_scale(sensor: Any, bands: Sequence[str]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The registry's per-band (scale, offset) for ``bands``."""
    n = len(bands)
    return (float(sensor.scale),) * n, (float(sensor.offset),) * n


def abandon_append(ws: Workspace, source_path: str | Path) -> bool:
    """Forget an unfinished append of the file ``source_path`` (e.g. a failed upload, whose file is gone).

    The finished sources stay as they were; the pending chips, the progress log and the stage's
    ``appending`` note are removed so the next source can be added. Returns True when one was forgotten.
    """
    rec = ws.manifest.get("stages", {}).get(STAGE) or {}
    pending = rec.get("appending") or {}
    if str((pending.get("source") or {}).get("path")) != str(Path(source_path).resolve()):
        return False
    ws.set_stage(STAGE, status=rec.get("status", "complete"), **_keep(rec))
    ws.delete_array(CHIPS_ZARR, PENDING)
    ws.path(PROGRESS).unlink(missing_ok=True)
    return True
