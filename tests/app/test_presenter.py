"""Presenter mode: the story in order (question, map, UMAP, reconstructions, verdict), large type, no settings,
a caption under every figure, a glossary; and the words it uses (viz.story, viz.glossary)."""

from __future__ import annotations

import json

from app_data import new_app

from clay_explore.app import state as S
from clay_explore.viz import glossary, story

HEADERS = (
    "1 · The question",
    "2 · Where we look",
    "3 · Patch tokens vs one vector per chip",
    "4 · Pixels back from one vector",
    "5 · The verdict",
)


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]


def test_present_query_parameter_tells_the_story_in_order(model_ws):
    ev = json.loads((model_ws / "evaluation.json").read_text())
    ev["verdict"] = "Mean pooling keeps almost as much as the CLS token."
    (model_ws / "evaluation.json").write_text(json.dumps(ev))
    at = new_app("shared1")
    at.query_params["present"] = "1"
    at.run()
    _ok(at)
    assert at.session_state[S.PRESENT]
    assert at.title[0].value == story.TITLE
    assert [h.value for h in at.header] == list(HEADERS)
    assert any("Mean pooling keeps almost as much" in m.value for m in at.markdown)
    assert not at.number_input and not at.selectbox and not at.slider  # no parameter panels
    assert len([w for w in at.warning if "Untrained test model" in w.value]) == 1  # one untrained notice
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Each square is one chip") for c in captions)
    assert any(c.startswith("Chip 1 · row 1, col 1: the original") for c in captions)
    assert any("glossary" in e.label.lower() for e in at.expander)
    # leaving goes back to the normal app
    at.button(key="present_leave").click().run()
    _ok(at)
    assert not at.session_state[S.PRESENT]


def test_present_without_verdict_falls_back(model_ws):
    ev = json.loads((model_ws / "evaluation.json").read_text())
    ev.pop("verdict", None)
    (model_ws / "evaluation.json").write_text(json.dumps(ev))
    at = new_app("shared1")
    at.query_params["present"] = "1"
    at.run()
    _ok(at)
    text = "\n".join(m.value for m in at.markdown) + "\n".join(i.value for i in at.info)
    assert "rebuilds the chips best" in text or "No evaluation in this workspace yet" in text


def test_sidebar_toggle_enters_presenter_mode(model_ws):
    at = new_app("shared1").run()
    _ok(at)
    at.toggle(key=S.PRESENT_TOGGLE).set_value(True).run()
    _ok(at)
    assert at.session_state[S.PRESENT]
    assert at.title[0].value == story.TITLE


def test_verdict_prefers_evaluate_sentence_then_scores():
    assert story.verdict(None) is None
    assert story.verdict({"verdict": "  X wins.  "}) == "X wins."
    ev = {
        "methods": {
            "mean": {"reconstruction": {"all": {"psnr": 20.123}}},
            "linear": {"reconstruction": {"all": {"psnr": 22.5}}},
            "full": {"reconstruction": {"all": {"psnr": 40.0}}},
        }
    }
    text = story.verdict(ev, {"linear": "Learned linear"})
    assert text.startswith("Of the single vectors evaluated, Learned linear") and "22.5 dB" in text
    assert story.verdict({"methods": {}}) is None


def test_projection_choice_prefers_patch_and_image_overlay():
    recs = [
        {"key": "a", "sources": ["mean"]},
        {"key": "b", "sources": ["patches"]},
        {"key": "c", "sources": ["patches", "mean"]},
    ]
    assert [r["key"] for r in story.choose_projections(recs)] == ["c"]
    assert [r["key"] for r in story.choose_projections(recs[:2])] == ["b", "a"]
    assert story.choose_projections([]) == []
    assert story.default_sources(["cls", "patches", "mean"]) == ["patches", "mean"]


def test_glossary_covers_the_issue_terms_and_aliases():
    for term in (
        "UMAP",
        "patch token",
        "CLS",
        "mean pooling",
        "GeM pooling",
        "PSNR",
        "SSIM",
        "spectral angle",
        "NP@k",
        "trustworthiness@10",
        "gem",
        "sam",
    ):
        entry = glossary.lookup(term)
        assert entry.short and entry.long
    assert "**UMAP**" in glossary.help_text("umap") and "**NP@k**" in glossary.markdown()


def test_glossary_page_lists_every_term(app_env):
    at = new_app().run()
    at.switch_page("pages/glossary.py").run()
    _ok(at)
    text = "\n".join(m.value for m in at.markdown)
    for entry in glossary.TERMS.values():
        assert f"**{entry.name}**" in text
