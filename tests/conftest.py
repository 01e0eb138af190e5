"""Shared test fixtures: where ../shared is, and the tiny parity checkpoint from it.

Tests that need ../shared skip with a clear reason when it is absent, so a fresh clone passes.
Area-specific fixtures live in tests/<area>/conftest.py.
"""

from __future__ import annotations

import lzma
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CLAY_EXPLORE_SHARED", REPO.parent / "shared"))
PARITY_DIR = SHARED / "fixtures" / "clay_parity_s2"
SAMPLES_DIR = SHARED / "data" / "samples"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the ../shared folder beside the checkout is absent)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared, or skip."""
    return _need(SHARED)


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """../shared/fixtures/clay_parity_s2, or skip."""
    return _need(PARITY_DIR)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """../shared/data/samples (real GeoTIFFs), or skip."""
    return _need(SAMPLES_DIR)


#: The parity fixture's architecture (the clay_parity_s2 fixture of ../shared), used for the generated stand-in.
TINY_DIMS = dict(
    dim=64,
    depth=2,
    heads=2,
    dim_head=32,
    mlp_ratio=2,
    decoder_dim=32,
    decoder_depth=1,
    decoder_heads=2,
    decoder_dim_head=16,
    decoder_mlp_ratio=2,
)


def write_random_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny Clay model saved in the official Lightning layout."""
    import torch

    from clay_explore.model import ClayConfig, ClayModel

    torch.manual_seed(seed)
    model = ClayModel(ClayConfig(**TINY_DIMS))
    ckpt = {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "hyper_parameters": {"model_size": "custom", "mask_ratio": 0.0, "shuffle": False, "patch_size": 8, **TINY_DIMS},
    }
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The parity fixture's tiny Clay checkpoint (official layout), decompressed to a .ckpt file.

    Without ../shared a randomly initialised checkpoint of the same architecture stands in, so
    the code paths that only need *a* tiny model still run; parity tests ask for ``parity_dir``.
    """
    out = tmp_path_factory.mktemp("ckpt") / "clay-tiny.ckpt"
    if PARITY_DIR.exists():
        out.write_bytes(lzma.decompress((PARITY_DIR / "model.ckpt.xz").read_bytes()))
        return out
    return write_random_checkpoint(out)
