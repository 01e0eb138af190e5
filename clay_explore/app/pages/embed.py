"""Embed: encode every chip with Clay (CLS + patch tokens), resumable, with rate, ETA and cancel."""

from __future__ import annotations

import streamlit as st

from clay_explore.app import state as S
from clay_explore.app import ui
from clay_explore.core.defaults import DEFAULT_BATCH_SIZE
from clay_explore.core.workspace import EMBEDDINGS_ZARR

BATCH_CHOICES = ["auto", 1, 2, 4, 8, 16, 32]

ui.page_header("Embed", "Encode each chip with Clay's encoder and keep every patch token and the CLS token.")
ws = ui.require_workspace("chips", "Fetch imagery, upload a GeoTIFF or open the demo scene first.")
n = ws.n_chips()


def _metrics(done: int) -> None:
    c1, c2, c3 = st.columns(3)
    c1.metric("Chips", n)
    c2.metric("Embedded", f"{done} / {n}")
    c3.metric("Token grid", f"{ui.grid_side(ws)} × {ui.grid_side(ws)}", help=ui.term("patch token", "CLS"))


def _live_metrics(job) -> None:
    """While a job runs, "Embedded" is the job's own count: the same number as its bar."""
    from clay_explore.app.worker import VECTORS

    _metrics(job.done if job.label != VECTORS else int(ws.done_mask(EMBEDDINGS_ZARR, "cls", n).sum()))


job = ui.job_panel(ws, "embed", header=_live_metrics)
running = job is not None and job.running
done = int(ws.done_mask(EMBEDDINGS_ZARR, "cls", n).sum())
rec = ws.stage("embed")
if not running:
    _metrics(done)

if rec:
    st.caption(
        f"Stored with {rec.get('preset', '?')} model, {rec.get('precision', '?')}, sha256 "
        f"`{str(rec.get('sha256') or '—')[:16]}…`, D = {rec.get('dim', '?')} · status **{rec.get('status')}**"
        + (f" · {rec.get('seconds')} s" if rec.get("seconds") else "")
        + f" · used: {ui.settings_used(rec)}"
    )
    # an untrained model is already announced by the page header's banner: one notice per page
    if rec.get("status") == "partial" and not running:
        st.warning(
            f"Embedding cancelled, {done} of {n} chips done. Press Embed to resume; finished chips are kept.",
            icon=":material/pause_circle:",
        )

complete = done == n and rec is not None and rec.get("status") == "complete"
if complete and not running:
    st.success("Every chip is embedded. Nothing to do; the next pages read these tokens.")
    ui.next_step("projections", "Projections (UMAP)")
elif not running:
    model = ui.require_checkpoint()
    ui.setting_widget(
        st.select_slider,
        "Batch size",
        key=S.BATCH_WIDGET,
        setting=S.BATCH_SIZE,
        default=DEFAULT_BATCH_SIZE,
        options=BATCH_CHOICES,
        help="Chips per forward pass; 'auto' sizes it from the device's free memory.",
    )
    st.caption(f"Settings for this run (from Home, kept across pages): {ui.settings_used(ui.job_settings())}.")
    label = "Embed" if done == 0 else f"Embed (resume, {n - done} left)"
    if st.button(label, type="primary", key="embed_go", disabled=model is None) and model is not None:
        ui.start_job(ws, "embed", "Embedding", ui.embed_job(), total=n, done=done)  # a worker process (app.worker)
