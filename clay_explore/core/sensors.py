"""Sensor registry (bands, wavelengths, normalisation) and Clay's metadata encodings.

The registry is data (``data/sensors.yaml``); this module only reads it and answers questions
about it. ``encode_time`` / ``encode_latlon`` follow docs/model.md (Inputs) exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache

import numpy as np
import yaml

from clay_explore import DATA_DIR
from clay_explore.core.errors import SensorError

SENSORS_FILE = DATA_DIR / "sensors.yaml"
WEEKS_PER_YEAR = 52  # Clay divides the ISO week by 52, not 53
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class Band:
    """One band of a sensor, in the units Clay was trained on."""

    name: str
    mean: float
    std: float
    wavelength: float  # micrometres
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sensor:
    """A platform Clay knows: its bands in Clay's order, gsd and how DN map to physical units."""

    name: str
    bands: tuple[Band, ...]
    gsd: float
    scale: float = 1.0
    offset: float = 0.0
    rgb: tuple[str, ...] = ()
    description: str = ""
    units: str = ""
    transform: str | None = None
    verified: bool = True

    @property
    def band_names(self) -> list[str]:
        return [b.name for b in self.bands]

    def band(self, name: str) -> Band:
        """The band called ``name`` (or one of its aliases)."""
        found = self.find(name)
        if found is not None:
            return found
        raise SensorError(f"Sensor '{self.name}' has no band '{name}'. Its bands are: {', '.join(self.band_names)}.")

    def find(self, name: str | None) -> Band | None:
        """The band called ``name`` (or one of its aliases), None when there is none: for guessing from labels."""
        key = (name or "").lower()
        return next(
            (b for b in self.bands if key and (b.name.lower() == key or key in (a.lower() for a in b.aliases))), None
        )

    def resolve_bands(self, names: Iterable[str] | None = None) -> list[Band]:
        """Bands for ``names`` (canonical names or aliases) in the given order; all when None."""
        if names is None:
            return list(self.bands)
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        if not names:
            raise SensorError(f"No bands given for sensor '{self.name}'.")
        out = [self.band(n) for n in names]
        dupes = {b.name for b in out if sum(o.name == b.name for o in out) > 1}
        if dupes:
            raise SensorError(f"Band(s) {sorted(dupes)} appear twice in the band list.")
        return out

    def stats(self, names: Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, std, wavelength_um) arrays, float32, for the bands in order."""
        bands = self.resolve_bands(names)
        return (
            np.array([b.mean for b in bands], dtype=np.float32),
            np.array([b.std for b in bands], dtype=np.float32),
            np.array([b.wavelength for b in bands], dtype=np.float32),
        )

    def rgb_names(self, names: Sequence[str] | None = None) -> list[str] | None:
        """Canonical names of the true-colour bands if all are among ``names``; else None."""
        available = {b.name for b in self.resolve_bands(names)}
        return list(self.rgb) if self.rgb and set(self.rgb) <= available else None


@lru_cache(maxsize=1)
def _registry() -> dict[str, Sensor]:
    raw = yaml.safe_load(SENSORS_FILE.read_text())
    out: dict[str, Sensor] = {}
    for name, spec in raw.items():
        bands = tuple(
            Band(
                name=b,
                mean=float(v["mean"]),
                std=float(v["std"]),
                wavelength=float(v["wavelength"]),
                aliases=tuple(v.get("aliases", ())),
            )
            for b, v in spec["bands"].items()
        )
        out[name] = Sensor(
            name=name,
            bands=bands,
            gsd=float(spec["gsd"]),
            scale=float(spec.get("scale", 1.0)),
            offset=float(spec.get("offset", 0.0)),
            rgb=tuple(spec.get("rgb", ())),
            description=spec.get("description", ""),
            units=spec.get("units", ""),
            transform=spec.get("transform"),
            verified=bool(spec.get("verified", True)),
        )
    return out


def sensor_names() -> list[str]:
    """Names of every sensor in the registry."""
    return list(_registry())


def get_sensor(name: str) -> Sensor:
    """The registry entry for ``name``; a clear error lists the known ones."""
    reg = _registry()
    if name not in reg:
        raise SensorError(f"Unknown sensor '{name}'. Known sensors: {', '.join(reg)}.")
    return reg[name]


def to_model_units(raw: np.ndarray, sensor: Sensor) -> np.ndarray:
    """Apply the sensor's pre-normalisation transform (Sentinel-1: linear power -> dB)."""
    if sensor.transform == "db":
        raw = np.where(raw <= 0, 1e-10, raw)
        return (10.0 * np.log10(raw)).astype(np.float32)
    return raw.astype(np.float32, copy=False)


def normalize(raw: np.ndarray, sensor: Sensor, bands: Sequence[str] | None = None, axis: int = -3) -> np.ndarray:
    """Per-band z-scores (raw - mean) / std, the pixels Clay consumes. Bands lie on ``axis``."""
    mean, std, _ = sensor.stats(bands)
    shape = [1] * raw.ndim
    shape[axis] = -1
    x = to_model_units(np.asarray(raw), sensor)
    return ((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)


def denormalize(z: np.ndarray, sensor: Sensor, bands: Sequence[str] | None = None, axis: int = -3) -> np.ndarray:
    """Inverse of :func:`normalize`, back to the sensor's stored units (dB for Sentinel-1)."""
    mean, std, _ = sensor.stats(bands)
    shape = [1] * z.ndim
    shape[axis] = -1
    return (np.asarray(z, dtype=np.float32) * std.reshape(shape) + mean.reshape(shape)).astype(np.float32)


def encode_time(when: datetime | date | str | None) -> np.ndarray:
    """Clay's 4 time numbers [sin w, cos w, sin h, cos h]; zeros when the time is unknown.

    w = ISO week * 2*pi/52 and h = integer UTC hour * 2*pi/24 (minutes ignored). A date without a
    time counts as hour 0, as in the inference tutorial.
    """
    if when is None:
        return np.zeros(4, dtype=np.float32)
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if isinstance(when, datetime):
        if when.tzinfo is not None:
            when = when.astimezone(UTC)
        hour = when.hour
    else:
        hour = 0
    try:
        import pandas as pd  # NaT and numpy datetimes arrive through pandas tables

        if pd.isna(when):
            return np.zeros(4, dtype=np.float32)
    except (ImportError, TypeError, ValueError):
        pass
    week = when.isocalendar()[1]
    w = week * 2 * math.pi / WEEKS_PER_YEAR
    h = hour * 2 * math.pi / HOURS_PER_DAY
    return np.array([math.sin(w), math.cos(w), math.sin(h), math.cos(h)], dtype=np.float32)


def encode_latlon(lat: float | None, lon: float | None) -> np.ndarray:
    """Clay's 4 place numbers [sin lat, cos lat, sin lon, cos lon] (radians); zeros when unknown."""
    if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
        return np.zeros(4, dtype=np.float32)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 360.0):
        raise SensorError(f"Latitude/longitude out of range: ({lat}, {lon}). Give degrees, latitude first.")
    phi, lam = math.radians(lat), math.radians(lon)
    return np.array([math.sin(phi), math.cos(phi), math.sin(lam), math.cos(lam)], dtype=np.float32)
