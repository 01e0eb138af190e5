"""Decoder reconstructions of a chip, from all its tokens or from one image vector.

Ways to feed Clay's frozen decoder:

- ``mae``: Clay at its trained operating point. Clay's MAE loss covers masked patches only, at a
  mask ratio of 0.75, so the decoder is run in several passes with complementary random masks
  (each pass shows 25 % of the patch tokens) and each patch's pixels are taken from the passes in
  which it was masked: the reconstruction Clay's training optimised, the reference a one-vector
  method is compared with. (The visible tokens come from an encoder that saw every patch; Clay's
  training encoder saw only the visible ones, so this is close to, not exactly, its regime.)
- ``all_tokens``: every real patch token visible. This is *outside* Clay's training regime (the
  decoder was never asked to reproduce visible patches) and is no bound on what a vector can do.
- ``cls_only``: the CLS token alone with every patch masked (100 % masking; the decoder sees its
  mask token + position encoding at each patch);
- a fitted method: image vector -> expander -> tokens.

Baselines that need no Clay at all (band mean, chip mean, thumbnail) live in ``baselines``.

Outputs are de-normalised to sensor units (DN; dB for Sentinel-1) and, for metrics, to physical
units (reflectance for optical sensors: DN * scale + offset). ``write_comparison`` draws the
side-by-side picture with the figures under each panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from clay_explore.core.errors import WorkspaceError
from clay_explore.core.rgb import stretch_limits, to_uint8
from clay_explore.core.sensors import Sensor, denormalize, to_model_units
from clay_explore.core.workspace import Workspace
from clay_explore.model.device import model_device, to_device
from clay_explore.model.mae import unpatchify
from clay_explore.research.baselines import (
    BAND_MEAN,
    CHIP_MEAN,
    THUMBNAIL,
    band_mean_image,
    chip_mean_image,
    thumbnail_image,
)
from clay_explore.research.inputs import chip_meta, waves_of
from clay_explore.research.metrics import image_metrics
from clay_explore.research.provenance import model_for_workspace, model_honesty

ALL_TOKENS = "all_tokens"
FULL = ALL_TOKENS  # the old name of the all-token reference, kept for imports
MAE = "mae"
CLS_ONLY = "cls_only"
ORIGINAL = "original"
REFERENCES = (MAE, ALL_TOKENS, CLS_ONLY)
#: Names older evaluation.json files used for a reference -> today's name.
LEGACY_NAMES = {"full": ALL_TOKENS}
REFERENCE_DESCRIPTIONS = {
    MAE: "Clay's decoder at its training operating point: 75 % of patches masked, 4 complementary passes, "
    "each patch from the passes where it was masked (the reference a one-vector method is compared with)",
    ALL_TOKENS: "Clay's decoder with every patch token visible: outside Clay's training regime (its loss covered "
    "masked patches only), not a bound",
    CLS_ONLY: "Clay's decoder from the CLS token with every patch masked (100 % masking)",
}
#: Clay v1.5's training mask ratio, and the seed of the reference's random masks.
MAE_MASK_RATIO = 0.75
MAE_MASK_SEED = 0
#: Data range used for PSNR/SSIM: reflectance spans 0..1; Sentinel-1 backscatter about 50 dB.
REFLECTANCE_RANGE = 1.0
DB_RANGE = 50.0


# ---------------------------------------------------------------------------- units
def data_range_for(sensor: Sensor) -> dict[str, Any]:
    """The explicit data range of the metrics and the unit it is in."""
    if sensor.transform == "db":
        return {"value": DB_RANGE, "units": "dB backscatter"}
    return {"value": REFLECTANCE_RANGE, "units": "reflectance (DN * scale + offset)"}


def to_physical(model_units: np.ndarray, sensor: Sensor) -> np.ndarray:
    """Sensor/model units -> physical units (reflectance; dB stays dB)."""
    return (np.asarray(model_units, np.float32) * sensor.scale + sensor.offset).astype(np.float32)


# ---------------------------------------------------------------------------- decoding
def decode_full(
    model: Any, cls: Tensor, patches: Tensor, time: Tensor, latlon: Tensor, gsd: Tensor, waves: Tensor
) -> Tensor:
    """All tokens visible (outside Clay's training regime): [CLS; patches] -> normalised pixels [B, L, C*P*P]."""
    tokens = torch.cat([cls[:, None, :], patches], dim=1).float()  # [B, 1+L, D]
    return model.decode(tokens, time, latlon, gsd, waves)


def decode_cls_only(
    model: Any, cls: Tensor, grid: int, time: Tensor, latlon: Tensor, gsd: Tensor, waves: Tensor
) -> Tensor:
    """Clay's one-vector baseline: CLS with every patch masked -> normalised pixels [B, L, C*P*P]."""
    return model.decode_from_cls(cls.float(), time, latlon, gsd, waves, grid=grid)


def mae_masks(rows: Sequence[int], n_patches: int, ratio: float = MAE_MASK_RATIO, seed: int = MAE_MASK_SEED) -> Tensor:
    """Complementary masks [B, passes, L] (True = masked): each chip's patches are shuffled (seeded by
    its row, so batching never changes them) and cut into ``passes`` = round(1 / (1 - ratio)) groups;
    pass j shows group j only. Every patch is visible in exactly one pass and masked in the others."""
    passes = max(2, int(round(1.0 / (1.0 - ratio))))
    out = torch.ones(len(rows), passes, n_patches, dtype=torch.bool)
    for i, row in enumerate(rows):
        order = np.random.default_rng([seed, int(row)]).permutation(n_patches)
        for j, group in enumerate(np.array_split(order, passes)):
            out[i, j, torch.from_numpy(group)] = False
    return out


def decode_mae(
    model: Any,
    cls: Tensor,
    patches: Tensor,
    time: Tensor,
    latlon: Tensor,
    gsd: Tensor,
    waves: Tensor,
    rows: Sequence[int],
    ratio: float = MAE_MASK_RATIO,
) -> Tensor:
    """Clay at its trained operating point -> normalised pixels [B, L, C*P*P].

    All passes of the batch run as one decoder call ([B * passes, 1+L, D]); each patch's output is
    the mean of its predictions from the passes in which it was masked.
    """
    b, n_patches, _ = patches.shape
    masks = mae_masks(rows, n_patches, ratio).to(patches.device)  # [B, S, L]
    passes = masks.shape[1]
    tokens = torch.cat([cls[:, None, :], patches], dim=1).float()  # [B, 1+L, D]
    rep = lambda t: t.repeat_interleave(passes, dim=0)  # noqa: E731  [B*S, ...] in chip-major order
    out = model.decode(rep(tokens), rep(time), rep(latlon), gsd, waves, mask=masks.reshape(b * passes, n_patches))
    out = out.reshape(b, passes, n_patches, -1)  # [B, S, L, C*P*P]
    weight = masks.to(out.device, out.dtype)[..., None]  # [B, S, L, 1]
    return (out * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1.0)


@dataclass
class ChipReconstructions:
    """Reconstructions of some chips: name -> [n, C, H, W] in model units, + original and rows.

    Model units are the sensor's stored units after its transform (DN; dB for Sentinel-1), the
    units the decoder's output is de-normalised to, so every panel, stretch and residual compares
    like with like.
    """

    rows: np.ndarray
    images: dict[str, np.ndarray]  # includes ORIGINAL (model units, NaN = nodata)
    vectors: dict[str, np.ndarray]  # image vectors of each fitted method (and CLS)
    numbers: dict[str, int] = field(default_factory=dict)  # numbers per chip of each thumbnail


def baseline_images(
    original: np.ndarray, band_means: np.ndarray | None, thumbnails: dict[str, int] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The no-Clay baselines of chips [n, C, H, W] (model units): band mean, chip mean, thumbnails.

    ``thumbnails`` maps a panel name to its budget in numbers; returns the images and the numbers
    each thumbnail actually used (C x k x k).
    """
    out: dict[str, np.ndarray] = {}
    used: dict[str, int] = {}
    if band_means is not None:
        out[BAND_MEAN] = band_mean_image(band_means, original.shape)
    out[CHIP_MEAN] = chip_mean_image(original, band_means)
    for name, budget in (thumbnails or {}).items():
        out[name], used[name] = thumbnail_image(original, budget, band_means)
    return out, used


def reconstruct_batch(
    ws: Workspace,
    model: Any,
    batch: Any,
    methods: Sequence[Any],
    waves: Tensor,
    references: Sequence[str] = REFERENCES,
    *,
    band_means: np.ndarray | None = None,
    thumbnails: dict[str, int] | None = None,
    baselines: bool = True,
) -> ChipReconstructions:
    """Decode one batch (see :func:`clay_explore.research.fit.load_batch`) every way; model units out.

    Each fitted method is keyed by ``fm.key`` (its name, or name/seedK for extra seeds). With
    ``baselines`` the no-Clay baselines are added (band mean only when ``band_means`` is given).
    """
    sensor, bands, patch = ws.sensor, ws.bands, int(model.config.patch_size)
    dev = model_device(model)  # the batch and the fitted methods go where Clay runs
    batch, waves = to_device(batch, dev), waves.to(dev)
    for fm in methods:
        fm.aggregator.to(dev), fm.expander.to(dev)
    grid = int(round(batch.patches.shape[1] ** 0.5))
    meta = (batch.time, batch.latlon, batch.gsd, waves)
    outputs: dict[str, Tensor] = {}
    vectors: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        if MAE in references:
            outputs[MAE] = decode_mae(model, batch.cls, batch.patches, *meta, rows=batch.rows)
        if ALL_TOKENS in references:
            outputs[ALL_TOKENS] = decode_full(model, batch.cls, batch.patches, *meta)
        if CLS_ONLY in references:
            outputs[CLS_ONLY] = decode_cls_only(model, batch.cls, grid, *meta)
        for fm in methods:
            key = getattr(fm, "key", fm.name)
            vec = fm.aggregator(batch.patches, batch.cls, batch.meta)  # [B, D']
            vectors[key] = vec.float().cpu().numpy()
            tokens = fm.expander(vec)  # [B, 1+L, D]
            outputs[key] = model.decode(tokens, *meta)
    images = {
        name: denormalize(unpatchify(px.float(), len(bands), patch).cpu().numpy(), sensor, bands, axis=1)
        for name, px in outputs.items()
    }
    images[ORIGINAL] = to_model_units(ws.read_chips(batch.rows), sensor)  # linear -> dB for Sentinel-1
    numbers: dict[str, int] = {}
    if baselines:
        extra, numbers = baseline_images(images[ORIGINAL], band_means, thumbnails)
        images.update(extra)
    return ChipReconstructions(batch.rows, images, vectors, numbers)


def chip_metrics(recon: ChipReconstructions, sensor: Sensor) -> dict[str, list[dict[str, Any]]]:
    """Per chip and per reconstruction: PSNR/SSIM per band and spectral angle, in physical units."""
    dr = data_range_for(sensor)["value"]
    ref = to_physical(recon.images[ORIGINAL], sensor)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, img in recon.images.items():
        if name == ORIGINAL:
            continue
        pred = to_physical(img, sensor)
        structure = not name.startswith(f"{THUMBNAIL}@")  # rate-distortion points: PSNR only
        out[name] = [image_metrics(ref[i], pred[i], dr, structure=structure) for i in range(len(ref))]
    return out


# ---------------------------------------------------------------------------- one chip, as a picture
def chip_row(ws: Workspace, chip: str | int) -> int:
    """Row index of a chip given its chip_id (or its row number)."""
    table = ws.chip_table()
    ids = [str(c) for c in table["chip_id"]]
    if str(chip) in ids:
        return ids.index(str(chip))
    if isinstance(chip, int) or str(chip).isdigit():
        row = int(chip)
        if 0 <= row < len(ids):
            return row
    preview = ", ".join(ids[:5]) + (" …" if len(ids) > 5 else "")
    raise WorkspaceError(f"No chip '{chip}' in {ws.root}. Chip ids look like: {preview} (see chips.parquet).")


def baseline_inputs(ws: Workspace, dim: int) -> tuple[np.ndarray | None, dict[str, int]]:
    """(training chips' band means, {thumbnail: budget}) as the last evaluation recorded them, so a chip's
    baseline panels match the evaluation; before any evaluation: no band mean, a thumbnail of ``dim`` numbers."""
    from clay_explore.core.workspace import EVALUATION

    base = (ws.read_json(EVALUATION) or {}).get("baselines") or {}
    means = (base.get(BAND_MEAN) or {}).get("band_means")
    budget = (base.get(THUMBNAIL) or {}).get("out_dim") or dim
    return (np.asarray(means, np.float32) if means else None), {THUMBNAIL: int(budget)}


def reconstruct_chip(
    workspace: str | Path | Workspace,
    chip: str | int,
    *,
    checkpoint: str | Path | None = None,
    model: Any = None,
    methods: Sequence[str] | None = None,
    device: Any = None,
) -> dict[str, Any]:
    """Every reconstruction of one chip: images (model units), metrics per panel and the honesty note.

    ``device``: where Clay's decoder runs ("auto", "cpu", "cuda[:N]", "mps"; None = $CLAY_EXPLORE_DEVICE).
    """
    from clay_explore.research.fit import fitted_methods, load_batch, load_method

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    model = model_for_workspace(ws, checkpoint, model, device=device)
    row = chip_row(ws, chip)
    names = fitted_methods(ws) if methods is None else list(methods)
    fitted = [load_method(ws, m) for m in names]
    batch = load_batch(ws, np.array([row]), chip_meta(ws), int(model.config.patch_size), with_pixels=False)
    band_means, thumbnails = baseline_inputs(ws, int(model.config.dim))
    recon = reconstruct_batch(
        ws, model, batch, fitted, torch.from_numpy(waves_of(ws)), band_means=band_means, thumbnails=thumbnails
    )
    metrics = {name: rows[0] for name, rows in chip_metrics(recon, ws.sensor).items()}
    chip_id = str(ws.chip_table()["chip_id"].iloc[row])
    return {
        "chip_id": chip_id,
        "row": row,
        "images": {name: img[0] for name, img in recon.images.items()},
        "metrics": metrics,
        "data_range": data_range_for(ws.sensor),
        **model_honesty(model),
    }


def display_bands(sensor: Sensor, bands: Sequence[str]) -> list[int]:
    """Indices of the bands shown as R, G, B (true colour when present, else the first bands)."""
    rgb = sensor.rgb_names(bands)
    if rgb:
        return [list(bands).index(b) for b in rgb]
    return [0, 1, 2] if len(bands) >= 3 else [0, 0, 0]


def to_rgb8(images: dict[str, np.ndarray], band_idx: Sequence[int]) -> dict[str, np.ndarray]:
    """uint8 RGB [H, W, 3] per panel, all stretched with the original's 2-98 % percentiles.

    The app's renderer (``core.rgb.to_uint8``): nodata is the same dark grey as in the app.
    """
    idx = list(band_idx)
    limits = stretch_limits(images[ORIGINAL][idx])
    return {name: to_uint8(img[idx], limits) for name, img in images.items()}


def write_comparison(
    workspace: str | Path | Workspace,
    chip: str | int,
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    model: Any = None,
    device: Any = None,
) -> dict[str, Any]:
    """Write the side-by-side PNG (references, each fitted method, baselines; see ``comparison_png``).

    Returns the metrics per panel, the output path, the chip's split and the honesty note (also on the image).
    """
    from clay_explore.core.workspace import EVALUATION
    from clay_explore.research.comparison_png import draw_comparison, panel_rows
    from clay_explore.research.evaluation_summary import workspace_chip_splits
    from clay_explore.research.fit import fitted_methods, method_config

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    methods = fitted_methods(ws)
    result = reconstruct_chip(ws, chip, checkpoint=checkpoint, model=model, methods=methods, device=device)
    params = {m: ((method_config(ws, m) or {}).get("n_params") or {}).get("total") for m in methods}
    split = workspace_chip_splits(ws, ws.read_json(EVALUATION))[result["row"]]
    rgb = to_rgb8(result["images"], display_bands(ws.sensor, ws.bands))
    canvas = draw_comparison(
        rgb,
        result["metrics"],
        chip_id=result["chip_id"],
        split=split,
        data_range=result["data_range"],
        note=result["note"],
        untrained=result["untrained"],
        params=params,
    )
    names = list(dict.fromkeys(p for _, panels in panel_rows(list(rgb)) for p in panels))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return {
        "out": str(out),
        "chip_id": result["chip_id"],
        "panels": names,
        "split": split,
        "metrics": result["metrics"],
        "data_range": result["data_range"],
        "untrained": result["untrained"],
        "note": result["note"],
    }
