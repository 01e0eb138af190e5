"""Home without a checkpoint: the notice, the download button, the download (with st.progress) from a
loopback Hugging Face Hub (tests/hub/hub_server.py), and the model status afterwards."""

from __future__ import annotations

from app_data import new_app


def test_missing_model_offers_download_then_shows_model_status(hub_app_env, chips_ws):
    at = new_app().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and "No Clay checkpoint" in at.error[0].value and "clay-explore model download" in at.error[0].value
    assert any(hub_app_env.endpoint in c.value for c in at.caption)  # says where it would come from
    # a page that needs the model says so with the fix, no traceback
    other = new_app("chips1").run()
    other.switch_page("pages/embed.py").run()
    assert not other.exception
    assert any(e.value.startswith("No model:") for e in other.error)
    assert other.button(key="embed_go").disabled

    at.button(key="download_ckpt").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value[-300:] for e in at.error]
    assert hub_app_env.count("GET", "cdn") == 1  # the bytes came from the loopback hub once
    assert any("Checkpoint downloaded to" in s.value for s in at.success)
    text = "\n".join(m.value for m in at.markdown)
    assert "**Weights**: **untrained** (test model)" in text and "(cache)" in text
    assert "Download the Clay v1.5 checkpoint" not in [b.label for b in at.button]
