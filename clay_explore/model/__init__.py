"""Clay v1.5 encoder/decoder written from CLAY_FACTS.md, its checkpoint loader and presets."""

from clay_explore.model.checkpoint import load_checkpoint
from clay_explore.model.config import PRESETS, ClayConfig, config_from_hparams
from clay_explore.model.mae import ClayModel

__all__ = ["ClayModel", "ClayConfig", "PRESETS", "config_from_hparams", "load_checkpoint", "load_model", "resolve_checkpoint"]


def resolve_checkpoint(path=None, **kwargs):
    """Where the checkpoint is: explicit path, CLAY_CHECKPOINT, or the huggingface_hub cache/download."""
    from clay_explore.model.hub import resolve_checkpoint as _resolve

    return _resolve(path, **kwargs)


def load_model(path=None, *, fast: bool = False, **kwargs) -> ClayModel:
    """Resolve (download if needed) and load the checkpoint; ``fast`` = bf16 transformer weights."""
    model = ClayModel.from_checkpoint(resolve_checkpoint(path, **kwargs))
    return model.to_fast() if fast else model
