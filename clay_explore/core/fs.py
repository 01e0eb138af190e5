"""Filesystem failures as one clear user error: permission denied, a path through a file, disk full.

The CLI root and the app's error guard call :func:`as_user_error` on any ``OSError``; the ones a
user can fix (permission, read-only filesystem, not a directory, no space, quota) become a
:class:`FilesystemError` naming the path and the fix. Anything else stays a bug (None is returned
and the caller re-raises). Stage records are written only after their data, so whatever failed
half-way is never marked complete; re-running the command after the fix resumes.
"""

from __future__ import annotations

import errno

from clay_explore.core.errors import FilesystemError

_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def as_user_error(err: BaseException) -> FilesystemError | None:
    """The user-facing error for an OSError the user can fix, or None (a bug: keep the traceback)."""
    if isinstance(err, FilesystemError):
        return err
    if not isinstance(err, OSError):
        return None
    path = err.filename or "a file"
    code = err.errno
    if isinstance(err, PermissionError) or code in _PERMISSION:
        how = "is on a read-only filesystem" if code == errno.EROFS else "is not writable (permission denied)"
        return FilesystemError(
            f"{path} {how}. Choose a workspace folder you can write to, or ask its owner to give you "
            "write permission; nothing was marked complete."
        )
    if isinstance(err, NotADirectoryError) or code == errno.ENOTDIR:
        return FilesystemError(
            f"{path}: part of this path is a file, not a folder. Choose a workspace path whose parent "
            "folders are folders (e.g. a new folder name)."
        )
    if isinstance(err, IsADirectoryError) or code == errno.EISDIR:
        return FilesystemError(f"{path} is a folder where a file was expected. Choose a file path.")
    if code in _NO_SPACE:
        return FilesystemError(
            f"No space left on the disk holding {path}. Free some space or "
            "choose a workspace on another disk, then run the same command again: finished work is kept and "
            "nothing half-written was marked complete."
        )
    return None
