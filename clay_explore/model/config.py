"""Architecture presets of Clay v1.5 and how a checkpoint's hyper-parameters pick one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from clay_explore.core.errors import CheckpointError, ModelInputError

PATCH_SIZE = 8  # Clay v1.5 config: patch_size 8
WAVE_DIM = 128  # width of the wavelength code and of the weight-generator transformer
NUM_LATENT_TOKENS = 128
WAVE_HEADS = 4
WAVE_FF_DIM = 2048
META_DIM = 8  # 4 time + 4 lat/lon numbers added onto the last channels of each patch token
KERNEL_SCALE = 0.02  # generated kernels are multiplied by this at use (encoder and decoder)


@dataclass(frozen=True)
class ClayConfig:
    """Widths and depths of one Clay encoder + decoder."""

    dim: int
    depth: int
    heads: int
    dim_head: int
    mlp_ratio: int
    decoder_dim: int
    decoder_depth: int
    decoder_heads: int
    decoder_dim_head: int
    decoder_mlp_ratio: int
    patch_size: int = PATCH_SIZE

    def __post_init__(self) -> None:
        for name, width in (("dim", self.dim), ("decoder_dim", self.decoder_dim)):
            if (width - META_DIM) % 4 or (width - META_DIM) // 4 < 2:
                raise ModelInputError(
                    f"{name}={width} does not fit Clay's position encoding: ({name} - 8) must be a multiple "
                    "of 4 and at least 8."
                )
        if self.patch_size < 1:
            raise ModelInputError(f"patch_size must be positive, not {self.patch_size}.")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _preset(d, dp, h, dh, m, dd, ddp, dhh, ddh, dm) -> ClayConfig:
    return ClayConfig(d, dp, h, dh, m, dd, ddp, dhh, ddh, dm)


#: Presets of Clay's model.py, (dim, depth, heads, dim_head, mlp_ratio | decoder ...). large = v1.5.
PRESETS: dict[str, ClayConfig] = {
    "tiny": _preset(192, 6, 4, 48, 2, 96, 3, 2, 48, 2),
    "small": _preset(384, 6, 6, 64, 2, 192, 4, 4, 64, 2),
    "base": _preset(768, 12, 12, 64, 4, 512, 4, 4, 64, 4),
    "large": _preset(1024, 24, 16, 64, 4, 512, 4, 4, 64, 4),
}

_DIM_KEYS = tuple(f.name for f in fields(ClayConfig) if f.name != "patch_size")


def config_from_hparams(hparams: Mapping[str, Any]) -> tuple[str, ClayConfig]:
    """(preset name, config) from a Lightning checkpoint's ``hyper_parameters``.

    A named ``model_size`` picks the preset; ``custom`` (or explicit dims) reads the dims. Unknown
    keys (``_class_path``, ``lr`` as a string, ...) are ignored.
    """
    size = str(hparams.get("model_size", "")).lower()
    patch = int(hparams.get("patch_size", PATCH_SIZE))
    explicit = {k: hparams[k] for k in _DIM_KEYS if k in hparams}
    if size in PRESETS and not explicit:
        base = PRESETS[size]
        return size, ClayConfig(**{**base.to_dict(), "patch_size": patch})
    if size in PRESETS and explicit:
        merged = {**PRESETS[size].to_dict(), **explicit, "patch_size": patch}
        return size, ClayConfig(**{k: int(v) for k, v in merged.items()})
    missing = [k for k in _DIM_KEYS if k not in explicit]
    if missing:
        raise CheckpointError(
            f"hyper_parameters name model_size={size or None!r}, which is no preset "
            f"({', '.join(PRESETS)}), and lack the explicit dims {missing}."
        )
    return "custom", ClayConfig(**{k: int(explicit[k]) for k in _DIM_KEYS}, patch_size=patch)
