"""Load Clay checkpoints safely: weights_only, memory-mapped, encoder + decoder tensors only.

One rename rule (strip the Lightning ``model.`` prefix) and one expected-keys check: every
encoder/decoder key and shape must match the architecture picked from ``hyper_parameters``.
Teacher, ``proj``, optimizer and loop state are ignored and never copied into memory.
"""

from __future__ import annotations

import io
import lzma
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from clay_explore.core.errors import CheckpointError
from clay_explore.model.config import PRESETS, ClayConfig, config_from_hparams
from clay_explore.model.mae import ClayModel

LIGHTNING_PREFIX = "model."
KEPT_PREFIXES = ("encoder.", "decoder.")
MAX_REPORTED = 5
XZ_MAGIC = b"\xfd7zXZ\x00"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True`` and ``mmap=True``; clear errors for bad files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"Checkpoint {path} does not exist. Check the path, or unset CLAY_CHECKPOINT to download."
        )
    if path.is_dir():
        raise CheckpointError(f"Checkpoint {path} is a folder; give the .ckpt file inside it.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {path} is empty (0 bytes). Delete it and download it again.")
    source: Any = path
    with open(path, "rb") as f:
        compressed = f.read(len(XZ_MAGIC)) == XZ_MAGIC
    if compressed:  # the fixtures ship as .ckpt.xz; small enough to inflate in memory
        try:
            source = io.BytesIO(lzma.decompress(path.read_bytes()))
        except lzma.LZMAError as err:
            raise CheckpointError(f"Checkpoint {path} is a damaged xz file ({err}). Download it again.") from err
    mmap = not compressed and zipfile.is_zipfile(path)
    try:
        obj = torch.load(source, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():  # not a code/object request: the bytes are damaged
            raise CheckpointError(
                f"Checkpoint {path} is truncated or corrupt ({_first_line(err)}). Delete it and download it again."
            ) from err
        raise CheckpointError(
            f"Refused to load {path}: it is not a plain weights file (it asks to run code or build objects: "
            f"{_first_line(err)}). Only load checkpoints from sources you trust; get the official one with "
            "`clay-explore model download`."
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"Checkpoint {path} is truncated or corrupt ({_first_line(err)}). Delete it and download it again."
        ) from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"Checkpoint {path} holds a {type(obj).__name__}, not a checkpoint dictionary.")
    return dict(obj)


def filter_state_dict(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Strip the Lightning prefix and keep only encoder/decoder tensors (a pure remap)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = key[len(LIGHTNING_PREFIX) :] if key.startswith(LIGHTNING_PREFIX) else key
        if name.startswith(KEPT_PREFIXES) and isinstance(value, torch.Tensor):
            out[name] = value
    return out


def build_on_meta(cfg: ClayConfig, preset: str = "custom") -> ClayModel:
    """The architecture with no memory behind its parameters (for key checks and assign-loading)."""
    with torch.device("meta"):
        return ClayModel(cfg, preset=preset)


def check_keys(model: ClayModel, weights: Mapping[str, torch.Tensor], path: Path | str) -> None:
    """Every expected key present with its shape, nothing unexpected; name the first mismatches."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(weights[k].shape)} vs model {expected[k]}"
        for k in expected
        if k in weights and tuple(weights[k].shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:MAX_REPORTED])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:MAX_REPORTED])})")
    if wrong:
        problems.append(f"{len(wrong)} with the wrong shape (e.g. {'; '.join(wrong[:MAX_REPORTED])})")
    if problems:
        raise CheckpointError(
            f"Checkpoint {path} does not match the Clay {model.preset} architecture: {'; '.join(problems)}. "
            "Is it a Clay v1.5 checkpoint, and do its hyper_parameters name the right model_size?"
        )


def infer_config(weights: Mapping[str, torch.Tensor]) -> tuple[str, ClayConfig]:
    """Pick the preset whose widths and depths match the tensors (checkpoints without hyper_parameters)."""
    try:
        dim = weights["encoder.cls_token"].shape[-1]
    except KeyError:
        raise CheckpointError("The checkpoint has no encoder.cls_token: it is not a Clay model.") from None
    depth = len({k.split(".")[3] for k in weights if k.startswith("encoder.transformer.layers.")})
    for name, cfg in PRESETS.items():
        if cfg.dim == dim and cfg.depth == depth:
            return name, cfg
    raise CheckpointError(
        f"The checkpoint has no hyper_parameters and its encoder (dim {dim}, depth {depth}) matches no preset. "
        "Save it with hyper_parameters naming model_size or the explicit dims."
    )


def load_checkpoint(path: str | Path, *, verify: bool = True) -> ClayModel:
    """Build the model the checkpoint describes and load its encoder/decoder weights.

    Parameters are assigned straight from the memory-mapped file (no second copy), so peak memory
    stays near the size of the encoder + decoder, whatever else (teacher, optimizer) the file holds.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"Checkpoint {path} has no state_dict dictionary.")
    weights = filter_state_dict(state)
    if not weights:
        raise CheckpointError(
            f"Checkpoint {path} holds no model.encoder.* / model.decoder.* tensors. It is not a Clay checkpoint."
        )
    hparams = ckpt.get("hyper_parameters")
    if isinstance(hparams, Mapping) and hparams:
        preset, cfg = config_from_hparams(hparams)
    else:
        preset, cfg = infer_config(weights)
    model = build_on_meta(cfg, preset)
    check_keys(model, weights, path)
    weights = {k: (v if v.dtype == torch.float32 else v.float()) for k, v in weights.items()}
    model.load_state_dict(weights, strict=True, assign=True)
    if verify:
        _check_finite(model, path)
    model.eval().requires_grad_(False)
    model.source = {
        "path": str(path),
        "global_step": int(ckpt.get("global_step", 0) or 0),
        "epoch": int(ckpt.get("epoch", 0) or 0),
        "hyper_parameters": {k: v for k, v in (hparams or {}).items() if isinstance(v, (int, float, str, bool))},
    }
    return model


def _check_finite(model: ClayModel, path: Path) -> None:
    """Cheap sanity check on small tensors (norms, tokens): NaN/inf means a damaged file."""
    for name, p in model.named_parameters():
        if p.numel() <= 1 << 16 and not torch.isfinite(p).all():
            raise CheckpointError(f"Checkpoint {path} has non-finite values in {name}. Download it again.")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
