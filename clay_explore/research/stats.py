"""Uncertainty over test chips and initialisation seeds: mean ± sd, bootstrap intervals, paired verdicts.

A method's score varies with the chips it is tested on and with the seed it was initialised with.
Intervals here resample both: chips with replacement and, independently, seeds with replacement
(a two-way bootstrap over the [chips, seeds] table of per-chip scores), with a fixed generator so
the same inputs always give the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Bootstrap resamples (enough for stable 2.5 / 97.5 percentiles).
N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
CI_LEVEL = 0.95
#: Metrics where a lower value is better (an angle error); PSNR and SSIM are higher-is-better.
LOWER_IS_BETTER = ("sam_deg",)
VERDICTS = ("better", "worse", "indistinguishable")


def _finite_table(scores: np.ndarray) -> np.ndarray:
    """[chips, seeds] float64 with chips that have a NaN for any seed dropped."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    return x[np.isfinite(x).all(axis=1)]


def bootstrap_means(scores: np.ndarray, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Means of ``n_boot`` two-way resamples (chips x seeds) of a [chips, seeds] table -> [n_boot]."""
    x = _finite_table(scores)
    n_chips, n_seeds = x.shape
    if n_chips == 0:
        return np.full(n_boot, np.nan)
    rng = np.random.default_rng(seed)
    chips = rng.integers(0, n_chips, size=(n_boot, n_chips))  # [B, n]
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))  # [B, s]
    # mean over the resampled grid = mean over chips of the mean over resampled seeds
    per_chip = x[chips]  # [B, n, s]
    picked = np.take_along_axis(per_chip, seeds[:, None, :].repeat(n_chips, axis=1), axis=2)
    return picked.mean(axis=(1, 2))


def interval(samples: np.ndarray, level: float = CI_LEVEL) -> list[float] | None:
    """Percentile interval [lo, hi] of bootstrap samples (None when there are none)."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    return [float(np.percentile(s, tail)), float(np.percentile(s, 100.0 - tail))]


def describe(scores: np.ndarray, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """{mean, sd (over seeds of each seed's chip mean), ci95 (two-way bootstrap), n_chips, n_seeds}."""
    x = _finite_table(scores)
    if x.size == 0:
        n_seeds = int(np.shape(scores)[-1]) if np.ndim(scores) > 1 else 1
        return {"mean": None, "sd": None, "ci95": None, "n_chips": 0, "n_seeds": n_seeds}
    seed_means = x.mean(axis=0)  # [s]
    return {
        "mean": float(x.mean()),
        "sd": float(seed_means.std(ddof=1)) if len(seed_means) > 1 else 0.0,
        "ci95": interval(bootstrap_means(x, seed=seed)),
        "n_chips": int(x.shape[0]),
        "n_seeds": int(x.shape[1]),
    }


def pair_seeds(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Align two [chips, seeds] tables on seeds: equal counts pair by position; otherwise a
    single-seed side is repeated, and with two different counts the first min(sa, sb) pair up."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = (a[:, None] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
    sa, sb = a.shape[1], b.shape[1]
    if sa == sb:
        return a, b
    if sa == 1:
        return np.repeat(a, sb, axis=1), b
    if sb == 1:
        return a, np.repeat(b, sa, axis=1)
    s = min(sa, sb)
    return a[:, :s], b[:, :s]


def verdict(ci: Sequence[float] | None, lower_is_better: bool = False) -> str:
    """'better' when the interval of (method - other) lies wholly on the good side of 0, 'worse' when
    wholly on the bad side, else 'indistinguishable' (an interval touching 0 says nothing either way)."""
    if ci is None:
        return "indistinguishable"
    lo, hi = ci
    if lo > 0.0:
        return "worse" if lower_is_better else "better"
    if hi < 0.0:
        return "better" if lower_is_better else "worse"
    return "indistinguishable"


def paired_comparison(
    method: np.ndarray, other: np.ndarray, metric: str = "psnr", seed: int = BOOTSTRAP_SEED
) -> dict[str, Any]:
    """Paired difference method - other on the same chips: diff, 95 % interval, verdict, n_chips.

    Both are [chips, seeds] tables of per-chip scores on the same test chips (rows aligned).
    """
    a, b = pair_seeds(method, other)
    d = a - b
    table = _finite_table(d)
    ci = interval(bootstrap_means(table, seed=seed)) if table.size else None
    return {
        "metric": metric,
        "diff": float(table.mean()) if table.size else None,
        "ci95": ci,
        "verdict": verdict(ci, metric in LOWER_IS_BETTER),
        "n_chips": int(table.shape[0]),
        "n_seeds": int(table.shape[1]) if table.size else 0,
    }
