"""Fixtures for the checkpoint download tests: a local hub server, a clean HF environment, a small checkpoint.

huggingface_hub reads HF_ENDPOINT/HF_HOME/HF_HUB_OFFLINE at import; clay_explore.model.hub reads them on
every call, so setting them with monkeypatch is enough (no reload of huggingface_hub.constants).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hf_constants

HERE = Path(__file__).resolve().parent


def _load_hub_server():
    """Import hub_server.py by path (pytest runs with --import-mode=importlib, tests/ is not a package)."""
    name = "clay_explore_tests_hub_server"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "hub_server.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


hub_server = _load_hub_server()

#: Size of the generated checkpoint's one big tensor; a few hundred KB keeps the download real but fast.
GENERATED_FLOATS = 64 * 1024


def make_checkpoint(path: Path, *, seed: int = 0, n_floats: int = GENERATED_FLOATS) -> Path:
    """A small Lightning checkpoint in the official layout (random weights, a ``model.`` prefix)."""
    gen = torch.Generator().manual_seed(seed)
    dim, patch, bands = 32, 8, 4
    state = {
        "model.encoder.cls_token": torch.randn(1, 1, dim, generator=gen),
        "model.encoder.patch_embedding.weight_generator.weight_tokens": torch.randn(dim, dim, generator=gen),
        "model.encoder.transformer.norm.weight": torch.ones(dim),
        "model.decoder.embed_to_pixels.weight": torch.randn(patch * patch * bands, dim, generator=gen),
        "model.proj.weight": torch.randn(n_floats // dim, dim, generator=gen),
    }
    hparams = {"model_size": "custom", "patch_size": patch, "dim": dim, "depth": 1, "heads": 1}
    torch.save({"epoch": 0, "global_step": 0, "state_dict": state, "hyper_parameters": hparams}, path)
    return path


@pytest.fixture(scope="session")
def generated_checkpoint(tmp_path_factory) -> Path:
    """A generated checkpoint file (no ../shared needed)."""
    return make_checkpoint(tmp_path_factory.mktemp("gen") / "clay-generated.ckpt")


@pytest.fixture(scope="session")
def big_checkpoint(tmp_path_factory) -> Path:
    """A generated checkpoint a little over huggingface_hub's 10 MiB download chunk (to exercise resume)."""
    n_floats = (hf_constants.DOWNLOAD_CHUNK_SIZE + hf_constants.DOWNLOAD_CHUNK_SIZE // 4) // 4
    return make_checkpoint(tmp_path_factory.mktemp("big") / "clay-big.ckpt", seed=1, n_floats=n_floats)


@pytest.fixture
def hf_env(tmp_path, monkeypatch) -> Path:
    """A private HF_HOME / sha256 cache under tmp_path, online, no token, no CLAY_CHECKPOINT; returns HF_HOME."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("CLAY_EXPLORE_CACHE", str(tmp_path / "clay_cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "CLAY_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    # Values huggingface_hub froze at import time that would reach outside tmp_path: the token files
    # (a real token would be sent to the local server) and telemetry, which fetches an agent registry
    # from the import-time endpoint (huggingface.co) once per process.
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    return home


@pytest.fixture
def make_hub(hf_env, monkeypatch) -> Iterator[Callable[..., object]]:
    """Factory: ``make_hub(path, **options)`` starts a HubServer serving ``path`` and points HF_ENDPOINT at it."""
    started = []

    def _make(path: Path, *, filename: str = hub_server.FILENAME, **options):
        server = hub_server.HubServer({filename: path}, **options).start()
        started.append(server)
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        return server

    yield _make
    for server in started:
        server.stop()


@pytest.fixture
def hub(make_hub, generated_checkpoint):
    """A running hub serving the generated checkpoint as made-with-clay/Clay v1.5/clay-v1.5.ckpt (LFS-style)."""
    return make_hub(generated_checkpoint)


@pytest.fixture
def no_backoff_sleep(monkeypatch) -> list[float]:
    """Skip huggingface_hub's retry back-off sleeps (1+2+4+8+8 s) and record them; requests stay real."""
    import huggingface_hub.utils._http as hf_http

    slept: list[float] = []

    class _Time:
        def __getattr__(self, name):
            import time

            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            slept.append(seconds)

    monkeypatch.setattr(hf_http, "time", _Time())
    return slept
