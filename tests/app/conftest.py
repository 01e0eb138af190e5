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
