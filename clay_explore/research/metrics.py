"""Metrics: reconstruction quality (PSNR, SSIM, spectral angle) and embedding-space structure
(neighbourhood preservation, kNN agreement, label probes).

Image metrics take physical units (reflectance for optical sensors) and an explicit data range,
so numbers are comparable across chips and methods. They follow the textbook definitions that
scikit-image implements (Wang et al. 2004 SSIM: 11-tap Gaussian, sigma 1.5, population
covariance), which the tests check on known inputs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter, maximum_filter

from clay_explore.core.defaults import DEFAULT_K  # neighbourhood size of NP@k

#: SSIM constants of Wang et al. (2004).
SSIM_K1, SSIM_K2, SSIM_SIGMA = 0.01, 0.03, 1.5
#: Gaussian window truncation giving the 11-tap window of the paper (radius 5 for sigma 1.5).
SSIM_TRUNCATE = 3.5
#: Smallest image side SSIM's window fits in.
SSIM_MIN_SIDE = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1
#: PSNR reported for a perfect reconstruction (infinite in theory; JSON has no infinity).
PSNR_CAP = 100.0
#: Fewest bands a spectral angle means anything for (one band has no spectrum).
MIN_SAM_BANDS = 2


# ---------------------------------------------------------------------------- image metrics
def psnr(ref: np.ndarray, pred: np.ndarray, data_range: float, valid: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB over the ``valid`` pixels: 10 log10(range^2 / MSE)."""
    ref, pred = np.asarray(ref, np.float64), np.asarray(pred, np.float64)
    mask = np.isfinite(ref) & np.isfinite(pred) if valid is None else valid
    if not mask.any():
        return float("nan")
    mse = float(np.mean((ref[mask] - pred[mask]) ** 2))
    if mse == 0.0:
        return PSNR_CAP
    return float(min(10.0 * np.log10(data_range**2 / mse), PSNR_CAP))


def ssim(ref: np.ndarray, pred: np.ndarray, data_range: float) -> float:
    """Mean structural similarity of two 2-D images (Gaussian window, border of the window cropped).

    Nodata (NaN in ``ref`` or ``pred``) is left out: every window that touches a nodata pixel is
    dropped from the mean, so nodata can neither raise nor lower the score (filling it with the
    prediction made two unrelated images look alike). On fully valid images this equals
    scikit-image's ``structural_similarity`` (gaussian_weights, sigma 1.5, population covariance).
    NaN when no window is free of nodata.
    """
    x, y = np.asarray(ref, np.float64), np.asarray(pred, np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"ssim needs two 2-D images of the same shape, got {x.shape} and {y.shape}")
    nodata = ~(np.isfinite(x) & np.isfinite(y))
    if nodata.all():
        return float("nan")
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    if min(x.shape) < 2 * radius + 1:
        raise ValueError(f"ssim needs images of at least {2 * radius + 1} px a side, got {x.shape}")
    x, y = np.where(nodata, 0.0, x), np.where(nodata, 0.0, y)

    def blur(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    inner = (slice(radius, -radius), slice(radius, -radius))
    if not nodata.any():
        return float(s[inner].mean())
    touched = maximum_filter(nodata, size=2 * radius + 1, mode="nearest")  # window reaches nodata
    keep = ~touched[inner]
    return float(s[inner][keep].mean()) if keep.any() else float("nan")


def per_band(metric, ref: np.ndarray, pred: np.ndarray, data_range: float | Sequence[float]) -> np.ndarray:
    """Apply a 2-D metric to each band of [C, H, W] images -> [C]."""
    ranges = np.broadcast_to(np.asarray(data_range, dtype=np.float64), (ref.shape[0],))
    return np.array([metric(ref[c], pred[c], float(ranges[c])) for c in range(ref.shape[0])])


def spectral_angle(ref: np.ndarray, pred: np.ndarray) -> float | None:
    """Mean spectral angle in degrees between the per-pixel spectra of [C, H, W] images.

    Pixels with nodata in any band, or with an all-zero spectrum, are skipped. None for a
    single band: a 1-D "spectrum" has no angle (it would read 0 or 180 by sign alone).
    """
    if ref.shape[0] < MIN_SAM_BANDS:
        return None
    a = np.asarray(ref, np.float64).reshape(ref.shape[0], -1)  # [C, N]
    b = np.asarray(pred, np.float64).reshape(pred.shape[0], -1)
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    ok = np.isfinite(a).all(0) & np.isfinite(b).all(0) & (na > 0) & (nb > 0)
    if not ok.any():
        return float("nan")
    cos = (a[:, ok] * b[:, ok]).sum(0) / (na[ok] * nb[ok])
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean())


def ssim_bands(ref: np.ndarray, pred: np.ndarray, data_range: float | Sequence[float]) -> np.ndarray:
    """``ssim`` of every band of [C, H, W] images at once -> [C] (the same numbers, one filter call per moment)."""
    x, y = np.asarray(ref, np.float64), np.asarray(pred, np.float64)
    nodata = ~(np.isfinite(x) & np.isfinite(y))  # [C, H, W]
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    x, y = np.where(nodata, 0.0, x), np.where(nodata, 0.0, y)
    sigma = (0.0, SSIM_SIGMA, SSIM_SIGMA)  # no blur across bands

    def blur(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma=sigma, truncate=SSIM_TRUNCATE, mode="reflect")

    ux, uy = blur(x), blur(y)
    vx, vy, vxy = blur(x * x) - ux * ux, blur(y * y) - uy * uy, blur(x * y) - ux * uy
    ranges = np.broadcast_to(np.asarray(data_range, dtype=np.float64), (x.shape[0],))[:, None, None]
    c1, c2 = (SSIM_K1 * ranges) ** 2, (SSIM_K2 * ranges) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    inner = (slice(None), slice(radius, -radius), slice(radius, -radius))
    keep = ~maximum_filter(nodata, size=(1, 2 * radius + 1, 2 * radius + 1), mode="nearest")[inner]
    s = s[inner]
    counts = keep.sum(axis=(1, 2))
    sums = np.where(keep, s, 0.0).sum(axis=(1, 2))
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def image_metrics(
    ref: np.ndarray, pred: np.ndarray, data_range: float | Sequence[float], *, structure: bool = True
) -> dict[str, Any]:
    """PSNR and SSIM per band (+ their means) and the spectral angle of one chip [C, H, W].

    ``sam_deg`` is None for single-band chips (see ``spectral_angle``). ``structure=False`` skips
    SSIM and the spectral angle (NaN / None) where only PSNR is read (the rate-distortion points).
    """
    p = per_band(psnr, ref, pred, data_range)
    if not structure or min(ref.shape[-2:]) < SSIM_MIN_SIDE:  # skipped, or too small for the 11-px window
        s = np.full(ref.shape[0], np.nan)
    else:
        s = ssim_bands(ref, pred, data_range)
    return {
        "psnr": p.tolist(),
        "ssim": s.tolist(),
        "psnr_mean": float(np.nanmean(p)) if np.isfinite(p).any() else float("nan"),
        "ssim_mean": float(np.nanmean(s)) if np.isfinite(s).any() else float("nan"),
        "sam_deg": spectral_angle(ref, pred) if structure else None,
    }


# ---------------------------------------------------------------------------- embedding structure
def pairwise_sq_dists(x: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [N, N] between the rows of x [N, F] (float64)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    sq = (x * x).sum(1)
    d = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.maximum(d, 0.0, out=d)
    np.fill_diagonal(d, 0.0)
    return d


def neighbour_sets(dists: np.ndarray, k: int) -> np.ndarray:
    """Indices [N, k] of each row's k nearest others (self excluded; ties broken by index)."""
    d = np.array(dists, dtype=np.float64, copy=True)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def effective_k(n: int, k: int = DEFAULT_K) -> int:
    """k, reduced to n-2 when there are fewer than k+2 points (0 = not measurable).

    With k = n-1 every other point is a neighbour, so NP@k would be 1.0 whatever the embedding:
    at least one point must stay outside each neighbourhood for the number to mean anything.
    """
    return max(0, min(k, n - 2))


def neighbourhood_preservation(dists_a: np.ndarray, dists_b: np.ndarray, k: int = DEFAULT_K) -> float:
    """NP@k: mean share of each point's k nearest neighbours under A that are also its k nearest under B."""
    n = len(dists_a)
    k = effective_k(n, k)
    if k == 0:
        return float("nan")
    na, nb = neighbour_sets(dists_a, k), neighbour_sets(dists_b, k)
    overlap = [len(np.intersect1d(na[i], nb[i], assume_unique=True)) for i in range(n)]
    return float(np.mean(overlap) / k)


def np_chance(n: int, k: int = DEFAULT_K) -> float | None:
    """NP@k of an embedding unrelated to the reference: k / (n - 1) (None when NP@k is not measurable)."""
    k = effective_k(n, k)
    return float(k / (n - 1)) if k > 0 else None


#: Width per position of the token-set sketch, and the seed of its projections.
SKETCH_DIM = 64
SKETCH_SEED = 0
#: Largest token set kept exactly for the reference distances, in numbers over all chips (128 MiB).
EXACT_MAX_NUMBERS = 32 * 1024 * 1024
#: Positions whose projections are drawn at once (bounds the memory of the sketch: chunk x D x width).
SKETCH_CHUNK = 128


class TokenSketch:
    """Whole token sets [L, D] -> vectors whose distances approximate the all-token reference distance.

    The reference distance between two chips is the Euclidean distance of their flattened [L*D]
    token sets. When all N chips fit (N*L*D <= EXACT_MAX_NUMBERS, or D <= width) the sets are kept
    exactly. Otherwise every position l gets its *own* Gaussian projection R_l [D, width] (a
    block-diagonal Johnson-Lindenstrauss sketch of the whole set): the component all tokens share is
    projected L times independently, so its errors average out instead of being drawn once by a
    shared matrix. The R_l are redrawn from fixed seeds, a chunk of positions at a time, so memory
    stays at SKETCH_CHUNK x D x width and every batch sees the same projections.
    """

    def __init__(self, n_chips: int, n_patches: int, dim: int, width: int = SKETCH_DIM, exact: bool | None = None):
        fits = n_chips * n_patches * dim <= EXACT_MAX_NUMBERS or dim <= width
        self.exact = fits if exact is None else bool(exact)
        self.width = dim if self.exact else int(width)
        self.dim, self.n_patches = int(dim), int(n_patches)

    def _projection(self, start: int, stop: int) -> Any:
        import torch

        gen = torch.Generator().manual_seed(SKETCH_SEED * 1_000_003 + start)
        return torch.randn(stop - start, self.dim, self.width, generator=gen) / math.sqrt(self.width)

    def __call__(self, patches: Any) -> np.ndarray:
        """Token sets [B, L, D] (tensor or array) -> sketches [B, L*width] float32."""
        import torch

        x = torch.as_tensor(np.asarray(patches) if not isinstance(patches, torch.Tensor) else patches)
        x = x.detach().float().cpu()
        if self.exact:
            return x.reshape(x.shape[0], -1).numpy()
        parts = []
        for start in range(0, self.n_patches, SKETCH_CHUNK):
            stop = min(start + SKETCH_CHUNK, self.n_patches)
            parts.append(torch.einsum("bld,ldr->blr", x[:, start:stop], self._projection(start, stop)))
        return torch.cat(parts, dim=1).reshape(x.shape[0], -1).numpy()

    def describe(self) -> str:
        if self.exact:
            return "exact distance between whole token sets"
        return f"distance between whole token sets via an independent {self.width}-dim Gaussian sketch per position"


def knn_agreement(vectors: Mapping[str, np.ndarray], k: int = DEFAULT_K) -> dict[str, dict[str, float]]:
    """NP@k between every pair of methods' image vectors (symmetric; 1.0 on the diagonal)."""
    dists = {name: pairwise_sq_dists(v) for name, v in vectors.items()}
    names = list(dists)
    out: dict[str, dict[str, float]] = {a: {} for a in names}
    for i, a in enumerate(names):
        for b in names[i:]:
            v = neighbourhood_preservation(dists[a], dists[b], k)
            out[a][b] = out[b][a] = v
    return out


# ---------------------------------------------------------------------------- label probes
#: Chip-table columns that hold each chip's labels, preferred first.
LABEL_COLUMNS = ("labels", "label")


def label_column(columns: Sequence[str]) -> str | None:
    """The chip table's label column (see ``LABEL_COLUMNS``), or None when the chips carry no labels."""
    return next((name for name in LABEL_COLUMNS if name in columns), None)


def primary_labels(labels: Sequence[Any]) -> list[str | None]:
    """First label of each chip from strings like '["a", "b"]', 'a; b' or 'a|b' (None when absent).

    The one label parser: the label probe of ``evaluate`` and the app's "colour by label" both use it.
    """
    out: list[str | None] = []
    for raw in labels:
        if isinstance(raw, (list, tuple, np.ndarray)):
            items = [str(t).strip() for t in raw if str(t).strip()]
            out.append(items[0] if items else None)
            continue
        if raw is None or (isinstance(raw, float) and np.isnan(raw)) or str(raw).strip() == "":
            out.append(None)
            continue
        text = str(raw).strip()
        items: list[str]
        if text.startswith("["):
            try:
                items = [str(t) for t in json.loads(text)]
            except json.JSONDecodeError:
                items = [text]
        else:
            items = [t for t in text.replace("|", ";").split(";")]
        items = [t.strip() for t in items if t.strip()]
        out.append(items[0] if items else None)
    return out


#: Folds of the probe's cross-validation (fewer when a class is small).
PROBE_FOLDS = 5
#: Neighbours of the kNN probe.
PROBE_KNN = 5


#: Fewest labelled chips per class, and classes, for the probe to run (each fold needs both).
PROBE_MIN_PER_CLASS = 2
PROBE_MIN_CLASSES = 2


def label_probe(vectors: np.ndarray, labels: Sequence[str | None], seed: int = 0) -> dict[str, Any]:
    """Cross-validated kNN and logistic-regression accuracy of predicting each chip's (primary) label.

    Classes with fewer than ``PROBE_MIN_PER_CLASS`` chips are left out. When fewer than
    ``PROBE_MIN_CLASSES`` classes remain, returns ``{"skipped": reason, ...}`` instead of accuracies.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lab = np.array([x if x is not None else "" for x in labels], dtype=object)
    keep = lab != ""
    classes, counts = np.unique(lab[keep], return_counts=True)
    usable = set(classes[counts >= PROBE_MIN_PER_CLASS])
    if len(usable) < PROBE_MIN_CLASSES:
        found = ", ".join(f"{c}: {k}" for c, k in zip(classes, counts, strict=True)) or "none"
        return {
            "skipped": f"a probe needs at least {PROBE_MIN_CLASSES} classes with {PROBE_MIN_PER_CLASS} labelled "
            f"chips each; labelled chips per class: {found}",
            "n_chips": int(keep.sum()),
            "n_classes": len(classes),
        }
    keep &= np.isin(lab, list(usable))
    x, y = np.asarray(vectors, np.float64)[keep], lab[keep].astype(str)
    folds = int(min(PROBE_FOLDS, np.unique(y, return_counts=True)[1].min()))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    smallest_train = len(y) - math.ceil(len(y) / folds)  # the largest test fold leaves this many to fit on
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=min(PROBE_KNN, smallest_train)))
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return {
        "n_chips": int(len(y)),
        "n_classes": int(len(usable)),
        "folds": folds,
        "knn_accuracy": float(cross_val_score(knn, x, y, cv=cv).mean()),
        "logreg_accuracy": float(cross_val_score(logreg, x, y, cv=cv).mean()),
        "chance": float(np.unique(y, return_counts=True)[1].max() / len(y)),
        "classes_left_out": sorted(str(c) for c in set(classes) - usable),
        "label": "first (primary) label of each chip",
    }
