"""The workspace writer lock (core.lock): one writer across threads and processes, waits, refusals, take-over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from clay_explore.core.errors import CancelledError, WorkspaceBusyError
from clay_explore.core.lock import (
    HOLDER_FILE,
    LOCK_FILE,
    TOKEN_ENV,
    WriterLock,
    current_holder,
    delegate_env,
    read_holder,
    wait_policy,
    workspace_writer,
    writes_workspace,
)

TIMEOUT_S = 120  # generous bound on waiting for another thread/process; never a timing assertion


class HeldInThread:
    """Holds the writer lock of ``root`` in another thread until ``release()``."""

    def __init__(self, root: Path, stage: str = "embed"):
        self.acquired, self._release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(root, stage), daemon=True)
        self.thread.start()
        assert self.acquired.wait(TIMEOUT_S)

    def _run(self, root: Path, stage: str) -> None:
        with workspace_writer(root, stage):
            self.acquired.set()
            self._release.wait(TIMEOUT_S)

    def release(self) -> None:
        self._release.set()
        self.thread.join(TIMEOUT_S)


def test_second_writer_is_refused_with_the_holder_named(tmp_path):
    root = tmp_path / "ws"
    held = HeldInThread(root, "embed")
    try:
        with pytest.raises(WorkspaceBusyError) as err:
            with workspace_writer(root, "fit"):
                pass
        text = str(err.value)
        assert f"pid {os.getpid()}" in text and "'embed'" in text and "since" in text and "command:" in text
        assert "--wait" in text  # the fix
        assert err.value.holder.stage == "embed"
        assert current_holder(root).pid == os.getpid()
    finally:
        held.release()
    assert current_holder(root) is None
    assert not (root / HOLDER_FILE).exists()


def test_waiting_writer_says_whom_it_waits_for_then_runs(tmp_path):
    root = tmp_path / "ws"
    held = HeldInThread(root, "ingest")
    heard: list[str] = []

    def on_wait(msg: str) -> None:
        heard.append(msg)
        threading.Thread(target=held.release).start()  # the holder finishes once the waiter is queued

    with workspace_writer(root, "embed", wait=True, on_wait=on_wait) as me:
        assert me.stage == "embed" and read_holder(root).token == me.token
    assert len(heard) == 1 and "Waiting for workspace" in heard[0] and "'ingest'" in heard[0]


def test_wait_policy_and_cancel_while_waiting(tmp_path):
    root = tmp_path / "ws"
    held = HeldInThread(root)
    try:
        cancel = threading.Event()
        with wait_policy(True, on_wait=lambda _msg: cancel.set()):  # cancel as soon as it waits
            with pytest.raises(CancelledError, match="nothing was changed"):
                with workspace_writer(root, "fit", cancel=cancel):
                    pass
    finally:
        held.release()


def test_reentrant_in_one_thread_and_writer_lock_handle(tmp_path):
    root = tmp_path / "ws"
    with workspace_writer(root, "evaluate") as outer:
        with workspace_writer(root, "vectors") as inner:  # a stage calling another stage
            assert inner is outer
        other = WriterLock(root, "app")
        result: list[bool] = []
        t = threading.Thread(target=lambda: result.append(other.acquire(blocking=False)))
        t.start()
        t.join(TIMEOUT_S)
        assert result == [False]  # another thread of this process is another writer
    lock = WriterLock(root)
    assert lock.acquire(blocking=False) and lock.locked()
    lock.release()
    assert not lock.locked()


_HOLD = """
import sys, time
from clay_explore.core.lock import workspace_writer
with workspace_writer(sys.argv[1], "embed"):
    print("held", flush=True)
    sys.stdin.readline()   # hold until killed
"""


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    root = tmp_path / "ws"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        assert current_holder(root).pid == proc.pid
        with pytest.raises(WorkspaceBusyError, match=f"pid {proc.pid}"):
            with workspace_writer(root, "fit"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT_S)
    assert read_holder(root).pid == proc.pid  # the dead holder's note is still there ...
    heard: list[str] = []
    with workspace_writer(root, "fit", on_wait=heard.append) as me:  # ... but the lock is free
        assert me.pid == os.getpid()
    assert any("Took over" in m and str(proc.pid) in m and "no longer running" in m for m in heard)


_JOIN = """
import sys
from clay_explore.core.lock import workspace_writer
with workspace_writer(sys.argv[1], "embed", wait=False) as h:
    print(h.pid)
"""


def test_a_process_working_for_the_holder_joins_its_lock(tmp_path):
    root = tmp_path / "ws"
    with workspace_writer(root, "embed") as me:
        env = {**os.environ, **delegate_env(root)}
        assert env[TOKEN_ENV] == me.token
        out = subprocess.run(
            [sys.executable, "-c", _JOIN, str(root)], env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
        assert out.returncode == 0, out.stderr
        assert int(out.stdout) == os.getpid()  # it ran as part of this writer, not refused
        plain = {k: v for k, v in env.items() if k != TOKEN_ENV}
        out = subprocess.run(
            [sys.executable, "-c", _JOIN, str(root)], env=plain, capture_output=True, text=True, timeout=TIMEOUT_S
        )
        assert out.returncode != 0 and "WorkspaceBusyError" in out.stderr


def test_decorator_checks_bounds_before_any_folder_and_cleans_up_a_failed_start(tmp_path):
    calls: list[Path] = []

    @writes_workspace("ingest")
    def stage(workspace, *, chip_size: int = 256, fail: bool = False):
        calls.append(Path(workspace))
        assert (Path(workspace) / LOCK_FILE).exists()
        if fail:
            raise ValueError("boom")

    new = tmp_path / "new"
    with pytest.raises(Exception, match="at most 1,024"):
        stage(new, chip_size=100_000)
    assert not new.exists() and not calls
    with pytest.raises(ValueError):
        stage(new, fail=True)
    assert not new.exists()  # it held only the lock: removed again
    stage(new)
    assert not new.exists() and len(calls) == 2


def test_decorator_rereads_an_open_workspace_once_locked(tmp_path):
    from clay_explore.core.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws", sensor="sentinel-2-l2a", bands=["blue"], chip_size=64, source={})
    stale = Workspace.open(ws.root)
    ws.manifest["settings"]["note"] = "written by another writer"
    ws.save()

    @writes_workspace("fit")
    def stage(workspace):
        return workspace.manifest["settings"].get("note")

    assert stage(stale) == "written by another writer"
