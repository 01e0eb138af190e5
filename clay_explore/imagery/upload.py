"""A file uploaded in the app, chipped into a workspace; a failed upload leaves nothing behind.

The app saves the upload in its own folder, chips it with :func:`ingest_geotiff` and keeps the
folder only as the workspace's source. When anything fails, the upload folder goes, a workspace
this upload created goes with it, and an append into an existing workspace is forgotten (its
earlier chips stay as they were), so no orphan workspace points at a deleted file.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clay_explore.core.errors import ClayExploreError, ImageryError
from clay_explore.core.lock import LOCK_FILES, writes_workspace
from clay_explore.imagery.chipping import ChipSettings

MANIFEST = "manifest.json"
DEFAULT_NAME = "upload.tif"


def safe_filename(name: str) -> str:
    """The upload's file name with anything but letters, digits, '_', '-' and '.' replaced."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).name).lstrip(".") or DEFAULT_NAME


@writes_workspace("ingest", arg="target")
def ingest_upload(
    data: bytes | memoryview,
    filename: str,
    target: str | Path,
    uploads_root: str | Path,
    *,
    sensor: str,
    chips: ChipSettings = ChipSettings(),
    date: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Save ``data`` as ``uploads_root/<id>/<filename>`` and chip it into ``target``; returns the chips record.

    ``chips`` is how the file is cut (as :func:`ingest_geotiff`).

    Raises a ClayExploreError (a file that is not a raster becomes ImageryError) after removing
    everything this upload wrote.
    """
    from clay_explore.imagery.chipping import abandon_append
    from clay_explore.imagery.geotiff import ingest_geotiff

    target = Path(target)
    before = {p.name for p in target.iterdir()} if target.is_dir() else set()
    folder = Path(uploads_root) / uuid.uuid4().hex[:12]
    path = folder / safe_filename(filename)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        try:
            return ingest_geotiff(
                path,
                target,
                sensor=sensor,
                chips=chips,
                date=date,
                progress=progress,
            )
        except ImageryError as err:  # name the upload, not the server path it was saved under
            text = str(err).replace(repr(str(path)), repr(filename)).replace(str(path), filename)
            raise (type(err)(text) if text != str(err) else err) from err
        except (ClayExploreError, OSError):
            raise
        except Exception as err:  # rasterio's own errors for a file that is not a raster
            raise ImageryError(
                f"{filename} could not be read as a GeoTIFF ({type(err).__name__}). Upload a GeoTIFF/COG file."
            ) from err
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if MANIFEST not in before and before <= set(LOCK_FILES):
            for p in list(target.iterdir()) if target.is_dir() else []:  # a workspace this upload started
                if p.name not in LOCK_FILES:
                    shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        elif MANIFEST in before:
            from clay_explore.core.workspace import Workspace

            abandon_append(Workspace.open(target), path)
        raise
