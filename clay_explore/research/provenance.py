"""What a result records about the model that made it: checkpoint, sha256, precision, the honesty label.

Every stage that uses the model (embed, fit, evaluate, reconstruct) records these facts, and anything
that is not Clay's trained v1.5 checkpoint is labelled untrained wherever its outputs appear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from clay_explore.core.errors import WorkspaceError
from clay_explore.core.workspace import Workspace
from clay_explore.research.inputs import embeddings_info

#: Said wherever an output comes from a model that is not Clay's trained v1.5 checkpoint.
UNTRAINED_NOTE = "untrained/test model, not Clay's: figures do not describe Clay v1.5"
TRAINED_NOTE = "Clay v1.5 (large) checkpoint"


def model_honesty(model: Any) -> dict[str, Any]:
    """{'untrained': bool, 'note': str} for a loaded model; anything but trained v1.5 is 'untrained'."""
    trained = getattr(model, "is_trained", None)
    if trained is None:
        trained = getattr(model, "preset", None) == "large"
    return {"untrained": not bool(trained), "note": TRAINED_NOTE if trained else UNTRAINED_NOTE}


def model_sha256(model: Any) -> str | None:
    """The checkpoint's sha256 (from the model, else hashed from its recorded path)."""
    sha = getattr(model, "sha256", None)
    if sha:
        return str(sha)
    path = getattr(model, "source", {}).get("path")
    if path and Path(path).exists():
        from clay_explore.model.hub import file_sha256

        sha = file_sha256(path)
        model.source["sha256"] = sha
        return sha
    return None


def model_precision(model: Any) -> str:
    """The precision fast mode chose (model.fast_path: float32, bf16, fp16 or int8); else from the weights."""
    chosen = (getattr(model, "fast_path", None) or {}).get("precision")
    if chosen:
        return str(chosen)
    dtypes = {p.dtype for p in model.parameters()}
    return "bf16" if torch.bfloat16 in dtypes else "fp16" if torch.float16 in dtypes else "float32"


def model_device(model: Any) -> str:
    """Where the model runs, e.g. 'cpu' or 'cuda:0'."""
    from clay_explore.model.device import model_device as _device

    return str(_device(model))


def describe_model(model: Any) -> dict[str, Any]:
    """What the embeddings record about the model that made them."""
    return {
        "checkpoint": getattr(model, "source", {}).get("path"),
        "sha256": model_sha256(model),
        "preset": getattr(model, "preset", None),
        "precision": model_precision(model),
        "precision_reason": (getattr(model, "fast_path", None) or {}).get("reason"),
        "device": model_device(model),
        "dim": int(model.config.dim),
        "patch_size": int(model.config.patch_size),
        **model_honesty(model),
    }


def load_model_for(checkpoint: str | Path | None, fast: bool = False, device: Any = None):
    """Load the Clay model (explicit path, $CLAY_CHECKPOINT or the Hugging Face cache) onto ``device``."""
    from clay_explore.model import load_model

    return load_model(checkpoint, fast=fast, device=device)


def model_for_workspace(ws: Workspace, checkpoint: str | Path | None = None, model: Any = None, device: Any = None):
    """The Clay model that made the workspace's embeddings (its decoder renders reconstructions).

    Uses ``model`` or ``checkpoint`` when given, else the checkpoint recorded by the embed stage,
    else the default resolution; refuses a checkpoint whose sha256 differs from the embeddings'.
    The model is loaded onto (or a given one moved to) ``device`` (None: a given model stays put).
    """
    info = embeddings_info(ws)
    if model is None:
        recorded = info.get("checkpoint")
        path = checkpoint or (recorded if recorded and Path(recorded).exists() else None)
        model = load_model_for(path, fast=False, device=device)
    elif device is not None:
        from clay_explore.model.device import resolve_device

        model = model.to(resolve_device(device))
    want, have = info.get("sha256"), model_sha256(model)
    if want and have and want != have:
        raise WorkspaceError(
            f"The embeddings in {ws.root} were made with checkpoint sha256 {want[:12]}…, but the model given "
            f"has {have[:12]}…. Pass --checkpoint with the same file, or re-run `clay-explore embed`."
        )
    if int(model.config.dim) != int(info.get("dim", model.config.dim)):
        raise WorkspaceError(
            f"The embeddings are {info.get('dim')}-wide but the model's tokens are {model.config.dim}."
        )
    return model
