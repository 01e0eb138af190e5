"""Nearest chips under each image embedding, and how much the methods agree about them.

For one query chip every method (the model's CLS token and each aggregator in ``vectors.zarr``)
ranks the other chips by cosine similarity of their image vectors; agreement between two methods
is the overlap of their top-k lists (|A ∩ B| / k).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clay_explore.core.errors import ClayExploreError, StageMissingError
from clay_explore.core.workspace import EMBEDDINGS_ZARR, VECTORS_ZARR, Workspace
from clay_explore.research.projection import CLS, _done_rows, vector_methods

DEFAULT_K = 8


class SimilarError(ClayExploreError, ValueError):
    """A similarity query that cannot be answered (unknown chip, too few chips)."""


def method_vectors(ws: Workspace, methods: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Image vectors [N, D'] per method (CLS from the embeddings plus every array in vectors.zarr).

    Rows not yet computed are NaN. ``methods`` restricts (and orders) the result.
    """
    out: dict[str, np.ndarray] = {}
    n = ws.n_chips()
    try:
        arr = ws.open_array(EMBEDDINGS_ZARR, CLS)
        cls = np.full((n, arr.shape[1]), np.nan, dtype=np.float32)
        rows = _done_rows(ws, EMBEDDINGS_ZARR, CLS, arr.shape[0])
        cls[rows] = np.asarray(arr[:], dtype=np.float32)[rows]
        out[CLS] = cls
    except StageMissingError:
        pass
    for m in vector_methods(ws):
        out[m] = np.asarray(ws.open_array(VECTORS_ZARR, m)[:], dtype=np.float32)
    if methods is not None:
        missing = [m for m in methods if m not in out]
        if missing:
            raise StageMissingError(
                f"No image vectors for {', '.join(missing)} in {ws.root}. "
                "Run `clay-explore embed` and `clay-explore fit --method NAME` first."
            )
        out = {m: out[m] for m in methods}
    if not out:
        raise StageMissingError(f"Workspace {ws.root} has no image embeddings yet. Run `clay-explore embed` first.")
    return out


def cosine_neighbours(vectors: np.ndarray, query: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows most cosine-similar to row ``query`` (itself and NaN rows excluded) -> (rows, similarity)."""
    v = np.asarray(vectors, dtype=np.float64)
    valid = np.all(np.isfinite(v), axis=1)
    if not valid[query]:
        raise SimilarError(f"Chip {query} has no vector for this method yet; embed/fit it first.")
    norms = np.linalg.norm(v, axis=1)
    norms[norms == 0] = 1.0
    unit = np.where(valid[:, None], v / norms[:, None], 0.0)
    sim = unit @ unit[query]
    sim[~valid] = -np.inf
    sim[query] = -np.inf
    k = min(k, int(valid.sum()) - 1)
    if k < 1:
        raise SimilarError("Similar chips need at least two embedded chips; add more chips to the workspace.")
    order = np.argsort(-sim, kind="stable")[:k]
    return order, sim[order].astype(np.float32)


def top_k(ws: Workspace, row: int, k: int = DEFAULT_K, methods: Sequence[str] | None = None):
    """Neighbours of chip ``row`` under each method: DataFrame (method, rank, row, chip_id, similarity)."""
    import pandas as pd

    vecs = method_vectors(ws, methods)
    n = next(iter(vecs.values())).shape[0]
    if not 0 <= row < n:
        raise SimilarError(f"Chip row {row} does not exist; the workspace has {n} chips (0..{n - 1}).")
    ids = [str(c) for c in ws.chip_table()["chip_id"]]
    recs = []
    for m, v in vecs.items():
        rows, sims = cosine_neighbours(v, row, k)
        recs.extend(
            {"method": m, "rank": r + 1, "row": int(i), "chip_id": ids[int(i)], "similarity": float(s)}
            for r, (i, s) in enumerate(zip(rows, sims))
        )
    return pd.DataFrame.from_records(recs, columns=["method", "rank", "row", "chip_id", "similarity"])


def agreement(neighbours) -> object:
    """Pairwise overlap |A ∩ B| / k of the methods' neighbour lists (a top_k table) -> square DataFrame."""
    import pandas as pd

    sets = {m: set(g["row"]) for m, g in neighbours.groupby("method", sort=False)}
    names = list(sets)
    mat = np.ones((len(names), len(names)), dtype=np.float32)
    for a, ma in enumerate(names):
        for b, mb in enumerate(names):
            k = max(len(sets[ma]), len(sets[mb]), 1)
            mat[a, b] = len(sets[ma] & sets[mb]) / k
    return pd.DataFrame(mat, index=names, columns=names)


def consensus(neighbours):
    """How many methods list each neighbour (DataFrame row, chip_id, votes, methods), most agreed first."""
    g = neighbours.groupby(["row", "chip_id"])["method"]
    out = g.agg(votes="nunique", methods=lambda s: ", ".join(sorted(set(s)))).reset_index()
    return out.sort_values(["votes", "row"], ascending=[False, True], ignore_index=True)
