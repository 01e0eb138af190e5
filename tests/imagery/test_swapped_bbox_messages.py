"""A bbox given in the wrong order is called swapped (with a valid example to paste), not an antimeridian crossing."""

from __future__ import annotations

import pytest

from clay_explore.core.errors import AreaError
from clay_explore.imagery.aoi import validate_bbox


@pytest.mark.parametrize("bbox", [[13.73, 48.22, 13.71, 48.21], [10.0, 0.0, -10.0, 1.0], [-10.0, 0.0, -20.0, 1.0]])
def test_swapped_bbox_is_not_called_an_antimeridian_crossing(bbox):
    with pytest.raises(AreaError) as err:
        validate_bbox(bbox)
    msg = str(err.value)
    assert "antimeridian" not in msg
    assert "Swap" in msg and "WEST SOUTH EAST NORTH" in msg


def test_swapped_bbox_example_is_a_valid_bbox():
    with pytest.raises(AreaError) as err:
        validate_bbox([13.73, 48.22, 13.71, 48.21])
    example = str(err.value).split("--bbox ")[1].rstrip(".").split()
    assert validate_bbox([float(v) for v in example]).bbox == (13.71, 48.21, 13.73, 48.22)


def test_antimeridian_crossing_still_reported():
    with pytest.raises(AreaError, match="antimeridian.*Split"):
        validate_bbox([179.9, -17.0, -179.9, -16.9])
    with pytest.raises(AreaError, match="antimeridian"):
        validate_bbox([170.0, -17.0, -170.0, -16.9])
