"""Spatially blocked train / val / test splits: neighbours stay together, overlaps never straddle."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from clay_explore.core.errors import WorkspaceError
from clay_explore.research.splits import blocked_split, overlap_pairs


def _grid(rows: int, cols: int, step: float = 1.0, size: float = 1.0, x0: float = 0.0) -> gpd.GeoDataFrame:
    geoms = [
        box(x0 + c * step, -r * step - size, x0 + c * step + size, -r * step) for r in range(rows) for c in range(cols)
    ]
    return gpd.GeoDataFrame(pd.DataFrame({"i": range(len(geoms))}), geometry=geoms, crs="EPSG:4326")


def _parts(split):
    return [set(split.rows(s).tolist()) for s in ("train", "val", "test", "excluded")]


def test_split_is_about_60_20_20_disjoint_and_seeded():
    table = _grid(8, 8)
    split = blocked_split(table, split_seed=1)
    train, val, test, excluded = _parts(split)
    assert not (train & val or train & test or val & test) and train | val | test | excluded == set(range(64))
    assert abs(len(train) - 38) <= 8 and abs(len(val) - 13) <= 6 and abs(len(test) - 13) <= 6
    assert _parts(blocked_split(table, split_seed=1)) == [train, val, test, excluded]
    assert _parts(blocked_split(table, split_seed=2)) != [train, val, test, excluded]
    rec = split.record()
    assert rec["blocked"] is True and rec["split_seed"] == 1 and rec["test"] == len(test)


def test_blocks_keep_neighbours_together():
    split = blocked_split(_grid(8, 8), split_seed=0)
    assert split.block_chips > 1
    side = split.block_chips
    which = {r: s for s in ("train", "val", "test") for r in split.rows(s).tolist()}
    for r in range(64):  # chips in the same block (same cell of block_chips x block_chips) share a split
        row, col = divmod(r, 8)
        mate = (row // side * side) * 8 + col // side * side
        assert which[r] == which[mate]


def test_overlapping_chips_never_straddle_two_splits():
    table = _grid(12, 12, step=0.5)  # stride half the chip: every chip overlaps its neighbours
    split = blocked_split(table, split_seed=0)
    which = {r: s for s in ("train", "val", "test") for r in split.rows(s).tolist()}
    pairs = overlap_pairs(list(table.geometry))
    assert pairs
    for i, j in pairs:
        if i in which and j in which:
            assert which[i] == which[j]
    assert len(split.test) > 0 and len(split.excluded) > 0 and "buffer" in split.notes[0]


def test_several_source_files_and_tiny_workspaces():
    two_files = pd.concat([_grid(3, 3), _grid(3, 3, x0=50.0)], ignore_index=True)
    split = blocked_split(gpd.GeoDataFrame(two_files, geometry="geometry"), split_seed=0)
    assert len(split.train) and len(split.val) and len(split.test)
    same_place = gpd.GeoDataFrame(pd.concat([_grid(2, 2)] * 2, ignore_index=True), geometry="geometry")
    split = blocked_split(same_place)  # two dates of one place: a chip and its twin stay together
    which = {r: s for s in ("train", "val", "test") for r in split.rows(s).tolist()}
    assert all(which[r] == which[r + 4] for r in range(4) if r in which and r + 4 in which)
    for n in (2, 3, 5):
        s = blocked_split(_grid(1, n, step=2.0))
        assert len(s.train) >= 1 and len(s.val) >= 1 and (len(s.test) >= 1 or n == 2)
    assert "no test chips" in blocked_split(_grid(1, 2, step=2.0)).notes[-1]
    with pytest.raises(WorkspaceError, match="at least 2 chips"):
        blocked_split(_grid(1, 1))
    points = pd.DataFrame({"lat": np.linspace(45, 46, 7), "lon": np.full(7, 7.0)})  # no footprints
    assert len(blocked_split(points).test) >= 1
