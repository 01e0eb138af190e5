"""Clay v1.5 encoder/decoder (see docs/model.md), its checkpoint loader and presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clay_explore.model.checkpoint import load_checkpoint
from clay_explore.model.config import PRESETS, ClayConfig, config_from_hparams
from clay_explore.model.mae import ClayModel

__all__ = [
    "ClayModel",
    "ClayConfig",
    "PRESETS",
    "config_from_hparams",
    "load_checkpoint",
    "load_model",
    "resolve_checkpoint",
]


def resolve_checkpoint(path: str | Path | None = None, **kwargs: Any) -> Path:
    """Where the checkpoint is: explicit path, CLAY_CHECKPOINT, or the huggingface_hub cache/download."""
    from clay_explore.model.hub import resolve_checkpoint as _resolve

    return _resolve(path, **kwargs)


def load_model(path: str | Path | None = None, *, fast: bool = False, device: Any = None, **kwargs: Any) -> ClayModel:
    """Resolve (download if needed) and load the checkpoint onto ``device`` (see model.device.resolve_device).

    ``fast`` picks the fastest precision the device does natively (model.fastpath); either way
    ``model.fast_path`` records the precision, the reason and the device.
    """
    from clay_explore.model.device import resolve_device
    from clay_explore.model.fastpath import FLOAT32, apply_fast_path, record

    dev = resolve_device(device)
    model = ClayModel.from_checkpoint(resolve_checkpoint(path, **kwargs)).to(dev)
    if fast:
        return apply_fast_path(model, dev)
    return record(model, FLOAT32, "exact mode (fast mode off)", dev)
