"""projection: PCA + UMAP, caching per parameters, trustworthiness, the warm-up; generated workspaces."""

from __future__ import annotations

import numpy as np
import pytest

from clay_explore.core.errors import ClayExploreError, StageMissingError
from clay_explore.core.workspace import Workspace
from clay_explore.research import projection as P

FAST = P.UmapParams(n_neighbors=5, pca_components=8)


@pytest.mark.slow  # UMAP's numba code compiles on first use (about a minute here)
def test_reduce_and_trustworthiness_on_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 20))
    x = np.concatenate([c + rng.normal(0, 0.5, (40, 20)) for c in centres]).astype(np.float32)
    coords, info = P.reduce(x, P.UmapParams(n_neighbors=10, pca_components=5))
    assert coords.shape == (120, 2) and np.isfinite(coords).all()
    assert info["umap_input_dim"] == 5 and 0.5 < info["pca_explained_variance"] <= 1.0
    assert P.trustworthiness(x, coords, sample=100) > 0.8
    with pytest.raises(P.ProjectionError):
        P.reduce(x[:3], FAST)


@pytest.mark.parametrize("bad", [{"n_neighbors": 1}, {"min_dist": 2.0}, {"metric": "nope"}, {"max_points": 1}])
def test_params_validate(bad):
    with pytest.raises(ClayExploreError):
        P.UmapParams(**bad).validate()


def test_project_workspace_caches_per_parameters(synthetic_ws):
    ws = Workspace.open(synthetic_ws)
    assert P.available_sources(ws)[:2] == ["patches", "cls"]
    res = P.project_workspace(ws, ["patches", "mean", "cls"], FAST)
    t = res.table
    assert set(t["source"]) == {"patches", "mean", "cls"}
    assert len(t) == 6 * 16 + 6 + 6
    assert (t.loc[t["source"] == "patches", "i"] >= 0).all() and (t.loc[t["source"] == "mean", "i"] == -1).all()
    assert res.info["params"]["n_neighbors"] == 5 and 0 <= res.info["trustworthiness"] <= 1
    assert ws.path("projections", f"{res.key}.parquet").exists()
    again = P.project_workspace(ws, ["patches", "mean", "cls"], FAST)
    assert again.info["created"] == res.info["created"]  # read back, not recomputed
    assert np.allclose(again.table["x"], t["x"])
    other = P.project_workspace(ws, ["patches", "mean", "cls"], P.with_params(FAST, min_dist=0.5))
    assert other.key != res.key
    assert len(P.list_projections(ws)) == 2


def test_cache_invalidated_when_stage_changes(synthetic_ws):
    ws = Workspace.open(synthetic_ws)
    res = P.project_workspace(ws, ["cls"], FAST)
    ws.set_stage("embed", count=6, note="re-embedded")
    assert P.cached_projection(ws, ["cls"], FAST) is None
    assert P.project_workspace(ws, ["cls"], FAST).key != res.key


def test_subsample_is_seeded_and_bounded(synthetic_ws):
    ws = Workspace.open(synthetic_ws)
    x1, t1 = P.load_points(ws, "patches", 40, seed=1)
    _x2, t2 = P.load_points(ws, "patches", 40, seed=1)
    assert x1.shape == (40, 16) and (t1[["row", "i", "j"]].to_numpy() == t2[["row", "i", "j"]].to_numpy()).all()
    # the vector of a point is the token at its (row, i, j)
    tokens = np.asarray(ws.open_array("embeddings.zarr", "patches")[int(t1["row"].iloc[0])], dtype=np.float32)
    assert np.allclose(x1[0], tokens[int(t1["i"].iloc[0]), int(t1["j"].iloc[0])])


def test_mismatched_dimensions_and_missing_sources(synthetic_ws, tmp_path):
    ws = Workspace.open(synthetic_ws)
    with pytest.raises(P.ProjectionError, match="side by side"):
        P.project_workspace(ws, ["patches", "linear"], FAST)
    with pytest.raises(StageMissingError):
        P.project_workspace(ws, ["attention"], FAST)
    with pytest.raises(P.ProjectionError):
        P.project_workspace(ws, [], FAST)


@pytest.mark.slow  # compiles UMAP's numba code (one to two minutes here)
def test_warmup_runs():
    assert P.warmup() >= 0
