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
from collections.abc import Sequence
from dataclasses import dataclass

from clay_explore.core.errors import ImageryError
from clay_explore.core.sensors import Sensor, get_sensor, sensor_names

SKIP = ("-", "_", "skip", "none")

#: Standard file layouts per sensor and band count (file order; None = not a Clay band).
NATIVE_LAYOUTS: dict[str, dict[int, tuple[str | None, ...]]] = {
    "sentinel-2-l2a": {
        # L1C: B01..B12 with B8A after B08 and B10 present
        13: (
            None,
            "blue",
            "green",
            "red",
            "rededge1",
            "rededge2",
            "rededge3",
            "nir",
            "nir08",
            None,
            None,
            "swir16",
            "swir22",
        ),
        # L2A: the same without B10
        12: (
            None,
            "blue",
            "green",
            "red",
            "rededge1",
            "rededge2",
            "rededge3",
            "nir",
            "nir08",
            None,
            "swir16",
            "swir22",
        ),
    },
    "landsat-c2l2-sr": {
        7: (None, "blue", "green", "red", "nir08", "swir16", "swir22"),  # SR_B1..SR_B7
        6: ("blue", "green", "red", "nir08", "swir16", "swir22"),  # SR_B2..SR_B7
    },
    "planetscope-sr": {
        4: ("blue", "green", "red", "nir"),  # PSScene 4-band analytic SR (B, G, R, NIR)
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

    names: tuple[str, ...]  # canonical sensor band names, registry order
    indexes: tuple[int, ...]  # 1-based file band index of each name
    how: str  # how the mapping was found (shown to the user)


def band_name(sensor: Sensor, label: str | None) -> str | None:
    """The registry name of the band a label (name or alias) names, None when it names none."""
    band = sensor.find(label)
    return band.name if band else None


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
            if token and (found := band_name(sensor, token) or band_name(sensor, _zero_pad(token))):
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
    if file_bands is not None:
        file_bands = [b.strip() for b in file_bands]
        if len(file_bands) != count:
            raise ImageryError(
                f"--file-bands names {len(file_bands)} bands but the file has {count}. Name every file band in "
                "file order, using '-' for bands to skip."
            )
        per_file = [None if b.lower() in SKIP else sensor.band(b).name for b in file_bands]
        return _finish(sensor, per_file, "bands given", select)
    labels: Sequence[str | None] = descriptions if descriptions and len(descriptions) == count else ()
    mapped = _from_labels(sensor, labels) if labels else None
    if mapped is None and band_order_tag:
        tags = [t for t in re.split(r"[\s,;]+", band_order_tag) if t]
        if len(tags) == count:
            labels, mapped = tags, _from_labels(sensor, tags)
    layouts = NATIVE_LAYOUTS.get(sensor.name, {})
    if mapped is not None:
        if layouts and count > max(layouts):  # e.g. a 13-band Sentinel-2 stack ingested as Landsat
            raise ImageryError(
                f"The file has {count} bands, more than any {sensor.name} product ({max(layouts)} at most), so its "
                f"labels ({_preview(labels)}) cannot be trusted as {sensor.name} bands"
                f"{_looks_like(sensor, labels)}. Check --sensor, or name each file band with --file-bands."
            )
        other = _names_all(sensor, labels) if None in mapped else None
        if other:  # e.g. B02..B12 read as Landsat's B2..B7 would silently shift every band
            raise ImageryError(
                f"Only {sum(m is not None for m in mapped)} of the file's {count} band labels "
                f"({_preview(labels)}) name {sensor.name} bands, but every one names a {other} band. "
                f"Use --sensor {other}, or name each file band with --file-bands if it really is {sensor.name}."
            )
        return _finish(sensor, mapped, "from the file's band descriptions", select)
    layout = layouts.get(count)
    if layout is not None:
        return _finish(sensor, layout, f"standard {count}-band {sensor.name} layout", select)
    if count == len(sensor.bands):
        return _finish(sensor, sensor.band_names, f"{sensor.name} registry order", select)
    labelled = [d for d in descriptions if d] if descriptions else []
    what = (
        f"its band labels ({_preview(labelled)}) name no {sensor.name} band{_looks_like(sensor, labelled)}"
        if labelled
        else "the file's bands are not labelled"
    )
    example = (
        ",".join(f"<band{i}>" for i in range(1, count + 1))
        if count < len(sensor.bands)
        else ",".join(sensor.band_names + ["-"] * (count - len(sensor.bands)))
    )
    raise ImageryError(
        f"The file has {count} bands but sensor {sensor.name} has {len(sensor.bands)} "
        f"({', '.join(sensor.band_names)}) and {what}. Check --sensor, or name each file band in file order "
        f"with --file-bands, using the names above and '-' to skip a band (e.g. --file-bands {example})."
    )


def _preview(labels: Sequence[str | None], n: int = 4) -> str:
    shown = [str(x) for x in labels[:n]]
    return ", ".join(shown) + (", ..." if len(labels) > n else "")


def _other_matches(sensor: Sensor, labels: Sequence[str | None]) -> dict[str, list[str | None]]:
    """For every other registry sensor, the band each label names (None where it names none)."""
    return {
        name: _from_labels(get_sensor(name), labels) or [None] * len(labels)
        for name in sensor_names()
        if name != sensor.name
    }


def _names_all(sensor: Sensor, labels: Sequence[str | None]) -> str | None:
    """Another registry sensor that names every one of ``labels`` (at least one), or None."""
    return next((name for name, m in _other_matches(sensor, labels).items() if m and None not in m), None)


def _looks_like(sensor: Sensor, labels: Sequence[str | None]) -> str:
    """', which look like <other sensor> bands' when another registry sensor names more of them."""
    hits = {name: sum(x is not None for x in m) for name, m in _other_matches(sensor, labels).items()}
    own = sum(x is not None for x in (_from_labels(sensor, labels) or []))
    best = max(hits, key=hits.get, default=None)
    if best is None or hits[best] <= own:
        return ""
    return f", which look like {best} bands (--sensor {best})"
