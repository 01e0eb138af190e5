"""Home shows where the model runs, offers the device choice and says which path fast mode takes and why."""

from __future__ import annotations

import pytest
from app_data import new_app

from clay_explore.app import state as S
from clay_explore.model.device import ENV_DEVICE, available_devices

cpu_only = pytest.mark.skipif(available_devices() != ["cpu"], reason="describes a CPU-only machine")


def _captions(at) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def _markdown(at) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]


@cpu_only
def test_home_device_select_status_and_fast_caption(app_env, monkeypatch):
    monkeypatch.delenv(ENV_DEVICE, raising=False)
    at = new_app().run()
    _ok(at)
    box = at.selectbox(key=S.DEVICE_WIDGET)
    assert box.options == ["auto", "cpu"] and box.value == "auto"
    assert "**Device**: cpu (" in _markdown(at) and "**Precision**: float32" in _markdown(at)
    assert "Fast mode would use **" in _captions(at)
    box.set_value("cpu").run()
    _ok(at)
    assert at.session_state[S.DEVICE] == "cpu"
    at.toggle(key=S.FAST_WIDGET).set_value(True).run()
    _ok(at)
    text = _captions(at)
    assert "Fast mode uses **" in text and ("native bf16" in text or "int8" in text or "fp32" in text)
    assert "(fast)" in _markdown(at)


@cpu_only
def test_home_with_a_missing_env_device_falls_back_to_auto(app_env, monkeypatch):
    monkeypatch.setenv(ENV_DEVICE, "cuda")
    at = new_app().run()
    _ok(at)
    assert at.selectbox(key=S.DEVICE_WIDGET).value == "auto"
    assert "**Device**: cpu (" in _markdown(at)
