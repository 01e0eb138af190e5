"""One root for every error a user can cause, so the CLI and the pages can show a clear message.

Every message names the problem and the fix. Code that catches ``ClayExploreError`` may show
``str(err)`` to a user as it is; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ClayExploreError(Exception):
    """Root of all user-facing errors."""


class CheckpointError(ClayExploreError):
    """A checkpoint is missing, truncated, corrupt, unsafe or of the wrong layout."""


class DeviceError(ClayExploreError, ValueError):
    """A torch device that is not on this machine, or work that does not fit in its memory."""


class ModelInputError(ClayExploreError, ValueError):
    """Inputs the model cannot take (chip size, band count, metadata shapes)."""


class SensorError(ClayExploreError, KeyError):
    """Unknown sensor or band name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ImageryError(ClayExploreError):
    """Imagery could not be found, read or chipped."""


class AreaError(ImageryError, ValueError):
    """Invalid or too large area of interest."""


class NoScenesError(ImageryError):
    """A search found nothing usable."""


class NetworkError(ImageryError):
    """An endpoint was unreachable, too slow or kept failing."""


class WorkspaceError(ClayExploreError):
    """A workspace is missing, of another schema, or lacks a stage that is needed."""


class StageMissingError(WorkspaceError):
    """A stage this step reads has not been run yet."""


class WorkspaceBusyError(WorkspaceError):
    """Another process (or job) is writing the workspace; ``holder`` says who (core.lock.Holder)."""

    def __init__(self, message: str, holder: object = None):
        super().__init__(message)
        self.holder = holder


class FilesystemError(WorkspaceError):
    """The filesystem refused a write or read: permission, not a folder, disk full (core.fs)."""


class CancelledError(ClayExploreError):
    """The user cancelled long work; what finished is kept."""
