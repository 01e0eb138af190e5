"""Find the Clay v1.5 checkpoint (argument, ``$CLAY_CHECKPOINT`` or the Hugging Face cache), download it, hash it.

Where the checkpoint comes from, first match wins:

1. an explicit path (``--checkpoint PATH``, ``resolve_checkpoint(path)``);
2. ``$CLAY_CHECKPOINT``;
3. the huggingface_hub cache (``made-with-clay/Clay``, file ``v1.5/clay-v1.5.ckpt``), without any network call;
4. a download through ``huggingface_hub.hf_hub_download`` into that cache (its locking, its atomic
   move into place, its progress bar, its offline mode).

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HOME``/``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` once, when it is
first imported. This module reads them again on every call and passes ``endpoint``, ``cache_dir`` and
``local_files_only`` explicitly, so a change made after import (a test's monkeypatch, the app's settings)
takes effect, and a fresh process (``clay-explore model download``) honours its environment as usual.

Every failure a user can cause or fix (no network, a hub that answers 404/5xx, offline mode with an empty
cache, a wrong path) becomes a :class:`~clay_explore.core.errors.CheckpointError` naming the endpoint and the fix.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_download, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    FileMetadataError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import tqdm as hf_tqdm

from clay_explore import __version__
from clay_explore.core.errors import CheckpointError, ClayExploreError

#: The official Clay v1.5 weights on the Hugging Face Hub.
HF_REPO_ID = "made-with-clay/Clay"
HF_FILENAME = "v1.5/clay-v1.5.ckpt"
HF_REVISION = "main"

#: Environment variable that points at a local checkpoint and skips the hub entirely.
CHECKPOINT_ENV = "CLAY_CHECKPOINT"
#: Folder for clay-explore's own small caches (the sha256 sidecar); defaults to ~/.cache/clay-explore.
CACHE_ENV = "CLAY_EXPLORE_CACHE"
SHA256_CACHE_NAME = "sha256.json"
#: Entries kept in the sha256 sidecar; old ones are dropped first.
SHA256_CACHE_MAX_ENTRIES = 64
HASH_CHUNK_BYTES = 8 * 1024 * 1024

ProgressCallback = Callable[[int, "int | None"], None]

_FIX_ELSEWHERE = (
    f"or download {HF_FILENAME} from https://huggingface.co/{HF_REPO_ID} by other means "
    f"and set {CHECKPOINT_ENV}=/path/to/clay-v1.5.ckpt"
)


# --- environment, read at call time -------------------------------------------------------------------------


def _env_true(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_endpoint() -> str:
    """The Hub endpoint now: ``$HF_ENDPOINT`` or huggingface_hub's default."""
    return (os.environ.get("HF_ENDPOINT") or hf_constants.ENDPOINT).rstrip("/")


def hub_cache_dir() -> Path:
    """The huggingface_hub cache folder now: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else its default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(hf_constants.HF_HUB_CACHE).expanduser()


def hub_offline() -> bool:
    """Whether huggingface_hub's offline mode is on now (``HF_HUB_OFFLINE``, or the legacy TRANSFORMERS_OFFLINE)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        flag = _env_true(name)
        if flag is not None:
            return flag
    return bool(hf_constants.HF_HUB_OFFLINE)


def checkpoint_url() -> str:
    """The URL huggingface_hub resolves the checkpoint from (for messages and the status box)."""
    return hf_hub_url(HF_REPO_ID, HF_FILENAME, revision=HF_REVISION, endpoint=hub_endpoint())


# --- where the checkpoint is ---------------------------------------------------------------------------------


def _existing_file(path: str | Path, origin: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        raise CheckpointError(f"checkpoint {p} ({origin}) is a folder; give the .ckpt file inside it.")
    if not p.is_file():
        raise CheckpointError(
            f"checkpoint {p} ({origin}) does not exist; fix the path, or leave it out to use "
            f"the Hugging Face cache (`clay-explore model download`)."
        )
    return p


def cached_checkpoint() -> Path | None:
    """The checkpoint in the huggingface_hub cache, or None; never touches the network."""
    found = try_to_load_from_cache(HF_REPO_ID, HF_FILENAME, cache_dir=hub_cache_dir(), revision=HF_REVISION)
    return Path(found) if isinstance(found, str) else None


def resolve_checkpoint(path: str | Path | None = None, *, download: bool = True, progress: bool = True) -> Path:
    """Return a local checkpoint path: ``path``, else ``$CLAY_CHECKPOINT``, else the hub cache, else download.

    A cached checkpoint is returned without a network call (the app and offline use start at once);
    ``download_checkpoint`` re-checks the hub. With ``download=False`` a missing checkpoint is an error
    instead of a download.
    """
    if path is not None and str(path) != "":
        return _existing_file(path, "given explicitly")
    env_path = os.environ.get(CHECKPOINT_ENV)
    if env_path:
        return _existing_file(env_path, f"from ${CHECKPOINT_ENV}")
    cached = cached_checkpoint()
    if cached is not None:
        return cached
    if not download:
        raise CheckpointError(
            f"the Clay v1.5 checkpoint is not downloaded yet (not in {hub_cache_dir()}); run "
            f"`clay-explore model download`, or set {CHECKPOINT_ENV}=/path/to/clay-v1.5.ckpt."
        )
    return _hub_download(force=False, progress=progress, callback=None)


def download_checkpoint(
    *, force: bool = False, progress_callback: ProgressCallback | None = None, progress: bool = True
) -> Path:
    """Download (or re-validate) the checkpoint into the huggingface_hub cache and return its path.

    One HEAD request checks the hub's current version; the file itself is fetched only when it is not
    cached yet or ``force`` is set. ``progress_callback(done_bytes, total_bytes)`` is called as bytes
    arrive (``total_bytes`` is None when the server does not say); it may raise
    ``clay_explore.core.errors.CancelledError`` to stop, which leaves nothing partial in the cache.
    ``progress`` shows huggingface_hub's terminal bar (it hides itself when stderr is not a terminal).
    ``$CLAY_CHECKPOINT`` is not consulted: this is the hub download.
    """
    return _hub_download(force=force, progress=progress, callback=progress_callback)


def checkpoint_status() -> dict[str, Any]:
    """Where the checkpoint would come from and whether it is there, for the app's model box; no network.

    Keys: ``source`` ("env" | "cache" | "download"), ``available``, ``path``, ``size_bytes``, ``problem``
    (a message with the fix, or None), and ``repo_id``, ``filename``, ``url``, ``endpoint``,
    ``cache_dir``, ``offline``.
    """
    status: dict[str, Any] = {
        "source": "download",
        "available": False,
        "path": None,
        "size_bytes": None,
        "problem": None,
        "repo_id": HF_REPO_ID,
        "filename": HF_FILENAME,
        "url": checkpoint_url(),
        "endpoint": hub_endpoint(),
        "cache_dir": str(hub_cache_dir()),
        "offline": hub_offline(),
    }
    env_path = os.environ.get(CHECKPOINT_ENV)
    if env_path:
        status["source"] = "env"
        status["path"] = str(Path(env_path).expanduser())
        try:
            found: Path | None = _existing_file(env_path, f"from ${CHECKPOINT_ENV}")
        except CheckpointError as err:
            found, status["problem"] = None, str(err)
    else:
        found = cached_checkpoint()
        if found is not None:
            status["source"] = "cache"
        elif status["offline"]:
            status["problem"] = _offline_message()
    if found is not None:
        status.update(available=True, path=str(found), size_bytes=found.stat().st_size)
    return status


# --- the download ---------------------------------------------------------------------------------------------


def _progress_bar_class(callback: ProgressCallback | None, show: bool) -> type[hf_tqdm]:
    """A huggingface_hub tqdm that also reports (done, total) to ``callback``; counts even when hidden."""

    class _ReportingBar(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if not show:
                kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._done = int(kwargs.get("initial") or 0)  # tqdm stops counting when disabled
            self._report()

        def update(self, n: float | None = 1) -> bool | None:
            self._done += int(n or 0)
            self._report()
            return super().update(n)

        def _report(self) -> None:
            if callback is not None:
                callback(self._done, int(self.total) if self.total else None)

    return _ReportingBar


def _supports_tqdm_class() -> bool:
    return "tqdm_class" in inspect.signature(hf_hub_download).parameters


def _hub_download(*, force: bool, progress: bool, callback: ProgressCallback | None) -> Path:
    offline = hub_offline()
    endpoint = hub_endpoint()
    if offline and force:
        raise CheckpointError(
            "cannot download the checkpoint again: huggingface_hub offline mode is on (HF_HUB_OFFLINE); "
            "unset HF_HUB_OFFLINE and retry."
        )
    kwargs: dict[str, Any] = {
        "revision": HF_REVISION,
        "library_name": "clay-explore",
        "library_version": __version__,
        "cache_dir": str(hub_cache_dir()),
        "endpoint": endpoint,
        "local_files_only": offline,
        "force_download": force,
    }
    if _supports_tqdm_class():
        kwargs["tqdm_class"] = _progress_bar_class(callback, progress)
    try:
        found = Path(hf_hub_download(HF_REPO_ID, HF_FILENAME, **kwargs))
    except ClayExploreError:  # a CancelledError from the callback
        raise
    except Exception as err:
        translated = _translate_error(err, endpoint=endpoint, offline=offline)
        if translated is None:
            raise
        raise translated from err
    if callback is not None and not _supports_tqdm_class():
        size = found.stat().st_size
        callback(size, size)
    return found


def _offline_message() -> str:
    return (
        f"the Clay v1.5 checkpoint is not in the Hugging Face cache ({hub_cache_dir()}) and huggingface_hub "
        f"offline mode is on (HF_HUB_OFFLINE); run `clay-explore model download` once while online, "
        f"or set {CHECKPOINT_ENV}=/path/to/clay-v1.5.ckpt."
    )


def _causes(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_transport_error(err: BaseException) -> bool:
    """Connection refused, DNS, TLS, timeouts, dropped connections (httpx/requests/urllib3 types)."""
    module = type(err).__module__.split(".")[0]
    return module in {"httpx", "httpx2", "httpcore", "requests", "urllib3"} or isinstance(
        err, (ConnectionError, TimeoutError)
    )


def _status_of(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _translate_error(err: Exception, *, endpoint: str, offline: bool) -> CheckpointError | None:
    """A CheckpointError naming the endpoint and the fix, or None when ``err`` is a bug to keep as it is."""
    url = checkpoint_url()
    chain = list(_causes(err))
    where = f"the Hugging Face Hub at {endpoint}"
    for cause in chain:
        if isinstance(cause, OfflineModeIsEnabled) or (offline and isinstance(cause, LocalEntryNotFoundError)):
            return CheckpointError(_offline_message())
        if isinstance(cause, RepositoryNotFoundError):
            return CheckpointError(
                f"{where} has no repository {HF_REPO_ID} (HTTP {_status_of(cause)} for {url}); check HF_ENDPOINT "
                f"(now {endpoint}), {_FIX_ELSEWHERE}."
            )
        if isinstance(cause, RevisionNotFoundError):
            return CheckpointError(
                f"{where} has no revision {HF_REVISION!r} of {HF_REPO_ID} ({url}); check HF_ENDPOINT, {_FIX_ELSEWHERE}."
            )
        if isinstance(cause, EntryNotFoundError) and not isinstance(cause, LocalEntryNotFoundError):
            return CheckpointError(
                f"{where} has no file {HF_FILENAME} in {HF_REPO_ID} (HTTP {_status_of(cause)} for {url}); "
                f"check HF_ENDPOINT (now {endpoint}), {_FIX_ELSEWHERE}."
            )
        if isinstance(cause, FileMetadataError):
            return CheckpointError(
                f"{endpoint} did not answer like a Hugging Face Hub for {url} ({cause}); check HF_ENDPOINT "
                f"and any proxy, {_FIX_ELSEWHERE}."
            )
        if isinstance(cause, HfHubHTTPError) and _status_of(cause) is not None:
            status = _status_of(cause)
            hint = "the hub may be down: try again later" if status >= 500 else "check HF_ENDPOINT and any token"
            return CheckpointError(f"{where} answered HTTP {status} for {url}; {hint}, {_FIX_ELSEWHERE}.")
        if _is_transport_error(cause):
            kind = "timed out" if "timeout" in type(cause).__name__.lower() else "could not be reached"
            return CheckpointError(
                f"{where} {kind} while fetching {url} ({type(cause).__name__}: {cause}); check the network, "
                f"HF_ENDPOINT and any proxy (HTTPS_PROXY), {_FIX_ELSEWHERE}."
            )
    if isinstance(err, OSError):  # disk full, size mismatch after download
        return CheckpointError(
            f"downloading {url} into {hub_cache_dir()} failed: {err}; free disk space or retry with "
            f"`clay-explore model download --force`, {_FIX_ELSEWHERE}."
        )
    return None


# --- sha256 with a sidecar cache ---------------------------------------------------------------------------------


def sha256_cache_path() -> Path:
    """The JSON sidecar mapping (path, size, mtime) to sha256: ``$CLAY_EXPLORE_CACHE`` or ~/.cache/clay-explore."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / SHA256_CACHE_NAME
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "clay-explore" / SHA256_CACHE_NAME


def _read_sha_cache(cache: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_sha_cache(cache: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Atomic replace; a cache that cannot be written only costs a re-hash next time."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".sha256-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f, indent=1)
        os.replace(tmp, cache)
    except OSError:
        pass


def file_sha256(path: str | Path, chunk: int = HASH_CHUNK_BYTES, *, use_cache: bool = True) -> str:
    """Hex sha256 of a file, remembered by (resolved path, size, mtime) so a multi-GB checkpoint is read once."""
    real = Path(path).expanduser().resolve()
    try:
        stat = real.stat()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}; check the path.") from err
    key = str(real)
    cache = sha256_cache_path()
    entries = _read_sha_cache(cache) if use_cache else {}
    entry = entries.get(key)
    if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return str(entry["sha256"])
    digest = hashlib.sha256()
    with real.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    sha = digest.hexdigest()
    if use_cache:
        entries.pop(key, None)
        entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
        while len(entries) > SHA256_CACHE_MAX_ENTRIES:  # dicts keep insertion order: oldest first
            entries.pop(next(iter(entries)))
        _write_sha_cache(cache, entries)
    return sha


# --- the checkpoint's size, stated once -----------------------------------------------------------------------
#: Seconds the size lookup waits for the hub (one HEAD request); the Home page must not hang offline.
SIZE_TIMEOUT_S = 5.0


def checkpoint_size(timeout: float = SIZE_TIMEOUT_S) -> tuple[int | None, str]:
    """The checkpoint's size in bytes and where it was read: the local file when there is one, else the
    hub's metadata (one HEAD request, never in offline mode); ``(None, reason)`` when neither answers."""
    status = checkpoint_status()
    if status.get("size_bytes"):
        return int(status["size_bytes"]), "local file"
    if status.get("offline"):
        return None, "unknown offline"
    from huggingface_hub import get_hf_file_metadata

    try:
        meta = get_hf_file_metadata(checkpoint_url(), timeout=timeout, endpoint=hub_endpoint())
    except Exception:  # noqa: BLE001 - any failure only means the size is not known now
        return None, "the hub did not answer"
    return (int(meta.size), "hub metadata") if meta.size else (None, "the hub did not say")


def format_size(size_bytes: int | None) -> str:
    """'4.9 GB' (decimal units, as the hub shows them) or 'size unknown'."""
    if not size_bytes:
        return "size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:,.1f} {unit}"
    return f"{size_bytes} B"
