"""Parameter-free image vectors (mean, max, GeM) straight from the stored patch tokens.

These aggregators have no weights, so their image vectors exist as soon as the chips are embedded:
nothing has to be fitted or evaluated first. ``ensure_parameter_free_vectors`` streams the tokens
from ``embeddings.zarr`` a few chips at a time, pools them with the same aggregator classes that
``fit``/``evaluate`` use, and stores ``vectors.zarr/<method>`` [N, D] float32. Each array records the
fingerprint of the embed stage it came from, so a later call is a no-op until the embeddings change.
The CLS vector needs no computing: it is ``embeddings.zarr/cls`` itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clay_explore.core.errors import CancelledError, StageMissingError
from clay_explore.core.lock import writes_workspace
from clay_explore.core.progress import Cancel, ProgressFn, is_cancelled
from clay_explore.core.workspace import EMBEDDINGS_ZARR, VECTORS_ZARR, Workspace
from clay_explore.model.device import resolve_device
from clay_explore.research.inputs import embeddings_info, read_tokens

#: Pooled from the patch tokens without any weights (CLS is read from the embeddings as it is).
POOLED = ("mean", "max", "gem")
#: Chips read per step: bounds memory at CHUNK_CHIPS x L x D float32 (32 x 1024 x 1024 x 4 B = 128 MiB).
CHUNK_CHIPS = 32
#: Array attribute holding the embed-stage fingerprint the vectors were computed from.
SOURCE_ATTR = "embeddings_fingerprint"


def embeddings_fingerprint(ws: Workspace) -> str:
    """Hash of the embed stage record: changes whenever the stored tokens are rewritten."""
    rec = embeddings_info(ws)
    return hashlib.sha256(json.dumps(rec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_vectors(ws: Workspace, method: str, vectors: np.ndarray, attrs: dict[str, Any]) -> None:
    """Store ``vectors.zarr/<method>`` [N, D'] stamped with the embed fingerprint it came from.

    Every writer (this module and ``evaluate``) goes through here, so ``stale_methods`` can trust the stamp.
    """
    arr = ws.create_array(
        VECTORS_ZARR,
        method,
        shape=vectors.shape,
        dtype="float32",
        chunks=vectors.shape,
        overwrite=True,
        attrs={"method": method, **attrs, SOURCE_ATTR: embeddings_fingerprint(ws)},
    )
    arr[:] = vectors


def stale_methods(ws: Workspace, methods: Sequence[str] = POOLED) -> list[str]:
    """The methods among ``methods`` whose vectors are missing or come from other embeddings."""
    want = embeddings_fingerprint(ws)
    out = []
    for m in methods:
        try:
            have = ws.open_array(VECTORS_ZARR, m).attrs.get(SOURCE_ATTR)
        except StageMissingError:
            have = None
        if have != want:
            out.append(m)
    return out


@writes_workspace("vectors")
def ensure_parameter_free_vectors(
    workspace: str | Path | Workspace,
    methods: Sequence[str] = POOLED,
    *,
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
    device: Any = None,
) -> list[str]:
    """Compute and store the missing/outdated parameter-free vectors; returns the methods (re)computed.

    ``device``: where the pooling runs ("auto", "cpu", "cuda[:N]", "mps"; None = $CLAY_EXPLORE_DEVICE, else auto).

    Needs a complete embed stage (StageMissingError naming `clay-explore embed` otherwise).
    ``progress(done, total, info)`` after each chunk of chips; ``cancel`` stops between chunks
    (CancelledError; nothing half-written is kept, the next call starts over).
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    info = embeddings_info(ws)
    if info.get("status") != "complete":
        raise StageMissingError(
            f"The embeddings in {ws.root} are incomplete. "
            f"Run `clay-explore embed --workspace {ws.root}` to finish them."
        )
    unknown = [m for m in methods if m not in POOLED]
    if unknown:
        raise ValueError(f"Not parameter-free pooling: {', '.join(unknown)}. Choose from {', '.join(POOLED)}.")
    todo = stale_methods(ws, methods)
    if not todo:
        return []
    from clay_explore.research.aggregate import META_DIM, build_aggregator

    n, grid, _, dim = ws.open_array(EMBEDDINGS_ZARR, "patches").shape  # [N, h, w, D]
    dev = resolve_device(device)
    pools = [build_aggregator(m, dim=dim, grid=grid).to(dev) for m in todo]
    out = {m: np.zeros((n, dim), np.float32) for m in todo}  # [N, D] each; N x D is small next to the tokens
    for start in range(0, n, CHUNK_CHIPS):
        if is_cancelled(cancel):
            raise CancelledError("Computing image vectors was cancelled; run it again to finish (it is quick).")
        rows = np.arange(start, min(start + CHUNK_CHIPS, n))
        cls, patches = read_tokens(ws, rows)  # [b, D], [b, L, D]
        with torch.inference_mode():
            p, c = torch.from_numpy(patches).to(dev), torch.from_numpy(cls).to(dev)
            for pool in pools:
                out[pool.name][rows] = pool(p, c, torch.zeros(len(rows), META_DIM, device=dev)).float().cpu().numpy()
        if progress is not None:
            progress(int(rows[-1]) + 1, n, {"stage": "vectors"})
    for m, vec in out.items():
        write_vectors(
            ws,
            m,
            vec,
            {"embeddings_sha256": info.get("sha256"), "source": "parameter-free pooling of the stored patch tokens"},
        )
    return todo


def vector_status(ws: Workspace) -> dict[str, Any]:
    """{'ready': [methods stored and current], 'stale': [...]} for the parameter-free methods."""
    stale = stale_methods(ws)
    return {"ready": [m for m in POOLED if m not in stale], "stale": stale}
