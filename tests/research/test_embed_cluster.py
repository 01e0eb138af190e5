"""Embedding on a Dask cluster: the same tokens as one process, a killed worker loses nothing.

Two clusters: a LocalCluster of 2 processes (``workers=2``) and a ``dask scheduler`` + 2 ``dask worker``
processes on 127.0.0.1. With the same torch thread count as this process the stored tokens equal the
single-process run's bitwise; with the default (cores shared among workers) within one float16 step.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clay_explore.core.errors import CancelledError
from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace
from clay_explore.research.distributed import ClusterError, embed_distributed
from clay_explore.research.inputs import read_tokens

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(HERE) not in sys.path:  # cluster_tasks: the wrapped batch tasks (the workers get HERE on PYTHONPATH)
    sys.path.insert(0, str(HERE))
#: Bounds of the waits on conditions (cluster start-up on a loaded 2-core machine).
START_TIMEOUT_S = 180.0
POLL_S = 0.1
#: torch threads of this process: workers given the same count compute bitwise the same tokens.
THREADS = torch.get_num_threads()
#: Batch size of the ``generated_embedded`` reference run (same batches = same tokens).
BATCH = 4
#: One float16 step at the tokens' magnitude (|x| < 8): the most a thread-count change can move a value.
F16_STEP = 2.0**-8

pytestmark = pytest.mark.slow  # each cluster start spawns Python processes that import torch (~10-30 s here)


def _wait_for(condition, what: str, timeout: float = START_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _dask_cli(*args: str) -> list[str]:
    exe = shutil.which("dask")
    return [exe, *args] if exe else [sys.executable, "-m", "dask", *args]


def _scheduler_address(path: Path) -> str | None:
    try:
        return json.loads(path.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """`dask scheduler` + 2 `dask worker` processes (no nanny: a killed worker stays dead)."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("dask")
    sched_file = folder / "scheduler.json"
    path = os.pathsep.join(filter(None, [str(REPO), str(HERE), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    log = open(folder / "cluster.log", "w")
    scheduler = _dask_cli(
        "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)
    )
    procs = [subprocess.Popen(scheduler, env=env, cwd=folder, stdout=log, stderr=log)]
    try:
        address = _wait_for(lambda: _scheduler_address(sched_file), "the scheduler file")
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    _dask_cli(
                        "worker",
                        address,
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                    ),
                    env=env,
                    cwd=folder,
                    stdout=log,
                    stderr=log,
                )
            )
        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield {"address": address, "workers": procs[1:]}
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def _assert_same_tokens(root: Path, reference: Path, *, exact: bool = True) -> None:
    ws, ref = Workspace.open(root), Workspace.open(reference)
    n = ws.n_chips()
    assert ws.stage("embed")["status"] == "complete"
    assert ws.done_mask(EMBEDDINGS_ZARR, "cls", n).all()
    (cls, patches), (ref_cls, ref_patches) = read_tokens(ws, range(n)), read_tokens(ref, range(n))
    if exact:
        np.testing.assert_array_equal(cls, ref_cls)
        np.testing.assert_array_equal(patches, ref_patches)
    else:
        np.testing.assert_allclose(cls, ref_cls, rtol=0, atol=F16_STEP)
        np.testing.assert_allclose(patches, ref_patches, rtol=0, atol=F16_STEP)


def test_local_cluster_of_two_workers_stores_the_same_tokens(
    generated_template, generated_embedded, copy_ws, tiny_checkpoint
):
    root = copy_ws(generated_template)
    seen = []
    record = embed_distributed(
        Workspace.open(root),
        checkpoint=str(tiny_checkpoint),
        batch_size=BATCH,
        workers=2,
        torch_threads=THREADS,
        show_progress=False,
        progress=lambda done, total, info: seen.append((done, total)),
    )
    assert record["status"] == "complete" and record["cluster"] == {
        "workers": 2,
        "scheduler": "local",
        "chips_sent": False,
        "torch_threads": THREADS,
    }
    assert record["precision"] == "float32" and record["resumed_from"] == 0
    assert seen[-1] == (10, 10) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    _assert_same_tokens(root, generated_embedded)


def test_scheduler_and_two_dask_workers_with_chips_sent(
    dask_cluster, generated_template, generated_embedded, copy_ws, tiny_checkpoint
):
    root = copy_ws(generated_template)
    record = embed_distributed(
        Workspace.open(root),
        checkpoint=str(tiny_checkpoint),
        batch_size=BATCH,
        scheduler=dask_cluster["address"],
        send_chips=True,
        torch_threads=THREADS,
        show_progress=False,
    )
    assert record["cluster"]["workers"] == 2 and record["cluster"]["chips_sent"] is True
    _assert_same_tokens(root, generated_embedded)


def test_a_batch_no_worker_can_read_is_resent_with_its_chips(
    dask_cluster, generated_template, generated_embedded, copy_ws, tiny_checkpoint
):
    import cluster_tasks

    root = copy_ws(generated_template)
    record = embed_distributed(
        Workspace.open(root),
        checkpoint=str(tiny_checkpoint),
        batch_size=BATCH,
        scheduler=dask_cluster["address"],
        torch_threads=THREADS,
        show_progress=False,
        task=functools.partial(cluster_tasks.hide_workspace, 0),
    )
    assert record["cluster"]["chips_sent"] is False  # every worker sees this machine's filesystem
    _assert_same_tokens(root, generated_embedded)


def test_cli_embed_on_a_scheduler_with_default_threads(
    dask_cluster, generated_template, generated_embedded, copy_ws, tiny_checkpoint
):
    from clay_explore.cli.main import cli

    root = copy_ws(generated_template)
    result = CliRunner().invoke(
        cli,
        [
            "embed",
            "-w",
            str(root),
            "--checkpoint",
            str(tiny_checkpoint),
            "--batch-size",
            str(BATCH),
            "--scheduler",
            dask_cluster["address"],
        ],
    )
    assert result.exit_code == 0, result.output
    assert "embedded 10 chips" in result.output and "dask cluster (2 workers)" in result.output
    _assert_same_tokens(root, generated_embedded, exact=False)  # 1 torch thread per worker here


def test_cli_refuses_workers_and_scheduler_together(generated_template, copy_ws, tiny_checkpoint):
    from clay_explore.cli.main import cli

    root = copy_ws(generated_template)
    result = CliRunner().invoke(
        cli,
        [
            "embed",
            "-w",
            str(root),
            "--checkpoint",
            str(tiny_checkpoint),
            "--workers",
            "2",
            "--scheduler",
            "tcp://127.0.0.1:1",
        ],
    )
    assert result.exit_code != 0 and "either --workers" in result.output


def test_cancel_keeps_finished_batches_and_a_rerun_resumes(
    dask_cluster, generated_template, generated_embedded, copy_ws, tiny_checkpoint
):
    root = copy_ws(generated_template)
    stop = threading.Event()
    run = functools.partial(
        embed_distributed,
        checkpoint=str(tiny_checkpoint),
        batch_size=BATCH,
        scheduler=dask_cluster["address"],
        torch_threads=THREADS,
        show_progress=False,
    )
    with pytest.raises(CancelledError, match="resume"):
        run(Workspace.open(root), cancel=stop, progress=lambda done, total, info: done >= BATCH and stop.set())
    ws = Workspace.open(root)
    assert ws.stage("embed")["status"] == "partial"
    assert ws.done_mask(EMBEDDINGS_ZARR, "cls", ws.n_chips()).sum() == BATCH  # the first finished batch only
    record = run(Workspace.open(root))
    assert record["status"] == "complete" and record["resumed_from"] == BATCH
    _assert_same_tokens(root, generated_embedded)


def test_a_worker_killed_mid_batch_loses_nothing(
    dask_cluster, generated_template, generated_embedded, copy_ws, tiny_checkpoint, tmp_path
):
    """Runs last in this module: it leaves the cluster one worker short."""
    import cluster_tasks

    root = copy_ws(generated_template)
    claim = tmp_path / "stall"
    claim.write_text("")
    pid_file = Path(str(claim) + ".pid")
    killed = {}

    def kill_the_stalled_worker():
        pid = int(_wait_for(lambda: pid_file.exists() and pid_file.read_text(), "a stalled batch"))
        os.kill(pid, signal.SIGKILL)
        killed["pid"] = pid

    killer = threading.Thread(target=kill_the_stalled_worker, daemon=True)
    killer.start()
    record = embed_distributed(
        Workspace.open(root),
        checkpoint=str(tiny_checkpoint),
        batch_size=BATCH,
        scheduler=dask_cluster["address"],
        torch_threads=THREADS,
        show_progress=False,
        task=functools.partial(cluster_tasks.stall_once, str(claim)),
    )
    killer.join(timeout=START_TIMEOUT_S)
    assert killed["pid"] in {p.pid for p in dask_cluster["workers"]}
    dead = [p for p in dask_cluster["workers"] if p.pid == killed["pid"]][0]
    assert dead.wait(timeout=START_TIMEOUT_S) == -signal.SIGKILL
    assert record["status"] == "complete"
    _assert_same_tokens(root, generated_embedded)


def test_cluster_errors_are_one_clear_message(generated_template, copy_ws, tiny_checkpoint):
    root = copy_ws(generated_template)
    with pytest.raises(ClusterError, match="either --workers"):
        embed_distributed(
            Workspace.open(root),
            checkpoint=str(tiny_checkpoint),
            batch_size=BATCH,
            workers=2,
            scheduler="tcp://127.0.0.1:1",
            show_progress=False,
        )
