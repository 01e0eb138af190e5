"""What shows an issue-8 evaluation: the CLI table and JSON, figures, labels, the exported summary and splits.

Driven by the synthetic contract report of ``evaluation_fixture`` (no model needed).
"""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner
from evaluation_fixture import SENTENCES, VERDICT, contract_report

from clay_explore.cli.main import cli
from clay_explore.core.workspace import EVALUATION, Workspace
from clay_explore.research import evaluation_summary as E
from clay_explore.viz import views

CONTRACT_KEYS = {
    "split",
    "seeds",
    "references",
    "baselines",
    "methods",
    "comparisons",
    "np_at_k",
    "verdict",
    "sentences",
    "rate_distortion",
}


@pytest.fixture
def report_ws(tmp_path):
    ws = Workspace.create(
        tmp_path / "ws", sensor="sentinel-2-l2a", bands=["blue", "green", "red"], chip_size=32, source={"kind": "test"}
    )
    ws.write_json(EVALUATION, contract_report())
    return ws


def _cli(*args):
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_evaluate_table_leads_with_the_verdict_on_test_chips(report_ws):
    out = _cli("evaluate", "-w", str(report_ws.root), "--stored")
    lines = out.splitlines()
    assert lines[0] == f"VERDICT: {VERDICT}"
    assert SENTENCES[1] in out and SENTENCES[2] in out
    assert "on 2 held-out test chips" in out and "spatially blocked" in out and "3 seeds (0, 1, 2)" in out
    rows = {line.split()[1]: line for line in lines if line.split()[:1] in (["reference"], ["method"], ["baseline"])}
    assert {"mae", "all_tokens", "cls_only", "mean", "max", "linear", "band_mean", "chip_mean", "thumbnail"} <= set(
        rows
    )
    assert "24.31 ± 0.12" in rows["linear"] and "+1.10 dB [+0.40, +1.80]: better than mean" in rows["linear"]
    assert "indistinguishable from mean" in rows["max"]
    assert "0.600 (chance 0.400)" in rows["linear"] and "NP@2" in out
    assert "27.50" in rows["mae"] and "±" not in rows["mae"]  # references: one number, no seeds
    assert "outside the regime it was trained for" in out
    assert "bound" not in out.lower()


def test_evaluate_rate_distortion_view(report_ws):
    out = _cli("evaluate", "-w", str(report_ws.root), "--stored", "--rate-distortion")
    block = out[out.index("Test PSNR (dB) against vector width") :]
    assert "on 2 test chips" in block.splitlines()[0]
    header = block.splitlines()[1].split()
    assert header[1:] == ["16", "64"]
    linear = next(line for line in block.splitlines() if line.startswith("linear"))
    assert "24.31 ± 0.12" in linear and "25.02 ± 0.10" in linear
    assert any(line.startswith("thumbnail") for line in block.splitlines())


def test_evaluate_json_prints_the_contract(report_ws):
    out = json.loads(_cli("evaluate", "-w", str(report_ws.root), "--stored", "--json"))
    assert CONTRACT_KEYS <= set(out)
    assert out["methods"]["linear"]["test"]["psnr"]["ci95"] == pytest.approx([24.07, 24.55])


def test_evaluate_stored_without_evaluation_is_one_error_line(tmp_path):
    ws = Workspace.create(tmp_path / "ws", sensor="sentinel-2-l2a", bands=["red"], chip_size=32, source={})
    res = CliRunner().invoke(cli, ["evaluate", "-w", str(ws.root), "--stored"])
    assert res.exit_code != 0 and "no evaluation.json yet" in res.output and "Traceback" not in res.output


def test_rows_order_kinds_and_old_reports():
    rows = E.rows(contract_report())
    assert [r["kind"] for r in rows] == ["reference"] * 3 + ["method"] * 3 + ["baseline"] * 3
    old = {
        "n_chips": 6,
        "methods": {
            "full": {"reconstruction": {"all": {"psnr": 20.0, "ssim": 0.5, "n_chips": 6}}},
            "mean": {"fitted": True, "reconstruction": {"all": {"psnr": 21.0}}},
        },
    }
    names = [(r["name"], r["kind"]) for r in E.rows(old)]
    assert names == [("all_tokens", "reference"), ("mean", "method")]
    assert E.verdict(old) == E.STALE_REPORT and "predates the test split" in E.scope_line(old)


def test_figures_have_error_bars_and_state_test_chips():
    ev = contract_report(n_test=5)
    rows = E.rows(ev)
    fig = views.evaluation_figure(rows, "psnr", E.n_test_chips(ev))
    assert "on 5 test chips" in fig.layout.title.text
    linear = next(t for t in fig.data if t.name == views.method_label("linear"))
    assert linear.error_y.array == (0.12,)
    mae = next(t for t in fig.data if t.name == views.method_label("mae"))
    assert mae.error_y.array is None and mae.marker.pattern.shape == "/"
    npf = views.np_figure([r for r in rows if r["kind"] == "method"], 5)
    assert "on 5 test chips" in npf.layout.title.text and "chance 0.400" in npf.layout.annotations[0].text
    rd = views.rate_distortion_figure(E.rate_distortion(ev), rows, 5)
    assert "on 5 test chips" in rd.layout.title.text and rd.layout.xaxis.type == "log"
    thumb = next(t for t in rd.data if t.name == views.method_label("thumbnail"))
    assert thumb.line.dash == "dash" and list(thumb.x) == [10, 40]  # baselines at their own number count
    assert any(views.method_label("mae") in a.text for a in rd.layout.annotations)


def test_labels_never_call_all_tokens_a_bound_and_widths_read():
    for name in ("mae", "all_tokens", "full", "cls_only", "band_mean", "chip_mean", "thumbnail"):
        assert "bound" not in views.method_label(name).lower()
    assert views.method_label("full") == views.method_label("all_tokens")
    assert views.method_label("linear@64") == "Learned linear, 64 numbers"
    assert views.method_color("linear@64") == views.method_color("linear")
    groups = dict(
        views.panel_groups(
            ["mae", "all_tokens", "cls_only", "linear", "linear/seed1", "band_mean", "chip_mean", "thumbnail"]
        )
    )
    assert groups["Baselines without Clay"] == ["original", "band_mean", "chip_mean", "thumbnail"]
    assert groups["One vector per chip (fitted methods)"] == ["original", "linear"]
    assert "TRAINING" in views.panel_caption({"psnr_mean": 20.0, "ssim_mean": 0.5}, "train")
    assert views.panel_caption({"psnr_mean": 20.0, "ssim_mean": 0.5}, "test").endswith("test chip")


def test_export_evaluation_summary_has_every_row(report_ws, tmp_path):
    from clay_explore.research.export import EVALUATION_COLUMNS, export_evaluation

    path = export_evaluation(report_ws, tmp_path / "evaluation_summary.csv")
    text = path.read_text().splitlines()
    assert text[0] == f"# verdict: {VERDICT}" and "2 held-out test chips" in text[1]
    rows = list(csv.DictReader(text[2:]))
    assert list(rows[0]) == list(EVALUATION_COLUMNS)
    by = {r["method"]: r for r in rows}
    assert {"mae", "all_tokens", "cls_only", "band_mean", "chip_mean", "thumbnail", "linear"} <= set(by)
    assert by["linear"]["verdict_vs_mean"] == "better" and by["band_mean"]["kind"] == "baseline"
    assert by["linear"]["test_chips"] == "2"


def test_chip_splits_from_the_report():
    assert E.chip_splits(contract_report(), 6) == ["train", "train", "val", "test", "train", "test"]
    assert E.chip_splits({}, 3) == [None, None, None]


def test_image_embeddings_export_has_each_chips_split(synthetic_ws, tmp_path):
    import geopandas as gpd

    from clay_explore.research.export import EVALUATION_FILE, export

    ws = Workspace.open(synthetic_ws)
    ws.write_json(EVALUATION, contract_report())
    out = export(ws, tmp_path / "out", what=("image", "evaluation"))
    g = gpd.read_parquet(out["image"])
    assert list(g["split"]) == ["train", "train", "val", "test", "train", "test"]
    assert out["evaluation"].name == EVALUATION_FILE and "thumbnail" in out["evaluation"].read_text()


def test_reconstruct_png_has_references_methods_and_baselines_with_the_split(model_ws, tmp_path):
    from PIL import Image

    from clay_explore.research.vectors import embeddings_fingerprint

    ws = Workspace.open(model_ws)
    ws.write_json(EVALUATION, {**contract_report(), "embeddings_fingerprint": embeddings_fingerprint(ws)})
    out = _cli("reconstruct", "-w", str(model_ws), "--chip", "chip-000", "--out", str(tmp_path / "c.png"))
    panels = out.splitlines()[0]
    for name in ("mae", "all_tokens", "cls_only", "linear", "band_mean", "chip_mean", "thumbnail"):
        assert name in panels, name
    from clay_explore.research.reconstruct import write_comparison

    result = write_comparison(ws, "chip-000", tmp_path / "d.png")
    assert result["split"] == "train"  # the fixture's split: flagged in the PNG's header
    assert Image.open(tmp_path / "d.png").size[1] > 3 * 256  # three rows: references, methods, baselines


@pytest.mark.slow
def test_cli_fit_with_seeds_and_width_then_evaluate_on_test_chips(model_ws, tiny_checkpoint):
    """End to end with the tiny model: the real evaluation.json has the contract and the table shows it."""
    root, ckpt = str(model_ws), str(tiny_checkpoint)
    out = _cli(
        "fit",
        "-w",
        root,
        "-m",
        "linear",
        "--seeds",
        "2",
        "--split-seed",
        "0",
        "--out-dim",
        "16",
        "--epochs",
        "1",
        "--checkpoint",
        ckpt,
    )
    assert "test chips" in out and "linear@16 seed 0" in out and "linear@16 seed 1" in out
    assert "vector width 16" in out
    table = _cli("evaluate", "-w", root, "--checkpoint", ckpt, "--rate-distortion", "--compare", "linear@16", "linear")
    table = table[table.index("VERDICT: ") :]  # the progress bar (stderr) comes first in CliRunner's output
    assert "held-out test chips" in table.splitlines()[0] and table.index("VERDICT") < table.index("PSNR dB")
    for name in ("mae", "all_tokens", "cls_only", "band_mean", "chip_mean", "thumbnail", "linear@16", "linear"):
        assert any(line.split()[1:2] == [name] for line in table.splitlines()), name
    assert "chance" in table and "Test PSNR (dB) against vector width" in table and "bound" not in table.lower()
    assert "linear@16 vs linear, psnr: " in table  # a pair on request, with its verdict in words
    report = json.loads(_cli("evaluate", "-w", root, "--stored", "--json"))
    assert CONTRACT_KEYS <= set(report)
    assert report["split"]["blocked"] and report["seeds"] and report["methods"]["linear@16"]["out_dim"] == 16
    assert set(report["references"]) == {"mae", "all_tokens", "cls_only"}
    assert set(report["baselines"]) == {"band_mean", "chip_mean", "thumbnail"}
    assert {c["verdict"] for c in report["comparisons"]} <= {"better", "worse", "indistinguishable"}
