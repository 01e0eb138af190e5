"""App jobs run in worker processes: settings chosen on one page reach the job and are recorded, a page
re-attaches to a running job (a reloaded browser), and the panel's text tells loading, counting and
finishing apart."""

from __future__ import annotations

import os
import time

from app_data import new_app

from clay_explore.app import jobs as app_jobs
from clay_explore.app import state as S
from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace


def _until(condition, timeout: float = 120) -> None:
    """Wait for ``condition()``: a worker reports through its job file."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _fast_precision(checkpoint) -> str:
    from clay_explore.model import load_model
    from clay_explore.research.provenance import model_precision

    return model_precision(load_model(checkpoint, fast=True))


def test_settings_persist_across_pages_and_reach_the_embed_job(chips_ws, tiny_checkpoint):
    at = new_app("chips1").run()
    _ok(at)
    at.toggle(key=S.FAST_WIDGET).set_value(True).run()
    at.selectbox(key=S.DEVICE_WIDGET).set_value("cpu").run()
    at.switch_page("pages/embed.py").run()
    _ok(at)
    assert at.session_state[S.FAST] is True and at.session_state[S.DEVICE] == "cpu"
    at.select_slider(key=S.BATCH_WIDGET).set_value(2).run()
    at.switch_page("app.py").run()  # Home again: its widgets start from the kept settings
    assert at.toggle(key=S.FAST_WIDGET).value is True
    assert at.selectbox(key=S.DEVICE_WIDGET).value == "cpu"
    at.switch_page("pages/embed.py").run()
    assert at.select_slider(key=S.BATCH_WIDGET).value == 2
    assert any("device cpu · batch 2" in c.value for c in at.caption)

    at.button(key="embed_go").click().run()
    job = app_jobs.get_job(chips_ws, "embed")
    assert job.task["kwargs"] == {"checkpoint": None, "batch_size": 2, "fast": True, "device": "cpu"}
    assert app_jobs.wait(job, 300) and job.status == app_jobs.COMPLETE, job.message
    assert job.pid != os.getpid()  # ran in a worker process, not in the page-serving one
    rec = Workspace.open(chips_ws).stage("embed")
    assert rec["precision"] == _fast_precision(tiny_checkpoint) and rec["batch_size"] == 2 and rec["device"] == "cpu"
    at.run()
    _ok(at)
    assert any(f"used: {rec['precision']} · device cpu · batch 2" in c.value for c in at.caption)
    at.switch_page("app.py").run()
    assert f"This workspace's embeddings**: {rec['precision']} · device cpu · batch 2" in "\n".join(
        m.value for m in at.markdown
    )


def test_a_reloaded_page_reattaches_to_the_running_job_and_cancels_it(chips_ws):
    first = new_app("chips1").run()
    first.switch_page("pages/embed.py").run()
    with app_jobs.workspace_lock(chips_ws):  # the job's worker waits for the workspace: running, deterministically
        first.button(key="embed_go").click().run()
        _until(lambda: app_jobs.get_job(chips_ws, "embed").waiting)
        reloaded = new_app("chips1").run()  # a new browser session: nothing of the first one's state
        reloaded.switch_page("pages/embed.py").run()
        _ok(reloaded)
        text = reloaded.get("progress")[0].proto.text
        assert "Embedding: waiting" in text and "being written by" in text
        assert [m.value for m in reloaded.metric][:2] == ["6", "0 / 6"]  # the job's own count, as the bar
        reloaded.button(key="embed_cancel").click().run()
    job = app_jobs.get_job(chips_ws, "embed")
    assert app_jobs.wait(job, 120) and job.status == app_jobs.CANCELLED
    ws = Workspace.open(chips_ws)
    assert (ws.stage("embed") or {}).get("status") != "complete" and not ws.done_mask(EMBEDDINGS_ZARR, "cls", 6).any()


def test_job_text_says_loading_counting_and_finishing():
    from clay_explore.app.ui import job_text

    job = app_jobs.Job(root="/nowhere", stage="embed", label="Loading the model…", total=63, done=8)
    assert job_text(job) == (8 / 63, "Loading the model… (8/63 chips done so far)")
    job.label, job.info = "Embedding", {"position": 10.5, "rate": 0.08, "eta_s": 656.0}
    frac, text = job_text(job)
    assert frac == 10.5 / 63 and text == "Embedding: 8/63 chips · 12.5 s/chip · ETA 10 min 56 s"
    job.label, job.done, job.info = "Fitting Learned linear (2 of 2)", 50, {"position": 50, "rate": 3.0, "eta_s": 0}
    job.total = 50
    assert job_text(job)[1] == "Fitting Learned linear (2 of 2): 50/50 chips · finishing (checking and saving)…"
    job.waiting, job.message = True, "Waiting for workspace w: it is being written by 'embed' (pid 1)."
    assert job_text(job) == (0.0, "Fitting Learned linear (2 of 2): waiting. " + job.message)


def test_a_job_whose_process_is_gone_is_reported_and_resumable(chips_ws):
    job = app_jobs.Job(
        root=str(chips_ws), stage="embed", label="Embedding", pid=2**22 + 7, launcher=None, total=6, done=2
    )
    job.save()  # a job file left 'running' by a worker that was killed with its server
    seen = app_jobs.get_job(chips_ws, "embed")
    assert seen.status == app_jobs.CANCELLED and "start it again to resume" in seen.message
    assert app_jobs.get_job(chips_ws, "embed").status == app_jobs.CANCELLED  # written back
