"""Area-of-interest checks: a valid lon/lat box, not too large, in one UTM zone.

Every failure is an :class:`~clay_explore.core.errors.AreaError` whose message says what to change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from clay_explore.core.defaults import DEFAULT_MAX_KM
from clay_explore.core.errors import AreaError

UTM_ZONE_WIDTH_DEG = 6.0
EARTH_RADIUS_KM = 6371.0088
MAX_UTM_LAT = 84.0  # UTM is defined from 80 S to 84 N
MIN_UTM_LAT = -80.0
MAX_WRAPPED_WIDTH_DEG = 180.0  # WEST > EAST reads as an antimeridian crossing only when narrower than this


@dataclass(frozen=True)
class AOI:
    """A checked lon/lat box (west, south, east, north) and the UTM CRS it is projected to."""

    west: float
    south: float
    east: float
    north: float
    epsg: int

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return (self.west, self.south, self.east, self.north)


def utm_zone(lon: float) -> int:
    """UTM zone number (1..60) of a longitude in degrees."""
    lon = ((lon + 180.0) % 360.0) - 180.0
    return min(int((lon + 180.0) // UTM_ZONE_WIDTH_DEG) + 1, 60)


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone holding (lon, lat): 326zz north, 327zz south."""
    return (32600 if lat >= 0 else 32700) + utm_zone(lon)


def side_lengths_km(west: float, south: float, east: float, north: float) -> tuple[float, float]:
    """(width, height) of a lon/lat box in km (width measured at the latitude nearest the equator)."""
    lat_ref = 0.0 if south <= 0 <= north else min(abs(south), abs(north))
    km_per_deg = math.pi * EARTH_RADIUS_KM / 180.0
    return (east - west) * km_per_deg * math.cos(math.radians(lat_ref)), (north - south) * km_per_deg


def validate_bbox(
    bbox: Sequence[float],
    *,
    max_km: float = DEFAULT_MAX_KM,
    epsg: int | None = None,
) -> AOI:
    """Check a (west, south, east, north) box in degrees and pick its UTM zone.

    Raises AreaError when the box is malformed (WEST east of EAST: swapped), crosses the
    antimeridian (WEST > 0 > EAST and narrow once wrapped), is larger than
    ``max_km`` on a side, or spans two UTM zones (unless ``epsg`` forces one target CRS).
    """
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise AreaError(
            f"Invalid bbox {bbox!r}: give four numbers WEST SOUTH EAST NORTH in degrees, e.g. "
            "--bbox -75.70 37.60 -75.60 37.70."
        ) from err
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise AreaError(f"Invalid bbox {bbox!r}: every value must be a finite number of degrees.")
    if not (-180.0 <= west <= 180.0 and -180.0 <= east <= 180.0):
        raise AreaError(f"Invalid bbox {bbox!r}: longitudes must lie in [-180, 180] (WEST and EAST).")
    if not (-90.0 <= south <= 90.0 and -90.0 <= north <= 90.0):
        raise AreaError(
            f"Invalid bbox {bbox!r}: latitudes must lie in [-90, 90]. The order is WEST SOUTH EAST NORTH "
            "(longitude first)."
        )
    if west > east and west > 0.0 > east and east + 360.0 - west < MAX_WRAPPED_WIDTH_DEG:
        raise AreaError(
            f"The bbox {bbox!r} crosses the antimeridian (west {west} > east {east}). Split it into two "
            "areas, one on each side of 180 degrees, and fetch them into separate workspaces."
        )
    if west > east:
        also = f" (and SOUTH {south} is north of NORTH {north})" if south > north else ""
        raise AreaError(
            f"Invalid bbox {bbox!r}: WEST {west} lies east of EAST {east}{also}. Swap them: the order is "
            f"WEST SOUTH EAST NORTH, e.g. --bbox {east:g} {min(south, north):g} {west:g} {max(south, north):g}."
        )
    if west == east or south >= north:
        raise AreaError(f"Invalid bbox {bbox!r}: it has no area. Give WEST < EAST and SOUTH < NORTH.")
    width, height = side_lengths_km(west, south, east, north)
    if width > max_km or height > max_km:
        raise AreaError(
            f"The area is {width:.1f} x {height:.1f} km, larger than the {max_km:g} x {max_km:g} km cap. "
            "Draw a smaller area, or raise the cap (--max-area-km) if you have the time and disk for it."
        )
    if epsg is None:
        if north > MAX_UTM_LAT or south < MIN_UTM_LAT:
            raise AreaError(
                f"The bbox {bbox!r} reaches beyond UTM's latitude range (80 S to 84 N). Give a target CRS "
                "explicitly (--epsg, e.g. a polar stereographic code)."
            )
        z_west, z_east = utm_zone(west), utm_zone(east)
        if z_west != z_east:
            boundary = -180.0 + UTM_ZONE_WIDTH_DEG * z_west
            raise AreaError(
                f"The bbox {bbox!r} crosses the UTM zone boundary at longitude {boundary:g} "
                f"(zones {z_west} and {z_east}). Move it to one side of that line, split it into two "
                f"workspaces, or force one zone with --epsg {utm_epsg((west + east) / 2, (south + north) / 2)}."
            )
        epsg = utm_epsg((west + east) / 2, (south + north) / 2)
    return AOI(west, south, east, north, int(epsg))
