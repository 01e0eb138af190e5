"""Embedding one workspace on a Dask cluster: workers encode batches, this process writes them.

``embed_workspace(..., workers=N)`` starts a ``dask.distributed`` LocalCluster of N processes on
this machine; ``scheduler="tcp://HOST:PORT"`` uses a cluster started with ``dask scheduler`` and
``dask worker``. Design:

- The client (this process) is the only writer. It plans the same gsd batches as a single-process
  run, submits them (a few per worker in flight), and writes each result into the same token arrays,
  marks its rows done and updates the progress bar and stage record exactly as ``embed`` does. A
  batch is written once: results are keyed by batch index and a second result for a written batch
  is dropped, so a retried or resubmitted batch can never be written twice.
- Each worker loads the model once and keeps it (a module-level cache keyed by checkpoint sha256,
  path and precision); a worker that cannot find the client's checkpoint path loads its own default
  (``CLAY_CHECKPOINT`` / Hugging Face cache) and must match the sha256.
- A worker that dies mid-batch: the scheduler re-runs its tasks on another worker; a batch whose
  tasks killed too many workers (``KilledWorker``) is resubmitted up to ``MAX_RESUBMITS`` times.
- Chips: when every worker sees the workspace at the same path (a shared filesystem; always true for
  ``--workers``), tasks carry only row indices and workers read the chips themselves; otherwise the
  client reads the normalised chips and sends them with the task. A worker that turns out not to see
  the workspace raises ``WorkspaceNotVisible`` and its batch is resent with its chips.
- Tokens equal a single-process fp32 run bitwise when the workers use the same number of torch
  threads (``torch_threads``): the batches, the kernels and the float16 conversion are the same.
  With another thread count torch's CPU reductions run in another order: fp32 tokens differ by
  about 1e-6, and a stored float16 value can differ by one float16 step (checked in tests).
"""

from __future__ import annotations

import logging
import os
import threading
import time as _time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clay_explore.core.defaults import DEFAULT_BATCH_SIZE
from clay_explore.core.errors import CancelledError, ClayExploreError, WorkspaceError
from clay_explore.core.progress import Cancel, Progress, ProgressFn, is_cancelled
from clay_explore.core.workspace import EMBEDDINGS_ZARR, MANIFEST, Workspace, write_rows
from clay_explore.research.inputs import batches_by_gsd, chip_meta, normalised_chips, waves_of

STAGE = "embed"
#: Batches kept submitted per worker (enough to keep each busy while the client writes).
IN_FLIGHT_PER_WORKER = 2
#: Dask retries of a batch whose task raised (a transient read error on a worker).
TASK_RETRIES = 2
#: Resubmissions of a batch whose tasks kept killing workers (dask gives up with KilledWorker).
MAX_RESUBMITS = 3
#: Seconds to wait for the scheduler to answer and for the first worker to join.
CONNECT_TIMEOUT_S = 60.0
#: Name under which the worker set-up plugin (torch threads, allocator) is registered.
PLUGIN_NAME = "clay-explore-worker-setup"
#: glibc allocator settings on workers. Dask's nanny sets MALLOC_TRIM_THRESHOLD_, which turns off glibc's
#: adaptive mmap threshold: every activation-sized tensor is then mmapped and page-faulted afresh (about
#: 1.5x slower encoding here). These restore what the adaptive threshold would reach.
MALLOC_MMAP_THRESHOLD = 32 * 2**20
MALLOC_TRIM_THRESHOLD = 512 * 2**20
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)
#: Dask settings of the workers `--workers N` starts: no statistical profiler sampling every task's stack
#: (it takes the GIL every 10 ms; one long torch call per task gains nothing from it).
LOCAL_WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


class ClusterError(ClayExploreError):
    """The Dask cluster could not be reached, had no workers, or could not run the model."""


class WorkspaceNotVisible(ClayExploreError):
    """Raised on a worker that cannot read the workspace; the client resends the batch with its chips."""


# ---------------------------------------------------------------------------- worker side
@dataclass(frozen=True)
class ModelSpec:
    """Which model the workers load: checkpoint path (as the client sees it), its sha256, fast mode."""

    path: str | None
    sha256: str | None
    fast: bool
    precision: str = "float32"


@dataclass(frozen=True)
class BatchSpec:
    """One batch: rows, their metadata and either the workspace path (shared fs) or the chips."""

    index: int
    rows: np.ndarray  # [b] chip rows
    time: np.ndarray  # [b, 4]
    latlon: np.ndarray  # [b, 4]
    gsd: float
    waves: np.ndarray  # [C] µm
    model: ModelSpec
    workspace: str | None = None  # read chips there (shared filesystem)
    token: str | None = None  # the manifest's creation time: proves it is the same workspace
    pixels: np.ndarray | None = None  # [b, C, H, W] normalised chips, when sent with the task


_MODELS: dict[tuple[str | None, str | None, bool], Any] = {}
_MODEL_LOCK = threading.Lock()


def worker_model(spec: ModelSpec) -> Any:
    """The model for ``spec``, loaded once per worker process and kept."""
    from clay_explore.research.provenance import load_model_for, model_precision, model_sha256

    key = (spec.sha256, spec.path, spec.fast)
    with _MODEL_LOCK:
        if key not in _MODELS:
            path = spec.path if spec.path and Path(spec.path).is_file() else None
            model = load_model_for(path, fast=spec.fast)
            have = model_sha256(model)
            if model_precision(model) != spec.precision:
                raise ClusterError(
                    f"Worker {_host()} runs the model in {model_precision(model)}, the client in {spec.precision}; "
                    "tokens of one workspace must share one precision. Embed without --fast, or use workers "
                    "with the same kind of device as this machine."
                )
            if spec.sha256 and have != spec.sha256:
                raise ClusterError(
                    f"Worker {_host()} has no checkpoint with sha256 {spec.sha256[:12]}… (it found "
                    f"{(have or 'none')[:12]}). Put the same checkpoint at {spec.path} on every worker, or set "
                    "CLAY_CHECKPOINT there."
                )
            _MODELS[key] = model
        return _MODELS[key]


def _host() -> str:
    import socket

    return socket.gethostname()


def sees_workspace(root: str, token: str | None) -> bool:
    """True when this process can read the workspace at ``root`` and it is the client's (same token)."""
    import json

    try:
        manifest = json.loads((Path(root) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("created") == token


def _batch_pixels(spec: BatchSpec) -> np.ndarray:
    if spec.pixels is not None:
        return spec.pixels
    if spec.workspace is None or not sees_workspace(spec.workspace, spec.token):
        raise WorkspaceNotVisible(f"Worker {_host()} cannot read the workspace {spec.workspace}.")
    pixels, _ = normalised_chips(Workspace.open(spec.workspace), spec.rows)
    return pixels


def encode_batch(spec: BatchSpec) -> tuple[int, np.ndarray, np.ndarray]:
    """Run on a worker: (batch index, CLS [b, D] float16, patches [b, L, D] float16) of one batch."""
    import torch

    from clay_explore.model.device import model_device

    model = worker_model(spec.model)
    dev = model_device(model)
    pixels = _batch_pixels(spec)
    with torch.inference_mode():
        tokens = model.encode(
            torch.from_numpy(pixels).to(dev),
            torch.from_numpy(spec.time).to(dev),
            torch.from_numpy(spec.latlon).to(dev),
            torch.tensor(float(spec.gsd), dtype=torch.float32, device=dev),
            torch.from_numpy(spec.waves).to(dev),
        )  # [b, 1+L, D]
    tokens = tokens.float().cpu().numpy()
    return spec.index, tokens[:, 0].astype(np.float16), tokens[:, 1:].astype(np.float16)


def _tune_malloc() -> None:
    """Large allocations from the heap again on a dask worker (see MALLOC_MMAP_THRESHOLD); glibc only."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
            libc.mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD)
    except OSError:
        pass  # not glibc (macOS, musl): nothing to undo there


def _torch_threads_plugin(procs_by_host: dict[str, int], fixed: int | None = None):
    """A WorkerPlugin setting torch's thread count on every worker, including ones that join later.

    Dask's nanny sets OMP_NUM_THREADS=1; one torch forward pass per task wants the host's cores
    shared among the worker processes on it (``procs_by_host``: host -> processes there), or
    ``fixed`` threads when given (the same count as a single-process run gives bitwise equal tokens).
    """
    from distributed import WorkerPlugin

    class TorchThreads(WorkerPlugin):
        idempotent = True

        def __init__(self, procs: dict[str, int], fixed: int | None):
            self.procs, self.fixed = procs, fixed

        def setup(self, worker) -> None:
            import torch

            _tune_malloc()
            host = worker.address.rsplit(":", 1)[0].split("://")[-1]
            shared = (os.cpu_count() or 1) // max(1, self.procs.get(host, 1)) // max(1, worker.state.nthreads)
            torch.set_num_threads(max(1, self.fixed or shared))

    return TorchThreads(procs_by_host, fixed)


# ---------------------------------------------------------------------------- client side
def _connect(workers: int | None, scheduler: str | None):
    """(client, cluster or None): a LocalCluster of ``workers`` processes, or the given scheduler."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise ClusterError(
                f"Could not reach the Dask scheduler at {scheduler} ({type(err).__name__}). Start it with "
                "`dask scheduler`, check the address (tcp://HOST:PORT), or use --workers N on this machine."
            ) from err
        return client, None
    import dask

    with dask.config.set(LOCAL_WORKER_CONFIG):
        cluster = LocalCluster(
            n_workers=int(workers),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    return Client(cluster, set_as_default=False), cluster


def _check_cluster_options(workers: int | None, scheduler: str | None) -> None:
    if workers and scheduler:
        raise ClusterError("Give either --workers N (a cluster on this machine) or --scheduler URL, not both.")
    if not scheduler and (workers is None or int(workers) < 1):
        raise ClusterError(f"--workers must be at least 1, got {workers}.")
    if scheduler and "://" not in scheduler and ":" not in scheduler:
        raise ClusterError(
            f"--scheduler {scheduler!r} is no address; give tcp://HOST:PORT (the line `dask scheduler` prints)."
        )


def _wait_for_workers(client) -> dict[str, int]:
    """Wait for a first worker; returns worker processes per host."""
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except TimeoutError as err:
        raise ClusterError(
            f"The Dask scheduler has no workers after {CONNECT_TIMEOUT_S:g} s. Start some with "
            f"`dask worker {client.scheduler.address}`."
        ) from err
    procs: dict[str, int] = {}
    for addr in client.scheduler_info(n_workers=-1)["workers"]:
        host = addr.rsplit(":", 1)[0].split("://")[-1]
        procs[host] = procs.get(host, 0) + 1
    return procs


def _model_spec(model: Any, facts: dict[str, Any]) -> ModelSpec:
    path = (getattr(model, "source", {}) or {}).get("path")
    if not path and not facts.get("sha256"):
        raise ClusterError("The model has no checkpoint file the workers could load. Pass --checkpoint.")
    precision = str(facts.get("precision") or "float32")
    return ModelSpec(
        path=str(path) if path else None, sha256=facts.get("sha256"), fast=precision != "float32", precision=precision
    )


class _Batches:
    """The planned batches and their task specs (chips read here when they travel with the task)."""

    def __init__(self, ws: Workspace, rows: list[np.ndarray], spec: ModelSpec, send_chips: bool):
        self.ws, self.rows, self.spec, self.send_chips = ws, rows, spec, send_chips
        self.meta = chip_meta(ws)
        self.waves = waves_of(ws).astype(np.float32)
        self.token = ws.manifest.get("created")

    def spec_for(self, i: int, *, with_chips: bool) -> BatchSpec:
        rows = self.rows[i]
        pixels = normalised_chips(self.ws, rows)[0] if with_chips else None
        return BatchSpec(
            index=i,
            rows=rows,
            time=self.meta.time[rows],
            latlon=self.meta.latlon[rows],
            gsd=float(self.meta.gsd[rows[0]]),
            waves=self.waves,
            model=self.spec,
            workspace=str(self.ws.root.resolve()),
            token=self.token,
            pixels=pixels,
        )


def _run_batches(
    client,
    batches: _Batches,
    n_workers: int,
    write: Callable[[int, np.ndarray, np.ndarray], None],
    cancel: Cancel,
    task: Callable[[BatchSpec], Any],
) -> None:
    """Submit every batch (bounded in flight), write each result once, resubmit lost ones."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    run = uuid.uuid4().hex[:8]
    queue = list(range(len(batches.rows)))[::-1]  # pop() from the end = row order
    attempts: dict[int, int] = {}
    chips_for: set[int] = set()  # batches resent with their chips
    written: set[int] = set()
    owner: dict[Any, int] = {}
    pending = as_completed(loop=client.loop)
    limit = max(2, IN_FLIGHT_PER_WORKER * n_workers)

    def submit(i: int) -> None:
        attempts[i] = attempts.get(i, 0) + 1
        spec = batches.spec_for(i, with_chips=batches.send_chips or i in chips_for)
        fut = client.submit(task, spec, key=f"clay-embed-{run}-{i}-{attempts[i]}", retries=TASK_RETRIES, pure=False)
        owner[fut] = i
        pending.add(fut)

    def top_up() -> None:
        while queue and pending.count() < limit:
            submit(queue.pop())

    if is_cancelled(cancel):  # cancelled while the cluster started: submit nothing
        return
    top_up()
    try:
        for fut in pending:
            i = owner.pop(fut)
            if fut.status == "error":
                err = fut.exception()
                if isinstance(err, WorkspaceNotVisible) and i not in chips_for:
                    chips_for.add(i)
                    submit(i)
                elif isinstance(err, KilledWorker) and attempts[i] <= MAX_RESUBMITS:
                    submit(i)  # its tasks died with their workers: run it again elsewhere
                elif isinstance(err, KilledWorker):
                    raise ClusterError(
                        f"Batch {i} killed workers {attempts[i]} times (out of memory?). Use a smaller "
                        "--batch-size or workers with more memory; finished batches are kept, re-run to resume."
                    ) from err
                else:
                    raise err
            elif fut.status == "finished":
                index, cls16, patches16 = fut.result()
                if index not in written:  # a batch is written once, whatever ran it
                    write(index, cls16, patches16)
                    written.add(index)
            elif attempts[i] <= MAX_RESUBMITS:  # cancelled or lost by the scheduler (e.g. it restarted)
                submit(i)
            else:
                raise ClusterError(
                    f"The cluster lost batch {i} {attempts[i]} times. Check the scheduler and "
                    "workers; finished batches are kept, re-run to resume."
                )
            if is_cancelled(cancel):
                return
            top_up()
    except FutureCancelledError as err:
        raise ClusterError("The cluster cancelled the embedding tasks. Re-run to resume.") from err
    finally:
        leftover = [f for f in owner if not f.done()]
        if leftover:
            client.cancel(leftover)
    missing = sorted(set(range(len(batches.rows))) - written)
    if missing:  # never record a complete stage with a hole in it
        raise ClusterError(f"{len(missing)} batches came back from no worker. Re-run to resume.")


def embed_distributed(
    ws: Workspace,
    *,
    checkpoint: str | Path | None = None,
    model: Any = None,
    batch_size: int | str = DEFAULT_BATCH_SIZE,
    fast: bool = False,
    device: Any = None,
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
    show_progress: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
    send_chips: bool | None = None,
    torch_threads: int | None = None,
    task: Callable[[BatchSpec], Any] = encode_batch,
) -> dict[str, Any]:
    """``embed_workspace`` on a Dask cluster (see the module doc); same stores, record and resume.

    ``send_chips``: True sends chips with every task, False lets workers read them from the workspace,
    None (default) asks every worker whether it sees the workspace. ``torch_threads``: torch threads
    per worker (default: the host's cores shared among its worker processes). torch's CPU reductions
    depend on the thread count (fp32 tokens differ by ~1e-6, which can move a float16 value by one
    step), so tokens are bitwise equal to a single-process run given the same thread count here.
    ``task`` is what a worker runs for one batch (tests wrap it). Returns the stage record with a
    ``cluster`` entry.
    """
    from clay_explore.model.device import AUTO
    from clay_explore.research.embed import _open_outputs, already_complete
    from clay_explore.research.provenance import describe_model, load_model_for

    _check_cluster_options(workers, scheduler)

    # the client's copy gives the facts the arrays record; the workers load their own
    model = model if model is not None else load_model_for(checkpoint, fast=fast, device=device)
    batch_size = DEFAULT_BATCH_SIZE if batch_size == AUTO else int(batch_size)
    facts = describe_model(model)
    p = int(model.config.patch_size)
    if ws.chip_size % p:
        raise WorkspaceError(f"Chip size {ws.chip_size} px is not a multiple of Clay's patch size {p}.")
    grid = ws.chip_size // p
    n = ws.n_chips()
    spec = _model_spec(model, facts)
    cls_arr, patch_arr = _open_outputs(ws, n, grid, int(model.config.dim), facts)
    meta_gsd = chip_meta(ws).gsd
    done = ws.done_mask(EMBEDDINGS_ZARR, "cls", n)
    todo = np.flatnonzero(~done)
    info = {"n_chips": n, "grid": grid, "batch_size": batch_size, **facts}
    finished = already_complete(ws, todo, info)
    if finished is not None:
        return finished
    if not todo.size:  # every chip stored by an earlier run: no cluster needed
        record = {**info, "resumed_from": n, "seconds": 0.0}
        ws.set_stage(STAGE, status="complete", **record)
        return ws.stage(STAGE)
    ws.set_stage(STAGE, status="partial", done=int(done.sum()), **info)
    rows = list(batches_by_gsd(todo, meta_gsd, batch_size))
    bar = Progress(n, stage=STAGE, callback=progress, show=show_progress, done=int(done.sum()))
    t0 = _time.perf_counter()
    client = cluster = None
    try:
        client, cluster = _connect(workers, scheduler)
        procs = _wait_for_workers(client)
        n_workers = sum(procs.values())
        client.register_plugin(_torch_threads_plugin(procs, torch_threads), name=PLUGIN_NAME)
        root, token = str(ws.root.resolve()), ws.manifest.get("created")
        if send_chips is None:
            seen = client.run(sees_workspace, root, token)
            send_chips = not all(seen.values())
        batches = _Batches(ws, rows, spec, bool(send_chips))

        def write(i: int, cls16: np.ndarray, patches16: np.ndarray) -> None:
            r = batches.rows[i]
            write_rows(cls_arr, r, cls16)
            write_rows(patch_arr, r, patches16.reshape(len(r), grid, grid, -1))
            ws.mark_done(EMBEDDINGS_ZARR, "cls", r)
            bar.update(len(r), workers=n_workers)

        _run_batches(client, batches, n_workers, write, cancel, task)
        if is_cancelled(cancel):
            ws.set_stage(STAGE, status="partial", done=int(ws.done_mask(EMBEDDINGS_ZARR, "cls", n).sum()), **info)
            raise CancelledError(
                f"Embedding cancelled; {bar.done} of {n} chips are stored. Run `clay-explore embed` again to resume."
            )
    finally:
        bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    cluster_info = {
        "workers": n_workers,
        "scheduler": scheduler or "local",
        "chips_sent": bool(send_chips),
        "torch_threads": torch_threads or "shared",
    }
    record = {
        **info,
        "device": f"dask cluster ({n_workers} workers)",
        "resumed_from": int(done.sum()),
        "seconds": round(_time.perf_counter() - t0, 3),
        "cluster": cluster_info,
    }
    ws.set_stage(STAGE, status="complete", **record)
    return ws.stage(STAGE)
