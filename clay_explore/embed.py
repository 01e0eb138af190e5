"""Embedding stage: encode every chip with Clay and store the CLS and patch tokens in the workspace.

Writes ``embeddings.zarr/cls`` [N, D] and ``embeddings.zarr/patches`` [N, h, w, D] (float16, one
chunk per chip) with the checkpoint's sha256, preset and precision in the array attributes. Every
finished batch is recorded with ``Workspace.mark_done``, so an interrupted run resumes where it
stopped. Also home of the helpers the later stages share: per-chip metadata, normalised chips,
token reads, the honesty label, progress and cancel.
"""

from __future__ import annotations

import math
import threading
import time as _time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from clay_explore.errors import CancelledError, StageMissingError, WorkspaceError
from clay_explore.sensors import encode_latlon, encode_time, normalize
from clay_explore.workspace import EMBEDDINGS_ZARR, Workspace, read_rows, write_rows

STAGE = "embed"
CHIPS_STAGE = "chips"
#: Decimals to which chip gsd values are rounded before grouping them into batches.
GSD_DECIMALS = 6
DEFAULT_BATCH_SIZE = 8
#: Said wherever an output comes from a model that is not Clay's trained v1.5 checkpoint.
UNTRAINED_NOTE = "untrained/test model, not Clay's: figures do not describe Clay v1.5"
TRAINED_NOTE = "Clay v1.5 (large) checkpoint"

#: ``progress(done, total, info)``; info holds ``chips_per_s``, ``eta_s`` and a ``stage`` name.
ProgressFn = Callable[[int, int, dict[str, Any]], None]
#: A threading.Event or a no-argument callable that returns True to stop.
Cancel = threading.Event | Callable[[], bool] | None


# ---------------------------------------------------------------------------- progress / cancel
def is_cancelled(cancel: Cancel) -> bool:
    """True when ``cancel`` (Event or callable) asks to stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class Progress:
    """Counts finished items, shows a tqdm bar and calls ``callback(done, total, info)``."""

    def __init__(
        self,
        total: int,
        *,
        stage: str,
        unit: str = "chip",
        callback: ProgressFn | None = None,
        show: bool = True,
        done: int = 0,
    ):
        from tqdm.auto import tqdm

        self.total, self.done, self.stage, self.callback = int(total), int(done), stage, callback
        self._start, self._start_done = _time.perf_counter(), int(done)
        self._bar = tqdm(total=total, initial=done, desc=stage, unit=unit, disable=not show, leave=False)

    def update(self, n: int, **extra: Any) -> dict[str, Any]:
        """Add ``n`` finished items; returns the info passed to the callback."""
        self.done += int(n)
        self._bar.update(n)
        elapsed = max(_time.perf_counter() - self._start, 1e-9)
        rate = (self.done - self._start_done) / elapsed
        remaining = self.total - self.done
        info = {
            "stage": self.stage,
            "chips_per_s": rate,
            "eta_s": remaining / rate if rate > 0 else None,
            "elapsed_s": elapsed,
            **extra,
        }
        self._bar.set_postfix({k: (round(v, 4) if isinstance(v, float) else v) for k, v in extra.items()})
        if self.callback is not None:
            self.callback(self.done, self.total, info)
        return info

    def close(self) -> None:
        self._bar.close()


# ---------------------------------------------------------------------------- honesty
def model_honesty(model: Any) -> dict[str, Any]:
    """{'untrained': bool, 'note': str} for a loaded model; anything but trained v1.5 is 'untrained'."""
    trained = getattr(model, "is_trained", None)
    if trained is None:
        trained = getattr(model, "preset", None) == "large"
    return {"untrained": not bool(trained), "note": TRAINED_NOTE if trained else UNTRAINED_NOTE}


def model_sha256(model: Any) -> str | None:
    """The checkpoint's sha256 (from the model, else hashed from its recorded path)."""
    sha = getattr(model, "sha256", None)
    if sha:
        return str(sha)
    path = getattr(model, "source", {}).get("path")
    if path and Path(path).exists():
        from clay_explore.model.hub import file_sha256

        sha = file_sha256(path)
        model.source["sha256"] = sha
        return sha
    return None


def model_precision(model: Any) -> str:
    """'bf16' when any weight is bfloat16 (the model's fast mode), else 'float32'."""
    return "bf16" if any(p.dtype == torch.bfloat16 for p in model.parameters()) else "float32"


def describe_model(model: Any) -> dict[str, Any]:
    """What the embeddings record about the model that made them."""
    return {
        "checkpoint": getattr(model, "source", {}).get("path"),
        "sha256": model_sha256(model),
        "preset": getattr(model, "preset", None),
        "precision": model_precision(model),
        "dim": int(model.config.dim),
        "patch_size": int(model.config.patch_size),
        **model_honesty(model),
    }


# ---------------------------------------------------------------------------- chip inputs
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
    return ws.require_stage(STAGE, f"`clay-explore embed --workspace {ws.root}`")


def read_tokens(ws: Workspace, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(cls [n, D], patches [n, L, D]) as float32 for the given chip rows (read chunk by chunk)."""
    cls_arr = ws.open_array(EMBEDDINGS_ZARR, "cls")
    patch_arr = ws.open_array(EMBEDDINGS_ZARR, "patches")
    cls, patches = read_rows(cls_arr, rows), read_rows(patch_arr, rows)
    n, h, w, d = patches.shape
    return cls.astype(np.float32), patches.reshape(n, h * w, d).astype(np.float32)


# ---------------------------------------------------------------------------- the stage
def load_model_for(checkpoint: str | Path | None, fast: bool = False):
    """Load the Clay model (explicit path, $CLAY_CHECKPOINT or the Hugging Face cache)."""
    from clay_explore.model import load_model

    return load_model(checkpoint, fast=fast)


def model_for_workspace(ws: Workspace, checkpoint: str | Path | None = None, model: Any = None):
    """The Clay model that made the workspace's embeddings (its decoder renders reconstructions).

    Uses ``model`` or ``checkpoint`` when given, else the checkpoint recorded by the embed stage,
    else the default resolution; refuses a checkpoint whose sha256 differs from the embeddings'.
    """
    info = embeddings_info(ws)
    if model is None:
        recorded = info.get("checkpoint")
        path = checkpoint or (recorded if recorded and Path(recorded).exists() else None)
        model = load_model_for(path, fast=False)
    want, have = info.get("sha256"), model_sha256(model)
    if want and have and want != have:
        raise WorkspaceError(
            f"The embeddings in {ws.root} were made with checkpoint sha256 {want[:12]}…, but the model given "
            f"has {have[:12]}…. Pass --checkpoint with the same file, or re-run `clay-explore embed`."
        )
    if int(model.config.dim) != int(info.get("dim", model.config.dim)):
        raise WorkspaceError(
            f"The embeddings are {info.get('dim')}-wide but the model's tokens are {model.config.dim}."
        )
    return model


def _open_outputs(ws: Workspace, n: int, grid: int, dim: int, facts: dict[str, Any]):
    """Create or reopen the token arrays; start over when they came from another model/precision."""
    keys = ("sha256", "preset", "precision", "dim", "patch_size")
    overwrite = missing = False
    old_rows = []
    for name in ("cls", "patches"):
        try:
            arr = ws.open_array(EMBEDDINGS_ZARR, name)
        except StageMissingError:
            missing = True  # a done-list left without its arrays must not count
            continue
        old = dict(arr.attrs)
        if any(old.get(k) != facts.get(k) for k in keys):
            overwrite = True
        old_rows.append(int(arr.shape[0]))
    if not (overwrite or missing) and old_rows and max(old_rows) < n:
        # chips were appended (rows and ids of earlier chips never change): grow, keep what is done
        for name in ("cls", "patches"):
            ws.resize_rows(EMBEDDINGS_ZARR, name, n)
    cls = ws.create_array(EMBEDDINGS_ZARR, "cls", shape=(n, dim), dtype="float16", attrs=facts, overwrite=overwrite)
    patches = ws.create_array(
        EMBEDDINGS_ZARR, "patches", shape=(n, grid, grid, dim), dtype="float16", attrs=facts, overwrite=overwrite
    )
    if overwrite or missing:
        ws.clear_done(EMBEDDINGS_ZARR, "cls")
    return cls, patches


def embed_workspace(
    workspace: str | Path | Workspace,
    *,
    checkpoint: str | Path | None = None,
    model: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fast: bool = False,
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Encode every chip not yet done and store its CLS and patch tokens (float16).

    Args:
        workspace: workspace folder (or an open Workspace) holding chips.
        checkpoint: Clay checkpoint path; None = $CLAY_CHECKPOINT or the Hugging Face cache.
        model: an already loaded ClayModel (skips loading; its weights' dtype gives the precision).
        batch_size: chips per forward pass.
        fast: bf16 transformer weights (about 2x faster on CPU, ~1e-2 token differences).
        progress: ``progress(done, total, info)`` after every batch (info: chips_per_s, eta_s).
        cancel: Event/callable; when set, stops after the current batch, keeping finished batches.

    Returns the stage record (counts, model facts, seconds). Raises CancelledError when cancelled.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    chips_stage = ws.stage(CHIPS_STAGE)
    if chips_stage is not None and chips_stage.get("status") != "complete":
        raise StageMissingError(f"Chipping is incomplete in {ws.root}. Re-run the fetch/ingest command to finish it.")
    n = ws.n_chips()
    if n == 0:
        raise WorkspaceError(f"Workspace {ws.root} holds no chips. Fetch or ingest imagery first.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model = model if model is not None else load_model_for(checkpoint, fast=fast)
    facts = describe_model(model)
    p = int(model.config.patch_size)
    if ws.chip_size % p:
        raise WorkspaceError(f"Chip size {ws.chip_size} px is not a multiple of Clay's patch size {p}.")
    grid = ws.chip_size // p
    cls_arr, patch_arr = _open_outputs(ws, n, grid, int(model.config.dim), facts)

    meta = chip_meta(ws)
    waves = torch.from_numpy(waves_of(ws))
    done = ws.done_mask(EMBEDDINGS_ZARR, "cls", n)
    todo = np.flatnonzero(~done)
    bar = Progress(n, stage=STAGE, callback=progress, show=show_progress, done=int(done.sum()))
    info = {"n_chips": n, "grid": grid, "batch_size": batch_size, **facts}
    previous = ws.stage(STAGE) or {}
    if not todo.size and previous.get("status") == "complete" and all(
            previous.get(k) == info[k] for k in info if k not in ("batch_size", "checkpoint")):
        # nothing to do: leave the record (and everything fingerprinted from it) untouched
        return {**previous, "already_complete": True}
    if todo.size:  # until every chip is stored, later stages must not read these arrays as finished
        ws.set_stage(STAGE, status="partial", done=int(done.sum()), **info)
    t0 = _time.perf_counter()
    try:
        for rows in batches_by_gsd(todo, meta.gsd, batch_size):
            if is_cancelled(cancel):
                ws.set_stage(STAGE, status="partial", done=int(ws.done_mask(EMBEDDINGS_ZARR, "cls", n).sum()), **info)
                raise CancelledError(
                    f"Embedding cancelled; {bar.done} of {n} chips are stored. "
                    "Run `clay-explore embed` again to resume."
                )
            pixels, _ = normalised_chips(ws, rows)
            with torch.inference_mode():
                tokens = model.encode(
                    torch.from_numpy(pixels),
                    torch.from_numpy(meta.time[rows]),
                    torch.from_numpy(meta.latlon[rows]),
                    torch.tensor(float(meta.gsd[rows[0]]), dtype=torch.float32),
                    waves,
                )  # [b, 1+L, D]
            tokens = tokens.float().numpy()
            write_rows(cls_arr, rows, tokens[:, 0].astype(np.float16))
            write_rows(patch_arr, rows, tokens[:, 1:].reshape(len(rows), grid, grid, -1).astype(np.float16))
            ws.mark_done(EMBEDDINGS_ZARR, "cls", rows)
            bar.update(len(rows))
    finally:
        bar.close()
    record = {**info, "resumed_from": int(done.sum()), "seconds": round(_time.perf_counter() - t0, 3)}
    ws.set_stage(STAGE, status="complete", **record)
    return ws.stage(STAGE)
