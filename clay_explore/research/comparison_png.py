"""The side-by-side reconstruction PNG of one chip: references, fitted methods and baselines, row by row.

Each row starts with the original, so every panel sits next to what it should look like:
Clay's decoder with nothing fitted (mae, all tokens visible, CLS only), one vector per chip (the
fitted methods), then the baselines without Clay (band mean, chip mean, thumbnail). The figures
under each panel are this chip's own; the header says which split the chip is in, and flags a
training chip (its figures flatter the methods).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from clay_explore.research.evaluation_summary import BASELINES, REFERENCES, split_words

ORIGINAL = "original"
#: Display size of each panel (pixels), the text band under it, the header and each row's heading.
PANEL_PX = 256
TEXT_PX = 64
MARGIN_PX = 8
HEADER_PX = 62
HEADING_PX = 20
LINE_PX = 18
FONT_SIZE = 13
BLACK, RED, GREY = (0, 0, 0), (180, 0, 0), (90, 90, 90)
#: Panel titles of the rows that are not fitted methods (all_tokens is never called a bound).
PANEL_TITLES = {
    ORIGINAL: "original",
    "mae": "mae: Clay, 75 % masked passes",
    "all_tokens": "all tokens visible (outside training)",
    "cls_only": "CLS only (100 % masked)",
    "band_mean": "band mean (no Clay)",
    "chip_mean": "chip's band mean (no Clay)",
    "thumbnail": "thumbnail (no Clay)",
}
ROW_HEADINGS = (
    "Clay's decoder, nothing fitted (references)",
    "One vector per chip (fitted methods)",
    "Baselines without Clay",
)


def panel_rows(names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(heading, panels) per row, each starting with the original; empty rows dropped, extra seeds left out."""
    names = [n for n in names if n != ORIGINAL and "/" not in n]
    refs = [n for n in REFERENCES if n in names]
    base = [n for n in names if n.split("@")[0] in BASELINES]
    methods = [n for n in names if n not in refs and n not in base]
    return [(head, [ORIGINAL, *panels]) for head, panels in zip(ROW_HEADINGS, (refs, methods, base)) if panels]


def _mean(x: Any) -> float:
    return float(np.nanmean(np.asarray(x, dtype=np.float64))) if x is not None else float("nan")


def panel_text(name: str, m: Mapping[str, Any] | None, n_params: int | None = None) -> list[str]:
    """The lines under a panel: its title, then this chip's PSNR / SSIM and spectral angle."""
    lines = [PANEL_TITLES.get(name, name)]
    if m is not None:
        psnr = _mean(m.get("psnr_mean", m.get("psnr")))
        ssim = _mean(m.get("ssim_mean", m.get("ssim")))
        lines.append(f"this chip: PSNR {psnr:.2f} dB  SSIM {ssim:.3f}")
        sam = "SAM n/a (1 band)" if m.get("sam_deg") is None else f"SAM {m['sam_deg']:.2f} deg"
        lines.append(sam + (f"  params {n_params:,}" if n_params else ""))
    return lines


def draw_comparison(
    rgb: Mapping[str, np.ndarray],
    metrics: Mapping[str, Any],
    *,
    chip_id: str,
    split: str | None,
    data_range: Mapping[str, Any],
    note: str,
    untrained: bool,
    params: Mapping[str, int] | None = None,
):
    """The PNG as a PIL image from uint8 [H, W, 3] panels ``rgb`` (name -> picture, 'original' included)."""
    from PIL import Image, ImageDraw, ImageFont

    rows = panel_rows(list(rgb))
    n_cols = max(len(panels) for _, panels in rows) if rows else 1
    row_px = HEADING_PX + PANEL_PX + TEXT_PX
    width = MARGIN_PX + n_cols * (PANEL_PX + MARGIN_PX)
    height = HEADER_PX + len(rows) * (row_px + MARGIN_PX)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=FONT_SIZE)
    header = (
        f"chip {chip_id} ({split_words(split)}): figures under each panel are for this chip only, "
        f"in {data_range.get('units', '')}, range {data_range.get('value', '')}"
    )
    draw.text((MARGIN_PX, 4), header, fill=RED if split == "train" else BLACK, font=font)
    draw.text(
        (MARGIN_PX, 4 + LINE_PX),
        "the evaluation's test-chip means: `clay-explore evaluate --stored`",
        fill=GREY,
        font=font,
    )
    draw.text(
        (MARGIN_PX, 4 + 2 * LINE_PX), note.upper() if untrained else note, fill=RED if untrained else BLACK, font=font
    )
    for r, (heading, panels) in enumerate(rows):
        y = HEADER_PX + r * (row_px + MARGIN_PX)
        draw.text((MARGIN_PX, y + 2), heading, fill=GREY, font=font)
        for i, name in enumerate(panels):
            x = MARGIN_PX + i * (PANEL_PX + MARGIN_PX)
            tile = Image.fromarray(rgb[name]).resize((PANEL_PX, PANEL_PX), Image.NEAREST)
            canvas.paste(tile, (x, y + HEADING_PX))
            text = panel_text(name, metrics.get(name) if name != ORIGINAL else None, (params or {}).get(name))
            for j, line in enumerate(text):
                draw.text((x, y + HEADING_PX + PANEL_PX + 4 + LINE_PX * j), line, fill=BLACK, font=font)
    return canvas
