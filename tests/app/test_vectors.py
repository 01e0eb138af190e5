"""Parameter-free image vectors straight from the stored tokens (no fit, no evaluation needed)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from app_data import make_workspace

from clay_explore.core.errors import CancelledError, StageMissingError
from clay_explore.core.workspace import EMBEDDINGS_ZARR, VECTORS_ZARR
from clay_explore.research import projection, similar
from clay_explore.research.vectors import POOLED, ensure_parameter_free_vectors, stale_methods


@pytest.fixture
def tokens_only(tmp_path):
    """A generated workspace with embeddings but no vectors.zarr (as right after `embed`)."""
    return make_workspace(tmp_path / "ws", n=7, methods=())


def test_vectors_are_the_pooled_tokens_and_offered_everywhere(tokens_only, monkeypatch):
    ws = tokens_only
    assert projection.available_sources(ws) == ["patches", "cls"]
    monkeypatch.setattr("clay_explore.research.vectors.CHUNK_CHIPS", 3)  # several chunks: streaming must stitch them
    assert ensure_parameter_free_vectors(ws) == list(POOLED)
    patches = np.asarray(ws.open_array(EMBEDDINGS_ZARR, "patches")[:], np.float32).reshape(7, -1, 16)
    np.testing.assert_allclose(ws.open_array(VECTORS_ZARR, "mean")[:], patches.mean(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ws.open_array(VECTORS_ZARR, "max")[:], patches.max(1), rtol=1e-6)
    assert set(projection.available_sources(ws)) == {"patches", "cls", "mean", "max", "gem"}
    assert set(similar.method_vectors(ws)) == {"cls", "mean", "max", "gem"}
    # cached: nothing to do until the embeddings change
    assert stale_methods(ws) == [] and ensure_parameter_free_vectors(ws) == []
    ws.set_stage("embed", count=7, preset="tiny", untrained=True, note="re-embedded")
    assert stale_methods(ws) == list(POOLED)


def test_cancel_keeps_nothing_half_written_and_missing_embeddings_are_explained(tokens_only, tmp_path):
    stop = threading.Event()
    stop.set()
    with pytest.raises(CancelledError):
        ensure_parameter_free_vectors(tokens_only, cancel=stop)
    assert projection.vector_methods(tokens_only) == []
    bare = make_workspace(tmp_path / "bare", embed=False)
    with pytest.raises(StageMissingError, match="clay-explore embed"):
        ensure_parameter_free_vectors(bare)


def test_cli_vectors(tokens_only):
    from click.testing import CliRunner

    from clay_explore.cli.main import cli

    first = CliRunner().invoke(cli, ["vectors", "--workspace", str(tokens_only.root)])
    assert first.exit_code == 0 and "computed mean, max, gem" in first.output
    again = CliRunner().invoke(cli, ["vectors", "--workspace", str(tokens_only.root)])
    assert "up to date" in again.output
