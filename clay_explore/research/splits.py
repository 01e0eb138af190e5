"""Train / validation / test split of a workspace's chips, spatially blocked.

Neighbouring chips look alike, and chips cut with a stride below the chip size share pixels, so a
split by chip would let the test set see its own pixels during training. Chips are therefore
grouped into square blocks of neighbouring chips (by footprint centre, a few chip widths a side)
and whole blocks go to train, val or test (about 60 / 20 / 20 by chip count, shuffled by
``split_seed``). Any chip that still overlaps a chip of another split (an overlapping neighbour
across a block edge) is left out of both fitting and scoring (a buffer), so overlapping chips never
sit in two splits: test keeps all its chips, then val, then train gives up the overlapping ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clay_explore.core.defaults import DEFAULT_SPLIT_SEED
from clay_explore.core.errors import WorkspaceError

SPLITS = ("train", "val", "test")
#: Default share of chips per split (train, val, test).
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
#: Block sides tried, in chips, largest first; the largest giving MIN_BLOCKS blocks is used.
BLOCK_SIDES = (4, 3, 2, 1)
#: Fewest blocks wanted so every split gets at least two of them.
MIN_BLOCKS = 10
#: Two chips overlap when they share more than this share of a chip's area (reprojected UTM
#: footprints of edge-to-edge chips touch and may overlap by a sliver; that is not shared pixels).
OVERLAP_SHARE = 0.02
#: Split precedence when two chips of different splits overlap: the later one keeps its chip.
PRECEDENCE = {"train": 0, "val": 1, "test": 2}


@dataclass
class Split:
    """Row indices (sorted) of each split, the chips left out as a buffer, and how it was made."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    excluded: np.ndarray
    split_seed: int
    block_chips: int
    n_blocks: int
    notes: list[str] = field(default_factory=list)

    def rows(self, name: str) -> np.ndarray:
        return {"train": self.train, "val": self.val, "test": self.test, "excluded": self.excluded}[name]

    def record(self) -> dict[str, Any]:
        """The contract's ``split`` entry (counts) plus the rows and how the blocks were made."""
        return {
            "train": int(len(self.train)),
            "val": int(len(self.val)),
            "test": int(len(self.test)),
            "excluded": int(len(self.excluded)),
            "blocked": True,
            "split_seed": int(self.split_seed),
            "block_chips": int(self.block_chips),
            "n_blocks": int(self.n_blocks),
            "rows": {k: self.rows(k).tolist() for k in (*SPLITS, "excluded")},
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Split:
        rows = rec["rows"]
        return cls(
            *(np.asarray(rows.get(k, []), dtype=np.int64) for k in (*SPLITS, "excluded")),
            split_seed=int(rec.get("split_seed", 0)),
            block_chips=int(rec.get("block_chips", 1)),
            n_blocks=int(rec.get("n_blocks", 0)),
        )


# ---------------------------------------------------------------------------- footprints
def footprints(table: Any) -> tuple[np.ndarray, np.ndarray, list[Any] | None]:
    """(centres [N, 2] in degrees, chip sides [N, 2], polygons or None) from the chip table.

    Uses the footprint geometry when present, else the lat/lon columns (points), else the row order
    (a chip per unit along a line), so any table gives neighbours.
    """
    n = len(table)
    geoms = list(table.geometry) if hasattr(table, "geometry") and "geometry" in getattr(table, "columns", []) else None
    if geoms and all(g is not None and not g.is_empty for g in geoms):
        b = np.array([g.bounds for g in geoms], dtype=np.float64)  # [N, 4] minx miny maxx maxy
        centres = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)
        sides = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
        return centres, sides, geoms
    if "lat" in table and "lon" in table:
        lat = np.array([float(v) if v is not None else np.nan for v in table["lat"]], dtype=np.float64)
        lon = np.array([float(v) if v is not None else np.nan for v in table["lon"]], dtype=np.float64)
        if np.isfinite(lat).all() and np.isfinite(lon).all():
            return np.stack([lon, lat], axis=1), np.zeros((n, 2)), None
    return np.stack([np.arange(n, dtype=np.float64), np.zeros(n)], axis=1), np.ones((n, 2)), None


def overlap_pairs(geoms: Sequence[Any] | None) -> list[tuple[int, int]]:
    """Pairs (i < j) of chips whose footprints share more than OVERLAP_SHARE of a chip's area."""
    if not geoms:
        return []
    from shapely.strtree import STRtree

    tree = STRtree(list(geoms))
    left, right = tree.query(list(geoms), predicate="intersects")
    out = []
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i >= j:
            continue
        area = min(geoms[i].area, geoms[j].area)
        if area > 0 and geoms[i].intersection(geoms[j]).area > OVERLAP_SHARE * area:
            out.append((i, j))
    return out


# ---------------------------------------------------------------------------- blocks
def block_ids(centres: np.ndarray, sides: np.ndarray, block_chips: int) -> np.ndarray:
    """Block index of every chip: square cells of ``block_chips`` chip sides, by footprint centre."""
    side = np.median(sides, axis=0) if len(sides) else np.ones(2)
    cell = np.where(side > 0, side, _spacing(centres)) * block_chips  # [2]
    cell = np.where(cell > 0, cell, 1.0)
    keys = np.floor((centres - centres.min(axis=0)) / cell).astype(np.int64)  # [N, 2]
    _, ids = np.unique(keys, axis=0, return_inverse=True)
    return ids.reshape(-1)


def _spacing(centres: np.ndarray) -> np.ndarray:
    """Typical distance between neighbouring chip centres per axis (for point-only tables)."""
    out = []
    for axis in range(2):
        gaps = np.diff(np.unique(np.round(centres[:, axis], 9)))
        out.append(float(np.median(gaps)) if len(gaps) else 1.0)
    return np.array(out)


def choose_blocks(centres: np.ndarray, sides: np.ndarray) -> tuple[int, np.ndarray]:
    """The largest block side in BLOCK_SIDES giving at least MIN_BLOCKS blocks (else 1 chip)."""
    for side in BLOCK_SIDES:
        ids = block_ids(centres, sides, side)
        if ids.max(initial=-1) + 1 >= MIN_BLOCKS:
            return side, ids
    return BLOCK_SIDES[-1], block_ids(centres, sides, BLOCK_SIDES[-1])


def _targets(n: int, fractions: Sequence[float]) -> np.ndarray:
    """Chips wanted per split: each share of ``n``."""
    return np.array(fractions, dtype=np.float64) / float(sum(fractions)) * n


def assign_blocks(block_of: np.ndarray, fractions: Sequence[float], split_seed: int) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per chip: shuffled whole blocks fill each split's share.

    Blocks are taken in a seeded random order; each goes to the split furthest below its share (in
    chips), after first giving test, val and train one block each when there are enough blocks.
    """
    n_blocks = int(block_of.max(initial=-1)) + 1
    sizes = np.bincount(block_of, minlength=n_blocks)
    order = np.random.default_rng(split_seed).permutation(n_blocks)
    want = _targets(len(block_of), fractions)
    have = np.zeros(3)
    split_of_block = np.zeros(n_blocks, dtype=np.int64)
    first = [2, 1, 0] if n_blocks >= 3 else [0, 1]  # with two blocks: one to fit, one to validate
    for i, b in enumerate(order):
        if i < len(first):
            s = first[i]
        else:
            s = int(np.argmax((want - have) / np.maximum(want, 1e-9)))
        split_of_block[b] = s
        have[s] += sizes[b]
    return split_of_block[block_of]


def blocked_split(
    table: Any,
    *,
    split_seed: int = DEFAULT_SPLIT_SEED,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> Split:
    """Spatially blocked train/val/test split of the chip table's rows (see the module docstring)."""
    n = len(table)
    if n < 2:
        raise WorkspaceError(
            f"Fitting needs at least 2 chips (one to train, one to validate); the workspace has {n}. "
            "Re-chip into a new --workspace with a smaller --chip-size or a --stride below the chip size, "
            "or ingest/fetch a larger area or more files."
        )
    if len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0 or fractions[1] <= 0:
        raise ValueError(f"fractions must be three shares (train, val, test) with train and val > 0, got {fractions}")
    centres, sides, geoms = footprints(table)
    block_chips, block_of = choose_blocks(centres, sides)
    split_of = assign_blocks(block_of, fractions, split_seed)
    # overlapping chips in two splits: the one in the lower-precedence split becomes a buffer chip
    excluded = np.zeros(n, dtype=bool)
    for i, j in overlap_pairs(geoms):
        if split_of[i] != split_of[j]:
            excluded[i if split_of[i] < split_of[j] else j] = True
    notes = []
    if excluded.any():
        notes.append(
            f"{int(excluded.sum())} chips overlap a chip of another split and are left out of fitting and scoring "
            "(a buffer between blocks)."
        )
    rows = np.arange(n)
    parts = [np.sort(rows[(split_of == s) & ~excluded]) for s in range(3)]
    if len(parts[0]) == 0 or len(parts[1]) == 0:
        raise WorkspaceError(
            f"The {n} chips fall into too few separate places to hold out validation chips "
            f"({len(parts[0])} train, {len(parts[1])} val after blocking). Chip a larger area or use more files."
        )
    if len(parts[2]) == 0:
        notes.append(f"Only {n} chips: no test chips are held out, so there are no test figures.")
    return Split(
        parts[0], parts[1], parts[2], np.sort(rows[excluded]), split_seed, block_chips, int(block_of.max()) + 1, notes
    )
