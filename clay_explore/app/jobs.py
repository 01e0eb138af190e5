"""Long app stages (embed, fit, evaluate, vectors) as jobs in worker processes, with progress and cancel.

A job is a worker process (``python -m clay_explore.app.worker JOBFILE``, see ``app.worker``) that
runs the same library function as the CLI, so a busy job never slows the page-serving process and a
page never slows the job. Everything about a job lives in files in the workspace, so any page of any
session (or a server restarted after a crash) re-attaches to it:

- ``.jobs/<stage>.json``: the job (status, label, pid, done/total/info, notes, message, settings),
  written atomically by the worker after each encoder block or batch (at most every ``WRITE_EVERY_S``);
- ``.jobs/<stage>.cancel``: Cancel was pressed; the worker checks it between encoder blocks and
  batches, stops, keeps every finished batch and ends 'cancelled';
- ``.jobs/<stage>.log``: the worker's stderr (tracebacks of unexpected errors stay on the server).

A worker also stops (the same way) when the server that started it goes away (SIGTERM, SIGKILL,
crash): it watches its parent. A job whose process is gone while its file still says 'running' is
reported 'cancelled' with an explanation; the next run resumes. Workspace writes are serialised by
the writer lock of ``core.lock``; a job waiting for it says whom it waits for.

``start_job`` also takes a plain callable, run in a server thread (short jobs and tests); both kinds
share this file protocol. No Streamlit here.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clay_explore.core.errors import CancelledError, ClayExploreError

log = logging.getLogger(__name__)

RUNNING, COMPLETE, CANCELLED, FAILED = "running", "complete", "cancelled", "failed"
JOBS_DIR = ".jobs"
#: A running job rewrites its file at most this often (progress within a batch can fire many times a second).
WRITE_EVERY_S = 0.25
#: A job file whose worker has not written its pid yet counts as starting for this long.
START_GRACE_S = 60.0
#: How often ``wait`` looks at a worker's job file.
POLL_S = 0.05
#: Environment variable telling a worker the pid of the server it belongs to.
PARENT_ENV = "CLAY_EXPLORE_JOB_PARENT"
WORKER_MODULE = "clay_explore.app.worker"
_SAVED = (
    "root",
    "stage",
    "label",
    "status",
    "waiting",
    "done",
    "total",
    "info",
    "notes",
    "message",
    "result",
    "started",
    "finished",
    "pid",
    "proc_start",
    "launcher",
    "host",
    "kind",
    "task",
    "settings",
)


@dataclass
class Task:
    """What a worker process runs: ``name`` in ``app.worker.TASKS`` with JSON-able keyword arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


class CancelFlag:
    """Cancel of one job: a file beside its job file, so any process can set it and the worker sees it.

    Has the ``set``/``is_set`` of a threading.Event and is callable, so ``core.progress.is_cancelled`` takes it.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def set(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()

    def is_set(self) -> bool:
        return self.path.exists()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def __call__(self) -> bool:
        return self.is_set()


@dataclass
class Job:
    """One long stage of a workspace: the page reads it, Cancel sets ``cancel``, the worker writes it."""

    root: str
    stage: str
    label: str
    status: str = RUNNING
    waiting: bool = False  # for the workspace's writer lock (another job or a CLI run writes it)
    done: int = 0
    total: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # what the task wants the page to know (e.g. methods done)
    message: str = ""
    result: Any = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    pid: int | None = None  # the process running the job (the worker; the server for thread jobs)
    proc_start: str | None = None  # that process's start time (tells a reused pid apart)
    launcher: int | None = None  # the server process that started it
    host: str = field(default_factory=socket.gethostname)
    kind: str = "process"  # "process" (a worker) or "thread" (in the server)
    task: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # what the user chose (fast, device, batch size…)
    thread: threading.Thread | None = field(default=None, repr=False)
    _written: float = field(default=0.0, repr=False)

    # ------------------------------------------------------------------ files
    @property
    def path(self) -> Path:
        return job_path(self.root, self.stage)

    @property
    def cancel(self) -> CancelFlag:
        return CancelFlag(self.path.with_suffix(".cancel"))

    @property
    def log_path(self) -> Path:
        return self.path.with_suffix(".log")

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _SAVED}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(**{k: data[k] for k in _SAVED if k in data})

    def save(self) -> None:
        """Write the job file atomically (readers never see half a file)."""
        from clay_explore.core.workspace import atomic_write_json

        atomic_write_json(self.path, self.to_json())
        self._written = time.monotonic()

    # ------------------------------------------------------------------ what the task calls
    def progress(self, done: int, total: int, info: dict[str, Any] | None = None) -> None:
        """The library's progress callback: remember where the stage is (written at most every WRITE_EVERY_S)."""
        # written at once when a count changes (bar and metrics agree), else at most every WRITE_EVERY_S
        now_counts = (int(done), int(total))
        urgent = self.waiting or now_counts != (self.done, self.total) or "rate" not in self.info
        self.done, self.total, self.info, self.waiting = *now_counts, dict(info or {}), False
        if urgent or time.monotonic() - self._written >= WRITE_EVERY_S:
            self.save()

    def set_label(self, label: str, total: int | None = None, done: int | None = None) -> None:
        """Say what the job does now ('Loading the model…', 'Learned linear (2 of 2)'), written at once."""
        self.label = label
        self.info = {k: v for k, v in self.info.items() if k not in ("rate", "chips_per_s", "eta_s", "position")}
        if total is not None:
            self.total = int(total)
        if done is not None:
            self.done = int(done)
        self.save()

    def set_waiting(self, message: str) -> None:
        """The workspace is being written by someone else; ``message`` says who."""
        self.waiting, self.message = True, message
        self.save()


# ---------------------------------------------------------------------------------------------- registry
_GUARD = threading.Lock()
_THREADS: dict[tuple[str, str], Job] = {}  # thread jobs of this server: the live objects
_PROCS: dict[tuple[str, str], subprocess.Popen] = {}  # workers this server started


def _key(root: str | Path) -> str:
    return str(Path(root).resolve())


def job_path(root: str | Path, stage: str) -> Path:
    """The job file of ``stage`` in workspace ``root``."""
    return Path(root) / JOBS_DIR / f"{stage}.json"


def _read(root: str | Path, stage: str) -> Job | None:
    try:
        return Job.from_json(json.loads(job_path(root, stage).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux /proc), to tell a reused pid apart; None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 (starttime), counted after the command name


def pid_alive(pid: int | None, start: str | None = None) -> bool:
    """True when process ``pid`` runs (and, when ``start`` is given, is the same process; zombies count as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): os.kill said it exists
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return start is None or process_start(pid) == start


def _gone_message(job: Job) -> str:
    return (
        f"{job.label} stopped before it finished (the app server or its worker process was stopped). "
        "Everything finished before is kept; start it again to resume."
    )


def _alive(job: Job) -> bool:
    key = (_key(job.root), job.stage)
    proc = _PROCS.get(key)
    if proc is not None and proc.pid == job.pid or (proc is not None and job.pid is None):
        return proc.poll() is None
    if job.pid is None:  # the worker has not said hello yet
        return pid_alive(job.launcher) and time.time() - job.started < START_GRACE_S
    if job.host != socket.gethostname():
        return True  # another machine's job: trust its file
    return pid_alive(job.pid, job.proc_start)


def get_job(root: str | Path, stage: str) -> Job | None:
    """The latest job of ``stage`` on the workspace (running or finished), or None.

    Read from the job file, so a reloaded page or another session re-attaches to a running worker. A
    job whose process is gone while its file says 'running' is marked 'cancelled' with the reason.
    """
    live = _THREADS.get((_key(root), stage))
    if live is not None:
        return live
    job = _read(root, stage)
    if job is None or not job.running or _alive(job):
        return job
    job.status, job.message, job.finished, job.waiting = CANCELLED, _gone_message(job), time.time(), False
    try:
        job.save()
    except OSError:  # a read-only workspace: report it all the same
        pass
    return job


# ---------------------------------------------------------------------------------------------- starting
def start_job(
    root: str | Path,
    stage: str,
    label: str,
    fn: Task | Callable[[Job], Any],
    settings: dict[str, Any] | None = None,
    total: int = 0,
    done: int = 0,
) -> Job:
    """Start ``fn`` as the ``stage`` job of the workspace; a running job of that stage is returned as is.

    ``fn`` is a :class:`Task` (run by a worker process, the normal case) or a callable ``fn(job)`` run in
    a server thread. Either passes ``job.progress`` and ``job.cancel`` to the library. ``settings``
    (what the user chose) is kept in the job file; ``total``/``done``, when the page knows them, are shown
    from the first second (the worker confirms them before loading the model). A ClayExploreError ends
    the job 'failed' with its message; any other exception too, with the traceback in the server's (or
    the worker's) log only.
    """
    root = _key(root)
    with _GUARD:
        old = get_job(root, stage)
        if old is not None and old.running:
            return old
        job = Job(
            root=root,
            stage=stage,
            label=label,
            launcher=os.getpid(),
            settings=dict(settings or {}),
            total=int(total),
            done=int(done),
        )
        job.cancel.clear()
        if isinstance(fn, Task):
            job.task = {"name": fn.name, "kwargs": fn.kwargs}
            job.save()
            _spawn(job)
        else:
            job.kind, job.pid, job.proc_start = "thread", os.getpid(), process_start(os.getpid())
            job.save()
            _THREADS[(root, stage)] = job
            job.thread = threading.Thread(target=_run_thread, args=(job, fn), name=f"clay-{stage}", daemon=True)
            job.thread.start()
    return job


def worker_command(job_file: Path) -> list[str]:
    """The command line of a worker process for ``job_file``."""
    return [sys.executable, "-m", WORKER_MODULE, str(job_file)]


def _spawn(job: Job) -> None:
    env = {**os.environ, PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
    with open(job.log_path, "ab") as err:
        # a session of its own: a terminal's Ctrl-C or a signal to the server's group reaches the server only;
        # the worker stops through its parent watch and keeps its finished batches
        proc = subprocess.Popen(
            worker_command(job.path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            start_new_session=True,
        )
    key = (job.root, job.stage)
    _PROCS[key] = proc
    threading.Thread(target=_reap, args=(key, proc), name=f"clay-reap-{job.stage}", daemon=True).start()


def _reap(key: tuple[str, str], proc: subprocess.Popen) -> None:
    """Wait for a worker (no zombie); if it died without saying how it ended, say so in its job file."""
    code = proc.wait()
    job = _read(*key)
    if job is not None and job.running and job.pid in (None, proc.pid):
        job.status, job.finished = (FAILED if code > 0 else CANCELLED), time.time()
        job.message = (
            f"{job.label} failed unexpectedly (worker exit code {code}; details in {job.log_path})."
            if code > 0
            else _gone_message(job)
        )
        job.save()
    with _GUARD:
        if _PROCS.get(key) is proc:
            _PROCS.pop(key)


# ---------------------------------------------------------------------------------------------- running
@contextmanager
def job_writer(job: Job, cancel: Any = None) -> Iterator[None]:
    """Hold the workspace's writer lock (core.lock) for the whole job, waiting for it when busy.

    The job says whom it waits for (``Job.set_waiting``); Cancel (``cancel``) ends the wait. Stages the
    task calls take the same lock re-entrantly, so no other writer slips in between two of them.
    """
    from clay_explore.core.lock import wait_policy, workspace_writer

    with (
        wait_policy(True, job.set_waiting),
        workspace_writer(job.root, job.stage, wait=True, cancel=cancel, on_wait=job.set_waiting),
    ):
        if job.waiting:
            job.waiting, job.message = False, ""
            job.save()
        yield


def run_job(job: Job, fn: Callable[[Job], Any], cancel: Any = None) -> None:
    """Run ``fn(job)`` under the writer lock and write how it ended into the job file (workers and threads)."""
    try:
        with job_writer(job, cancel if cancel is not None else job.cancel):
            result = fn(job)
        job.result = json.loads(json.dumps(result, default=str)) if result is not None else None
        job.status, job.message = COMPLETE, ""
    except CancelledError as err:
        job.status, job.message = CANCELLED, str(err)
    except ClayExploreError as err:
        job.status, job.message = FAILED, str(err)
    except KeyboardInterrupt:
        job.status, job.message = CANCELLED, _gone_message(job)
    except Exception as err:
        log.exception("%s failed", job.label)
        job.status, job.message = FAILED, f"{job.label} failed unexpectedly ({type(err).__name__}: {err})."
    finally:
        job.waiting, job.finished = False, time.time()
        job.save()


def _run_thread(job: Job, fn: Callable[[Job], Any]) -> None:
    try:
        run_job(job, fn)
    finally:
        with _GUARD:
            if _THREADS.get((job.root, job.stage)) is job:
                _THREADS.pop((job.root, job.stage))


def wait(job: Job, timeout: float | None = None) -> bool:
    """Block until the job ends (tests, benchmarks); True when it ended. Polls the job file of a worker."""
    if job.thread is not None:
        job.thread.join(timeout)
        return not job.running
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        now = get_job(job.root, job.stage)
        if now is None or not now.running:
            if now is not None:
                job.__dict__.update({k: getattr(now, k) for k in _SAVED})
            proc = _PROCS.get((_key(job.root), job.stage))
            if proc is not None:
                proc.wait()
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)


def stop_workers(timeout: float = 2.0) -> None:
    """Ask every worker this server started to stop (SIGTERM: they keep finished batches), wait up to ``timeout``."""
    procs = list(_PROCS.values())
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            pass


# ---------------------------------------------------------------------------------------------- locks
class WorkspaceLock:
    """The workspace's writer lock (``core.lock``) for app code: ``with`` / ``acquire(blocking)`` / ``release``."""

    def __init__(self, root: str | Path, stage: str = "app"):
        self.root, self.stage = Path(root), stage
        self._cm: Any = None

    def acquire(self, blocking: bool = True) -> bool:
        from clay_explore.core.errors import WorkspaceBusyError
        from clay_explore.core.lock import workspace_writer

        cm = workspace_writer(self.root, self.stage, wait=blocking)
        try:
            cm.__enter__()
        except WorkspaceBusyError:
            return False
        self._cm = cm
        return True

    def release(self) -> None:
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)

    def __enter__(self) -> WorkspaceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def workspace_lock(root: str | Path) -> WorkspaceLock:
    """The writer lock of a workspace, shared with every process (CLI, workers, other app servers)."""
    return WorkspaceLock(root)
