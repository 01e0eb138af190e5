"""App fixtures: the environment every AppTest runs in, and small workspaces (generated or real stages).

``app_env`` points the app at the tiny checkpoint and at a private workspaces root; ``model_ws``
is a workspace whose embeddings, one fitted aggregator and the evaluation come from the real
stages with the tiny model (built once per session, copied per test so tests stay independent).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from app_data import build_with_model, make_workspace


@pytest.fixture
def app_env(tmp_path, monkeypatch, tiny_checkpoint) -> Path:
    """Environment of the app under test; returns the workspaces root."""
    root = tmp_path / "workspaces"
    root.mkdir()
    monkeypatch.setenv("CLAY_CHECKPOINT", str(tiny_checkpoint))
    monkeypatch.setenv("CLAY_EXPLORE_WORKSPACES", str(root))
    monkeypatch.setenv("CLAY_EXPLORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


@pytest.fixture(scope="session")
def _model_ws_master(tmp_path_factory, tiny_checkpoint) -> Path:
    root = tmp_path_factory.mktemp("model_ws") / "ws"
    build_with_model(root, tiny_checkpoint)
    return root


@pytest.fixture
def model_ws(app_env, _model_ws_master) -> Path:
    """A copy of the tiny-model workspace under the app's root, named 'shared1'."""
    dest = app_env / "shared1"
    shutil.copytree(_model_ws_master, dest)
    return dest


@pytest.fixture
def chips_ws(app_env) -> Path:
    """A workspace holding chips only (named 'chips1')."""
    dest = app_env / "chips1"
    make_workspace(dest, embed=False)
    return dest


@pytest.fixture
def synthetic_ws(tmp_path) -> Path:
    """A workspace with generated embeddings and vectors (no model)."""
    dest = tmp_path / "synthetic"
    make_workspace(dest)
    return dest


def _hub_server_module():
    """tests/hub/hub_server.py imported by path (tests/ is not a package)."""
    import importlib.util

    name = "clay_explore_tests_hub_server"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE.parent / "hub" / "hub_server.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def hub_app_env(app_env, tmp_path, monkeypatch, tiny_checkpoint):
    """The app with no checkpoint yet, online against a loopback Hub serving the tiny checkpoint; yields the hub."""
    from huggingface_hub import constants as hf_constants

    home = tmp_path / "hf_home"
    for name in ("CLAY_CHECKPOINT", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_TOKEN", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # values huggingface_hub froze at import that would reach outside tmp_path (token files, telemetry)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # app_env's HF_HUB_OFFLINE=1 may have been frozen
    hub_server = _hub_server_module()
    hub = hub_server.HubServer({hub_server.FILENAME: tiny_checkpoint}).start()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    try:
        yield hub
    finally:
        hub.stop()
