"""One writer per workspace, across threads, processes and app servers (a ``filelock`` lock).

Every stage that writes a workspace (ingest/fetch/demo, embed, vectors, fit, evaluate, project,
export) runs under :func:`workspace_writer`, usually through the :func:`writes_workspace`
decorator. The lock is an OS file lock (``flock``, released by the kernel when its process dies,
so a killed writer never blocks the next one; ``filelock`` falls back to a soft lock on
filesystems without ``flock``). Beside it, ``.clay-explore.lock.json`` says who holds it (pid,
host, command, stage, since when); a holder file left by a process that is no longer running is
reported and replaced when the lock is taken over.

A second writer refuses at once with :class:`WorkspaceBusyError` naming the holder (the default),
or waits for it (``wait=True``, ``--wait`` on the CLI, ``CLAY_EXPLORE_WAIT=1``, or the
:func:`wait_policy` context), telling ``on_wait`` once whom it waits for. The lock is re-entrant
within a thread (a stage calling another stage), and a process started on behalf of the holder
can join it through :func:`delegate_env` (e.g. workers of a distributed embed).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from clay_explore.core.bounds import check_bounds
from clay_explore.core.errors import CancelledError, WorkspaceBusyError
from clay_explore.core.fs import as_user_error
from clay_explore.core.progress import Cancel, is_cancelled

log = logging.getLogger(__name__)

LOCK_FILE = ".clay-explore.lock"
HOLDER_FILE = ".clay-explore.lock.json"
#: Files the lock keeps in a workspace folder (a folder holding only these counts as empty).
LOCK_FILES = (LOCK_FILE, HOLDER_FILE)
#: "1"/"true": wait for a busy workspace instead of refusing (worker processes, scripts).
WAIT_ENV = "CLAY_EXPLORE_WAIT"
#: A process started on behalf of the holder sets this to the holder's token to join its lock.
TOKEN_ENV = "CLAY_EXPLORE_LOCK_TOKEN"
POLL_S = 0.2  # how often a waiting writer retries
COMMAND_CHARS = 200  # the holder's command line is cut to this length

Notify = Callable[[str], None]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Holder:
    """Who writes a workspace: written beside the lock while it is held."""

    pid: int
    host: str
    command: str
    stage: str
    since: str
    token: str = ""

    def describe(self) -> str:
        return f"'{self.stage}' (pid {self.pid} on {self.host}, since {self.since}, command: {self.command})"

    def alive(self) -> bool | None:
        """Whether the process still runs: True/False on this host, None (unknown) on another."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists, under another user
        return True


# ------------------------------------------------------------------------------------------ policy
_POLICY: contextvars.ContextVar[tuple[bool | None, Notify | None]] = contextvars.ContextVar(
    "clay_explore_lock_policy", default=(None, None)
)
_HELD = threading.local()  # .depth: {workspace key: [depth, Holder]} of the locks this thread holds


@contextmanager
def wait_policy(wait: bool | None, on_wait: Notify | None = None) -> Iterator[None]:
    """Within this block, stages wait for (True) or refuse (False) a busy workspace; ``on_wait`` hears why."""
    token = _POLICY.set((wait, on_wait))
    try:
        yield
    finally:
        _POLICY.reset(token)


def _should_wait(wait: bool | None) -> bool:
    if wait is not None:
        return bool(wait)
    policy = _POLICY.get()[0]
    if policy is not None:
        return policy
    return os.environ.get(WAIT_ENV, "").strip().lower() in ("1", "true", "yes")


def _notify(on_wait: Notify | None) -> Notify:
    return on_wait or _POLICY.get()[1] or log.warning


def _key(root: Path) -> str:
    return str(root.resolve())


def _held() -> dict[str, list[Any]]:
    if not hasattr(_HELD, "depth"):
        _HELD.depth = {}
    return _HELD.depth


# ------------------------------------------------------------------------------------------ holder
def read_holder(root: str | Path) -> Holder | None:
    """The holder file's contents (it may describe a process that has died), or None."""
    try:
        data = json.loads((Path(root) / HOLDER_FILE).read_text())
        return Holder(
            **{k: data[k] for k in ("pid", "host", "command", "stage", "since")}, token=str(data.get("token", ""))
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def current_holder(root: str | Path) -> Holder | None:
    """Who holds the workspace's writer lock now, or None (never blocks, never touches the lock itself).

    Read from the holder file: it is removed on release, and one left by a killed process names a
    pid that no longer runs (on another host the holder is taken as alive).
    """
    root = Path(root)
    mine = _held().get(_key(root)) if root.exists() else None
    if mine:
        return mine[1]
    holder = read_holder(root)
    return holder if holder is not None and holder.alive() is not False else None


def busy_message(root: Path, stage: str, holder: Holder | None) -> str:
    who = holder.describe() if holder else "another process (its details are not written yet)"
    return (
        f"Workspace {root} is being written by {who}. Wait until it finishes and run '{stage}' again, or "
        "pass --wait to queue behind it (in the app: wait for the running job or cancel it)."
    )


def _me(stage: str) -> Holder:
    command = " ".join([Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]])[:COMMAND_CHARS]
    since = datetime.now(UTC).isoformat(timespec="seconds")
    return Holder(os.getpid(), socket.gethostname(), command, stage, since, secrets.token_hex(8))


def _write_holder(root: Path, holder: Holder) -> None:
    from clay_explore.core.workspace import atomic_write_json

    atomic_write_json(root / HOLDER_FILE, asdict(holder))


def _file_lock(root: Path):
    from filelock import FileLock

    return FileLock(str(root / LOCK_FILE), thread_local=False)


def delegate_env(root: str | Path) -> dict[str, str]:
    """Environment for a process working on behalf of this thread's lock on ``root`` (joins, not waits).

    Empty when this thread does not hold the lock.
    """
    mine = _held().get(_key(Path(root)))
    return {TOKEN_ENV: mine[1].token} if mine and mine[1].token else {}


def _delegated(root: Path) -> Holder | None:
    token = os.environ.get(TOKEN_ENV)
    if not token:
        return None
    holder = read_holder(root)
    if holder is not None and holder.token == token and holder.alive() is not False:
        return holder
    return None


# ------------------------------------------------------------------------------------------ the lock
@contextmanager
def workspace_writer(
    root: str | Path,
    stage: str,
    *,
    wait: bool | None = None,
    timeout: float | None = None,
    cancel: Cancel = None,
    on_wait: Notify | None = None,
) -> Iterator[Holder]:
    """Hold the writer lock of workspace ``root`` for ``stage``; yields this writer's Holder.

    ``wait``: None = the policy (:func:`wait_policy`, then $CLAY_EXPLORE_WAIT, else refuse).
    ``timeout`` (s) bounds a wait; ``cancel`` (Event/callable) ends a wait with CancelledError.
    Creates the folder when needed and removes it again on exit when it still holds only the lock
    (a stage that failed before writing anything leaves no workspace behind). Filesystem errors
    (read-only folder, a path through a file) are raised as FilesystemError.
    """
    root = Path(root)
    key = _key(root)
    held = _held()
    if key in held:  # re-entrant: a stage calling another stage in the same thread
        held[key][0] += 1
        try:
            yield held[key][1]
        finally:
            held[key][0] -= 1
        return
    joined = _delegated(root)
    if joined is not None:
        held[key] = [1, joined]
        try:
            yield joined
        finally:
            held.pop(key, None)
        return
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = _file_lock(root)
        _acquire(lock, root, stage, _should_wait(wait), timeout, cancel, _notify(on_wait))
    except OSError as err:
        _remove_if_only_lock(root, created)
        user = as_user_error(err)
        if user is None:
            raise
        raise user from err
    try:
        left = read_holder(root)
        if left is not None and left.alive() is False:
            _notify(on_wait)(
                f"Took over the lock of workspace {root} left by {left.describe()}, which is no "
                "longer running; its finished work is kept."
            )
        me = _me(stage)
        _write_holder(root, me)
        held[key] = [1, me]
        try:
            yield me
        finally:
            held.pop(key, None)
            try:
                (root / HOLDER_FILE).unlink(missing_ok=True)
            except OSError:
                pass
    except OSError as err:
        user = as_user_error(err)
        if user is None:
            raise
        raise user from err
    finally:
        _remove_if_only_lock(root, created)  # while still held: a waiter then finds the file gone and starts over
        lock.release()


def _acquire(
    lock: Any, root: Path, stage: str, wait: bool, timeout: float | None, cancel: Cancel, notify: Notify
) -> None:
    from filelock import Timeout

    deadline = None if timeout is None else time.monotonic() + timeout
    told = False
    while True:
        try:
            lock.acquire(timeout=POLL_S if wait else 0)
            if _same_file(lock, root / LOCK_FILE):
                return
            lock.release()  # the folder was removed and made again while this one waited: lock the new file
        except FileNotFoundError:  # the previous writer removed a folder that held only its lock
            root.mkdir(parents=True, exist_ok=True)
        except Timeout:
            holder = read_holder(root)
            if not wait or (deadline is not None and time.monotonic() > deadline):
                raise WorkspaceBusyError(busy_message(root, stage, holder), holder) from None
            if not told:
                who = holder.describe() if holder else "another process"
                notify(f"Waiting for workspace {root}: it is being written by {who}.")
                told = True
            if is_cancelled(cancel):
                raise CancelledError(f"Cancelled while waiting for workspace {root}; nothing was changed.") from None


def _same_file(lock: Any, path: Path) -> bool:
    """Whether the locked descriptor is still the file at ``path`` (not one unlinked meanwhile)."""
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    if fd is None:
        return True  # a backend without a descriptor (soft lock): nothing to compare
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except OSError:
        return False


def _remove_if_only_lock(root: Path, created: bool) -> None:
    """Remove a folder this writer created when nothing but the lock files is in it."""
    if not created:
        return
    try:
        if {p.name for p in root.iterdir()} <= set(LOCK_FILES):
            for name in LOCK_FILES:
                (root / name).unlink(missing_ok=True)
            root.rmdir()
    except OSError:
        pass


def writes_workspace(stage: str, arg: str = "workspace") -> Callable[[F], F]:
    """Decorate a stage function: check its numeric options, then run it under the writer lock.

    The workspace is the argument named ``arg`` (a path or an open Workspace, whose manifest is
    re-read once the lock is held so it never writes back a stale copy). A ``cancel`` argument
    also ends a wait for the lock.
    """

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind_partial(*args, **kwargs)
            check_bounds(bound.arguments)
            target = bound.arguments.get(arg)
            is_ws = hasattr(target, "manifest")  # an open Workspace (a Path has .root too: "/")
            root = Path(target.root if is_ws else target)
            fresh = _key(root) not in _held()
            with workspace_writer(root, stage, cancel=bound.arguments.get("cancel")):
                if fresh and is_ws:
                    target.reload()
                return fn(*args, **kwargs)

        wrapper.writes_stage = stage  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return deco


class WriterLock:
    """``threading.Lock``-like handle on a workspace's writer lock (for code that acquires and releases).

    ``acquire(blocking=False)`` returns False when another writer holds it; ``acquire()`` waits.
    Acquire and release in the same thread; stages called in between join it (re-entrant).
    """

    def __init__(self, root: str | Path, stage: str = "app"):
        self.root, self.stage = Path(root), stage
        self._stack: Any = None

    def acquire(self, blocking: bool = True, timeout: float = -1, cancel: Cancel = None) -> bool:
        from contextlib import ExitStack

        stack = ExitStack()
        try:
            stack.enter_context(
                workspace_writer(
                    self.root,
                    self.stage,
                    wait=blocking,
                    timeout=None if timeout is None or timeout < 0 else timeout,
                    cancel=cancel,
                    on_wait=lambda _msg: None,
                )
            )
        except WorkspaceBusyError:
            return False
        self._stack = stack
        return True

    def release(self) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            raise RuntimeError("release of an unheld WriterLock")
        stack.close()

    def locked(self) -> bool:
        return current_holder(self.root) is not None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def set_wait_policy(wait: bool | None, on_wait: Notify | None = None) -> Callable[[], None]:
    """Set the wait policy of this context until the returned function is called (the CLI's --wait)."""
    token = _POLICY.set((wait, on_wait))
    return lambda: _POLICY.reset(token)
