"""Embed: encode every chip with Clay (CLS + patch tokens), resumable, with rate, ETA and cancel."""

from __future__ import annotations

import streamlit as st

from clay_explore import app_state as S
from clay_explore import app_ui as ui

ui.page_header("Embed", "Encode each chip with Clay's encoder and keep every patch token and the CLS token.")
ws = ui.require_workspace("chips", "Fetch imagery, upload a GeoTIFF or open the demo scene first.")
ui.report_interrupted("embed", "Embedding")

n = ws.n_chips()
done = int(ws.done_mask("embeddings.zarr", "cls", n).sum())
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

if done == n:
    st.success("Every chip is embedded. Nothing to do; the next pages read these tokens.")
    ui.link("projections", "Next: projections", icon=":material/arrow_forward:")
else:
    model = ui.require_checkpoint()
    batch = st.select_slider("Batch size", options=[1, 2, 4, 8, 16], value=8, key="embed_batch")
    go, cancel = st.columns([1, 4])
    start = go.button("Embed" if done == 0 else f"Resume ({n - done} left)", type="primary", key="embed_go",
                      disabled=model is None)
    cancel.button("Cancel", key="embed_cancel", help="Stops after the current batch; finished chips are kept.")
    if start and model is not None:
        from clay_explore.embed import embed_workspace

        ui.begin_long("embed")
        prog = ui.StageProgress("Embedding")
        with ui.workspace_lock(ws), ui.guard("Embedding"):
            embed_workspace(ws, model=model, batch_size=int(batch), progress=prog, show_progress=False,
                            fast=bool(st.session_state.get(S.FAST, False)))
            ui.end_long("embed")
            ui.flash("success", f"Embedded {n} chips.")
            st.rerun()
        ui.end_long("embed")
