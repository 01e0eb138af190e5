"""Evaluation stage: compare every aggregation side by side and write ``evaluation.json``.

Per method: reconstruction PSNR/SSIM per band and averaged (physical units, explicit data
range) and spectral angle, over all chips and over the method's held-out chips; NP@k of its image
vectors against the full-token reference; kNN agreement between methods; parameter count and fit
time; a label probe where chips have labels. Image vectors go to ``vectors.zarr/<method>``.

The full-token reference distance between two chips is the Euclidean distance between their whole
[L, D] token sets. For D > ``SKETCH_DIM`` each token is first projected by one fixed Gaussian
matrix to ``SKETCH_DIM`` numbers (a Johnson-Lindenstrauss sketch, so the N x N distances fit in
memory with every chip streamed once); for smaller D the distances are exact.
"""

from __future__ import annotations

import math
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from clay_explore.research.aggregate import build_aggregator
from clay_explore.core.progress import Cancel, Progress, ProgressFn, is_cancelled
from clay_explore.research.inputs import chip_meta, embeddings_info, waves_of
from clay_explore.research.provenance import model_for_workspace, model_honesty
from clay_explore.core.errors import CancelledError, StageMissingError
from clay_explore.research.fit import FittedMethod, fitted_methods, is_stale, load_method, method_config, stream_batches
from clay_explore.research.metrics import (
    DEFAULT_K,
    effective_k,
    knn_agreement,
    label_probe,
    neighbourhood_preservation,
    pairwise_sq_dists,
    primary_labels,
)
from clay_explore.research.reconstruct import CLS_ONLY, FULL, chip_metrics, data_range_for, reconstruct_batch
from clay_explore.research.vectors import embeddings_fingerprint, write_vectors
from clay_explore.core.workspace import EVALUATION, Workspace

STAGE = "evaluate"
#: Per-token width of the full-token reference sketch (exact when D <= this).
SKETCH_DIM = 64
SKETCH_SEED = 0
DEFAULT_BATCH_SIZE = 8
#: Parameter-free aggregators whose vectors are evaluated even when no expander was fitted.
PARAMETER_FREE = ("mean", "max", "gem", "cls")


def _clean(obj: Any) -> Any:
    """NaN/inf -> None so evaluation.json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def summarise(per_chip: list[dict[str, Any]], rows: Sequence[int] | None = None) -> dict[str, Any] | None:
    """Mean of per-chip metrics over ``rows`` (all chips when None): per band and overall.

    ``sam_deg`` is None when no chip has a spectral angle (single-band data).
    """
    picked = per_chip if rows is None else [per_chip[int(r)] for r in rows]
    if not picked:
        return None
    psnr = np.array([m["psnr"] for m in picked], dtype=np.float64)  # [n, C]
    ssim = np.array([m["ssim"] for m in picked], dtype=np.float64)
    sams = [m["sam_deg"] for m in picked if m.get("sam_deg") is not None]   # None: single-band chips

    def mean(a: np.ndarray, axis: int | None = None):
        with warnings.catch_warnings():  # an all-NaN band (no valid pixel anywhere) stays NaN -> null
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(a, axis=axis)

    return {
        "n_chips": len(picked),
        "psnr_per_band": mean(psnr, 0).tolist(),
        "ssim_per_band": mean(ssim, 0).tolist(),
        "psnr": float(mean(psnr)),
        "ssim": float(mean(ssim)),
        "sam_deg": float(mean(np.array(sams, dtype=np.float64))) if sams else None,
    }


class _Sketch:
    """Fixed per-token projection D -> SKETCH_DIM (identity when D is small)."""

    def __init__(self, dim: int):
        self.exact = dim <= SKETCH_DIM
        gen = torch.Generator().manual_seed(SKETCH_SEED)
        self.matrix = None if self.exact else torch.randn(dim, SKETCH_DIM, generator=gen) / math.sqrt(SKETCH_DIM)

    def __call__(self, patches: torch.Tensor) -> np.ndarray:  # [B, L, D] -> [B, L*r]
        x = patches.float() if self.exact else patches.float() @ self.matrix
        return x.reshape(x.shape[0], -1).numpy()


def evaluate_workspace(
    workspace: str | Path | Workspace,
    *,
    checkpoint: str | Path | None = None,
    model: Any = None,
    methods: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    k: int = DEFAULT_K,
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the references (all tokens, CLS only) and every fitted method; write evaluation.json."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    info = embeddings_info(ws)
    model = model_for_workspace(ws, checkpoint, model)
    n, patch = int(info["n_chips"]), int(model.config.patch_size)
    names = fitted_methods(ws) if methods is None else list(methods)
    fitted: list[FittedMethod] = [load_method(ws, m) for m in names]
    # parameter-free aggregators give vectors (for NP@k / probes) even without a fitted expander
    free = [
        build_aggregator(m, dim=int(model.config.dim), grid=int(info["grid"])) for m in PARAMETER_FREE if m not in names
    ]
    meta, waves = chip_meta(ws), torch.from_numpy(waves_of(ws))
    sketch = _Sketch(int(model.config.dim))

    per_chip: dict[str, list[dict[str, Any] | None]] = {}
    vectors: dict[str, np.ndarray] = {}
    reference = None
    bar = Progress(n, stage=STAGE, callback=progress, show=show_progress)
    try:
        for batch in stream_batches(ws, np.arange(n), meta, patch, batch_size, with_pixels=False):
            if is_cancelled(cancel):
                raise CancelledError("Evaluation cancelled; nothing was written. Run `clay-explore evaluate` again.")
            recon = reconstruct_batch(ws, model, batch, fitted, waves)
            for name, rows in chip_metrics(recon, ws.sensor).items():
                store = per_chip.setdefault(name, [None] * n)
                for r, m in zip(batch.rows, rows, strict=True):
                    store[int(r)] = m
            with torch.inference_mode():
                for agg in free:
                    recon.vectors[agg.name] = agg(batch.patches, batch.cls, batch.meta).float().numpy()
            for name, vec in recon.vectors.items():
                vectors.setdefault(name, np.zeros((n, vec.shape[1]), np.float32))[batch.rows] = vec
            sk = sketch(batch.patches)
            if reference is None:
                reference = np.zeros((n, sk.shape[1]), np.float32)
            reference[batch.rows] = sk
            bar.update(len(batch.rows))
    finally:
        bar.close()

    ref_d = pairwise_sq_dists(reference)
    labels = primary_labels(ws.chip_table()["labels"]) if "labels" in ws.chip_table() else None
    fitted_by_name = {fm.name: fm for fm in fitted}
    splits = {tuple(fm.config.get("val_rows", [])) for fm in fitted}
    shared_val = list(splits.pop()) if len(splits) == 1 else None

    results: dict[str, Any] = {}
    for name in [FULL, CLS_ONLY]:
        results[name] = {
            "kind": "reference",
            "description": "decoder on every real patch token (upper bound)"
            if name == FULL
            else "decoder on the CLS token with every patch masked (Clay's own one-vector baseline)",
            "n_params": 0,
            "fit_seconds": None,
            "reconstruction": {
                "all": summarise(per_chip[name]),
                "val": summarise(per_chip[name], shared_val) if shared_val else None,
            },
        }
    for name in list(fitted_by_name) + [a.name for a in free]:
        fm = fitted_by_name.get(name)
        rec = None
        if fm is not None:
            rec = {"all": summarise(per_chip[name]), "val": summarise(per_chip[name], fm.config.get("val_rows", []))}
        vec_d = pairwise_sq_dists(vectors[name])
        results[name] = {
            "kind": "learned" if fm is not None and fm.config["n_params"]["aggregator"] > 0 else "parameter-free",
            "fitted": fm is not None,
            "vector_dim": int(vectors[name].shape[1]),
            "n_params": fm.config["n_params"] if fm is not None else {"aggregator": 0, "expander": 0, "total": 0},
            "fit_seconds": fm.config.get("fit_seconds") if fm is not None else None,
            "fit_status": fm.config.get("status") if fm is not None else None,
            "best_val_loss": fm.config.get("best_val_loss") if fm is not None else None,
            "reconstruction": rec,
            "np_at_k": neighbourhood_preservation(ref_d, vec_d, k),
            "probe": label_probe(vectors[name], labels) if labels is not None else None,
        }
    # CLS-only shares the CLS vector
    if "cls" in vectors:
        results[CLS_ONLY]["np_at_k"] = results["cls"]["np_at_k"]

    notes = []
    if not fitted:
        notes.append(
            f"No method is fitted yet, so only the references and the parameter-free vectors are compared; "
            f"run `clay-explore fit --workspace {ws.root} --method linear` (or another method)."
        )
    if effective_k(n, k) == 0:
        notes.append(f"NP@k and kNN agreement need at least 3 chips; the workspace has {n}.")
    elif effective_k(n, k) < k:
        notes.append(f"Only {n} chips: neighbourhoods use k = {effective_k(n, k)} instead of {k}.")
    if labels is None:
        notes.append("The chips carry no labels, so there is no label probe.")
    else:
        skipped = [r["probe"]["skipped"] for r in results.values() if "skipped" in (r.get("probe") or {})]
        if skipped:
            notes.append(f"No label probe: {skipped[0]}.")
    if model_honesty(model)["untrained"]:
        notes.append(model_honesty(model)["note"])

    for name, vec in vectors.items():
        write_vectors(ws, name, vec, {"embeddings_sha256": info.get("sha256"), **model_honesty(model)})

    report = _clean(
        {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": {
                "sha256": info.get("sha256"),
                "preset": info.get("preset"),
                "precision": info.get("precision"),
                **model_honesty(model),
            },
            "n_chips": n,
            "embeddings_fingerprint": embeddings_fingerprint(ws),
            "bands": ws.bands,
            "data_range": data_range_for(ws.sensor),
            "k": effective_k(n, k),
            "reference_distance": "exact full-token distance"
            if sketch.exact
            else f"full-token distance via a {SKETCH_DIM}-dim Gaussian sketch per token",
            "methods": results,
            "knn_agreement": knn_agreement(vectors, k),
            "labels": sorted({x for x in labels if x}) if labels else None,
            "stale_methods": [m for m in fitted_methods(ws, include_stale=True) if is_stale(ws, m)],
            "notes": notes,
        }
    )
    ws.write_json(EVALUATION, report)
    ws.set_stage(STAGE, status="complete", methods=list(results), n_chips=n, untrained=report["model"]["untrained"])
    return report


def outdated_reason(ws: Workspace, report: dict[str, Any] | None = None) -> str | None:
    """Why ``evaluation.json`` no longer describes the workspace (None when it does, or when there is none).

    It is out of date when the embeddings were rewritten or grew after it was made, or when a method
    was fitted after it: its numbers would silently describe other data.
    """
    report = ws.read_json(EVALUATION) if report is None else report
    if not report:
        return None
    try:
        current = embeddings_fingerprint(ws)
    except StageMissingError:
        return "the embeddings it was made from are missing or being recomputed"
    if report.get("embeddings_fingerprint") != current:
        return "the embeddings changed after it was made (re-embedded, or chips were added)"
    created = str(report.get("created") or "")
    evaluated = report.get("methods") or {}
    later = []
    for m in fitted_methods(ws):
        fitted = str((method_config(ws, m) or {}).get("fitted") or "")
        if not (evaluated.get(m) or {}).get("fitted") or fitted > created:
            later.append(m)
    if later:
        return f"{', '.join(later)} {'was' if len(later) == 1 else 'were'} fitted after it was made"
    return None
