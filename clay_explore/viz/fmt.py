"""How numbers and chips read on screen: sensible precision everywhere, chip names people can follow.

Raw float32 values print as ``0.11999999731779099``; chip ids such as ``r001792_c000256`` mean
nothing to a stakeholder. Pages and figures format through here so every view reads the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: Significant digits shown for a plain number (similarity, loss, fraction).
SIGNIFICANT = 3
#: Decimals of the quantities with units of their own.
DECIMALS = {"psnr": 1, "db": 1, "ssim": 3, "sam": 1, "deg": 1, "np@k": 2, "seconds": 1, "s": 1, "percent": 0}


def num(value: Any, kind: str | None = None, digits: int = SIGNIFICANT) -> str:
    """``value`` to sensible precision: fixed decimals for known ``kind`` s, else ``digits`` significant."""
    if value is None:
        return "—"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if kind is not None and kind.lower() in DECIMALS:
        return f"{x:,.{DECIMALS[kind.lower()]}f}"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) < 1e-3 or abs(x) >= 1e6:
        return f"{x:.{digits}g}"
    return f"{x:,.{_decimals(x, digits)}f}"


def _decimals(x: float, digits: int) -> int:
    """Decimals that keep ``digits`` significant digits of ``x`` (at least 0)."""
    if x == 0:
        return digits - 1
    return max(digits - 1 - int(math.floor(math.log10(abs(x)))), 0)


def round_frame(df, digits: int = SIGNIFICANT):
    """A copy of a DataFrame with float columns rounded to ``digits`` significant digits (for tables, heatmaps)."""
    import numpy as np

    out = df.copy()
    for col in out.columns:
        if out[col].dtype.kind == "f":
            vals = out[col].to_numpy(dtype=np.float64)
            out[col] = [round(v, _decimals(v, digits)) if np.isfinite(v) else v for v in vals]
    return out


def chip_name(row: int, grid_row: int | None = None, grid_col: int | None = None, place: str | None = None) -> str:
    """A short readable chip name: 'Chip 12 · row 3, col 4' (grid position, 1-based) or 'Chip 12 · <place>'."""
    base = f"Chip {row + 1}"
    if place:
        return f"{base} · {place}"
    if grid_row is not None and grid_col is not None:
        return f"{base} · row {grid_row + 1}, col {grid_col + 1}"
    return base


def chip_names(table, chip_size: int) -> list[str]:
    """Readable names of every chip of a chip table, in row order (grid position from its pixel row/col).

    When the workspace holds several sources, the source number is added so names stay unique.
    """
    rows = table["row"].to_numpy() if "row" in table else None
    cols = table["col"].to_numpy() if "col" in table else None
    sources = table["source"].astype(str).tolist() if "source" in table else [""] * len(table)
    order = {s: i for i, s in enumerate(dict.fromkeys(sources))}
    out = []
    for k in range(len(table)):
        name = chip_name(
            k,
            int(rows[k]) // chip_size if rows is not None else None,
            int(cols[k]) // chip_size if cols is not None else None,
        )
        out.append(name + (f" (scene {order[sources[k]] + 1})" if len(order) > 1 else ""))
    return out


def short_names(names: Sequence[str], width: int = 24) -> list[str]:
    """Names cut to ``width`` characters with an ellipsis (captions that must not wrap mid-string)."""
    return [n if len(n) <= width else n[: width - 1] + "…" for n in names]


def imagery_name(manifest: dict[str, Any]) -> str:
    """What imagery a workspace holds, as a person would say it (the demo scene is Level-1C, whatever the
    sensor registry entry it is normalised with is called)."""
    source = manifest.get("source") or {}
    if source.get("kind") == "demo":
        return "Sentinel-2 Level-1C demo scene (Virginia's Eastern Shore)"
    return str(manifest.get("sensor", "unknown sensor"))
