"""The worker process of an app job: ``python -m clay_explore.app.worker WORKSPACE/.jobs/STAGE.json``.

Runs the job's task (embed, fit, evaluate, vectors: the CLI's library functions) and writes its
progress, stage label and outcome into the job file (``app.jobs``). It stops like Cancel (between
encoder blocks or batches, finished batches kept) when the cancel file appears, on SIGTERM/SIGINT/
SIGHUP, or when the server that started it is gone. No Streamlit here; heavy imports happen inside
the tasks, so the job file says "Loading the model…" with the total within the first second.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clay_explore.app.jobs import PARENT_ENV, Job, process_start, run_job

Cancel = Callable[[], bool]
LOADING = "Loading the model…"
VECTORS = "Image vectors (mean, max, GeM)"


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` without the optional keywords (None values) ``fn`` does not take."""
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kept = {k: v for k, v in kwargs.items() if takes_any or k in params or v is not None}
    return fn(*args, **kept)


def _chips(root: str) -> tuple[int, int]:
    """(chips, chips already embedded): the embed total, known before the model loads."""
    from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace

    ws = Workspace.open(root)
    n = ws.n_chips()
    return n, int(ws.done_mask(EMBEDDINGS_ZARR, "cls", n).sum())


# ---------------------------------------------------------------------------------------------- tasks
def embed_task(
    job: Job,
    cancel: Cancel,
    *,
    checkpoint: str | None = None,
    batch_size: int | str | None = None,
    fast: bool = False,
    device: str | None = None,
    vectors: bool = True,
) -> dict[str, Any]:
    """Embed every chip (resumable), then pool the mean/max/GeM image vectors."""
    from clay_explore.research.embed import embed_workspace
    from clay_explore.research.provenance import load_model_for

    n, done = _chips(job.root)
    job.set_label(LOADING, total=n, done=done)
    model = _call(load_model_for, checkpoint, fast=fast, device=device)
    job.set_label("Embedding")
    record = _call(
        embed_workspace,
        job.root,
        model=model,
        batch_size=batch_size,
        progress=job.progress,
        cancel=cancel,
        show_progress=False,
    )
    if vectors:
        vectors_task(job, cancel, device=device)
    return record


def vectors_task(job: Job, cancel: Cancel, *, device: str | None = None) -> list[str]:
    """Mean/max/GeM image vectors pooled from the stored patch tokens."""
    from clay_explore.research.vectors import ensure_parameter_free_vectors

    n, _ = _chips(job.root)
    job.set_label(VECTORS, total=n, done=0)
    return _call(ensure_parameter_free_vectors, job.root, progress=job.progress, cancel=cancel, device=device)


def fit_task(
    job: Job,
    cancel: Cancel,
    *,
    methods: list[str],
    epochs: int,
    seeds: int | None = None,
    out_dim: int | None = None,
    checkpoint: str | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Fit ``methods`` one after the other (each resumable, at vector width ``out_dim`` when given); notes say
    which are done."""
    from clay_explore.core.workspace import Workspace
    from clay_explore.research.fit import fit_method
    from clay_explore.research.provenance import model_for_workspace
    from clay_explore.viz.views import method_label

    job.notes.update(done=[], todo=list(methods))
    job.set_label(LOADING)
    model = _call(model_for_workspace, Workspace.open(job.root), checkpoint, None, device=device)
    for i, method in enumerate(methods):
        job.set_label(f"Fitting {method_label(method)} ({i + 1} of {len(methods)})", total=0, done=0)
        extra = {"seeds": seeds} if seeds is not None else {}
        _call(
            fit_method,
            job.root,
            method,
            epochs=epochs,
            out_dim=out_dim,
            model=model,
            progress=job.progress,
            cancel=cancel,
            show_progress=False,
            **extra,
        )
        job.notes["done"].append(method)
        job.save()
    return {"fitted": job.notes["done"]}


def evaluate_task(
    job: Job, cancel: Cancel, *, checkpoint: str | None = None, device: str | None = None
) -> dict[str, Any]:
    """Evaluate every fitted method and the references; writes evaluation.json."""
    from clay_explore.core.workspace import Workspace
    from clay_explore.research.evaluate import evaluate_workspace
    from clay_explore.research.provenance import model_for_workspace

    job.set_label(LOADING)
    model = _call(model_for_workspace, Workspace.open(job.root), checkpoint, None, device=device)
    job.set_label("Evaluating")
    report = _call(evaluate_workspace, job.root, model=model, progress=job.progress, cancel=cancel, show_progress=False)
    return {"methods": sorted((report or {}).get("methods", {}))}


TASKS: dict[str, Callable[..., Any]] = {
    "embed": embed_task,
    "vectors": vectors_task,
    "fit": fit_task,
    "evaluate": evaluate_task,
}


# ---------------------------------------------------------------------------------------------- process
def parent_gone(parent: int) -> bool:
    """True once the server that started this worker has exited (the worker was re-parented)."""
    return os.getppid() != parent


def main(argv: list[str] | None = None) -> int:
    """Run the job in ``argv[0]`` (a job file); the exit code is 0 unless the job file is unusable."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if len(argv) != 1:
        print("usage: python -m clay_explore.app.worker WORKSPACE/.jobs/STAGE.json", file=sys.stderr)
        return 2
    path = Path(argv[0])
    job = Job.from_json(json.loads(path.read_text()))
    if not job.task or job.task.get("name") not in TASKS:
        print(f"{path}: no task this worker knows ({job.task})", file=sys.stderr)
        return 2
    job.pid, job.proc_start = os.getpid(), process_start(os.getpid())
    job.save()
    parent = int(os.environ.get(PARENT_ENV) or os.getppid())
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, on_signal)

    def cancelled() -> bool:
        return stop.is_set() or job.cancel.is_set() or parent_gone(parent)

    task = TASKS[job.task["name"]]
    run_job(job, lambda j: task(j, cancelled, **(j.task.get("kwargs") or {})), cancelled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
