"""Fitting: validation loss falls on real chips, weights round-trip, cancel keeps the best so far."""

from __future__ import annotations

import shutil

import pytest
import torch

from clay_explore.core.errors import CancelledError, StageMissingError
from clay_explore.core.workspace import Workspace
from clay_explore.research.fit import fit_method, fitted_methods, load_method


@pytest.mark.parametrize("method", ["linear", "attention"])
def test_fit_on_real_chips_lowers_validation_loss(real_embedded, copy_ws, tiny_model, method):
    root = copy_ws(real_embedded)
    config = fit_method(
        root, method, model=tiny_model, epochs=4, seeds=1, batch_size=4, lr=3e-3, seed=0, show_progress=False
    )
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
    config = fit_method(root, "mean", model=tiny_model, epochs=2, seeds=1, batch_size=4, show_progress=False)
    assert config["n_params"]["aggregator"] == 0 and config["n_params"]["expander"] > 0
    assert len(config["history"]) == 3 and config["history"][0]["train_loss"] is None
    stage = Workspace.open(root).stage("fit")  # the manifest lists what was fitted
    assert stage["status"] == "complete" and stage["methods"]["mean"]["epochs_run"] == 2


def test_saved_weights_reproduce_the_fitted_vectors(generated_embedded, copy_ws, tiny_model):
    root = copy_ws(generated_embedded)
    fit_method(root, "linear", model=tiny_model, epochs=2, seeds=1, batch_size=4, show_progress=False)
    fm = load_method(Workspace.open(root), "linear")
    patches, cls, meta = torch.randn(2, 64, 64), torch.randn(2, 64), torch.randn(2, 8)
    again = load_method(Workspace.open(root), "linear")
    assert torch.equal(fm.aggregator(patches, cls, meta), again.aggregator(patches, cls, meta))
    assert not torch.equal(fm.aggregator(patches, cls, meta), patches.mean(1)), "training moved it off the mean"


def _stop_after(batches: int):
    seen = []

    def cancel():
        seen.append(1)
        return len(seen) > batches

    return cancel


def test_cancel_before_an_epoch_finishes_saves_nothing(generated_embedded, copy_ws, tiny_model):
    root = copy_ws(generated_embedded)
    with pytest.raises(CancelledError, match="resume"):
        fit_method(
            root,
            "linear",
            model=tiny_model,
            epochs=3,
            seeds=1,
            batch_size=2,
            cancel=_stop_after(1),
            show_progress=False,
        )
    with pytest.raises(StageMissingError, match="clay-explore fit"):  # no untrained expander posing as a fit
        load_method(Workspace.open(root), "linear")


def test_cancelled_fit_resumes_to_the_uninterrupted_result(generated_embedded, copy_ws, tiny_model):
    """Stopped in epoch 3 of 4, the rerun picks up after epoch 2 and ends with the same weights."""
    kwargs = {
        "model": tiny_model,
        "epochs": 4,
        "seeds": 1,
        "batch_size": 2,
        "patience": 10,
        "seed": 1,
        "show_progress": False,
    }
    reference = copy_ws(generated_embedded)
    fit_method(reference, "attention", **kwargs)
    root = reference.parent / "interrupted"
    shutil.copytree(generated_embedded, root)
    with pytest.raises(CancelledError, match="resume from epoch 3"):
        fit_method(root, "attention", cancel=_stop_after(6 + 1), **kwargs)  # 6 training chips = 3 batches/epoch
    partial = load_method(Workspace.open(root), "attention")
    assert partial.config["status"] == "cancelled" and partial.config["epochs_run"] == 2
    assert fitted_methods(Workspace.open(root)) == ["attention"]
    config = fit_method(root, "attention", **kwargs)
    assert config["resumed_from_epoch"] == 2 and config["status"] == "complete" and config["epochs_run"] == 4
    assert not (Workspace.open(root).path("methods", "attention", "seed1", "resume.pt")).exists()
    want = load_method(Workspace.open(reference), "attention")
    got = load_method(Workspace.open(root), "attention")
    assert got.config["best_val_loss"] == pytest.approx(want.config["best_val_loss"], rel=1e-6)
    for k, v in want.expander.state_dict().items():
        torch.testing.assert_close(got.expander.state_dict()[k], v)
    for k, v in want.aggregator.state_dict().items():
        torch.testing.assert_close(got.aggregator.state_dict()[k], v)


def test_interrupted_refit_keeps_the_complete_fit(generated_embedded, copy_ws, tiny_model):
    root = copy_ws(generated_embedded)
    done = fit_method(root, "mean", model=tiny_model, epochs=2, seeds=1, batch_size=4, show_progress=False)

    def ctrl_c(done, total, info):
        if done > 6:  # 6 training chips: Ctrl-C in the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # another seed, interrupted after its first epoch
        fit_method(
            root,
            "mean",
            model=tiny_model,
            epochs=3,
            seed=7,
            seeds=1,
            batch_size=4,
            progress=ctrl_c,
            show_progress=False,
        )
    kept = load_method(Workspace.open(root), "mean").config
    assert kept["status"] == "complete" and kept["seed"] == 0 and kept["fitted"] == done["fitted"]
    again = fit_method(root, "mean", model=tiny_model, epochs=2, seed=7, seeds=1, batch_size=4, show_progress=False)
    assert again["seed"] == 7 and again["resumed_from_epoch"] is None  # other settings: starts over
    assert load_method(Workspace.open(root), "mean").config["seed"] == 7


def test_weights_of_an_older_version_ask_for_a_refit(generated_embedded, copy_ws, tiny_model):
    """Attention pooling changed its parameters (centred pooling, position biases): a fit saved by the
    old version must say "refit", not raise a state-dict traceback."""
    from safetensors.torch import load_file, save_file

    root = copy_ws(generated_embedded)
    fit_method(root, "attention", model=tiny_model, epochs=1, seeds=1, batch_size=4, show_progress=False)
    path = Workspace.open(root).path("methods", "attention", "weights.safetensors")
    tensors = load_file(str(path))
    tensors.pop("aggregator.position_bias")
    tensors["aggregator.norm_out.weight"] = torch.ones(4)  # what the old attention pooling saved
    save_file(tensors, str(path))
    with pytest.raises(StageMissingError, match="do not match this version.*clay-explore fit"):
        load_method(Workspace.open(root), "attention")


def test_unknown_method_is_refused_before_any_work(generated_template, copy_ws, tiny_model):
    with pytest.raises(ValueError, match="Unknown aggregation method 'bogus'"):
        fit_method(copy_ws(generated_template), "bogus", model=tiny_model, show_progress=False)


def test_fit_needs_embeddings(generated_template, copy_ws, tiny_model):
    with pytest.raises(StageMissingError, match="clay-explore embed"):
        fit_method(copy_ws(generated_template), "mean", model=tiny_model, epochs=1, show_progress=False)


def test_methods_fitted_on_other_embeddings_are_stale(generated_embedded, copy_ws, tiny_model):
    from clay_explore.research.fit import is_stale

    root = copy_ws(generated_embedded)
    fit_method(root, "mean", model=tiny_model, epochs=1, seeds=1, batch_size=5, show_progress=False)
    ws = Workspace.open(root)
    assert fitted_methods(ws) == ["mean"] and not is_stale(ws, "mean")
    ws.set_stage("embed", **{**ws.stage("embed"), "sha256": "0" * 64})  # as if re-embedded with another model
    assert is_stale(ws, "mean") and fitted_methods(ws) == []
    assert fitted_methods(ws, include_stale=True) == ["mean"]


def test_methods_fitted_on_other_precision_are_stale(generated_embedded, copy_ws, tiny_model):
    from clay_explore.research.fit import is_stale

    root = copy_ws(generated_embedded)
    fit_method(root, "mean", model=tiny_model, epochs=1, seeds=1, batch_size=5, show_progress=False)
    ws = Workspace.open(root)
    ws.set_stage("embed", **{**ws.stage("embed"), "precision": "bf16"})  # as if re-embedded with --fast
    assert is_stale(ws, "mean")
