"""Evaluation stage: every method, reference and baseline side by side on held-out test chips -> ``evaluation.json``.

Collect: every chip is streamed once; each is reconstructed by Clay's references (``mae``,
``all_tokens``, ``cls_only``), by every seed of every fitted method, and by the no-Clay baselines
(``band_mean`` of the training chips, ``chip_mean``, ``thumbnail``), and scored (PSNR, SSIM with
nodata excluded, spectral angle; physical units, explicit data range). The image vectors and a
sketch of the whole token set (the NP@k reference) are kept too.

Report: headline figures are on the test chips of the fits' spatially blocked split (train and
val figures stay in the JSON); methods get mean ± sd over seeds and a 95 % interval from a
bootstrap over test chips x seeds; every method is compared, paired on the same chips, with mean
pooling, with the ``mae`` reference and with each baseline (``stats``); the findings become
sentences with a one-sentence verdict (``findings``). Methods fitted on another split, or before
splits and seeds existed, are listed with a "fit again" reason instead of numbers.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clay_explore.core.defaults import DEFAULT_BATCH_SIZE
from clay_explore.core.errors import CancelledError, StageMissingError
from clay_explore.core.lock import writes_workspace
from clay_explore.core.progress import Cancel, Progress, ProgressFn, is_cancelled
from clay_explore.core.sensors import to_model_units
from clay_explore.core.workspace import EVALUATION, Workspace
from clay_explore.research import findings
from clay_explore.research.aggregate import build_aggregator
from clay_explore.research.baselines import BAND_MEAN, BASELINES, CHIP_MEAN, THUMBNAIL, BandMeanAccumulator
from clay_explore.research.baselines import DESCRIPTIONS as BASELINE_DESCRIPTIONS
from clay_explore.research.fit import (
    FittedMethod,
    base_method,
    fitted_methods,
    is_stale,
    load_seeds,
    method_config,
    stream_batches,
)
from clay_explore.research.inputs import chip_meta, embeddings_info, waves_of
from clay_explore.research.metrics import (
    DEFAULT_K,
    TokenSketch,
    effective_k,
    knn_agreement,
    label_column,
    label_probe,
    neighbourhood_preservation,
    np_chance,
    pairwise_sq_dists,
    primary_labels,
)
from clay_explore.research.provenance import model_for_workspace, model_honesty
from clay_explore.research.reconstruct import (
    ALL_TOKENS,
    CLS_ONLY,
    MAE,
    REFERENCE_DESCRIPTIONS,
    REFERENCES,
    chip_metrics,
    data_range_for,
    reconstruct_batch,
)
from clay_explore.research.splits import SPLITS, Split, blocked_split
from clay_explore.research.stats import describe, paired_comparison
from clay_explore.research.vectors import embeddings_fingerprint, write_vectors

STAGE = "evaluate"
#: Parameter-free aggregators whose vectors are evaluated even when no expander was fitted.
PARAMETER_FREE = ("mean", "max", "gem", "cls")
METRICS = ("psnr", "ssim", "sam_deg")
#: The method every other is compared with, and Clay's own reference.
AGAINST = "mean"
#: Vector widths at which the thumbnail baseline is scored for the rate-distortion view.
RATE_DISTORTION_WIDTHS = (16, 64, 256, 1024)


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
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    return obj


def _nanmean(a: np.ndarray, axis: int | None = None) -> Any:
    with warnings.catch_warnings():  # an all-NaN band (no valid pixel anywhere) stays NaN -> null
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def summarise(per_chip: list[dict[str, Any]], rows: Sequence[int] | None = None) -> dict[str, Any] | None:
    """Mean of per-chip metrics over ``rows`` (all chips when None): per band and overall.

    ``sam_deg`` is None when no chip has a spectral angle (single-band data).
    """
    picked = per_chip if rows is None else [per_chip[int(r)] for r in rows]
    picked = [m for m in picked if m is not None]
    if not picked:
        return None
    psnr = np.array([m["psnr"] for m in picked], dtype=np.float64)  # [n, C]
    ssim = np.array([m["ssim"] for m in picked], dtype=np.float64)
    sams = [m["sam_deg"] for m in picked if m.get("sam_deg") is not None]  # None: single-band chips
    return {
        "n_chips": len(picked),
        "psnr_per_band": _nanmean(psnr, 0).tolist(),
        "ssim_per_band": _nanmean(ssim, 0).tolist(),
        "psnr": float(_nanmean(psnr)),
        "ssim": float(_nanmean(ssim)),
        "sam_deg": float(_nanmean(np.array(sams, dtype=np.float64))) if sams else None,
    }


def _seed_mean(per_seed: list[list[dict[str, Any] | None]]) -> list[dict[str, Any] | None]:
    """Per-chip metrics averaged over seeds (lists of per-chip dicts, one list per seed)."""
    out: list[dict[str, Any] | None] = []
    for chips in zip(*per_seed, strict=True):
        if any(c is None for c in chips):
            out.append(None)
            continue
        sams = [c["sam_deg"] for c in chips if c.get("sam_deg") is not None]
        out.append({
            "psnr": _nanmean(np.array([c["psnr"] for c in chips], np.float64), 0).tolist(),
            "ssim": _nanmean(np.array([c["ssim"] for c in chips], np.float64), 0).tolist(),
            "sam_deg": float(np.mean(sams)) if sams else None,
        })  # fmt: skip
    return out


def _scores(per_chip: list[dict[str, Any] | None], rows: Sequence[int], metric: str) -> np.ndarray:
    """One chip-mean score per row ([n]; NaN where missing)."""
    out = np.full(len(rows), np.nan)
    for i, r in enumerate(rows):
        m = per_chip[int(r)]
        if m is None:
            continue
        v = m.get("sam_deg") if metric == "sam_deg" else _nanmean(np.asarray(m[metric], np.float64))
        out[i] = np.nan if v is None else float(v)
    return out


# ---------------------------------------------------------------------------- plan
@dataclass
class Plan:
    """What one evaluation scores: the split, the fits (all seeds), budgets of the thumbnails."""

    split: Split
    fits: dict[str, list[FittedMethod]]
    skipped: dict[str, str]
    free: list[Any]
    thumbnails: dict[str, int]
    notes: list[str] = field(default_factory=list)


def _split_key(config: dict[str, Any]) -> tuple | None:
    rec = config.get("split")
    if not isinstance(rec, dict) or "rows" not in rec:
        return None
    return int(rec.get("split_seed", 0)), tuple(rec["rows"].get("test", [])), tuple(rec["rows"].get("train", []))


def _plan(ws: Workspace, model: Any, info: dict[str, Any], names: Sequence[str], split_seed: int | None) -> Plan:
    """Choose the split (the one most fits share, or ``split_seed``'s), load every fit's seeds."""
    n, dim, grid = int(info["n_chips"]), int(model.config.dim), int(info["grid"])
    configs = {m: method_config(ws, m) or {} for m in names}
    keys = {m: _split_key(c) for m, c in configs.items()}
    usable = [k for k in keys.values() if k is not None and (split_seed is None or k[0] == split_seed)]
    skipped: dict[str, str] = {}
    notes: list[str] = []
    if usable:
        chosen = Counter(usable).most_common(1)[0][0]
        first = next(m for m, k in keys.items() if k == chosen)
        split = Split.from_record(configs[first]["split"])
    elif n >= 2:
        split = blocked_split(ws.chip_table().iloc[:n], split_seed=split_seed or 0)
        chosen = None
    else:
        split = Split(np.arange(n), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 1, n)
        chosen = None
        notes.append(f"Only {n} chip: there is no held-out test chip, so no test figures.")
    fits: dict[str, list[FittedMethod]] = {}
    for m in names:
        if keys[m] is None:
            skipped[m] = (f"fitted before held-out test splits and seeds existed; fit it again "
                          f"(`clay-explore fit --workspace {ws.root} --method {base_method(m)}`)")  # fmt: skip
        elif keys[m] != chosen:
            skipped[m] = (f"fitted on another split (split seed {keys[m][0]}); fit it again with "
                          f"--split-seed {split.split_seed} to compare it")  # fmt: skip
        else:
            fits[m] = load_seeds(ws, m)
    notes += [f"{m} is left out: {why}." for m, why in skipped.items()]
    free = [build_aggregator(m, dim=dim, grid=grid) for m in PARAMETER_FREE if m not in fits]
    widths = [int(fm.aggregator.out_dim) for seeds in fits.values() for fm in seeds[:1]]
    budget = Counter(widths).most_common(1)[0][0] if widths else dim
    thumbnails = {THUMBNAIL: budget}
    for w in sorted(set(widths) | set(RATE_DISTORTION_WIDTHS)):
        thumbnails[f"{THUMBNAIL}@{w}"] = w
    return Plan(split, fits, skipped, free, thumbnails, notes)


# ---------------------------------------------------------------------------- collect
@dataclass
class Collected:
    """Per-chip metrics of every output (name or name/seedK), vectors, and the token-set sketches."""

    per_chip: dict[str, list[dict[str, Any] | None]]
    vectors: dict[str, np.ndarray]
    sketches: np.ndarray
    numbers: dict[str, int]
    band_means: np.ndarray
    sketch: TokenSketch


def training_band_means(ws: Workspace, rows: Sequence[int], batch_size: int) -> np.ndarray:
    """Per-band mean (model units) over the valid pixels of the training chips, streamed."""
    acc = BandMeanAccumulator(len(ws.bands))
    rows = np.asarray(rows, dtype=np.int64)
    for start in range(0, len(rows), batch_size):
        acc.add(to_model_units(ws.read_chips(rows[start : start + batch_size]), ws.sensor))
    return acc.mean()


def _collect(
    ws: Workspace, model: Any, info: dict[str, Any], plan: Plan, batch_size: int, progress: Any, cancel: Cancel,
    show_progress: bool,
) -> Collected:  # fmt: skip
    n, patch = int(info["n_chips"]), int(model.config.patch_size)
    grid = int(info["grid"])
    meta, waves = chip_meta(ws), torch.from_numpy(waves_of(ws))
    band_means = training_band_means(ws, plan.split.train, batch_size)
    models = [fm for seeds in plan.fits.values() for fm in seeds]
    sketch = TokenSketch(n, grid * grid, int(model.config.dim))
    per_chip: dict[str, list[dict[str, Any] | None]] = {}
    vectors: dict[str, np.ndarray] = {}
    sketches: np.ndarray | None = None
    numbers: dict[str, int] = {}
    bar = Progress(n, stage=STAGE, callback=progress, show=show_progress)
    try:
        for batch in stream_batches(ws, np.arange(n), meta, patch, batch_size, with_pixels=False):
            if is_cancelled(cancel):
                raise CancelledError("Evaluation cancelled; nothing was written. Run `clay-explore evaluate` again.")
            recon = reconstruct_batch(ws, model, batch, models, waves, REFERENCES, band_means=band_means,
                                      thumbnails=plan.thumbnails)  # fmt: skip
            numbers.update(recon.numbers)
            for name, rows in chip_metrics(recon, ws.sensor).items():
                store = per_chip.setdefault(name, [None] * n)
                for r, m in zip(batch.rows, rows, strict=True):
                    store[int(r)] = m
            with torch.inference_mode():
                for agg in plan.free:
                    recon.vectors[agg.name] = agg(batch.patches, batch.cls, batch.meta).float().numpy()
            for name, vec in recon.vectors.items():
                vectors.setdefault(name, np.zeros((n, vec.shape[1]), np.float32))[batch.rows] = vec
            sk = sketch(batch.patches)
            if sketches is None:
                sketches = np.zeros((n, sk.shape[1]), np.float32)
            sketches[batch.rows] = sk
            bar.update(len(batch.rows))
    finally:
        bar.close()
    if sketches is None:
        sketches = np.zeros((n, 0), np.float32)
    return Collected(per_chip, vectors, sketches, numbers, band_means, sketch)


# ---------------------------------------------------------------------------- report parts
def _splits_summary(per_chip: list[dict[str, Any] | None], split: Split) -> dict[str, Any]:
    out = {s: summarise(per_chip, split.rows(s)) for s in SPLITS}
    out["all"] = summarise(per_chip)
    return out


def _plain_test(per_chip: list[dict[str, Any] | None], split: Split) -> dict[str, Any]:
    """The contract's R["test"]: {psnr, ssim, sam_deg, n_chips} as plain numbers, plus 95 % intervals."""
    test = split.test
    out: dict[str, Any] = {"n_chips": 0}
    intervals = {}
    for metric in METRICS:
        d = describe(_scores(per_chip, test, metric))
        out[metric] = d["mean"]
        intervals[metric] = d["ci95"]
        out["n_chips"] = max(out["n_chips"], d["n_chips"])
    out["ci95"] = intervals
    return out


def _seed_table(col: Collected, fits: list[FittedMethod], rows: Sequence[int], metric: str) -> np.ndarray:
    """[chips, seeds] scores of a fit on ``rows``."""
    return np.stack([_scores(col.per_chip[fm.key], rows, metric) for fm in fits], axis=1)


def _fixed_table(col: Collected, name: str, rows: Sequence[int], metric: str) -> np.ndarray:
    return _scores(col.per_chip[name], rows, metric)[:, None]


def _method_entry(name: str, fits: list[FittedMethod], col: Collected, split: Split) -> dict[str, Any]:
    configs = [fm.config for fm in fits]
    first = configs[0]
    agg = fits[0].aggregator
    test: dict[str, Any] = {}
    for metric in METRICS:
        d = describe(_seed_table(col, fits, split.test, metric))
        test[metric] = {"mean": d["mean"], "sd": d["sd"], "ci95": d["ci95"]}
        test["n_chips"] = max(test.get("n_chips", 0), d["n_chips"])
    per_seed = []
    for fm in fits:
        per_seed.append({
            "seed": fm.seed,
            "best_val_loss": fm.config.get("best_val_loss"),
            "epochs_run": fm.config.get("epochs_run"),
            "test": {m: describe(_scores(col.per_chip[fm.key], split.test, m))["mean"] for m in METRICS},
        })  # fmt: skip
    mean_chips = _seed_mean([col.per_chip[fm.key] for fm in fits])
    n_params = first["n_params"]
    return {
        "kind": "learned" if n_params["aggregator"] > 0 else "parameter-free",
        "method": base_method(name),
        "fitted": True,
        "out_dim": int(agg.out_dim),
        "vector_dim": int(agg.out_dim),
        "n_numbers": int(agg.out_dim),
        "seeds": [fm.seed for fm in fits],
        "split_seed": first.get("split_seed"),
        "n_params": n_params,
        "fit_seconds": float(sum(float(c.get("fit_seconds") or 0.0) for c in configs)),
        "fit_status": "complete" if all(c.get("status") == "complete" for c in configs) else "partial",
        "best_val_loss": float(np.mean([c.get("best_val_loss") for c in configs])),
        "test": test,
        "per_seed": per_seed,
        "reconstruction": _splits_summary(mean_chips, split),
    }


def _no_test() -> dict[str, Any]:
    """The test block of an entry without reconstructions (same shape as a fitted method's, no numbers)."""
    return {**{m: {"mean": None, "sd": None, "ci95": None} for m in METRICS}, "n_chips": 0}


def _free_entry(agg: Any) -> dict[str, Any]:
    return {
        "kind": "parameter-free",
        "method": agg.name,
        "fitted": False,
        "out_dim": int(agg.out_dim),
        "vector_dim": int(agg.out_dim),
        "n_numbers": int(agg.out_dim),
        "n_params": {"aggregator": 0, "expander": 0, "total": 0},
        "fit_seconds": None,
        "fit_status": None,
        "best_val_loss": None,
        "test": _no_test(),
        "reconstruction": None,
        "note": "not fitted: its vectors are scored (NP@k, probe) but it has no expander to reconstruct with",
    }


def _comparisons(col: Collected, plan: Plan, pairs: Sequence[tuple[str, str]] | None) -> list[dict[str, Any]]:
    """Paired comparisons on the test chips: every fit vs mean pooling (same width when fitted), vs
    ``mae`` and vs each baseline; plus any requested (method, other) pairs."""
    test = plan.split.test
    if len(test) == 0:
        return []

    def table(name: str, metric: str) -> np.ndarray | None:
        if name in plan.fits:
            return _seed_table(col, plan.fits[name], test, metric)
        if name in col.per_chip:
            return _fixed_table(col, name, test, metric)
        return None

    wanted: list[tuple[str, str]] = []
    for name in plan.fits:
        width = name.split("@", 1)[1] if "@" in name else None
        same_width = f"{AGAINST}@{width}" if width else AGAINST
        against = same_width if same_width in plan.fits else (AGAINST if AGAINST in plan.fits else None)
        if against and against != name:
            wanted.append((name, against))
        wanted.append((name, MAE))
        wanted += [(name, b) for b in BASELINES]
    wanted += [tuple(p) for p in (pairs or []) if tuple(p) not in wanted]  # type: ignore[misc]
    out = []
    for method, other in wanted:
        for metric in METRICS:
            a, b = table(method, metric), table(other, metric)
            if a is None or b is None:
                continue
            out.append({"method": method, "against": other, **paired_comparison(a, b, metric)})
    return out


def _np_at_k(col: Collected, plan: Plan, k: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """NP@k of every vector against the whole-token-set reference (mean ± sd over seeds), with chance."""
    n = len(col.sketches)
    ref = pairwise_sq_dists(col.sketches)
    kk = effective_k(n, k)
    chance = np_chance(n, k)
    out: dict[str, Any] = {}
    primary: dict[str, np.ndarray] = {}
    for name, fits in plan.fits.items():
        values = [neighbourhood_preservation(ref, pairwise_sq_dists(col.vectors[fm.key]), k) for fm in fits]
        primary[name] = col.vectors[fits[0].key]
        value = float(np.mean(values)) if kk else None
        sd = float(np.std(values, ddof=1)) if kk and len(values) > 1 else (0.0 if kk else None)
        out[name] = {"value": value, "sd": sd, "chance": chance, "k": kk, "n_chips": n}
    for agg in plan.free:
        primary[agg.name] = col.vectors[agg.name]
        value = neighbourhood_preservation(ref, pairwise_sq_dists(col.vectors[agg.name]), k) if kk else None
        out[agg.name] = {"value": value, "sd": None, "chance": chance, "k": kk, "n_chips": n}
    if "cls" in out:
        out[CLS_ONLY] = dict(out["cls"])  # the CLS-only reconstruction reads the CLS vector
    return out, primary


def _rate_distortion(col: Collected, plan: Plan, methods: dict[str, Any]) -> list[dict[str, Any]]:
    """Test PSNR against vector width: each fit (mean ± sd, CI over chips x seeds) and the thumbnails."""
    points = []
    for name in plan.fits:
        entry = methods[name]
        points.append({"method": base_method(name), "name": name, "kind": "method", "out_dim": entry["out_dim"],
                       "n_numbers": entry["n_numbers"], "psnr": entry["test"]["psnr"],
                       "n_chips": entry["test"]["n_chips"], "n_seeds": len(plan.fits[name])})  # fmt: skip
    for name, budget in plan.thumbnails.items():
        if not name.startswith(f"{THUMBNAIL}@"):
            continue
        d = describe(_fixed_table(col, name, plan.split.test, "psnr"))
        psnr = {key: d[key] for key in ("mean", "sd", "ci95")}
        points.append({"method": THUMBNAIL, "name": name, "kind": "baseline", "out_dim": budget,
                       "n_numbers": col.numbers.get(name), "psnr": psnr, "n_chips": d["n_chips"]})  # fmt: skip
    return points


def _notes(ws: Workspace, model: Any, plan: Plan, n: int, k: int, labels: Any, methods: dict[str, Any]) -> list[str]:
    notes = list(plan.notes) + list(plan.split.notes)
    if not plan.fits:
        notes.append(
            f"No method is fitted yet, so only the references, baselines and parameter-free vectors are compared; "
            f"run `clay-explore fit --workspace {ws.root} --method mean` and another method (e.g. linear)."
        )
    elif AGAINST not in plan.fits:
        notes.append(
            f"Mean pooling is not fitted, so no method is compared with it; run "
            f"`clay-explore fit --workspace {ws.root} --method mean`."
        )
    if effective_k(n, k) == 0:
        notes.append(f"NP@k and kNN agreement need at least 3 chips; the workspace has {n}.")
    elif effective_k(n, k) < k:
        notes.append(f"Only {n} chips: neighbourhoods use k = {effective_k(n, k)} instead of {k}.")
    if labels is None:
        notes.append("The chips carry no labels, so there is no label probe.")
    else:
        skipped = [r["probe"]["skipped"] for r in methods.values() if "skipped" in (r.get("probe") or {})]
        if skipped:
            notes.append(f"No label probe: {skipped[0]}.")
    if model_honesty(model)["untrained"]:
        notes.append(model_honesty(model)["note"])
    return notes


def _fixed_entry(kind: str, name: str, col: Collected, split: Split, description: str, n_numbers: Any) -> dict:
    return {
        "kind": kind,
        "description": description,
        "n_numbers": n_numbers,
        "n_params": 0,
        "test": _plain_test(col.per_chip[name], split),
        "reconstruction": _splits_summary(col.per_chip[name], split),
    }


# ---------------------------------------------------------------------------- the stage
@writes_workspace("evaluate")
def evaluate_workspace(
    workspace: str | Path | Workspace,
    *,
    checkpoint: str | Path | None = None,
    model: Any = None,
    methods: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    k: int = DEFAULT_K,
    split_seed: int | None = None,
    compare: Sequence[tuple[str, str]] | None = None,
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
    show_progress: bool = True,
    device: Any = None,
) -> dict[str, Any]:
    """Score references, baselines and every fitted method (all seeds) on the test chips; write evaluation.json.

    ``methods``: fits to include (default: all current fits). ``split_seed``: use the fits of that
    split (default: the split most fits share). ``compare``: extra (method, other) pairs to compare.
    ``device``: where Clay's decoder runs ("auto", "cpu", "cuda[:N]", "mps"; None = $CLAY_EXPLORE_DEVICE).
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    info = embeddings_info(ws)
    model = model_for_workspace(ws, checkpoint, model, device=device)
    n = int(info["n_chips"])
    names = fitted_methods(ws) if methods is None else list(methods)
    plan = _plan(ws, model, info, names, split_seed)
    col = _collect(ws, model, info, plan, batch_size, progress, cancel, show_progress)
    split = plan.split
    table = ws.chip_table()
    label_col = label_column(table.columns)
    labels = primary_labels(table[label_col]) if label_col else None

    np_k, primary_vectors = _np_at_k(col, plan, k)
    results: dict[str, Any] = {name: _method_entry(name, fits, col, split) for name, fits in plan.fits.items()}
    for name, why in plan.skipped.items():
        results[name] = {"kind": "skipped", "method": base_method(name), "fitted": True, "skipped": why,
                         "test": _no_test(), "reconstruction": None}  # fmt: skip
    for agg in plan.free:
        results[agg.name] = _free_entry(agg)
    for name, vec in primary_vectors.items():
        results[name]["np_at_k"] = np_k[name]["value"]
        results[name]["probe"] = label_probe(vec, labels) if labels is not None else None

    grid, dim, n_bands = int(info["grid"]), int(model.config.dim), len(ws.bands)
    ref_numbers = {MAE: grid * grid * dim, ALL_TOKENS: grid * grid * dim, CLS_ONLY: dim}
    references = {
        name: _fixed_entry("reference", name, col, split, REFERENCE_DESCRIPTIONS[name], ref_numbers[name])
        for name in REFERENCES
    }
    base_numbers = {BAND_MEAN: 0, CHIP_MEAN: n_bands, THUMBNAIL: col.numbers.get(THUMBNAIL)}
    baselines = {
        name: _fixed_entry("baseline", name, col, split, BASELINE_DESCRIPTIONS[name], base_numbers[name])
        for name in BASELINES
    }
    baselines[BAND_MEAN]["band_means"] = col.band_means.tolist()  # model units, from the training chips
    baselines[THUMBNAIL]["out_dim"] = plan.thumbnails[THUMBNAIL]

    comparisons = _comparisons(col, plan, compare)
    seeds = sorted({fm.seed for fits in plan.fits.values() for fm in fits if fm.seed is not None})
    verdict, sentences = findings.sentences(
        comparisons, methods=list(plan.fits), baselines=BASELINES, n_test=len(split.test), n_seeds=len(seeds),
        untrained=bool(model_honesty(model)["untrained"]),
    )  # fmt: skip
    for name, vec in primary_vectors.items():
        write_vectors(ws, name, vec, {"embeddings_sha256": info.get("sha256"), **model_honesty(model)})

    report = _clean({
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"sha256": info.get("sha256"), "preset": info.get("preset"), "precision": info.get("precision"),
                  **model_honesty(model)},
        "n_chips": n,
        "embeddings_fingerprint": embeddings_fingerprint(ws),
        "bands": ws.bands,
        "data_range": data_range_for(ws.sensor),
        "headline": "test",
        "split": split.record(),
        "seeds": seeds,
        "verdict": verdict,
        "sentences": sentences,
        "references": references,
        "baselines": baselines,
        "methods": results,
        "comparisons": comparisons,
        "np_at_k": np_k,
        "k": effective_k(n, k),
        "reference_distance": col.sketch.describe(),
        "rate_distortion": _rate_distortion(col, plan, results),
        "knn_agreement": knn_agreement(primary_vectors, k),
        "labels": sorted({x for x in labels if x}) if labels else None,
        "stale_methods": [m for m in fitted_methods(ws, include_stale=True) if is_stale(ws, m)],
        "notes": _notes(ws, model, plan, n, k, labels, results),
    })  # fmt: skip
    ws.write_json(EVALUATION, report)
    ws.set_stage(STAGE, status="complete", methods=list(results), n_chips=n, untrained=report["model"]["untrained"])
    return report


def read_evaluation(ws: Workspace) -> dict[str, Any] | None:
    """evaluation.json with older names mapped to today's (``full`` -> ``all_tokens``), or None."""
    from clay_explore.research.reconstruct import LEGACY_NAMES

    report = ws.read_json(EVALUATION)
    if not report:
        return report
    methods = dict(report.get("methods") or {})
    for old, new in LEGACY_NAMES.items():
        if old in methods and new not in methods:
            methods[new] = methods.pop(old)
    report["methods"] = methods
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
