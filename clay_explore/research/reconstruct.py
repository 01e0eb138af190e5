"""Decoder reconstructions of a chip, from all its tokens or from one image vector.

Three ways to feed Clay's frozen decoder:

- ``full``: every real patch token (the upper bound: what the decoder can do with everything);
- ``cls_only``: the CLS token alone with every patch masked (Clay's own one-vector baseline; the
  decoder sees its mask token + position encoding at each patch);
- a fitted method: image vector -> expander -> tokens.

Outputs are de-normalised to sensor units (DN; dB for Sentinel-1) and, for metrics, to physical
units (reflectance for optical sensors: DN * scale + offset). ``write_comparison`` draws the
side-by-side picture with the figures under each panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from clay_explore.research.inputs import chip_meta, waves_of
from clay_explore.research.provenance import model_for_workspace, model_honesty
from clay_explore.core.errors import WorkspaceError
from clay_explore.research.metrics import image_metrics
from clay_explore.model.mae import unpatchify
from clay_explore.core.sensors import Sensor, denormalize, to_model_units
from clay_explore.core.workspace import Workspace

FULL = "full"
CLS_ONLY = "cls_only"
ORIGINAL = "original"
REFERENCES = (FULL, CLS_ONLY)
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
    """Upper bound: decoder on [CLS; all patch tokens] -> normalised pixels [B, L, C*P*P]."""
    tokens = torch.cat([cls[:, None, :], patches], dim=1).float()  # [B, 1+L, D]
    return model.decode(tokens, time, latlon, gsd, waves)


def decode_cls_only(
    model: Any, cls: Tensor, grid: int, time: Tensor, latlon: Tensor, gsd: Tensor, waves: Tensor
) -> Tensor:
    """Clay's one-vector baseline: CLS with every patch masked -> normalised pixels [B, L, C*P*P]."""
    return model.decode_from_cls(cls.float(), time, latlon, gsd, waves, grid=grid)


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


def reconstruct_batch(
    ws: Workspace, model: Any, batch: Any, methods: Sequence[Any], waves: Tensor, references: Sequence[str] = REFERENCES
) -> ChipReconstructions:
    """Decode one batch (see :func:`clay_explore.research.fit.load_batch`) every way; model units out."""
    sensor, bands, patch = ws.sensor, ws.bands, int(model.config.patch_size)
    grid = int(round(batch.patches.shape[1] ** 0.5))
    outputs: dict[str, Tensor] = {}
    vectors: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        if FULL in references:
            outputs[FULL] = decode_full(model, batch.cls, batch.patches, batch.time, batch.latlon, batch.gsd, waves)
        if CLS_ONLY in references:
            outputs[CLS_ONLY] = decode_cls_only(model, batch.cls, grid, batch.time, batch.latlon, batch.gsd, waves)
        for fm in methods:
            vec = fm.aggregator(batch.patches, batch.cls, batch.meta)  # [B, D']
            vectors[fm.name] = vec.float().numpy()
            tokens = fm.expander(vec)  # [B, 1+L, D]
            outputs[fm.name] = model.decode(tokens, batch.time, batch.latlon, batch.gsd, waves)
    images = {
        name: denormalize(unpatchify(px.float(), len(bands), patch).numpy(), sensor, bands, axis=1)
        for name, px in outputs.items()
    }
    images[ORIGINAL] = to_model_units(ws.read_chips(batch.rows), sensor)  # linear -> dB for Sentinel-1
    return ChipReconstructions(batch.rows, images, vectors)


def chip_metrics(recon: ChipReconstructions, sensor: Sensor) -> dict[str, list[dict[str, Any]]]:
    """Per chip and per reconstruction: PSNR/SSIM per band and spectral angle, in physical units."""
    dr = data_range_for(sensor)["value"]
    ref = to_physical(recon.images[ORIGINAL], sensor)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, img in recon.images.items():
        if name == ORIGINAL:
            continue
        pred = to_physical(img, sensor)
        out[name] = [image_metrics(ref[i], pred[i], dr) for i in range(len(ref))]
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


def reconstruct_chip(
    workspace: str | Path | Workspace,
    chip: str | int,
    *,
    checkpoint: str | Path | None = None,
    model: Any = None,
    methods: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every reconstruction of one chip: images (model units), metrics per panel and the honesty note."""
    from clay_explore.research.fit import fitted_methods, load_batch, load_method

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    model = model_for_workspace(ws, checkpoint, model)
    row = chip_row(ws, chip)
    names = fitted_methods(ws) if methods is None else list(methods)
    fitted = [load_method(ws, m) for m in names]
    batch = load_batch(ws, np.array([row]), chip_meta(ws), int(model.config.patch_size), with_pixels=False)
    recon = reconstruct_batch(ws, model, batch, fitted, torch.from_numpy(waves_of(ws)))
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


#: Display size of each panel (pixels) and the text band under it.
PANEL_PX = 256
TEXT_PX = 64
MARGIN_PX = 8
HEADER_PX = 44
STRETCH_PERCENTILES = (2.0, 98.0)
PANEL_TITLES = {ORIGINAL: "original", FULL: "all tokens (upper bound)", CLS_ONLY: "CLS only (Clay baseline)"}


def display_bands(sensor: Sensor, bands: Sequence[str]) -> list[int]:
    """Indices of the bands shown as R, G, B (true colour when present, else the first bands)."""
    rgb = sensor.rgb_names(bands)
    if rgb:
        return [list(bands).index(b) for b in rgb]
    return [0, 1, 2] if len(bands) >= 3 else [0, 0, 0]


def to_rgb8(images: dict[str, np.ndarray], band_idx: Sequence[int]) -> dict[str, np.ndarray]:
    """uint8 RGB [H, W, 3] per panel, all stretched with the original's 2-98 % percentiles."""
    ref = images[ORIGINAL][list(band_idx)]
    lo = np.array([np.nanpercentile(b, STRETCH_PERCENTILES[0]) if np.isfinite(b).any() else 0.0 for b in ref])
    hi = np.array([np.nanpercentile(b, STRETCH_PERCENTILES[1]) if np.isfinite(b).any() else 1.0 for b in ref])
    span = np.where(hi > lo, hi - lo, 1.0)
    out = {}
    for name, img in images.items():
        x = (img[list(band_idx)] - lo[:, None, None]) / span[:, None, None]
        x = np.nan_to_num(np.clip(x, 0.0, 1.0), nan=0.0)
        out[name] = (np.moveaxis(x, 0, -1) * 255).round().astype(np.uint8)
    return out


def _panel_text(name: str, m: dict[str, Any] | None, n_params: int | None) -> list[str]:
    lines = [PANEL_TITLES.get(name, name)]
    if m is not None:
        lines.append(f"PSNR {m['psnr_mean']:.2f} dB  SSIM {m['ssim_mean']:.3f}")
        sam = "SAM n/a (1 band)" if m["sam_deg"] is None else f"SAM {m['sam_deg']:.2f} deg"
        lines.append(sam + (f"  params {n_params:,}" if n_params else ""))
    return lines


def write_comparison(
    workspace: str | Path | Workspace,
    chip: str | int,
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    model: Any = None,
) -> dict[str, Any]:
    """Write the side-by-side PNG (original, all tokens, CLS only, each fitted method) with figures.

    Returns the metrics per panel, the output path and the honesty note (also printed on the image).
    """
    from PIL import Image, ImageDraw, ImageFont

    from clay_explore.research.fit import fitted_methods, method_config

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    methods = fitted_methods(ws)
    result = reconstruct_chip(ws, chip, checkpoint=checkpoint, model=model, methods=methods)
    names = [ORIGINAL, FULL, CLS_ONLY] + methods
    params = {m: method_config(ws, m)["n_params"]["total"] for m in methods}
    rgb = to_rgb8(result["images"], display_bands(ws.sensor, ws.bands))
    width = MARGIN_PX + len(names) * (PANEL_PX + MARGIN_PX)
    height = HEADER_PX + PANEL_PX + TEXT_PX + MARGIN_PX
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    header = (
        f"chip {result['chip_id']}: metrics in {result['data_range']['units']}, range {result['data_range']['value']}"
    )
    draw.text((MARGIN_PX, 4), header, fill=(0, 0, 0), font=font)
    note = result["note"].upper() if result["untrained"] else result["note"]
    draw.text((MARGIN_PX, 22), note, fill=(180, 0, 0) if result["untrained"] else (0, 0, 0), font=font)
    for i, name in enumerate(names):
        x = MARGIN_PX + i * (PANEL_PX + MARGIN_PX)
        tile = Image.fromarray(rgb[name]).resize((PANEL_PX, PANEL_PX), Image.NEAREST)
        canvas.paste(tile, (x, HEADER_PX))
        for j, line in enumerate(_panel_text(name, result["metrics"].get(name), params.get(name))):
            draw.text((x, HEADER_PX + PANEL_PX + 4 + 18 * j), line, fill=(0, 0, 0), font=font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return {
        "out": str(out),
        "chip_id": result["chip_id"],
        "panels": names,
        "metrics": result["metrics"],
        "data_range": result["data_range"],
        "untrained": result["untrained"],
        "note": result["note"],
    }
