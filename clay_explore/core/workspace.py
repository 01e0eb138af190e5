"""The on-disk workspace: the only module that knows where each stage keeps its data.

Layout of a workspace directory::

    manifest.json           schema version, sensor, bands, chip size, source, settings, stages
    chips.zarr/pixels       [N, C, H, W] float32 raw sensor values (NaN = nodata), chunk = 1 chip
    chips.zarr/pending      an appended source's chips while it is chipped (imagery.chipping)
    chips.parquet           GeoParquet chip table, one row per chip (see CHIP_COLUMNS)
    embeddings.zarr/cls     [N, D] float16          } chunk = 1 chip
    embeddings.zarr/patches [N, h, w, D] float16    }
    vectors.zarr/<method>   [N, D'] float32 image vectors of each aggregator
    methods/<method>/       weights.safetensors + config.json of fitted aggregators/expanders
    evaluation.json         metrics per method
    <array>.done.json       which rows of a chunked array are finished (written atomically)

Every write is atomic (temporary file + ``os.replace``) or guarded by a done-list written after
the data, so a crash never leaves something that later reads as valid.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from clay_explore.core.errors import StageMissingError, WorkspaceError
from clay_explore.core.lock import LOCK_FILES
from clay_explore.core.manifest import validate_manifest
from clay_explore.core.sensors import Sensor, get_sensor

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CHIPS_ZARR = "chips.zarr"
CHIP_TABLE = "chips.parquet"
CHIPS_PROGRESS = "chips.progress.jsonl"  # chipping's append-only progress log
EMBEDDINGS_ZARR = "embeddings.zarr"
VECTORS_ZARR = "vectors.zarr"
METHODS_DIR = "methods"
EVALUATION = "evaluation.json"

#: Columns every chip table has (GeoParquet, geometry in EPSG:4326).
CHIP_COLUMNS = (
    "chip_id",  # str, unique, stable across re-runs
    "geometry",  # footprint polygon, EPSG:4326
    "crs",  # native CRS as "EPSG:xxxx" or WKT
    "transform",  # 6 affine numbers (a, b, c, d, e, f) of the chip in its native CRS
    "row",
    "col",  # chip position in the source grid (pixels of the top-left corner)
    "lat",
    "lon",  # centre, degrees
    "datetime",  # acquisition time, UTC, or null when unknown
    "gsd",  # metres
    "valid_fraction",  # share of pixels with data in every band
    "cloud_fraction",  # share of valid pixels flagged cloud/shadow, null when unknown
    "source",  # STAC item id or file path
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (sorted keys, indented, numpy scalars allowed)."""
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (datetime,)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


class Workspace:
    """A workspace directory: manifest, stage status and typed access to each stage's data."""

    def __init__(self, root: Path, manifest: dict[str, Any]):
        self.root = Path(root)
        self.manifest = manifest

    # ------------------------------------------------------------------ open / create
    @classmethod
    def create(
        cls,
        root: str | Path,
        *,
        sensor: str,
        bands: Sequence[str],
        chip_size: int,
        source: dict[str, Any],
        settings: dict[str, Any] | None = None,
    ) -> Workspace:
        """Create a workspace, or reopen it when it already holds the same sensor/bands/chip size.

        Reopening lets an interrupted stage resume; a different set-up is refused so nothing
        already stored is mixed with incompatible data, unless the workspace never kept a chip.
        """
        root = Path(root)
        sens = get_sensor(sensor)
        canon = [b.name for b in sens.resolve_bands(bands)]
        if (root / MANIFEST).exists():
            ws = cls.open(root)
            if ws.sensor.name == sensor and ws.bands == canon and ws.chip_size == int(chip_size):
                return ws
            if not ws._holds_nothing():
                raise WorkspaceError(
                    f"Workspace {root} already holds {ws.sensor.name} {ws.bands} chips of {ws.chip_size} px; "
                    f"it cannot also take {sensor} {canon} chips of {chip_size} px. "
                    "Choose a new --workspace folder."
                )
            ws._clear_chipping()  # an attempt that kept no chip (e.g. all nodata): start again with the new set-up
        if root.exists() and any(p.name not in LOCK_FILES for p in root.iterdir()):
            raise WorkspaceError(f"{root} exists and is not an empty folder or a workspace. Choose another folder.")
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created": _now(),
            "sensor": sensor,
            "bands": canon,
            "chip_size": int(chip_size),
            "source": source,
            "settings": settings or {},
            "stages": {},
        }
        root.mkdir(parents=True, exist_ok=True)
        ws = cls(root, manifest)
        ws.save()
        return ws

    def _holds_nothing(self) -> bool:
        """True when no chip was ever stored and no later stage ran (a failed first ingest/fetch)."""
        try:
            n = self.n_chips()
        except StageMissingError:
            n = 0
        if n and self.done_mask(CHIPS_ZARR, "pixels", n).any():  # rows are pre-allocated; done ones hold chips
            return False
        return set(self.manifest.get("stages", {})) <= {"chips"}

    def _clear_chipping(self) -> None:
        """Remove what a chip-less attempt left (manifest, empty arrays, its progress log)."""
        import shutil

        shutil.rmtree(self.path(CHIPS_ZARR), ignore_errors=True)
        for name in (CHIP_TABLE, CHIPS_PROGRESS, MANIFEST):
            self.path(name).unlink(missing_ok=True)

    @classmethod
    def open(cls, root: str | Path) -> Workspace:
        """Open an existing workspace; a clear error when it is none or of an unknown schema."""
        root = Path(root)
        path = root / MANIFEST
        if not path.exists():
            raise WorkspaceError(
                f"{root} is not a clay-explore workspace (no {MANIFEST}). "
                "Create one with `clay-explore fetch`, `ingest` or `demo`."
            )
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise WorkspaceError(f"{path} is unreadable ({err}). Restore it or start a new workspace.") from err
        if not isinstance(manifest, dict):
            validate_manifest(manifest, path)  # raises: not an object
        version = manifest.get("schema_version")
        if version is None or not isinstance(version, int):
            raise WorkspaceError(f"{path} has no schema_version; it was not written by clay-explore.")
        if version > SCHEMA_VERSION:
            raise WorkspaceError(
                f"Workspace {root} uses schema {version}, newer than this clay-explore ({SCHEMA_VERSION}). "
                "Upgrade clay-explore to open it."
            )
        manifest = validate_manifest(_migrate(manifest), path)
        return cls(root, manifest)

    def reload(self) -> None:
        """Re-read the manifest from disk (another writer may have changed it since this was opened)."""
        if self.path(MANIFEST).exists():
            self.manifest = Workspace.open(self.root).manifest

    # ------------------------------------------------------------------ manifest
    def save(self) -> None:
        """Write the manifest atomically."""
        atomic_write_json(self.root / MANIFEST, self.manifest)

    @property
    def sensor(self) -> Sensor:
        return get_sensor(self.manifest["sensor"])

    @property
    def bands(self) -> list[str]:
        return list(self.manifest["bands"])

    @property
    def chip_size(self) -> int:
        return int(self.manifest["chip_size"])

    @property
    def sources(self) -> list[dict[str, Any]]:
        """Every source whose chips the workspace holds, in row order.

        Workspaces written before multi-source ingest keep only ``manifest["source"]``; it is read
        as a list of one. ``manifest["source"]`` stays the first source so single-source readers work.
        """
        if "sources" in self.manifest:
            return list(self.manifest["sources"])
        first = self.manifest.get("source")
        return [first] if first else []

    def path(self, *parts: str) -> Path:
        """A path inside the workspace."""
        return self.root.joinpath(*parts)

    # ------------------------------------------------------------------ stages
    def stage(self, name: str) -> dict[str, Any] | None:
        """The record of stage ``name`` (``status`` is 'complete' or 'partial'), or None.

        A stage recorded complete whose data folder has gone (e.g. chips.zarr deleted) reads as
        'partial' with ``missing`` listing what is gone, so readers ask for it to be run again.
        """
        rec = self.manifest.get("stages", {}).get(name)
        if rec is None:
            return None
        missing = self.missing_data(name, rec)
        if missing and rec.get("status") == "complete":
            return {**rec, "status": "partial", "missing": missing}
        return rec

    def missing_data(self, name: str, rec: dict[str, Any] | None = None) -> list[str]:
        """The files/folders stage ``name`` keeps its data in that are absent (see core.verify.STAGE_DATA)."""
        from clay_explore.core.verify import required_paths

        rec = rec if rec is not None else self.manifest.get("stages", {}).get(name)
        return [p for p in required_paths(name, rec or {}) if not self.path(p).exists()]

    def set_stage(self, name: str, *, status: str = "complete", **info: Any) -> None:
        """Record a stage's status and facts (counts, settings, checkpoint) and save the manifest."""
        if status not in ("complete", "partial"):
            raise ValueError(f"status must be 'complete' or 'partial', not {status!r}")
        info = {k: v for k, v in info.items() if k not in ("missing", "problem")}  # facts of a read, not of this run
        if status == "complete":  # only after the data are complete and checked (core.verify)
            from clay_explore.core.verify import verify_stage

            try:
                verify_stage(self, name, info)
            except WorkspaceError as err:  # recorded as unfinished, whatever the record said before
                stages = self.manifest.setdefault("stages", {})
                stages[name] = {**info, "status": "partial", "updated": _now(), "problem": str(err)}
                for other, rec in stages.items():  # stages made from unfinished chips are unfinished too
                    if name == "chips" and other != name and rec.get("status") == "complete":
                        stages[other] = {**rec, "status": "partial", "stale": "the chips failed their check"}
                self.save()
                raise
        self.manifest.setdefault("stages", {})[name] = {"status": status, "updated": _now(), **info}
        self.save()

    def require_stage(self, name: str, hint: str) -> dict[str, Any]:
        """The stage record, or a StageMissingError saying which command to run (``hint``)."""
        rec = self.stage(name)
        if rec is None or rec.get("status") != "complete":
            state = "is incomplete" if rec else "has not been run"
            raise StageMissingError(f"Stage '{name}' {state} in workspace {self.root}. Run {hint} first.")
        return rec

    # ------------------------------------------------------------------ chunked arrays
    def open_array(self, store: str, name: str, mode: str = "r"):
        """Open ``store/name`` (a zarr array), read-only by default; StageMissingError when absent."""
        import zarr

        try:
            return zarr.open_group(str(self.path(store)), mode=mode)[name]
        except Exception as err:  # zarr raises its own types for absent groups
            absent = isinstance(err, (FileNotFoundError, KeyError)) or "not found" in str(err).lower()
            if absent:  # "nothing found" too
                raise StageMissingError(f"{store}/{name} is missing in workspace {self.root}.") from err
            raise

    def create_array(
        self,
        store: str,
        name: str,
        *,
        shape: tuple[int, ...],
        dtype: str,
        chunks: tuple[int, ...] | None = None,
        attrs: dict[str, Any] | None = None,
        overwrite: bool = False,
    ):
        """Create (or reopen, when the shape and dtype match) a zarr array chunked by row."""
        import zarr

        group = zarr.open_group(str(self.path(store)), mode="a")
        chunks = chunks or (1, *shape[1:])
        if name in group and not overwrite:
            arr = group[name]
            if tuple(arr.shape) == tuple(shape) and np.dtype(arr.dtype) == np.dtype(dtype):
                return arr
            overwrite = True
        if overwrite:
            self.clear_done(store, name)
        fill = np.nan if np.dtype(dtype).kind == "f" else 0
        arr = group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, overwrite=True)
        if attrs:
            arr.attrs.update(_jsonable(attrs))
        return arr

    def resize_rows(self, store: str, name: str, n: int):
        """Open ``store/name`` for writing with its first axis resized to ``n`` rows.

        Rows below both the old and new length keep their data (and done marks); growing only
        rewrites the array's metadata, atomically, and new rows read as the fill value until written.
        """
        arr = self.open_array(store, name, mode="r+")
        if arr.shape[0] != int(n):
            arr.resize((int(n), *arr.shape[1:]))
        return arr

    def delete_array(self, store: str, name: str) -> None:
        """Remove ``store/name`` and its done-list; nothing happens when it is absent."""
        import zarr

        if self.path(store).exists():
            group = zarr.open_group(str(self.path(store)), mode="a")
            if name in group:
                del group[name]
        self.clear_done(store, name)

    def _done_path(self, store: str, name: str) -> Path:
        return self.path(f"{store}.{name}.done.json")

    def done_mask(self, store: str, name: str, n: int) -> np.ndarray:
        """Bool [n]: rows of ``store/name`` whose data are completely written."""
        mask = np.zeros(n, dtype=bool)
        p = self._done_path(store, name)
        if p.exists():
            idx = np.asarray(json.loads(p.read_text()).get("done", []), dtype=np.int64)
            mask[idx[idx < n]] = True
        return mask

    def mark_done(self, store: str, name: str, rows: Iterable[int]) -> None:
        """Record rows as finished; call only after their data are written."""
        p = self._done_path(store, name)
        done = set(json.loads(p.read_text()).get("done", [])) if p.exists() else set()
        done.update(int(r) for r in rows)
        atomic_write_json(p, {"done": sorted(done)})

    def unmark_done(self, store: str, name: str, rows: Iterable[int]) -> None:
        """Take rows off the done-list (their data were found missing), so the next run redoes them."""
        p = self._done_path(store, name)
        if p.exists():
            done = set(json.loads(p.read_text()).get("done", [])) - {int(r) for r in rows}
            atomic_write_json(p, {"done": sorted(done)})

    def forget_lost_chips(self) -> bool:
        """When the chips' data are gone (chips.zarr or chips.parquet deleted), forget the chips stage.

        Removes what is left of it (arrays, table, progress log, done-lists) and marks later stages
        partial, so the same fetch/ingest command rebuilds the chips instead of saying they are
        complete. Returns True when something was forgotten. Call under the writer lock.
        """
        import shutil

        rec = self.manifest.get("stages", {}).get("chips")
        if rec is None or not self.missing_data("chips", rec):
            return False
        shutil.rmtree(self.path(CHIPS_ZARR), ignore_errors=True)
        for p in [self.path(CHIP_TABLE), self.path(CHIPS_PROGRESS), *self.root.glob(f"{CHIPS_ZARR}.*.done.json")]:
            p.unlink(missing_ok=True)
        stages = self.manifest.setdefault("stages", {})
        stages.pop("chips", None)
        for name, other in list(stages.items()):
            if other.get("status") == "complete":
                stages[name] = {**other, "status": "partial", "stale": "the chips were rebuilt; run this stage again"}
        self.save()
        return True

    def clear_done(self, store: str, name: str) -> None:
        """Forget which rows are finished (the array is being rewritten)."""
        self._done_path(store, name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ chips
    def chip_table(self):
        """The chip table (GeoDataFrame, EPSG:4326), in the row order of ``chips.zarr/pixels``."""
        import geopandas as gpd

        path = self.path(CHIP_TABLE)
        if not path.exists():
            raise StageMissingError(
                f"Workspace {self.root} has no chips yet. Run `clay-explore fetch`, `ingest` or `demo` first."
            )
        return gpd.read_parquet(path)

    def write_table(self, name: str, gdf) -> None:
        """Write a (Geo)DataFrame as (Geo)Parquet atomically."""
        with atomic_path(self.path(name)) as tmp:
            gdf.to_parquet(tmp)

    def n_chips(self) -> int:
        """Number of chips stored."""
        return int(self.open_array(CHIPS_ZARR, "pixels").shape[0])

    def read_chips(self, rows: Sequence[int] | slice) -> np.ndarray:
        """Raw chip pixels [n, C, H, W] float32 in sensor units, NaN where there is no data."""
        arr = self.open_array(CHIPS_ZARR, "pixels")
        if isinstance(rows, slice):
            return np.asarray(arr[rows], dtype=np.float32)
        return read_rows(arr, rows).astype(np.float32, copy=False)

    # ------------------------------------------------------------------ small json files
    def read_json(self, name: str, default: Any = None) -> Any:
        p = self.path(name)
        return json.loads(p.read_text()) if p.exists() else default

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.path(name), obj)

    def summary(self) -> dict[str, Any]:
        """What `clay-explore info --json` prints."""
        path = self.path(CHIP_TABLE)
        if path.exists():  # only the crs column: no geometry decoding for a count (the home page calls this)
            import pandas as pd

            crs_col = pd.read_parquet(path, columns=["crs"])["crs"]
            n, crs = len(crs_col), sorted(set(map(str, crs_col)))
        else:
            n, crs = 0, []
        return {
            "workspace": str(self.root),
            "schema_version": self.manifest["schema_version"],
            "chips": n,
            "sensor": self.manifest["sensor"],
            "bands": self.bands,
            "chip_size": self.chip_size,
            "crs": crs,
            "source": self.manifest.get("source", {}),
            "sources": self.sources,
            "created": self.manifest.get("created"),
            "stages": {name: self.stage(name) for name in self.manifest.get("stages", {})},
        }


def read_rows(arr: Any, rows: Sequence[int]) -> np.ndarray:
    """Rows of a zarr array [N, ...] -> [n, ...]: one slice when they are consecutive, else row by row."""
    rows = np.asarray(rows, dtype=np.int64)
    if not rows.size:
        return np.zeros((0, *arr.shape[1:]), dtype=arr.dtype)
    if np.all(np.diff(rows) == 1):
        return np.asarray(arr[int(rows[0]) : int(rows[-1]) + 1])
    return np.stack([np.asarray(arr[int(r)]) for r in rows])


def write_rows(arr: Any, rows: Sequence[int], data: np.ndarray) -> None:
    """Write ``data`` [n, ...] to rows of a zarr array: one slice when they are consecutive, else row by row."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size and np.all(np.diff(rows) == 1):
        arr[int(rows[0]) : int(rows[-1]) + 1] = data
    else:
        for i, r in enumerate(rows):
            arr[int(r)] = data[i]


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_json_default))


def _migrate(manifest: dict[str, Any]) -> dict[str, Any]:
    """Bring an older manifest up to SCHEMA_VERSION (version 1 is the first; nothing to do yet)."""
    manifest.setdefault("stages", {})
    manifest.setdefault("settings", {})
    return manifest
