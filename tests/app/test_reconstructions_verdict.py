"""Reconstructions page with an issue-8 evaluation: the verdict leads, test-chip counts, baselines and splits.

The evaluation.json is the synthetic contract report of ``evaluation_fixture`` (stamped with the
workspace's fingerprint so it reads as current), so these checks do not depend on real numbers.
"""

from __future__ import annotations

from app_data import new_app
from evaluation_fixture import SENTENCES, VERDICT, contract_report

from clay_explore.app import state as S
from clay_explore.core.workspace import EVALUATION, Workspace


def _install_report(root, n_test: int = 2) -> dict:
    from clay_explore.research.vectors import embeddings_fingerprint

    ws = Workspace.open(root)
    ev = contract_report(n_test)
    ev["embeddings_fingerprint"] = embeddings_fingerprint(ws)
    ws.write_json(EVALUATION, ev)
    return ev


def _page(model_ws, chips=(3, 0)):
    at = new_app("shared1").run()
    at.session_state[S.SELECTED_CHIPS] = list(chips)
    at.switch_page("pages/reconstructions.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_leads_with_the_verdict_and_counts_test_chips(model_ws):
    _install_report(model_ws, n_test=2)
    at = _page(model_ws)
    # the verdict is the first thing after the title, its caption and the untrained banner
    first = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert first and first[0] == f"### {VERDICT}"
    assert any(SENTENCES[1] in m.value for m in at.markdown)
    assert any("on 2 held-out test chips" in c.value for c in at.caption)
    assert "Every method on 2 held-out test chips" in [h.value for h in at.subheader]
    table = at.dataframe[-1].value
    assert {"reference", "method", "baseline"} <= set(table["kind"])
    assert {"mae", "all_tokens", "cls_only", "band_mean", "chip_mean", "thumbnail"} <= set(table["method"])
    labels = set(table["label"])
    assert {
        "Band mean (baseline, no Clay)",
        "Thumbnail (baseline, no Clay)",
        "Clay MAE, 75 % masked (reference)",
    } <= labels
    linear = table[table["label"] == "Learned linear"].iloc[0]
    assert linear["PSNR (dB)"] == "24.31 ± 0.12"
    assert linear["PSNR vs Mean pooling"].endswith("better than mean pooling")
    assert "bound" not in " ".join(str(v) for v in table.to_numpy().ravel()).lower()
    # every figure states its number of test chips
    import json

    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [c["layout"]["title"]["text"] for c in charts if c["layout"].get("title")]
    evaluation_titles = [t for t in titles if "test chip" in t and "− original" not in t]  # not the residuals
    assert len(evaluation_titles) >= 3, titles
    assert all("on 2 test chips" in t for t in evaluation_titles)


def test_panels_say_which_split_their_chip_is_in_and_flag_training_chips(model_ws):
    _install_report(model_ws)
    at = _page(model_ws, chips=(3, 0))  # chip 3 is a test chip, chip 0 a training chip in the fixture
    headings = [m.value for m in at.markdown if m.value.startswith("#### ")]
    assert headings[0].endswith("test chip") and "TRAINING chip" in headings[1]
    assert any("training chip" in w.value and "Judge on test chips" in w.value for w in at.warning)
    captions = [str(i.proto) for i in at.image]
    assert any("this chip: PSNR" in c and "test chip" in c for c in captions)
    assert any("TRAINING chip" in c for c in captions)


def test_baseline_and_reference_panels_beside_the_methods(model_ws):
    _install_report(model_ws)
    at = _page(model_ws, chips=(3,))
    text = "\n".join(m.value for m in at.markdown)
    for label in (
        "Clay MAE, 75 % masked (reference)",
        "All tokens visible (reference, outside Clay's training)",
        "CLS only, 100 % masked (reference)",
        "Learned linear",
        "Band mean (baseline, no Clay)",
        "Chip's band mean (baseline, no Clay)",
        "Thumbnail (baseline, no Clay)",
    ):
        assert label in text, label
    assert "Baselines without Clay" in [c.value for c in at.caption]


def test_fit_box_lists_remaining_methods_and_evaluate_stays_visible(model_ws):
    at = _page(model_ws)
    fit = at.multiselect(key="fit_methods")
    assert fit.value and "linear" not in fit.value and "mean" in fit.value  # linear is fitted in model_ws
    # a stale evaluation: the Evaluate button is shown outside the (possibly folded) fit section
    Workspace.open(model_ws).write_json(EVALUATION, {**contract_report(), "embeddings_fingerprint": "old"})
    at.run()
    assert "Evaluate all methods (metrics + image vectors)" in [b.label for b in at.button]


def test_fit_at_another_vector_width_from_the_page(model_ws):
    from clay_explore.app import jobs as app_jobs

    at = _page(model_ws)
    at.multiselect(key="fit_methods").set_value(["linear"])
    at.number_input(key="fit_epochs").set_value(1)
    at.number_input(key="fit_seeds").set_value(1)
    at.selectbox(key="fit_width").set_value(16)
    at.button(key="fit_go").click().run()
    job = app_jobs.get_job(model_ws, "fit")
    assert job is not None and app_jobs.wait(job, 120), "the fit job did not end"
    assert job.status == app_jobs.COMPLETE, job.message
    config = Workspace.open(model_ws).read_json("methods/linear@16/config.json")
    assert config["out_dim"] == 16
    at.run()
    assert not at.exception
    # linear@16 is an extra fit beside the seven: the evaluation is now out of date and says so, with its button
    assert "Evaluate all methods (metrics + image vectors)" in [b.label for b in at.button]
    assert any("linear@16" in w.value and "fitted after" in w.value for w in at.warning), [w.value for w in at.warning]
    assert "Learned linear, 16 numbers" in "\n".join(m.value for m in at.markdown)  # its panel in the grid
