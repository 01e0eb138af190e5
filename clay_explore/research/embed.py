"""Embedding stage: encode every chip with Clay and store the CLS and patch tokens in the workspace.

Writes ``embeddings.zarr/cls`` [N, D] and ``embeddings.zarr/patches`` [N, h, w, D] (float16, one
chunk per chip) with the checkpoint's sha256, preset and precision in the array attributes. Every
finished batch is recorded with ``Workspace.mark_done``, so an interrupted run resumes where it
stopped. The helpers later stages share live in ``research.inputs``, ``research.provenance`` and
``core.progress``.
"""

from __future__ import annotations

import time as _time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clay_explore.core.errors import CancelledError, StageMissingError, WorkspaceError
from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace, write_rows
from clay_explore.core.progress import Cancel, Progress, ProgressFn, is_cancelled
from clay_explore.research.inputs import batches_by_gsd, chip_meta, normalised_chips, waves_of
from clay_explore.research.provenance import describe_model, load_model_for

STAGE = "embed"
CHIPS_STAGE = "chips"
DEFAULT_BATCH_SIZE = 8


# ---------------------------------------------------------------------------- the stage
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
