"""Every numeric option has limits, checked by name before anything is allocated, with the limit in the message."""

from __future__ import annotations

import pytest

from clay_explore.core.bounds import BOUNDS, MAX_CHIP_SIZE, MAX_WINDOWS, BoundsError, check_bounds
from clay_explore.core.errors import ClayExploreError
from clay_explore.imagery.chipping import ChipSettings


@pytest.mark.parametrize(
    "name, value, needle",
    [
        ("chip_size", 100_000, "at most 1,024"),
        ("chip_size", 0, "at least 8"),
        ("stride", 0, "at least 1"),
        ("batch_size", 10**9, "at most 4,096"),
        ("epochs", 0, "at least 1"),
        ("epochs", 10**7, "at most 10,000"),
        ("seed", -1, "at least 0"),
        ("seeds", 1000, "at most 100"),
        ("k", 0, "at least 1"),
        ("max_area_km", 0, "above 0"),
        ("max_area_km", 1e9, "at most 1,000"),
        ("min_valid", 1.5, "at most 1"),
        ("lr", 0.0, "above 0"),
        ("timeout", float("inf"), "finite"),
        ("batch_size", 2.5, "whole number"),
        ("epochs", True, "whole number"),
    ],
)
def test_out_of_range_names_the_limit(name, value, needle):
    with pytest.raises(BoundsError) as err:
        check_bounds({name: value})
    assert needle in str(err.value) and isinstance(err.value, ClayExploreError)


def test_in_range_defaults_and_auto_pass():
    check_bounds({"chip_size": 256, "stride": None, "batch_size": "auto", "epochs": 10, "seed": 0, "other": -5})
    assert BOUNDS["chip_size"].high == MAX_CHIP_SIZE


def test_window_count_is_checked_before_the_grid_is_built():
    from clay_explore.imagery.chipping import chip_grid

    with pytest.raises(BoundsError, match=f"{MAX_WINDOWS:,}"):
        chip_grid(100_000, 100_000, 8, 1)
    assert len(chip_grid(64, 64, 32, 32)) == 4


def test_library_stages_check_before_touching_the_workspace(tmp_path):
    from clay_explore.imagery.demo import ingest_demo
    from clay_explore.research.embed import embed_workspace

    with pytest.raises(BoundsError, match="at most 1,024"):
        ingest_demo(tmp_path / "a", chips=ChipSettings(100_000))
    with pytest.raises(BoundsError, match="at least 1"):
        embed_workspace(tmp_path / "b", batch_size=0)
    with pytest.raises(BoundsError, match="at most 100,000"):
        ingest_demo(tmp_path / "c", chips=ChipSettings(stride=10**6))
    assert not any(tmp_path.iterdir())  # nothing was created


def test_umap_parameters_have_upper_limits():
    from clay_explore.research.projection import UmapParams

    for bad, needle in (
        ({"max_points": 10**9}, "at most 5,000,000"),
        ({"n_neighbors": 10**6}, "at most 500"),
        ({"seed": -1}, "at least 0"),
        ({"pca_components": 10**6}, "at most 4,096"),
    ):
        with pytest.raises(BoundsError, match=needle):
            UmapParams(**bad).validate()
    UmapParams(seed=None).validate()
