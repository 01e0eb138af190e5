"""2-D projections of embeddings: PCA pre-reduction + UMAP, recorded and cached in the workspace.

A projection is identified by its sources (``patches``, ``cls`` or an aggregator in
``vectors.zarr``), its UMAP/PCA parameters and a fingerprint of the stages it reads; the result
is stored as ``projections/<key>.parquet`` (one row per point) plus ``projections/<key>.json``
(parameters, timings, trustworthiness), so no page or CLI call computes the same one twice.

Why PCA first: UMAP's nearest-neighbour search on 1,024-d tokens is slow and its distances are
noisy in high dimension; 50 principal components keep most of the variance and make 100k points a
matter of a minute (see ``bench/app.py`` for the measured ratio and trustworthiness of both).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from clay_explore.core import defaults
from clay_explore.core.bounds import UMAP_BOUNDS, check_bounds
from clay_explore.core.errors import ClayExploreError, StageMissingError
from clay_explore.core.lock import writes_workspace
from clay_explore.core.workspace import EMBEDDINGS_ZARR, VECTORS_ZARR, Workspace, atomic_path

PROJECTIONS_DIR = "projections"
PATCHES = "patches"
CLS = "cls"
METRICS = defaults.UMAP_METRICS
TRUST_SAMPLE = 2000  # points used for trustworthiness (it is O(n^2))
TRUST_NEIGHBOURS = 10
#: Stages whose records do not change the data a projection reads.
_IGNORED_STAGES = ("projection", "export", "fit")  # fit writes weights; vectors change with evaluate/vectors

Progress = Callable[[float, str], None]


class ProjectionError(ClayExploreError, ValueError):
    """A projection cannot be made with these sources or parameters."""


@dataclass(frozen=True)
class UmapParams:
    """Everything that determines a projection besides the data."""

    n_neighbors: int = defaults.UMAP_N_NEIGHBORS
    min_dist: float = defaults.UMAP_MIN_DIST
    metric: str = defaults.UMAP_METRIC
    seed: int | None = defaults.UMAP_SEED  # None: faster (parallel) but not reproducible
    pca_components: int = defaults.UMAP_PCA_COMPONENTS  # 0: UMAP on the raw vectors
    max_points: int = defaults.UMAP_MAX_POINTS  # patches are subsampled (seeded) beyond this

    def validate(self) -> UmapParams:
        """Raise ProjectionError for values UMAP cannot take."""
        if self.n_neighbors < 2:
            raise ProjectionError("n_neighbors must be at least 2.")
        if not 0.0 <= self.min_dist <= 1.0:
            raise ProjectionError("min_dist must lie between 0 and 1.")
        if self.metric not in METRICS:
            raise ProjectionError(f"Unknown metric {self.metric!r}; choose one of {', '.join(METRICS)}.")
        if self.pca_components < 0 or self.max_points < 10:
            raise ProjectionError("pca_components must be >= 0 and max_points >= 10.")
        check_bounds(asdict(self), UMAP_BOUNDS)  # the upper limits, and a seed numpy takes
        return self


@dataclass
class Projection:
    """A stored projection: the point table and what made it."""

    key: str
    table: Any  # pandas.DataFrame: x, y, source, row, chip_id, i, j
    info: dict[str, Any]


# ---------------------------------------------------------------------------------------------- core
def reduce(
    x: np.ndarray,
    params: UmapParams,
    progress: Progress | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """PCA (optional) then UMAP of ``x`` [n, d] -> (coords [n, 2] float32, info)."""
    import umap
    from sklearn.decomposition import PCA

    params.validate()
    progress = progress or (lambda f, m: None)
    n, d = x.shape
    if n < 4:
        raise ProjectionError(f"A projection needs at least 4 points; there are {n}. Add chips first.")
    x = np.nan_to_num(np.asarray(x, dtype=np.float32))
    info: dict[str, Any] = {"n_points": int(n), "input_dim": int(d)}
    t0 = time.perf_counter()
    k = min(params.pca_components, d, n - 1)
    if params.pca_components and k < d:
        progress(0.1, f"PCA {d} → {k} dimensions")
        pca = PCA(n_components=k, svd_solver="randomized", random_state=params.seed or 0)
        x = pca.fit_transform(x).astype(np.float32)
        info["pca_explained_variance"] = float(pca.explained_variance_ratio_.sum())
    info["umap_input_dim"] = int(x.shape[1])
    info["seconds_pca"] = round(time.perf_counter() - t0, 3)
    n_neighbors = min(params.n_neighbors, n - 1)
    info["n_neighbors_used"] = int(n_neighbors)
    progress(0.3, f"UMAP on {n:,} points ({x.shape[1]} dims)")
    t1 = time.perf_counter()
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=params.min_dist,
        metric=params.metric,
        random_state=params.seed,
        n_components=2,
        init="spectral" if n > n_neighbors + 2 else "random",
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # seeded UMAP runs single-threaded
        coords = reducer.fit_transform(x).astype(np.float32)
    info["seconds_umap"] = round(time.perf_counter() - t1, 3)
    progress(1.0, "done")
    return coords, info


def trustworthiness(
    x: np.ndarray,
    coords: np.ndarray,
    n_neighbors: int = TRUST_NEIGHBOURS,
    sample: int = TRUST_SAMPLE,
    seed: int = 0,
    metric: str = "euclidean",
) -> float:
    """sklearn's trustworthiness of ``coords`` w.r.t. ``x`` on a seeded subsample of ``sample`` points."""
    from sklearn.manifold import trustworthiness as _tw

    n = len(x)
    idx = np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False) if n > sample else np.arange(n)
    k = min(n_neighbors, len(idx) // 2 - 1)
    if k < 1:
        return float("nan")
    return float(_tw(np.asarray(x[idx], dtype=np.float32), coords[idx], n_neighbors=k, metric=metric))


def warmup() -> float:
    """Compile UMAP's numba kernels once (a small random problem); returns seconds spent.

    The app calls this in a background thread at start-up so the first user projection does not
    pay numba's compile time; umap caches the compiled code, so later calls are instant.
    """
    import umap

    t0 = time.perf_counter()
    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        umap.UMAP(n_neighbors=10, random_state=0, n_epochs=20, force_approximation_algorithm=True).fit_transform(x)
        umap.UMAP(n_neighbors=10, random_state=0, n_epochs=20).fit_transform(x[:100])  # exact-kNN path
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- sources
def require_finished_tokens(ws: Workspace, sources: Sequence[str]) -> None:
    """Refuse to project patch/CLS tokens while the embed stage is unfinished (a part would pass for all)."""
    rec = ws.stage("embed")
    if not {PATCHES, CLS} & set(sources) or rec is None or rec.get("status") == "complete":
        return
    done = f" ({rec['done']} of {rec.get('n_chips', '?')} chips)" if "done" in rec else ""
    raise StageMissingError(
        f"The embeddings in {ws.root} are unfinished{done}; a projection would show only part of the chips. "
        f"Run `clay-explore embed --workspace {ws.root}` to finish them first."
    )


def available_sources(ws: Workspace) -> list[str]:
    """Sources that can be projected: 'patches', 'cls' and every aggregator in vectors.zarr."""
    out: list[str] = []
    for name in (PATCHES, CLS):
        try:
            ws.open_array(EMBEDDINGS_ZARR, name)
            out.append(name)
        except StageMissingError:
            pass
    out.extend(m for m in vector_methods(ws) if m not in out)
    return out


def vector_methods(ws: Workspace) -> list[str]:
    """Names of the image-vector arrays in vectors.zarr."""
    import zarr

    path = ws.path(VECTORS_ZARR)
    if not path.exists():
        return []
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception:  # noqa: BLE001 - an empty / half-created store has no group yet
        return []
    return sorted(name for name, _ in group.arrays())


def _open_source(ws: Workspace, source: str):
    if source in (PATCHES, CLS):
        return ws.open_array(EMBEDDINGS_ZARR, source)
    return ws.open_array(VECTORS_ZARR, source)


def _done_rows(ws: Workspace, store: str, name: str, n: int) -> np.ndarray:
    """Rows that are finished: the done-list when the stage keeps one, else all rows.

    The embed stage keeps one list for both token arrays, under ``cls``.
    """
    if store == EMBEDDINGS_ZARR:
        name = CLS
    mask = ws.done_mask(store, name, n)
    if not ws.path(f"{store}.{name}.done.json").exists():
        mask[:] = True
    return np.flatnonzero(mask)


def load_points(
    ws: Workspace,
    source: str,
    max_points: int,
    seed: int | None,
) -> tuple[np.ndarray, Any]:
    """Vectors [n, d] of ``source`` and their point table (source, row, chip_id, i, j); seeded subsample."""
    import pandas as pd

    arr = _open_source(ws, source)
    chip_ids = _chip_ids(ws, arr.shape[0])
    store = EMBEDDINGS_ZARR if source in (PATCHES, CLS) else VECTORS_ZARR
    rows = _done_rows(ws, store, source, arr.shape[0])
    if rows.size == 0:
        raise StageMissingError(f"'{source}' has no finished rows yet. Run `clay-explore embed` first.")
    rng = np.random.default_rng(seed or 0)
    if source == PATCHES:
        _, h, w, _ = arr.shape
        per_chip = h * w
        total = rows.size * per_chip
        flat = np.arange(total) if total <= max_points else np.sort(rng.choice(total, size=max_points, replace=False))
        chip_of, cell = flat // per_chip, flat % per_chip
        vecs = []
        for c in np.unique(chip_of):
            tokens = np.asarray(arr[int(rows[c])], dtype=np.float32).reshape(per_chip, -1)  # [h*w, D]
            vecs.append(tokens[cell[chip_of == c]])
        x = np.concatenate(vecs)
        table = pd.DataFrame({"row": rows[chip_of], "i": cell // w, "j": cell % w})
    else:
        if rows.size > max_points:
            rows = np.sort(rng.choice(rows, size=max_points, replace=False))
        x = np.asarray(
            arr.get_orthogonal_selection((rows,)) if hasattr(arr, "get_orthogonal_selection") else arr[rows],
            dtype=np.float32,
        )
        table = pd.DataFrame({"row": rows, "i": -1, "j": -1})
    table["row"] = table["row"].astype(np.int32)
    table["i"] = table["i"].astype(np.int16)
    table["j"] = table["j"].astype(np.int16)
    table.insert(0, "source", source)
    table["chip_id"] = [chip_ids[r] for r in table["row"]]
    return x.reshape(len(table), -1), table


def _chip_ids(ws: Workspace, n: int) -> list[str]:
    try:
        return [str(c) for c in ws.chip_table()["chip_id"]]
    except StageMissingError:
        return [f"chip-{r}" for r in range(n)]


# ---------------------------------------------------------------------------------------------- cache
def fingerprint(ws: Workspace, sources: Sequence[str] = (PATCHES,)) -> str:
    """Hash of the stage records ``sources`` depend on (changes when chips/embeddings/vectors change).

    Patch and CLS tokens depend on the chips and embed stages; aggregator vectors also on the fit
    and evaluate stages that write ``vectors.zarr``.
    """
    stages = ws.manifest.get("stages", {})
    if all(s in (PATCHES, CLS) for s in sources):
        keep = {k: v for k, v in stages.items() if k in ("chips", "embed")}
    else:
        keep = {k: v for k, v in stages.items() if not k.startswith(_IGNORED_STAGES)}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def projection_key(ws: Workspace, sources: Sequence[str], params: UmapParams) -> str:
    """Cache key of a projection: sources, parameters and the data fingerprint."""
    payload = {"sources": list(sources), "params": asdict(params), "data": fingerprint(ws, sources)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def cached_projection(ws: Workspace, sources: Sequence[str], params: UmapParams) -> Projection | None:
    """The stored projection for these sources/parameters, or None."""
    import pandas as pd

    key = projection_key(ws, sources, params)
    table_path = ws.path(PROJECTIONS_DIR, f"{key}.parquet")
    info = ws.read_json(f"{PROJECTIONS_DIR}/{key}.json")
    if info is None or not table_path.exists():
        return None
    return Projection(key=key, table=pd.read_parquet(table_path), info=info)


def list_projections(ws: Workspace) -> list[dict[str, Any]]:
    """Records (json) of every stored projection, newest first."""
    folder = ws.path(PROJECTIONS_DIR)
    if not folder.exists():
        return []
    recs = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    return sorted(recs, key=lambda r: r.get("created", ""), reverse=True)


@writes_workspace("project", arg="ws")
def project_workspace(
    ws: Workspace,
    sources: Sequence[str] = (PATCHES,),
    params: UmapParams = UmapParams(),
    *,
    progress: Progress | None = None,
    recompute: bool = False,
    trust_sample: int = TRUST_SAMPLE,
) -> Projection:
    """Project ``sources`` jointly (one UMAP; overlaying requires equal dimensions) and store the result.

    Returns the cached result when one exists for the same sources, parameters and data.
    """
    import pandas as pd

    params.validate()
    sources = list(dict.fromkeys(sources))
    if not sources:
        raise ProjectionError("Choose at least one embedding to project.")
    require_finished_tokens(ws, sources)
    known = available_sources(ws)
    missing = [s for s in sources if s not in known]
    if missing:
        raise StageMissingError(
            f"Workspace {ws.root} has no {', '.join(missing)} embeddings. "
            "Run `clay-explore embed` (patches, cls), or `clay-explore fit` then `clay-explore evaluate` "
            "(aggregator vectors) first."
        )
    if not recompute:
        hit = cached_projection(ws, sources, params)
        if hit is not None:
            return hit
    progress = progress or (lambda f, m: None)
    progress(0.0, "reading embeddings")
    xs, tables = [], []
    for src in sources:
        x, t = load_points(ws, src, params.max_points, params.seed)
        xs.append(x)
        tables.append(t)
    dims = {s: x.shape[1] for s, x in zip(sources, xs)}
    if len(set(dims.values())) > 1:
        raise ProjectionError(
            "These embeddings have different sizes "
            + ", ".join(f"{s}: {d}" for s, d in dims.items())
            + " and cannot share one UMAP. Show them side by side instead."
        )
    x = np.nan_to_num(np.concatenate(xs))
    coords, info = reduce(x, params, progress=lambda f, m: progress(0.05 + 0.9 * f, m))
    table = pd.concat(tables, ignore_index=True)
    table["x"], table["y"] = coords[:, 0], coords[:, 1]
    table["source"] = table["source"].astype("category")
    t0 = time.perf_counter()
    info["trustworthiness"] = trustworthiness(
        x,
        coords,
        sample=trust_sample,
        seed=params.seed or 0,
        metric=params.metric if params.metric != "correlation" else "euclidean",
    )
    info["seconds_trustworthiness"] = round(time.perf_counter() - t0, 3)
    info["trustworthiness_sample"] = int(min(trust_sample, len(x)))
    key = projection_key(ws, sources, params)
    info.update(
        key=key,
        sources=sources,
        params=asdict(params),
        data_fingerprint=fingerprint(ws, sources),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        points_per_source={s: len(t) for s, t in zip(sources, tables)},
    )
    with atomic_path(ws.path(PROJECTIONS_DIR, f"{key}.parquet")) as tmp:
        table.to_parquet(tmp)
    ws.write_json(f"{PROJECTIONS_DIR}/{key}.json", info)
    progress(1.0, "stored")
    return Projection(key=key, table=table, info=info)


def with_params(params: UmapParams, **changes: Any) -> UmapParams:
    """A copy of ``params`` with ``changes`` (validated)."""
    return replace(params, **changes).validate()
