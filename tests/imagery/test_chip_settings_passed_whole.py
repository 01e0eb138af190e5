"""The imagery entry points take how to cut chips as one ChipSettings, checked against core.bounds on construction."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from clay_explore.core.bounds import BoundsError
from clay_explore.core.defaults import DEFAULT_CHIP_SIZE, DEFAULT_MAX_CHIP_CLOUD, DEFAULT_MIN_VALID
from clay_explore.imagery.chipping import ChipSettings

LOOSE = {"chip_size", "stride", "min_valid", "max_chip_cloud"}


def _entry_points():
    from clay_explore.imagery.demo import ingest_demo
    from clay_explore.imagery.geotiff import ingest_geotiff, ingest_geotiffs
    from clay_explore.imagery.stac import fetch_stac
    from clay_explore.imagery.tiles import fetch_area
    from clay_explore.imagery.upload import ingest_upload

    return fetch_stac, fetch_area, ingest_geotiff, ingest_geotiffs, ingest_demo, ingest_upload


@pytest.mark.parametrize("fn", _entry_points(), ids=lambda f: f.__name__)
def test_entry_point_takes_one_chips_argument(fn):
    params = inspect.signature(fn).parameters
    assert "chips" in params and not LOOSE & set(params)
    assert params["chips"].default == ChipSettings()


def test_defaults_come_from_core_defaults():
    s = ChipSettings()
    assert (s.chip_size, s.stride, s.min_valid, s.max_chip_cloud) == (
        DEFAULT_CHIP_SIZE,
        DEFAULT_CHIP_SIZE,
        DEFAULT_MIN_VALID,
        DEFAULT_MAX_CHIP_CLOUD,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.chip_size = 64  # type: ignore[misc]  # a shared default must not change


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"chip_size": 100_000}, "at most 1,024"),
        ({"chip_size": 0}, "at least 8"),
        ({"stride": 0}, "at least 1"),
        ({"stride": 10**6}, "at most 100,000"),
        ({"min_valid": 1.5}, "at most 1"),
        ({"max_chip_cloud": -0.1}, "at least 0"),
    ],
)
def test_bounds_are_checked_on_construction(kwargs, needle):
    with pytest.raises(BoundsError, match=needle):
        ChipSettings(**kwargs)
