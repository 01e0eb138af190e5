"""Embed: encode every chip with Clay (CLS + patch tokens), resumable, with rate, ETA and cancel."""

from __future__ import annotations

import streamlit as st

from clay_explore.app import state as S
from clay_explore.app import ui
from clay_explore.core.workspace import EMBEDDINGS_ZARR

ui.page_header("Embed", "Encode each chip with Clay's encoder and keep every patch token and the CLS token.")
ws = ui.require_workspace("chips", "Fetch imagery, upload a GeoTIFF or open the demo scene first.")
job = ui.job_panel(ws, "embed")
running = job is not None and job.running

n = ws.n_chips()
done = int(ws.done_mask(EMBEDDINGS_ZARR, "cls", n).sum())
rec = ws.stage("embed")
c1, c2, c3 = st.columns(3)
c1.metric("Chips", n)
c2.metric("Embedded", f"{done} / {n}")
c3.metric("Token grid", f"{ui.grid_side(ws)} × {ui.grid_side(ws)}")

if rec:
    st.caption(
        f"Stored with {rec.get('preset', '?')} model, {rec.get('precision', '?')}, sha256 "
        f"`{str(rec.get('sha256') or '—')[:16]}…`, D = {rec.get('dim', '?')} · status **{rec.get('status')}**"
        + (f" · {rec.get('seconds')} s" if rec.get("seconds") else "")
    )
    if rec.get("untrained"):
        st.warning(f"These embeddings come from an {rec.get('note', 'untrained model')}.", icon=":material/warning:")
    if rec.get("status") == "partial" and not running:
        st.warning(f"Embedding cancelled, {done} of {n} chips done. Press Embed to resume; finished chips are kept.",
                   icon=":material/pause_circle:")

complete = done == n and rec is not None and rec.get("status") == "complete"
if complete and not running:
    st.success("Every chip is embedded. Nothing to do; the next pages read these tokens.")
    ui.link("projections", "Next: projections", icon=":material/arrow_forward:")
elif not running:
    model = ui.require_checkpoint()
    batch = st.select_slider("Batch size", options=[1, 2, 4, 8, 16], value=8, key="embed_batch")
    label = "Embed" if done == 0 else f"Embed (resume, {n - done} left)"
    if st.button(label, type="primary", key="embed_go", disabled=model is None) and model is not None:
        from clay_explore.research.embed import embed_workspace
        from clay_explore.research.vectors import ensure_parameter_free_vectors

        fast = bool(st.session_state.get(S.FAST, False))

        def _embed(job):
            record = embed_workspace(ws.root, model=model, batch_size=int(batch), progress=job.progress,
                                     cancel=job.cancel, show_progress=False, fast=fast)
            job.label = "Image vectors (mean, max, GeM)"
            ensure_parameter_free_vectors(ws.root, progress=job.progress, cancel=job.cancel)
            return record

        ui.start_job(ws, "embed", "Embedding", _embed)
