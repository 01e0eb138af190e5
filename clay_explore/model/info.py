"""What `clay-explore model info` and the app's model box say about a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clay_explore.core.sensors import get_sensor, sensor_names
from clay_explore.model.mae import ClayModel


def count_parameters(model: ClayModel) -> dict[str, int]:
    """Parameter counts of the encoder, decoder and both."""
    enc = sum(p.numel() for p in model.encoder.parameters())
    dec = sum(p.numel() for p in model.decoder.parameters())
    return {"encoder": enc, "decoder": dec, "total": enc + dec}


def model_info(model: ClayModel, path: str | Path | None = None) -> dict[str, Any]:
    """Preset, dims, parameter counts, sha256, trained-or-not and the bands it can take."""
    from clay_explore.model.hub import file_sha256

    path = Path(path or model.source.get("path", ""))
    sha = model.source.get("sha256") or (file_sha256(path) if path.is_file() else None)
    model.source["sha256"] = sha
    return {
        "checkpoint": str(path) if path else None,
        "sha256": sha,
        "preset": model.preset,
        "config": model.config.to_dict(),
        "parameters": count_parameters(model),
        "trained": model.is_trained,
        "notice": None if model.is_trained else untrained_notice(model),
        "global_step": model.source.get("global_step"),
        "bands_supported": ("any band with a known central wavelength, in any order and subset"),
        "sensors": {name: get_sensor(name).band_names for name in sensor_names()},
        "chip_sizes": (
            f"any square chip whose side is a multiple of {model.config.patch_size} px (Clay v1.5 trained on 256)"
        ),
    }


def untrained_notice(model: ClayModel) -> str:
    """The honesty line every output from a non-v1.5 or untrained checkpoint carries."""
    return (
        f"UNTRAINED MODEL: this is a '{model.preset}' checkpoint that is not the trained Clay v1.5 release; "
        "embeddings, reconstructions and metrics from it say nothing about what Clay learned."
    )
