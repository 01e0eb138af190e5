"""Home without a checkpoint: one stated size (the hub's metadata when online), Download disabled with the
reason when offline, and no dead progress bar above a failed download's error."""

from __future__ import annotations

from app_data import new_app


def _texts(at) -> str:
    return "\n".join(str(x.value) for x in [*at.error, *at.caption, *at.markdown])


def test_offline_download_is_disabled_with_the_reason(app_env, monkeypatch, tmp_path):
    monkeypatch.delenv("CLAY_CHECKPOINT")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # empty cache, offline (app_env)
    at = new_app().run()
    assert not at.exception, [e.value for e in at.exception]
    button = at.button(key="download_ckpt")
    assert button.disabled and "offline" in (button.help or "").lower()
    text = _texts(at)
    assert "offline mode is on" in text.lower()
    assert "1.3 GB" not in text and "GB-class" not in text


def test_size_from_the_hub_and_no_dead_bar_after_a_failed_download(hub_app_env, chips_ws):
    at = new_app().run()
    assert not at.exception, [e.value for e in at.exception]
    text = _texts(at)
    assert "hub metadata" in text and "1.3 GB" not in text  # the one size, read from the hub
    hub_app_env.stop()  # the hub goes away before the button is pressed
    at.button(key="download_ckpt").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.value.startswith("Download:") for e in at.error)
    assert not at.get("progress")  # the bar was removed with the failure
