"""Which band of a file is which band of a sensor.

A file's bands are matched to the sensor registry in this order:

1. names given by the user (one per file band, in file order; ``-`` or ``skip`` drops a band);
2. the file's band descriptions or its BAND_ORDER tag, when they name registry bands or aliases
   (``"B02 blue"``, ``"SR_B4"``); bands that name nothing in the registry are dropped;
3. a standard product layout with that band count (``NATIVE_LAYOUTS``: e.g. Landsat SR_B1..SR_B7,
   Sentinel-2 B01..B12), so a stack in band-number order is not mistaken for Clay's order;
4. the registry order, when the file has exactly as many bands as the sensor.

Anything else is a band-count mismatch with a message naming the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from clay_explore.errors import ImageryError, SensorError
from clay_explore.sensors import Sensor

SKIP = ("-", "_", "skip", "none")

#: Standard file layouts per sensor and band count (file order; None = not a Clay band).
NATIVE_LAYOUTS: dict[str, dict[int, tuple[str | None, ...]]] = {
    "sentinel-2-l2a": {
        # L1C: B01..B12 with B8A after B08 and B10 present
        13: (None, "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", None, None,
             "swir16", "swir22"),
        # L2A: the same without B10
        12: (None, "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", None,
             "swir16", "swir22"),
    },
    "landsat-c2l2-sr": {
        7: (None, "blue", "green", "red", "nir08", "swir16", "swir22"),  # SR_B1..SR_B7
        6: ("blue", "green", "red", "nir08", "swir16", "swir22"),        # SR_B2..SR_B7
    },
    "landsat-c2l1": {
        # B1..B11 (coastal, B2-B7, pan, cirrus, two thermal)
        11: (None, "blue", "green", "red", "nir08", "swir16", "swir22", None, None, None, None),
        7: (None, "blue", "green", "red", "nir08", "swir16", "swir22"),
        6: ("blue", "green", "red", "nir08", "swir16", "swir22"),
    },
}


@dataclass(frozen=True)
class BandMap:
    """File band indexes (1-based, rasterio style) for each chosen sensor band, in registry order."""

    names: tuple[str, ...]      # canonical sensor band names, registry order
    indexes: tuple[int, ...]    # 1-based file band index of each name
    how: str                    # how the mapping was found (shown to the user)


def _lookup(sensor: Sensor, token: str) -> str | None:
    try:
        return sensor.band(token).name
    except SensorError:
        return None


def _zero_pad(token: str) -> str:
    """'B2' -> 'B02', 'SR_B4' unchanged: band numbers are written both ways."""
    m = re.fullmatch(r"([Bb])(\d)", token)
    return f"{m[1]}0{m[2]}" if m else token


def _from_labels(sensor: Sensor, labels: Sequence[str | None]) -> list[str | None] | None:
    """Map descriptions like 'B02 blue' / 'SR_B4' to band names; None when they say nothing."""
    out: list[str | None] = []
    for label in labels:
        found = None
        for token in re.split(r"[\s,;:/|]+", label or ""):
            if token and (found := _lookup(sensor, token) or _lookup(sensor, _zero_pad(token))):
                break
        out.append(found)
    if not any(out):
        return None
    return out


def _finish(sensor: Sensor, per_file: Sequence[str | None], how: str, want: Sequence[str] | None) -> BandMap:
    seen: dict[str, int] = {}
    for i, name in enumerate(per_file, start=1):
        if name is None:
            continue
        if name in seen:
            raise ImageryError(
                f"File bands {seen[name]} and {i} both map to '{name}' ({how}). Give each file band its "
                "own name with --file-bands."
            )
        seen[name] = i
    if want is not None:
        wanted = [b.name for b in sensor.resolve_bands(want)]
        missing = [w for w in wanted if w not in seen]
        if missing:
            raise ImageryError(
                f"The file has no band for {missing} ({how}: {list(per_file)}). Choose other bands or "
                "name the file's bands with --file-bands."
            )
        seen = {w: seen[w] for w in wanted}
    order = [b.name for b in sensor.bands if b.name in seen]
    if not order:
        raise ImageryError(
            f"None of the file's bands is a {sensor.name} band ({how}). Its bands are "
            f"{', '.join(sensor.band_names)}; name the file's bands with --file-bands."
        )
    return BandMap(tuple(order), tuple(seen[n] for n in order), how)


def resolve_band_map(
    sensor: Sensor,
    count: int,
    *,
    file_bands: Sequence[str] | None = None,
    descriptions: Sequence[str | None] = (),
    band_order_tag: str | None = None,
    select: Sequence[str] | None = None,
) -> BandMap:
    """Work out which file band holds which sensor band (see the module docstring for the order).

    ``file_bands`` names every file band in file order (``-`` skips one); ``select`` keeps only
    those sensor bands. Raises ImageryError on a band-count mismatch, naming the fix.
    """
    if isinstance(file_bands, str):  # "red,green,blue", as typed on the command line
        file_bands = file_bands.split(",")
    if isinstance(select, str):
        select = select.split(",")
    if file_bands is not None:
        file_bands = [b.strip() for b in file_bands]
        if len(file_bands) != count:
            raise ImageryError(
                f"--file-bands names {len(file_bands)} bands but the file has {count}. Name every file band in "
                "file order, using '-' for bands to skip."
            )
        per_file = [None if b.lower() in SKIP else sensor.band(b).name for b in file_bands]
        return _finish(sensor, per_file, "bands given", select)
    mapped = _from_labels(sensor, descriptions) if descriptions and len(descriptions) == count else None
    if mapped is None and band_order_tag:
        tags = [t for t in re.split(r"[\s,;]+", band_order_tag) if t]
        if len(tags) == count:
            mapped = _from_labels(sensor, tags)
    if mapped is not None:
        return _finish(sensor, mapped, "from the file's band descriptions", select)
    layout = NATIVE_LAYOUTS.get(sensor.name, {}).get(count)
    if layout is not None:
        return _finish(sensor, layout, f"standard {count}-band {sensor.name} layout", select)
    if count == len(sensor.bands):
        return _finish(sensor, sensor.band_names, f"{sensor.name} registry order", select)
    raise ImageryError(
        f"The file has {count} bands but sensor {sensor.name} has {len(sensor.bands)} "
        f"({', '.join(sensor.band_names)}) and the file's bands are not labelled. Check --sensor, or name "
        f"each file band in file order with --file-bands (e.g. --file-bands {','.join(sensor.band_names[:count] + ['-'] * max(0, count - len(sensor.bands)))})."
    )
