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
from clay_explore.core.lock import writes_workspace
from clay_explore.core.progress import Cancel, Progress, ProgressFn, is_cancelled
from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace, write_rows
from clay_explore.model.device import (
    AUTO,
    AdaptiveBatch,
    auto_batch_size,
    model_device,
    parse_batch_size,
    resolve_device,
)
from clay_explore.model.hooks import encoder_progress
from clay_explore.research.inputs import batches_by_gsd, chip_meta, normalised_chips, waves_of
from clay_explore.research.provenance import describe_model, load_model_for

STAGE = "embed"
CHIPS_STAGE = "chips"
#: Record fields that describe how a run went, not what the tokens are: a change alone re-embeds nothing.
RUN_ONLY_KEYS = ("batch_size", "checkpoint", "device", "precision_reason")


# ---------------------------------------------------------------------------- the stage
def already_complete(ws: Workspace, todo: np.ndarray, info: dict[str, Any]) -> dict[str, Any] | None:
    """The embed record, untouched, when no chip is left and the settings match (so nothing fingerprinted
    from it goes stale); None when there is work to do."""
    previous = ws.stage(STAGE) or {}
    same = all(previous.get(k) == info[k] for k in info if k not in RUN_ONLY_KEYS)
    if not todo.size and previous.get("status") == "complete" and same:
        return {**previous, "already_complete": True}
    return None


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


def encode_rows(model: Any, ws: Workspace, rows: np.ndarray, meta: Any, waves: torch.Tensor) -> np.ndarray:
    """Tokens [b, 1+L, D] (float32, CPU) of chips ``rows`` (one gsd), encoded on the model's device."""
    dev = model_device(model)
    pixels, _ = normalised_chips(ws, rows)
    with torch.inference_mode():
        tokens = model.encode(
            torch.from_numpy(pixels).to(dev),
            torch.from_numpy(meta.time[rows]).to(dev),
            torch.from_numpy(meta.latlon[rows]).to(dev),
            torch.tensor(float(meta.gsd[rows[0]]), dtype=torch.float32, device=dev),
            waves.to(dev),
        )  # [b, 1+L, D]
    return tokens.float().cpu().numpy()


@writes_workspace("embed")
def embed_workspace(
    workspace: str | Path | Workspace,
    *,
    checkpoint: str | Path | None = None,
    model: Any = None,
    batch_size: int | str = AUTO,
    fast: bool = False,
    device: str | torch.device | None = None,
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
    show_progress: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
    send_chips: bool | None = None,
) -> dict[str, Any]:
    """Encode every chip not yet done and store its CLS and patch tokens (float16).

    Args:
        workspace: workspace folder (or an open Workspace) holding chips.
        checkpoint: Clay checkpoint path; None = $CLAY_CHECKPOINT or the Hugging Face cache.
        model: an already loaded ClayModel (skips loading; its weights' dtype gives the precision).
        batch_size: chips per forward pass, or "auto" (from the device's free memory); a batch that runs
            out of memory is retried in halves (model.device.AdaptiveBatch).
        fast: the fastest precision the device does natively (model.fastpath: bf16/fp16/int8, or fp32).
        device: "auto" | "cpu" | "cuda" | "cuda:N" | "mps"; None = $CLAY_EXPLORE_DEVICE, else auto (a given
            ``model`` stays where it is unless a device is named).
        progress: ``progress(done, total, info)`` after every batch (info: chips_per_s, eta_s).
        cancel: Event/callable; when set, stops after the current batch, keeping finished batches.
        workers / scheduler: encode on a Dask LocalCluster of N processes / the cluster at tcp://HOST:PORT;
            this process still writes everything (research.distributed). send_chips: see embed_distributed.

    Returns the stage record (counts, model facts, seconds). Raises CancelledError when cancelled.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    chips_stage = ws.stage(CHIPS_STAGE)
    if chips_stage is not None and chips_stage.get("status") != "complete":
        raise StageMissingError(f"Chipping is incomplete in {ws.root}. Re-run the fetch/ingest command to finish it.")
    n = ws.n_chips()
    if n == 0:
        raise WorkspaceError(f"Workspace {ws.root} holds no chips. Fetch or ingest imagery first.")
    batch_size = parse_batch_size(batch_size)
    if workers or scheduler:  # batches run on a Dask cluster; this process is still the only writer
        from clay_explore.research.distributed import embed_distributed

        return embed_distributed(
            ws,
            checkpoint=checkpoint,
            model=model,
            batch_size=batch_size,
            fast=fast,
            device=device,
            progress=progress,
            cancel=cancel,
            show_progress=show_progress,
            workers=workers,
            scheduler=scheduler,
            send_chips=send_chips,
        )
    if model is None:
        model = load_model_for(checkpoint, fast=fast, device=device)
    elif device is not None:
        model = model.to(resolve_device(device))
    dev = model_device(model)
    facts = describe_model(model)
    p = int(model.config.patch_size)
    if ws.chip_size % p:
        raise WorkspaceError(f"Chip size {ws.chip_size} px is not a multiple of Clay's patch size {p}.")
    grid = ws.chip_size // p
    if batch_size == AUTO:
        batch_size = auto_batch_size(model.config, ws.chip_size, dev)
    sizer = AdaptiveBatch(batch_size, dev)
    cls_arr, patch_arr = _open_outputs(ws, n, grid, int(model.config.dim), facts)

    meta = chip_meta(ws)
    waves = torch.from_numpy(waves_of(ws))
    done = ws.done_mask(EMBEDDINGS_ZARR, "cls", n)
    todo = np.flatnonzero(~done)
    bar = Progress(n, stage=STAGE, callback=progress, show=show_progress, done=int(done.sum()))
    info = {"n_chips": n, "grid": grid, "batch_size": batch_size, **facts}
    finished = already_complete(ws, todo, info)
    if finished is not None:
        return finished
    if todo.size:  # until every chip is stored, later stages must not read these arrays as finished
        ws.set_stage(STAGE, status="partial", done=int(done.sum()), **info)
    t0 = _time.perf_counter()
    # the bar moves after every encoder block; Cancel stops between blocks (the unfinished batch is dropped)
    blocks = encoder_progress(
        model,
        bar.within,
        cancel,
        lambda: f"Embedding cancelled; {bar.done} of {n} chips are stored. Run `clay-explore embed` again to resume.",
    )
    try:
        for rows in batches_by_gsd(todo, meta.gsd, batch_size):
            if is_cancelled(cancel):
                ws.set_stage(STAGE, status="partial", done=int(ws.done_mask(EMBEDDINGS_ZARR, "cls", n).sum()), **info)
                raise CancelledError(
                    f"Embedding cancelled; {bar.done} of {n} chips are stored. "
                    "Run `clay-explore embed` again to resume."
                )
            # pieces of at most sizer.size chips; a piece that runs out of memory is retried in halves
            tokens = np.concatenate(sizer.run(rows, lambda part: encode_rows(model, ws, part, meta, waves)))
            write_rows(cls_arr, rows, tokens[:, 0].astype(np.float16))
            write_rows(patch_arr, rows, tokens[:, 1:].reshape(len(rows), grid, grid, -1).astype(np.float16))
            ws.mark_done(EMBEDDINGS_ZARR, "cls", rows)
            bar.update(len(rows))
    finally:
        blocks.remove()
        bar.close()
    record = {
        **info,
        "resumed_from": int(done.sum()),
        "seconds": round(_time.perf_counter() - t0, 3),
        "oom_halvings": sizer.shrinks,
    }
    ws.set_stage(STAGE, status="complete", **record)
    return ws.stage(STAGE)
