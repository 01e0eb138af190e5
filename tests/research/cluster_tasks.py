"""Batch tasks the cluster tests run on Dask workers (importable there: tests/research is on PYTHONPATH).

``stall_once`` makes exactly one task (the first to claim a file) hold its batch until its worker
is killed by the test; ``hide_workspace`` makes one batch act as if no worker could see the
workspace. Both otherwise run the real ``encode_batch``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from clay_explore.research.distributed import BatchSpec, WorkspaceNotVisible, encode_batch

#: Longest a stalled task holds its batch when nobody kills its worker (then it carries on).
STALL_LIMIT_S = 120.0
POLL_S = 0.05


def stall_once(claim: str, spec: BatchSpec):
    """The first task to claim ``claim`` writes its pid to ``claim + '.pid'`` and waits to be killed."""
    try:
        os.rename(claim, claim + ".taken")
    except OSError:
        return encode_batch(spec)  # someone else claimed it: a normal batch (also the retried one)
    Path(claim + ".pid").write_text(str(os.getpid()))
    deadline = time.monotonic() + STALL_LIMIT_S
    while time.monotonic() < deadline:  # the test kills this process meanwhile
        time.sleep(POLL_S)
    return encode_batch(spec)


def hide_workspace(index: int, spec: BatchSpec):
    """Batch ``index`` acts as if no worker could read the workspace, until its chips come with the task."""
    if spec.index == index and spec.pixels is None:
        raise WorkspaceNotVisible("test: this worker pretends not to see the workspace")
    return encode_batch(spec)
