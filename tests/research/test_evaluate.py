"""Evaluation stage and the CLI: evaluation.json, vectors.zarr, honesty, the four commands."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

from clay_explore.cli.main import cli
from clay_explore.core.errors import WorkspaceError
from clay_explore.core.workspace import EVALUATION, VECTORS_ZARR, Workspace
from clay_explore.research.evaluate import evaluate_workspace, outdated_reason
from clay_explore.research.fit import fit_method


def test_evaluate_writes_every_method(generated_embedded, copy_ws, tiny_model):
    root = copy_ws(generated_embedded)
    for method in ("mean", "linear"):
        fit_method(root, method, model=tiny_model, epochs=1, seeds=1, batch_size=5, show_progress=False)
    report = evaluate_workspace(root, model=tiny_model, batch_size=4, show_progress=False)
    ws = Workspace.open(root)
    assert json.loads(ws.path(EVALUATION).read_text()) == report
    assert report["model"]["untrained"] is True and "untrained" in report["model"]["note"]
    assert report["data_range"]["value"] == 1.0 and report["k"] == 8  # 10 chips -> k = n - 2
    methods = report["methods"]
    assert {"mean", "linear", "max", "gem", "cls"} <= set(methods)
    assert set(report["references"]) == {"mae", "all_tokens", "cls_only"}
    entries = {**report["references"], **methods}
    for name in ("mae", "all_tokens", "cls_only", "mean", "linear"):
        rec = entries[name]["reconstruction"]["all"]
        assert rec["n_chips"] == 10 and len(rec["psnr_per_band"]) == len(ws.bands) == len(rec["ssim_per_band"])
        assert np.isfinite(rec["psnr"]) and -1 <= rec["ssim"] <= 1 and rec["sam_deg"] >= 0
    assert methods["linear"]["reconstruction"]["val"]["n_chips"] == 2
    assert methods["linear"]["kind"] == "learned" and methods["mean"]["kind"] == "parameter-free"
    assert methods["linear"]["fit_seconds"] > 0 and methods["linear"]["n_params"]["aggregator"] > 0
    assert methods["max"]["reconstruction"] is None  # no expander fitted for max
    for name in ("mean", "linear", "max", "gem", "cls"):
        assert 0.0 <= methods[name]["np_at_k"] <= 1.0
        assert methods[name]["probe"]["n_classes"] == 2  # generated chips carry labels
        assert 0.0 <= methods[name]["probe"]["knn_accuracy"] <= 1.0
        vec = ws.open_array(VECTORS_ZARR, name)
        assert vec.shape == (10, methods[name]["vector_dim"])
    assert report["knn_agreement"]["mean"]["linear"] == report["knn_agreement"]["linear"]["mean"]
    assert ws.stage("evaluate")["status"] == "complete"
    from clay_explore.research.vectors import stale_methods

    assert stale_methods(ws) == []  # evaluate's pooled vectors count as current for the app
    assert outdated_reason(ws) is None
    time.sleep(1.1)  # fit/evaluate times have one-second resolution
    fit_method(root, "attention", model=tiny_model, epochs=1, seeds=1, batch_size=5, show_progress=False)
    assert outdated_reason(ws) == "attention was fitted after it was made"
    stage = ws.stage("embed")
    ws.set_stage("embed", **{**stage, "n_chips": stage.get("n_chips", 0) + 1})  # as after chips were appended
    assert "embeddings changed" in outdated_reason(ws)


def test_cli_embed_fit_evaluate_reconstruct(generated_template, copy_ws, tiny_checkpoint, tmp_path):
    root = str(copy_ws(generated_template))
    runner = CliRunner()
    ck = str(tiny_checkpoint)

    def run(*args):
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    out = run("embed", "--workspace", root, "--checkpoint", ck, "--batch-size", "5")
    assert "embedded 10 chips" in out.output and "untrained" in out.output
    out = run(
        "fit", "--workspace", root, "--method", "attention", "--epochs", "1", "--seed", "3", "--seeds", "1", "--json"
    )
    fitted = json.loads(out.output[out.output.index("{") : out.output.rindex("}") + 1])
    assert fitted["method"] == "attention" and fitted["seed"] == 3
    out = run("evaluate", "--workspace", root, "--json")
    report = json.loads(out.output[out.output.index("{") : out.output.rindex("}") + 1])
    assert "attention" in report["methods"]
    assert "out of date" not in run("info", "--workspace", root).output
    time.sleep(1.1)
    run("fit", "--workspace", root, "--method", "mean", "--epochs", "1", "--seeds", "1")
    assert (
        "evaluation.json is out of date: mean was fitted after it was made" in run("info", "--workspace", root).output
    )
    png = tmp_path / "chip.png"
    out = run("reconstruct", "--workspace", root, "--chip", "chip-002", "--out", str(png))
    assert png.exists() and "attention" in out.output
    bad = runner.invoke(cli, ["reconstruct", "--workspace", root, "--chip", "zzz", "--out", str(png)])
    assert bad.exit_code == 2 and "No chip 'zzz'" in bad.output


def test_probe_runs_on_real_bigearthnet_labels(real_embedded, copy_ws, tiny_model):
    """The sample files' LABELS tags: arable land (Austria, Ireland) vs coniferous forest (Finland)."""
    root = copy_ws(real_embedded)
    report = evaluate_workspace(root, model=tiny_model, show_progress=False)
    assert "Coniferous forest" in report["labels"] and "Non-irrigated arable land" in report["labels"]
    probe = report["methods"]["mean"]["probe"]
    assert probe["n_chips"] == 12 and probe["n_classes"] == 2 and probe["chance"] == pytest.approx(8 / 12)
    assert 0.0 <= probe["knn_accuracy"] <= 1.0 and 0.0 <= probe["logreg_accuracy"] <= 1.0
    assert any("untrained" in note for note in report["notes"])


def test_tiny_workspaces_say_what_cannot_be_measured(tmp_path, tiny_model):
    from clay_explore.research.embed import embed_workspace

    from .conftest import generated_chips, make_workspace

    pixels, rows = generated_chips(n=2)
    rows[1]["labels"] = "forest"  # one class only
    ws = make_workspace(tmp_path / "ws", pixels, rows)
    embed_workspace(ws, model=tiny_model, show_progress=False)
    report = evaluate_workspace(ws, model=tiny_model, show_progress=False)
    assert report["k"] == 0 and report["methods"]["mean"]["np_at_k"] is None
    notes = " ".join(report["notes"])
    assert "at least 3 chips" in notes and "No method is fitted" in notes and "No label probe" in notes
    assert "forest: 2" in report["methods"]["mean"]["probe"]["skipped"]
    pixels1, rows1 = generated_chips(n=1)
    one = make_workspace(tmp_path / "one", pixels1, rows1)
    embed_workspace(one, model=tiny_model, show_progress=False)
    assert evaluate_workspace(one, model=tiny_model, show_progress=False)["n_chips"] == 1
    with pytest.raises(WorkspaceError, match="at least 2 chips"):
        fit_method(one, "mean", model=tiny_model, show_progress=False)
