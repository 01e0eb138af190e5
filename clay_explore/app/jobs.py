"""Long app stages (embed, fit, evaluate) as background jobs with progress and a real cancel flag.

A Streamlit script run stops whenever the user touches a widget, so a stage run inside the script
cannot be cancelled cleanly. Here the stage runs in a server thread instead: the page starts it,
draws its progress from ``Job`` and offers Cancel, which sets ``Job.cancel``, the
``threading.Event`` that ``embed_workspace``/``fit_method``/``evaluate_workspace`` check between
batches. The library then raises CancelledError having kept the finished work, and the job ends
'cancelled'. Jobs and workspace locks are per server process (module state), so two browser
sessions on one shared workspace see the same job and never write it at once. No Streamlit here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clay_explore.core.errors import CancelledError, ClayExploreError

log = logging.getLogger(__name__)

RUNNING, COMPLETE, CANCELLED, FAILED = "running", "complete", "cancelled", "failed"


@dataclass
class Job:
    """One long stage running in a server thread; the page reads it, Cancel sets ``cancel``."""

    root: str
    stage: str
    label: str
    cancel: threading.Event = field(default_factory=threading.Event)
    status: str = RUNNING
    waiting: bool = True  # for the workspace lock (another session writes the same workspace)
    done: int = 0
    total: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # what ``fn`` wants the page to know (e.g. methods done)
    message: str = ""
    result: Any = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    def progress(self, done: int, total: int, info: dict[str, Any] | None = None) -> None:
        """The library's progress callback: remember where the stage is."""
        self.done, self.total, self.info = int(done), int(total), dict(info or {})


_GUARD = threading.Lock()
_JOBS: dict[tuple[str, str], Job] = {}
_WS_LOCKS: dict[str, threading.Lock] = {}


def _key(root: str | Path) -> str:
    return str(Path(root).resolve())


def workspace_lock(root: str | Path) -> threading.Lock:
    """One lock per workspace per server: two jobs never write the same workspace at once."""
    with _GUARD:
        return _WS_LOCKS.setdefault(_key(root), threading.Lock())


def get_job(root: str | Path, stage: str) -> Job | None:
    """The latest job of ``stage`` on the workspace (running or finished), or None."""
    with _GUARD:
        return _JOBS.get((_key(root), stage))


def start_job(root: str | Path, stage: str, label: str, fn: Callable[[Job], Any]) -> Job:
    """Run ``fn(job)`` in a thread under the workspace lock; a running job of the same stage is returned as is.

    ``fn`` passes ``job.progress`` and ``job.cancel`` to the library. A ClayExploreError ends the job
    'failed' with its message; any other exception too, with the traceback logged on the server only.
    """
    key = (_key(root), stage)
    with _GUARD:
        old = _JOBS.get(key)
        if old is not None and old.running:
            return old
        job = Job(root=key[0], stage=stage, label=label)
        _JOBS[key] = job
    job.thread = threading.Thread(target=_run, args=(job, fn), name=f"clay-{stage}", daemon=True)
    job.thread.start()
    return job


def _run(job: Job, fn: Callable[[Job], Any]) -> None:
    lock = workspace_lock(job.root)
    acquired = False
    try:
        # a Cancel pressed while waiting reaches the library, which stops before its first batch
        acquired = lock.acquire()
        job.waiting = False
        job.result = fn(job)
        job.status = COMPLETE
    except CancelledError as err:
        job.status, job.message = CANCELLED, str(err)
    except ClayExploreError as err:
        job.status, job.message = FAILED, str(err)
    except Exception as err:
        log.exception("%s failed", job.label)
        job.status, job.message = FAILED, f"{job.label} failed unexpectedly ({type(err).__name__}: {err})."
    finally:
        if acquired:
            lock.release()
        job.finished = time.time()


def wait(job: Job, timeout: float | None = None) -> bool:
    """Block until the job's thread ends (tests, CLI); True when it ended."""
    if job.thread is not None:
        job.thread.join(timeout)
    return not job.running
