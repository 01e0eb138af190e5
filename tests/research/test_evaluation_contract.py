"""evaluation.json holds issue 8's contract: split, seeds, references, baselines, test figures with
mean ± sd and intervals, comparisons with verdicts, NP@k with its chance level, rate-distortion."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clay_explore.core.workspace import EVALUATION, Workspace
from clay_explore.research.evaluate import evaluate_workspace
from clay_explore.research.fit import fit_method, load_method, load_seeds


@pytest.fixture(scope="module")
def evaluated(generated_embedded, tmp_path_factory, tiny_model):
    import shutil

    root = tmp_path_factory.mktemp("contract") / "ws"
    shutil.copytree(generated_embedded, root)
    for method in ("mean", "linear"):
        fit_method(root, method, model=tiny_model, epochs=1, seeds=2, batch_size=4, show_progress=False)
    fit_method(root, "linear", model=tiny_model, epochs=1, seeds=1, out_dim=16, batch_size=4, show_progress=False)
    report = evaluate_workspace(root, model=tiny_model, batch_size=4, show_progress=False)
    return root, report


def test_contract_fields(evaluated):
    root, report = evaluated
    assert json.loads(Workspace.open(root).path(EVALUATION).read_text()) == report
    split = report["split"]
    assert split["blocked"] is True and split["split_seed"] == 0
    assert split["train"] + split["val"] + split["test"] + split["excluded"] == 10 and split["test"] >= 1
    assert report["seeds"] == [0, 1]
    n_test = split["test"]
    for group, names in (
        ("references", ("mae", "all_tokens", "cls_only")),
        ("baselines", ("band_mean", "chip_mean", "thumbnail")),
    ):
        for name in names:
            test = report[group][name]["test"]
            assert test["n_chips"] == n_test, (group, name)
            assert np.isfinite(test["psnr"]) and -1 <= test["ssim"] <= 1 and test["sam_deg"] >= 0
    assert "upper bound" not in json.dumps(report).lower()
    for name in ("mean", "linear"):
        entry = report["methods"][name]
        assert entry["out_dim"] == 64 and entry["seeds"] == [0, 1]
        for metric in ("psnr", "ssim", "sam_deg"):
            stat = entry["test"][metric]
            assert set(stat) == {"mean", "sd", "ci95"} and stat["ci95"][0] <= stat["mean"] <= stat["ci95"][1]
        assert entry["test"]["n_chips"] == n_test
        assert set(entry["reconstruction"]) == {"train", "val", "test", "all"}
    assert report["methods"]["linear@16"]["out_dim"] == 16
    comp = [c for c in report["comparisons"] if c["against"] == "mean" and c["metric"] == "psnr"]
    assert {c["method"] for c in comp} == {"linear", "linear@16"}
    for c in comp:
        assert c["verdict"] in ("better", "worse", "indistinguishable") and len(c["ci95"]) == 2
    np_k = report["np_at_k"]
    assert np_k["linear"]["chance"] == pytest.approx(np_k["linear"]["k"] / (10 - 1))
    assert 0 <= np_k["mean"]["value"] <= 1 and np_k["mean"]["n_chips"] == 10
    assert isinstance(report["verdict"], str) and report["verdict"] and report["verdict"] in report["sentences"]
    assert "untrained" in report["verdict"]
    rd = report["rate_distortion"]
    assert {(p["method"], p["out_dim"]) for p in rd if p["kind"] == "method"} >= {("linear", 64), ("linear", 16)}
    thumbs = [p for p in rd if p["method"] == "thumbnail"]
    assert {16, 64} <= {p["out_dim"] for p in thumbs} and all(p["n_numbers"] <= p["out_dim"] for p in thumbs)
    assert all(set(p["psnr"]) == {"mean", "sd", "ci95"} for p in rd)


def test_each_seed_has_its_own_weights(evaluated):
    root, _ = evaluated
    ws = Workspace.open(root)
    seeds = load_seeds(ws, "linear")
    assert [fm.seed for fm in seeds] == [0, 1]
    assert (ws.path("methods", "linear", "seed1", "weights.safetensors")).exists()
    a, b = (dict(fm.expander.state_dict()) for fm in seeds)
    assert any(not np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert load_method(ws, "linear").config["seeds"] == [0, 1]  # the summary at the top


def test_fits_from_before_splits_load_and_are_asked_to_refit(generated_embedded, copy_ws, tiny_model):
    import shutil

    root = copy_ws(generated_embedded)
    fit_method(root, "linear", model=tiny_model, epochs=1, seeds=1, batch_size=5, show_progress=False)
    ws = Workspace.open(root)
    config = json.loads(ws.path("methods", "linear", "config.json").read_text())
    for key in ("split", "seeds", "per_seed", "test_rows"):  # what a fit of the previous version wrote
        config.pop(key)
    ws.path("methods", "linear", "config.json").write_text(json.dumps(config))
    shutil.rmtree(ws.path("methods", "linear", "seed0"))
    assert [fm.seed for fm in load_seeds(ws, "linear")] == [0]  # still loads, as one seed
    report = evaluate_workspace(root, model=tiny_model, batch_size=5, show_progress=False)
    assert "fit it again" in report["methods"]["linear"]["skipped"]
    assert any("linear is left out" in n for n in report["notes"])


def test_old_reports_read_with_todays_names(generated_embedded, copy_ws):
    from clay_explore.research.evaluate import read_evaluation

    ws = Workspace.open(copy_ws(generated_embedded))
    ws.write_json(EVALUATION, {"methods": {"full": {"reconstruction": {"all": {"psnr": 30.0}}}, "mean": {}}})
    report = read_evaluation(ws)
    assert "all_tokens" in report["methods"] and "full" not in report["methods"]


def test_out_dim_names_the_fit_and_sets_the_vector_width(generated_embedded, copy_ws, tiny_model):
    from clay_explore.research.fit import fitted_methods

    root = copy_ws(generated_embedded)
    config = fit_method(
        root, "mean", model=tiny_model, epochs=1, seeds=1, out_dim=16, batch_size=5, show_progress=False
    )
    ws = Workspace.open(root)
    assert config["name"] == "mean@16" and config["out_dim"] == 16 and fitted_methods(ws) == ["mean@16"]
    fm = load_method(ws, "mean@16")
    assert fm.aggregator.out_dim == 16 and fm.aggregator.n_params > 0  # mean pooling, then a fitted D -> 16 map
    config = fit_method(
        root, "mean", model=tiny_model, epochs=1, seeds=1, out_dim=64, batch_size=5, show_progress=False
    )
    assert config["name"] == "mean" and fitted_methods(ws) == ["mean", "mean@16"]  # 64 = the token width
