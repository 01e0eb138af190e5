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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, parity_dir) -> Path:
    """The parity fixture's tiny Clay checkpoint (official layout), decompressed to a .ckpt file."""
    out = tmp_path_factory.mktemp("ckpt") / "clay-tiny.ckpt"
    out.write_bytes(lzma.decompress((parity_dir / "model.ckpt.xz").read_bytes()))
    return out
