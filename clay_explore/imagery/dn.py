"""Bring a file's stored values onto the registry's DN scale (the scale Clay's normalisation expects).

Two facts a file can carry change how its DN must be read:

- a per-band GDAL scale/offset (physical = DN * scale + offset) that differs from the registry's,
  e.g. Sentinel-2 L2A COGs of processing baseline >= 04.00 declare offset -0.1 (= -1000 DN);
- for Sentinel-2, the processing baseline (tags, or ``_Nxxyy_`` in the product/file name): from
  04.00 on, L2A (and L1C) DN carry a +1000 offset that Clay's statistics do not include.

:func:`dn_rescale` turns these into one linear map per band, ``registry_dn = a * file_dn + b``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clay_explore.core.sensors import Sensor

S2_SENSOR = "sentinel-2-l2a"
S2_OFFSET_DN = -1000.0  # added to DN of processing baseline >= 04.00
S2_OFFSET_BASELINE = 4.0
BASELINE_TAGS = ("PROCESSING_BASELINE", "s2:processing_baseline", "processing_baseline")
PRODUCT_TAGS = ("SOURCE_PRODUCT", "PRODUCT_ID", "PRODUCT_URI", "TILE_SOURCE", "s2:product_uri", "title")
_BASELINE_IN_NAME = re.compile(r"_N(\d\d)(\d\d)(?:_|\.|$)")
REL_TOL = 1e-6


def s2_baseline(tags: dict[str, str], path: str | Path | None = None) -> float | None:
    """Sentinel-2 processing baseline (e.g. 5.09) from tags or product/file names; None if unknown."""
    for key in BASELINE_TAGS:
        if tags.get(key):
            try:
                return float(tags[key])
            except ValueError:
                pass
    names = [tags.get(k, "") for k in PRODUCT_TAGS] + ([Path(path).name] if path else [])
    for text in names:
        m = _BASELINE_IN_NAME.search(text or "")
        if m:
            return float(f"{m[1]}.{m[2]}")
    return None


def _boa_offset_tag(tags: dict[str, str]) -> float | None:
    """A BOA_ADD_OFFSET / RADIO_ADD_OFFSET tag value (DN, e.g. -1000), when the file has one."""
    for key, value in tags.items():
        if key.upper().startswith(("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")):  # not GDAL's add_offset
            try:
                return float(value)
            except ValueError:
                continue
    return None


def dn_rescale(
    sensor: Sensor,
    scales: Sequence[float | None],
    offsets: Sequence[float | None],
    tags: dict[str, str],
    path: str | Path | None = None,
) -> tuple[list[tuple[float, float]], str]:
    """Per band ``(a, b)`` with registry_dn = a * file_dn + b, and a note saying why.

    ``scales``/``offsets`` are the file's per-band GDAL values (None or 1/0 = not declared).
    """
    declared = [(s if s is not None else 1.0, o if o is not None else 0.0) for s, o in zip(scales, offsets)]
    if any((s, o) != (1.0, 0.0) for s, o in declared):
        out = []
        for s, o in declared:
            if (s, o) == (1.0, 0.0):
                out.append((1.0, 0.0))
                continue
            a = 1.0 if math.isclose(s, sensor.scale, rel_tol=REL_TOL) else s / sensor.scale
            out.append((a, round((o - sensor.offset) / sensor.scale, 6)))
        if all(ab == (1.0, 0.0) for ab in out):
            return out, "file scale/offset match the registry"
        return out, "from the file's scale/offset"
    if sensor.name == S2_SENSOR:
        add = _boa_offset_tag(tags)
        if add is not None:
            return [(1.0, add)] * len(declared), f"ADD_OFFSET tag {add:g} DN"
        baseline = s2_baseline(tags, path)
        if baseline is not None and baseline >= S2_OFFSET_BASELINE:
            return [(1.0, S2_OFFSET_DN)] * len(declared), f"processing baseline {baseline:05.2f}: {S2_OFFSET_DN:g} DN"
        if baseline is not None:
            return [(1.0, 0.0)] * len(declared), f"processing baseline {baseline:05.2f}: no offset"
    return [(1.0, 0.0)] * len(declared), "values used as stored"


def zero_fill_is_nodata(sensor: Sensor, nodata_declared: bool) -> bool:
    """True for backscatter without a declared nodata: its swath fill is 0 in every band (-100 dB otherwise)."""
    return sensor.transform == "db" and not nodata_declared


def mask_zero_fill(data: np.ndarray) -> None:
    """Set pixels that are 0 in every band of [C, H, W] ``data`` to NaN, in place."""
    data[:, (data == 0).all(axis=0)] = np.nan
