"""The limits of every numeric option, checked by name before a stage allocates anything.

A stage function decorated with :func:`clay_explore.core.lock.writes_workspace` has its numeric
arguments checked here first (before the lock, before a workspace folder exists), so the CLI and
the app get the same clear error with the limit in it. Values that are not numbers (``None`` for
"default", ``"auto"`` for an automatic batch size) are left to the stage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clay_explore.core.errors import ClayExploreError

#: Largest chip side: 1024 px is 16,384 Clay tokens per chip (Clay was trained on 256 px chips).
MAX_CHIP_SIZE = 1024
#: Smallest chip side: one Clay patch is 8 px; a chip needs at least one patch.
MIN_CHIP_SIZE = 8
#: Largest stride between chip origins, pixels (a larger one skips most of any scene).
MAX_STRIDE = 100_000
#: Chips per forward pass / per training step.
MAX_BATCH_SIZE = 4096
MAX_EPOCHS = 10_000
#: Repeated fits with different seeds.
MAX_SEEDS = 100
#: numpy's random generators take seeds in [0, 2**32).
MAX_SEED = 2**32 - 1
MAX_K = 1000
#: Area cap per side, kilometres (the fetched mosaic grows with its square).
MAX_AREA_KM = 1000.0
MAX_TIMEOUT_S = 3600.0
MAX_RETRIES = 20
MAX_WORKERS = 1024
MAX_OUT_DIM = 65_536
MAX_LR = 10.0


class BoundsError(ClayExploreError, ValueError):
    """A numeric option outside its limits."""


@dataclass(frozen=True)
class Bound:
    """Inclusive limits of one option; ``what`` names it for the user, ``integer`` asks for a whole number."""

    what: str
    low: float
    high: float
    integer: bool = True
    low_open: bool = False  # True: the value must be strictly above ``low``

    def check(self, value: Any) -> None:
        if value is None or isinstance(value, str) and not _is_number(value):
            return  # default / "auto": the stage decides
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise BoundsError(f"{self.what} must be a number, not {value!r}.") from None
        if isinstance(value, bool) or not math.isfinite(v) or (self.integer and v != int(v)):
            kind = "a whole number" if self.integer else "a finite number"
            raise BoundsError(f"{self.what} must be {kind} between {self._range()}, not {value!r}.")
        too_low = v <= self.low if self.low_open else v < self.low
        if too_low or v > self.high:
            raise BoundsError(f"{self.what} {_fmt(value)} is out of range: it must be {self._range()}.")

    def _range(self) -> str:
        low = f"above {_fmt(self.low)}" if self.low_open else f"at least {_fmt(self.low)}"
        return f"{low} and at most {_fmt(self.high)}"


def _fmt(v: Any) -> str:
    return f"{int(v):,}" if isinstance(v, (int, float)) and float(v) == int(v) else f"{v:g}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: Every numeric keyword a stage function takes, by parameter name.
BOUNDS: dict[str, Bound] = {
    "chip_size": Bound("Chip size (px)", MIN_CHIP_SIZE, MAX_CHIP_SIZE),
    "stride": Bound("Stride (px between chip origins)", 1, MAX_STRIDE),
    "min_valid": Bound("Minimum valid share of a chip", 0.0, 1.0, integer=False),
    "max_chip_cloud": Bound("Maximum cloudy share of a chip", 0.0, 1.0, integer=False),
    "max_cloud": Bound("Scene cloud cover limit (%)", 0.0, 100.0, integer=False),
    "max_area_km": Bound("Area side limit (km)", 0.0, MAX_AREA_KM, integer=False, low_open=True),
    "batch_size": Bound("Batch size (chips per step)", 1, MAX_BATCH_SIZE),
    "epochs": Bound("Epochs", 1, MAX_EPOCHS),
    "seed": Bound("Seed", 0, MAX_SEED),
    "split_seed": Bound("Split seed", 0, MAX_SEED),
    "seeds": Bound("Number of seeds", 1, MAX_SEEDS),
    "k": Bound("Neighbours k", 1, MAX_K),
    "lr": Bound("Learning rate", 0.0, MAX_LR, integer=False, low_open=True),
    "timeout": Bound("Network timeout (s)", 0.0, MAX_TIMEOUT_S, integer=False, low_open=True),
    "retries": Bound("Network retries", 0, MAX_RETRIES),
    "workers": Bound("Workers", 1, MAX_WORKERS),
    "out_dim": Bound("Output dimension", 1, MAX_OUT_DIM),
    "tile_km": Bound("Tile side (km)", 0.0, MAX_AREA_KM, integer=False, low_open=True),
}

#: research.projection.UmapParams (checked by its ``validate``): neighbours, PCA width and points cost
#: memory and time that grow with them.
MAX_UMAP_NEIGHBORS = 500
MAX_PCA_COMPONENTS = 4096
MAX_UMAP_POINTS = 5_000_000
UMAP_BOUNDS: dict[str, Bound] = {
    "n_neighbors": Bound("UMAP neighbours", 2, MAX_UMAP_NEIGHBORS),
    "min_dist": Bound("UMAP minimum distance", 0.0, 1.0, integer=False),
    "pca_components": Bound("PCA components", 0, MAX_PCA_COMPONENTS),
    "max_points": Bound("Points projected", 10, MAX_UMAP_POINTS),
    "seed": Bound("UMAP seed", 0, MAX_SEED),
}


def check_bounds(values: Mapping[str, Any], bounds: Mapping[str, Bound] = BOUNDS) -> None:
    """Raise BoundsError for the first value (by name) outside its bound; unknown names are skipped."""
    for name, value in values.items():
        bound = bounds.get(name)
        if bound is not None:
            bound.check(value)


def check_chip_size_bound(chip_size: Any) -> None:
    """The chip-size limit alone (for code paths that do not go through a stage decorator)."""
    BOUNDS["chip_size"].check(chip_size)


#: Chip windows of one source (each costs a progress-log entry and a footprint).
MAX_WINDOWS = 1_000_000


def check_window_count(n: int) -> None:
    """A stride so small (or a scene so large) that it would cut more than MAX_WINDOWS windows is refused."""
    if n > MAX_WINDOWS:
        raise BoundsError(
            f"These settings cut {n:,} chip windows, more than the limit of {MAX_WINDOWS:,}. "
            "Use a larger stride (default: the chip size) or a smaller area."
        )
