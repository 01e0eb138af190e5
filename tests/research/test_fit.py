"""Fitting: validation loss falls on real chips, weights round-trip, cancel keeps the best so far."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clay_explore.errors import CancelledError, StageMissingError
from clay_explore.fit import fit_method, fitted_methods, load_method, split_rows
from clay_explore.workspace import Workspace


def test_split_is_by_chip_seeded_and_disjoint():
    train, val = split_rows(12, 0.25, seed=1)
    assert len(val) == 3 and len(train) == 9 and not set(train) & set(val)
    assert np.array_equal(split_rows(12, 0.25, seed=1)[1], val)
    assert not np.array_equal(split_rows(12, 0.25, seed=2)[1], val)


@pytest.mark.parametrize("method", ["linear", "attention"])
def test_fit_on_real_chips_lowers_validation_loss(real_embedded, copy_ws, tiny_model, method):
    root = copy_ws(real_embedded)
    config = fit_method(root, method, model=tiny_model, epochs=4, batch_size=4, lr=3e-3, seed=0, show_progress=False)
    assert config["best_val_loss"] < config["initial_val_loss"]
    assert config["status"] == "complete" and config["untrained"] is True
    assert config["n_params"]["aggregator"] > 0 and config["n_params"]["expander"] > 0
    ws = Workspace.open(root)
    assert fitted_methods(ws) == [method]
    fm = load_method(ws, method)
    assert fm.config["best_epoch"] >= 1
    assert set(fm.config["val_rows"]).isdisjoint(fm.config["train_rows"])


def test_parameter_free_method_trains_only_the_expander(generated_embedded, copy_ws, tiny_model):
    root = copy_ws(generated_embedded)
    config = fit_method(root, "mean", model=tiny_model, epochs=2, batch_size=4, show_progress=False)
    assert config["n_params"]["aggregator"] == 0 and config["n_params"]["expander"] > 0
    assert len(config["history"]) == 3 and config["history"][0]["train_loss"] is None


def test_saved_weights_reproduce_the_fitted_vectors(generated_embedded, copy_ws, tiny_model):
    root = copy_ws(generated_embedded)
    fit_method(root, "linear", model=tiny_model, epochs=2, batch_size=4, show_progress=False)
    fm = load_method(Workspace.open(root), "linear")
    patches, cls, meta = torch.randn(2, 64, 64), torch.randn(2, 64), torch.randn(2, 8)
    again = load_method(Workspace.open(root), "linear")
    assert torch.equal(fm.aggregator(patches, cls, meta), again.aggregator(patches, cls, meta))
    assert not torch.equal(fm.aggregator(patches, cls, meta), patches.mean(1)), "training moved it off the mean"


def test_cancel_keeps_best_so_far(generated_embedded, copy_ws, tiny_model):
    root = copy_ws(generated_embedded)
    seen = []

    def cancel():
        seen.append(1)
        return len(seen) > 1  # stop at the second batch

    with pytest.raises(CancelledError, match="best weights so far"):
        fit_method(root, "linear", model=tiny_model, epochs=3, batch_size=2, cancel=cancel, show_progress=False)
    fm = load_method(Workspace.open(root), "linear")
    assert fm.config["status"] == "cancelled" and fm.config["best_epoch"] == 0


def test_fit_needs_embeddings(generated_template, copy_ws, tiny_model):
    with pytest.raises(StageMissingError, match="clay-explore embed"):
        fit_method(copy_ws(generated_template), "mean", model=tiny_model, epochs=1, show_progress=False)


def test_methods_fitted_on_other_embeddings_are_stale(generated_embedded, copy_ws, tiny_model):
    from clay_explore.fit import is_stale

    root = copy_ws(generated_embedded)
    fit_method(root, "mean", model=tiny_model, epochs=1, batch_size=5, show_progress=False)
    ws = Workspace.open(root)
    assert fitted_methods(ws) == ["mean"] and not is_stale(ws, "mean")
    ws.set_stage("embed", **{**ws.stage("embed"), "sha256": "0" * 64})  # as if re-embedded with another model
    assert is_stale(ws, "mean") and fitted_methods(ws) == []
    assert fitted_methods(ws, include_stale=True) == ["mean"]
