"""Checks a stage's data before its record may say 'complete', and where each stage keeps its data.

``Workspace.set_stage(..., status="complete")`` calls :func:`verify_stage`: row counts agree with
the chips, every row is in the done-list and no row that must hold data is empty (NaN). A failed
check raises WorkspaceError and leaves the previous record (partial) in place; rows found empty
are taken off the done-list first, so running the same command again redoes just those rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clay_explore.core.errors import StageMissingError, WorkspaceError

if TYPE_CHECKING:
    from clay_explore.core.workspace import Workspace

CHIPS_ZARR, CHIP_TABLE = "chips.zarr", "chips.parquet"
EMBEDDINGS_ZARR, METHODS_DIR, EVALUATION = "embeddings.zarr", "methods", "evaluation.json"
CONFIG_FILE = "config.json"

#: Files/folders a stage's data live in, per stage (all needed once it is complete).
STAGE_DATA: dict[str, tuple[str, ...]] = {
    "chips": (CHIPS_ZARR, CHIP_TABLE),
    "embed": (EMBEDDINGS_ZARR,),
    "fit": (METHODS_DIR,),
    "evaluate": (EVALUATION,),
}


def required_paths(name: str, rec: dict[str, Any]) -> tuple[str, ...]:
    """What stage ``name`` needs on disk in its state ``rec``.

    Complete: all of STAGE_DATA. Partial chipping: chips.zarr (its progress log would otherwise
    count windows whose pixels are gone). Other partial stages rebuild what is missing themselves.
    """
    if rec.get("status") == "complete":
        if name == "fit" and not rec.get("methods"):
            return ()
        return STAGE_DATA.get(name, ())
    return (CHIPS_ZARR,) if name == "chips" else ()


def verify_stage(ws: Workspace, name: str, info: dict[str, Any]) -> None:
    """Raise WorkspaceError when stage ``name``'s data are not complete (see module doc)."""
    check = _CHECKS.get(name)
    problem = check(ws, info) if check else None
    if problem:
        raise WorkspaceError(
            f"Stage '{name}' was not marked complete in workspace {ws.root}: {problem}. "
            "Run the same command again to redo what is missing."
        )


def _rows(ws: Workspace, store: str, name: str) -> Any:
    try:
        return ws.open_array(store, name)
    except StageMissingError:
        return None


def _done_problem(ws: Workspace, store: str, name: str, n: int) -> str | None:
    p = ws.path(f"{store}.{name}.done.json")
    done = ws.read_json(p.name, {}).get("done", []) if p.exists() else []
    if any(int(r) >= n or int(r) < 0 for r in done):
        return f"the done-list of {store}/{name} names rows beyond its {n} rows"
    missing = n - int(ws.done_mask(store, name, n).sum())
    return f"{missing} of {n} rows of {store}/{name} are not finished" if missing else None


def _empty_chunk_rows(arr: Any) -> np.ndarray:
    """Rows of a row-chunked array whose chunk was never written (they read as all fill value)."""
    if int(arr.nchunks_initialized) >= int(arr.nchunks):
        return np.zeros(0, dtype=np.int64)
    first = (0,) * (arr.ndim - 1)
    return np.array([r for r in range(arr.shape[0]) if not np.isfinite(arr[(r, *first)])], dtype=np.int64)


def _verify_chips(ws: Workspace, info: dict[str, Any]) -> str | None:
    pixels = _rows(ws, CHIPS_ZARR, "pixels")
    if pixels is None:
        return f"{CHIPS_ZARR}/pixels is missing"
    n = int(pixels.shape[0])
    if "chips" in info and int(info["chips"]) != n:
        return f"the record counts {info['chips']} chips but {CHIPS_ZARR}/pixels holds {n} rows"
    if not ws.path(CHIP_TABLE).exists():
        return f"{CHIP_TABLE} is missing"
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(ws.path(CHIP_TABLE)).metadata.num_rows
    if rows != n:
        return f"{CHIP_TABLE} has {rows} rows but {CHIPS_ZARR}/pixels {n}"
    if int(pixels.nchunks_initialized) < int(pixels.nchunks):
        unwritten = int(pixels.nchunks) - int(pixels.nchunks_initialized)
        return f"{unwritten} chips of {CHIPS_ZARR}/pixels were never written"
    if not ws.path(f"{CHIPS_ZARR}.pixels.done.json").exists():
        return None  # chips written in one go (tests, older tools): every chunk is there, checked above
    return _done_problem(ws, CHIPS_ZARR, "pixels", n)


def _verify_embed(ws: Workspace, info: dict[str, Any]) -> str | None:
    n = ws.n_chips()
    cls, patches = _rows(ws, EMBEDDINGS_ZARR, "cls"), _rows(ws, EMBEDDINGS_ZARR, "patches")
    if cls is None or patches is None:
        return f"{EMBEDDINGS_ZARR}/{'cls' if cls is None else 'patches'} is missing"
    for arr, label in ((cls, "cls"), (patches, "patches")):
        if int(arr.shape[0]) != n:
            return f"{EMBEDDINGS_ZARR}/{label} has {arr.shape[0]} rows for {n} chips"
    problem = _done_problem(ws, EMBEDDINGS_ZARR, "cls", n)
    if problem:
        return problem
    values = np.asarray(cls[:])  # [N, D] float16: small next to the patch tokens
    bad = set(np.flatnonzero(~np.isfinite(values).all(axis=1)).tolist())
    bad |= set(_empty_chunk_rows(patches).tolist())
    if bad:
        ws.unmark_done(EMBEDDINGS_ZARR, "cls", sorted(bad))  # the next run redoes just these chips
        return f"{len(bad)} of {n} chips have no tokens (NaN) although marked done"
    return None


def _verify_fit(ws: Workspace, info: dict[str, Any]) -> str | None:
    for method, rec in (info.get("methods") or {}).items():
        done = isinstance(rec, dict) and rec.get("status") == "complete"
        if done and not ws.path(METHODS_DIR, method, CONFIG_FILE).exists():
            return f"{Path(METHODS_DIR, method, CONFIG_FILE)} is missing"
    return None


def _verify_evaluate(ws: Workspace, info: dict[str, Any]) -> str | None:
    return None if ws.path(EVALUATION).exists() else f"{EVALUATION} is missing"


_CHECKS = {"chips": _verify_chips, "embed": _verify_embed, "fit": _verify_fit, "evaluate": _verify_evaluate}
