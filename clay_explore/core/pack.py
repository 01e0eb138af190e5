"""Packed workspaces: one zip file that carries a workspace to another machine, verified on arrival.

A presenter computes on a GPU (or the night before) and opens the result in the room in seconds.
Layout of a pack (a plain zip, readable by any unzip tool)::

    clay-explore-pack.json      pack format, workspace schema, clay-explore version, options,
                                and every file's relative path, size and sha256
    workspace/<relative path>   the workspace's files (manifest, chips, embeddings, vectors,
                                methods, evaluation, projections)

Unpacking refuses anything it did not write: entries outside ``workspace/`` or not listed,
absolute paths, ``..``, symbolic links, sizes or checksums that differ, and packs of a newer
format or workspace schema. It only reads bytes and JSON (never unpickles) and extracts into a
temporary folder that replaces the target only when every file checked out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from clay_explore.core.errors import WorkspaceError
from clay_explore.core.lock import LOCK_FILES, workspace_writer
from clay_explore.core.workspace import (
    CHIPS_ZARR,
    EMBEDDINGS_ZARR,
    MANIFEST,
    SCHEMA_VERSION,
    Workspace,
)

#: Version of the pack layout itself (bumped when an older clay-explore could not read it).
PACK_FORMAT = 1
PACK_MANIFEST = "clay-explore-pack.json"
PACK_PREFIX = "workspace/"
PACK_SUFFIX = ".clay.zip"
#: Folders and files a pack never carries: derived exports, training resume state (a torch pickle),
#: writer locks and the temporary files of interrupted atomic writes.
EXCLUDED_DIRS = ("exports", ".jobs")  # .jobs: the app's job files (clay_explore.app.jobs.JOBS_DIR), per server
EXCLUDED_NAMES = ("resume.pt", *LOCK_FILES)
EXCLUDED_SUFFIXES = (".lock", ".tmp")
#: Parts a pack may leave out to stay small: name -> path prefixes inside the workspace.
OPTIONAL_PARTS = {
    "patches": (f"{EMBEDDINGS_ZARR}/patches/", f"{EMBEDDINGS_ZARR}.patches.done.json"),
    "chips": (f"{CHIPS_ZARR}/pixels/", f"{CHIPS_ZARR}.pixels.done.json"),
}
#: zarr chunks are compressed already; deflating them again only costs time.
_STORED_MARKERS = (".zarr/",)
_CHUNK = 1 << 20  # bytes read at a time while hashing or extracting

ProgressFn = Callable[[int, int, dict[str, Any]], None]


class PackError(WorkspaceError):
    """A pack that cannot be written or that is refused on unpacking (corrupt, unsafe, newer)."""


@dataclass(frozen=True)
class PackEntry:
    """One workspace file in a pack."""

    path: str  # relative POSIX path inside the workspace
    size: int
    sha256: str


# ---------------------------------------------------------------------------------------------- pack
def _excluded(rel: PurePosixPath) -> bool:
    if rel.parts and rel.parts[0] in EXCLUDED_DIRS:
        return True
    name = rel.name
    return name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES)


def _omitted(rel: str, leave_out: Iterable[str]) -> bool:
    return any(rel.startswith(prefix) or rel == prefix for part in leave_out for prefix in OPTIONAL_PARTS[part])


def workspace_files(root: str | Path, leave_out: Iterable[str] = ()) -> list[Path]:
    """The files of a workspace that a pack carries, sorted (relative paths); refuses symbolic links."""
    root = Path(root)
    leave_out = tuple(leave_out)
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            if (here / name).is_symlink():
                raise PackError(
                    f"{here / name} is a symbolic link; a pack carries plain files only. "
                    "Replace the link with the file it points to, then pack again."
                )
        for name in filenames:
            rel = (here / name).relative_to(root)
            posix = PurePosixPath(rel.as_posix())
            if not _excluded(posix) and not _omitted(posix.as_posix(), leave_out):
                out.append(rel)
    return sorted(out, key=lambda p: p.as_posix())


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def pack_workspace(
    workspace: str | Path,
    out: str | Path,
    *,
    patches: bool = True,
    chips: bool = True,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Write ``workspace`` into one zip file ``out``; returns the pack manifest.

    ``patches=False`` leaves out the patch tokens (the largest part: projections of patches and
    full-token reconstructions then need a re-embed); ``chips=False`` leaves out the chip pixels
    (thumbnails and reconstructions then need the imagery). The file appears atomically.
    """
    from clay_explore import __version__

    ws = Workspace.open(workspace)  # a clear error when it is no workspace or of a newer schema
    # the writer lock: no stage changes a file while it is copied, so the pack is one consistent state
    with workspace_writer(ws.root, "pack"):
        return _pack(ws, Path(out), patches, chips, progress, __version__)


def _pack(
    ws: Workspace, out: Path, patches: bool, chips: bool, progress: ProgressFn | None, version: str
) -> dict[str, Any]:
    leave_out = [name for name, keep in (("patches", patches), ("chips", chips)) if not keep]
    rels = workspace_files(ws.root, leave_out)
    total = sum((ws.root / r).stat().st_size for r in rels)
    inside = out.resolve().is_relative_to(ws.root.resolve())
    if inside and not _excluded(PurePosixPath(out.resolve().relative_to(ws.root.resolve()).as_posix())):
        raise PackError(
            f"{out} is inside the workspace it packs; write the pack somewhere else "
            f"(or under its {EXCLUDED_DIRS[0]}/ folder)."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    entries: list[PackEntry] = []
    done = 0
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            for rel in rels:
                src, posix = ws.root / rel, rel.as_posix()
                stored = any(m in f"{posix}" for m in _STORED_MARKERS)
                h = hashlib.sha256()
                size = 0
                info = zipfile.ZipInfo(PACK_PREFIX + posix, date_time=_zip_time(src))
                info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                with open(src, "rb") as f, zf.open(info, "w", force_zip64=True) as dst:
                    for block in iter(lambda: f.read(_CHUNK), b""):
                        h.update(block)
                        dst.write(block)
                        size += len(block)
                entries.append(PackEntry(posix, size, h.hexdigest()))
                done += size
                if progress is not None:
                    progress(done, total, {"stage": "pack", "file": posix})
            manifest = {
                "pack_format": PACK_FORMAT,
                "schema_version": int(ws.manifest["schema_version"]),
                "clay_explore_version": version,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "workspace_name": ws.root.name,
                "left_out": leave_out,
                "files": [e.__dict__ for e in entries],
            }
            zf.writestr(PACK_MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return manifest


def _zip_time(path: Path) -> tuple[int, int, int, int, int, int]:
    t = datetime.fromtimestamp(path.stat().st_mtime)
    return (max(t.year, 1980), t.month, t.day, t.hour, t.minute, t.second)


# ---------------------------------------------------------------------------------------------- unpack
def _safe_rel(name: str) -> PurePosixPath:
    """The workspace-relative path of a listed file, or PackError when it could leave the target folder."""
    if "\\" in name or "\x00" in name:
        raise PackError(f"Pack entry {name!r} has a backslash or NUL in its name; refusing to unpack it.")
    p = PurePosixPath(name)
    if p.is_absolute() or not p.parts or any(part in ("..", "", ".") for part in p.parts) or ":" in p.parts[0]:
        raise PackError(
            f"Pack entry {name!r} points outside the workspace (absolute path or '..'); "
            "refusing to unpack it. Ask for a pack written by `clay-explore pack`."
        )
    return p


def read_pack_manifest(zf: zipfile.ZipFile) -> dict[str, Any]:
    """The pack manifest of an open zip, checked for format and schema (PackError otherwise)."""
    from clay_explore import __version__

    try:
        raw = zf.read(PACK_MANIFEST)
    except KeyError as err:
        raise PackError(
            f"This file has no {PACK_MANIFEST}: it is not a clay-explore pack. "
            "Make one with `clay-explore pack --workspace WS --out FILE`."
        ) from err
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PackError(
            f"The pack's {PACK_MANIFEST} is unreadable ({err}); the file is damaged. Pack it again."
        ) from err
    fmt, schema = manifest.get("pack_format"), manifest.get("schema_version")
    if not isinstance(fmt, int) or not isinstance(schema, int) or not isinstance(manifest.get("files"), list):
        raise PackError(
            f"The pack's {PACK_MANIFEST} lacks pack_format, schema_version or files; "
            "it was not written by clay-explore. Pack the workspace again."
        )
    made_by = manifest.get("clay_explore_version", "a newer version")
    if fmt > PACK_FORMAT:
        raise PackError(
            f"This pack uses pack format {fmt}, newer than this clay-explore {__version__} reads "
            f"({PACK_FORMAT}); it was written by clay-explore {made_by}. Upgrade clay-explore to open it."
        )
    if schema > SCHEMA_VERSION:
        raise PackError(
            f"This pack holds a workspace of schema {schema}, newer than this clay-explore {__version__} "
            f"reads ({SCHEMA_VERSION}); it was written by clay-explore {made_by}. "
            "Upgrade clay-explore to open it."
        )
    return manifest


def _check_members(zf: zipfile.ZipFile, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Listed files by relative path, after refusing unsafe or unlisted zip members."""
    listed: dict[str, dict[str, Any]] = {}
    for rec in manifest["files"]:
        if not isinstance(rec, dict) or not isinstance(rec.get("path"), str):
            raise PackError("The pack's file list is malformed; pack the workspace again.")
        rel = _safe_rel(rec["path"]).as_posix()
        if rel in listed:
            raise PackError(f"The pack lists {rel} twice; pack the workspace again.")
        if not isinstance(rec.get("size"), int) or not isinstance(rec.get("sha256"), str):
            raise PackError(f"The pack lists {rel} without a size or sha256; pack the workspace again.")
        listed[rel] = rec
    if MANIFEST not in listed:
        raise PackError(f"The pack holds no workspace {MANIFEST}; pack the workspace again.")
    seen: set[str] = set()
    for info in zf.infolist():
        name = info.filename
        if name == PACK_MANIFEST or (info.is_dir() and name == PACK_PREFIX):
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise PackError(f"Pack entry {name!r} is a symbolic link; refusing to unpack it.")
        if not name.startswith(PACK_PREFIX):
            _safe_rel(name)  # the clearer error for '../x' or '/etc/x'
            raise PackError(f"Pack entry {name!r} is outside {PACK_PREFIX}; refusing to unpack it.")
        rel = _safe_rel(name[len(PACK_PREFIX) :]).as_posix()
        if info.is_dir():
            continue
        if rel not in listed:
            raise PackError(f"Pack entry {name!r} is not in the pack's file list; refusing to unpack it.")
        if rel in seen:
            raise PackError(f"Pack entry {name!r} appears twice; refusing to unpack it.")
        seen.add(rel)
    missing = sorted(set(listed) - seen)
    if missing:
        raise PackError(
            f"The pack lists {len(missing)} file(s) it does not hold (first: {missing[0]}); "
            "the file is truncated or damaged. Copy it again."
        )
    return listed


def unpack_workspace(
    pack: str | Path,
    workspace: str | Path,
    *,
    progress: ProgressFn | None = None,
) -> Workspace:
    """Restore a pack into ``workspace`` (a new or empty folder), verifying every size and sha256."""
    pack, target = Path(pack), Path(workspace)
    if target.exists() and (not target.is_dir() or any(p.name not in LOCK_FILES for p in target.iterdir())):
        raise PackError(f"{target} exists and is not an empty folder; unpack into a new --workspace folder.")
    if not pack.is_file():
        raise PackError(f"{pack} is not a file; give the path of a pack written by `clay-explore pack`.")
    try:
        zf = zipfile.ZipFile(pack)
    except (zipfile.BadZipFile, OSError) as err:
        raise PackError(f"{pack} is not a readable zip file ({err}); it is not a pack or it is damaged.") from err
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.unpack-"))
    try:
        with zf:
            manifest = read_pack_manifest(zf)
            listed = _check_members(zf, manifest)
            total, done = sum(r["size"] for r in listed.values()), 0
            for rel, rec in listed.items():
                done += _extract_one(zf, rel, rec, tmp)
                if progress is not None:
                    progress(done, total, {"stage": "unpack", "file": rel})
        Workspace.open(tmp)  # the restored manifest reads as a workspace of a known schema
        if target.exists():  # empty but for a writer lock (checked above)
            for name in LOCK_FILES:
                (target / name).unlink(missing_ok=True)
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Workspace.open(target)


def _extract_one(zf: zipfile.ZipFile, rel: str, rec: dict[str, Any], dest_root: Path) -> int:
    """Copy one member to ``dest_root/rel`` while hashing; PackError when size or sha256 differ."""
    dest = dest_root.joinpath(*PurePosixPath(rel).parts)
    if not dest.resolve().is_relative_to(dest_root.resolve()):
        raise PackError(f"Pack entry {rel!r} points outside the workspace; refusing to unpack it.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    h, size, limit = hashlib.sha256(), 0, int(rec["size"])
    try:
        with zf.open(PACK_PREFIX + rel) as src, open(dest, "xb") as out:
            for block in iter(lambda: src.read(_CHUNK), b""):
                size += len(block)
                if size > limit:  # never write more than the manifest declares (zip bombs)
                    break
                h.update(block)
                out.write(block)
    except (zipfile.BadZipFile, OSError, EOFError) as err:  # CRC mismatch, truncated data
        raise PackError(
            f"{rel} in the pack is damaged ({err}). Copy the pack again or pack the workspace again."
        ) from err
    if size != limit or h.hexdigest() != rec["sha256"]:
        raise PackError(
            f"{rel} in the pack does not match its checksum (sha256 or size differ): the pack is "
            "corrupted or was altered. Copy the pack again or pack the workspace again."
        )
    return size
