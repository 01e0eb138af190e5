"""Reconstructions: each chip rendered back by Clay's decoder from all tokens, from CLS alone, and from
each single image vector, with PSNR/SSIM; band combinations and per-band residual maps."""

from __future__ import annotations

import streamlit as st

from clay_explore.app import state as S
from clay_explore.app import ui
from clay_explore.viz import views

ui.page_header("Reconstructions", "What survives in one vector: Clay's frozen decoder renders each chip from all "
                                   "patch tokens (upper bound), from the CLS token alone, and from each aggregator.")
ws = ui.require_workspace("embed", "Embed the chips first.")
model = ui.require_checkpoint()
if model is None:
    st.stop()

from clay_explore.research.aggregate import METHODS
from clay_explore.research.evaluate import outdated_reason
from clay_explore.research.fit import fitted_methods, method_config
from clay_explore.core.workspace import EVALUATION

fitted = fitted_methods(ws)
ids = ws.chip_table()["chip_id"].astype(str).tolist()
status = {m: (method_config(ws, m) or {}).get("status") for m in fitted}
partial = [m for m in fitted if status[m] not in (None, "complete")]

# ---------------------------------------------------------------------------------------------- fit
fit_job = ui.job_panel(ws, "fit")
eval_job = ui.job_panel(ws, "evaluate")
busy = any(j is not None and j.running for j in (fit_job, eval_job))
ev = ws.read_json(EVALUATION)
why = outdated_reason(ws, ev) if ev else None  # None: current (or no evaluation yet)
title = f"Aggregators: {len(fitted) - len(partial)} of {len(METHODS)} fitted" + (
    f", {len(partial)} cancelled early" if partial else "")
with st.expander(title, expanded=not fitted or bool(partial) or busy):
    st.caption("Each aggregator gets a trained expander that maps its vector back to patch tokens (Clay stays "
               "frozen). Parameter-free ones (mean, max, GeM, CLS) train only the expander, so the comparison is fair.")
    if fit_job is not None and fit_job.status == "cancelled" and not busy:
        done_m, todo_m = fit_job.notes.get("done", []), fit_job.notes.get("todo", [])
        st.warning(f"Fitting cancelled, {len(done_m)} of {len(todo_m)} methods done"
                   + (f" ({', '.join(views.method_label(m) for m in partial)} kept the best weights so far)"
                      if partial else "") + ". Press Fit to resume.", icon=":material/pause_circle:")
    elif eval_job is not None and eval_job.status == "cancelled" and not busy:
        st.info("Evaluation cancelled; nothing was written. Press Evaluate to run it again.")
    elif partial and not busy:
        st.warning(f"{', '.join(views.method_label(m) for m in partial)}: fitting was cancelled early; press Fit "
                   "to train fully.", icon=":material/pause_circle:")
    missing = [m for m in METHODS if m not in fitted or m in partial]
    f1, f2, f3 = st.columns([3, 1, 1])
    todo = f1.multiselect("Fit", missing, default=missing, format_func=views.method_label, key="fit_methods")
    epochs = f2.number_input("Epochs", 1, 200, 10, key="fit_epochs")
    if f3.button("Fit", type="primary", key="fit_go", disabled=not todo or busy):
        from clay_explore.research.fit import fit_method

        root, chosen, n_epochs = ws.root, list(todo), int(epochs)

        def _fit(job):
            job.notes.update(done=[], todo=chosen)
            for i, m in enumerate(chosen):
                job.label = f"Fitting {views.method_label(m)} ({i + 1} of {len(chosen)})"
                fit_method(root, m, epochs=n_epochs, model=model, progress=job.progress, cancel=job.cancel,
                           show_progress=False)
                job.notes["done"].append(m)

        ui.start_job(ws, "fit", "Fitting", _fit)
    stale = ev is None or why is not None
    if fitted and stale and not busy and st.button("Evaluate all methods (metrics + image vectors)", key="eval_go"):
        from clay_explore.research.evaluate import evaluate_workspace

        root = ws.root
        ui.start_job(ws, "evaluate", "Evaluating", lambda job: evaluate_workspace(
            root, model=model, progress=job.progress, cancel=job.cancel, show_progress=False))

# ---------------------------------------------------------------------------------------------- grid
focus = st.session_state.get(S.FOCUS_CHIP)
selected = st.session_state.get(S.SELECTED_CHIPS) or ([focus] if focus is not None else [0])
c1, c2 = st.columns([3, 2])
rows = c1.multiselect("Chips", list(range(len(ids))), default=[r for r in selected if r < len(ids)][:4],
                      format_func=lambda r: ids[r], key="recon_rows", max_selections=8)
combos = views.band_combinations(ws.sensor, ws.bands)
combo_name = c2.selectbox("Bands", list(combos), key="recon_combo")
combo = combos[combo_name]
untrained = bool((ws.stage("embed") or {}).get("untrained"))
shared = st.toggle("Stretch every panel like the original (compare brightness); off = each panel on its own",
                   value=not untrained, key="recon_shared_stretch",
                   help="An untrained model's reconstructions are far off the original's range, so each panel "
                        "starts with its own stretch there.")

for row in rows:
    with ui.guard(f"Chip {ids[row]}"):
        result = ui.reconstruction(ws, row, model, tuple(fitted))
        names = ["original", "full", "cls_only"] + [m for m in views.sort_methods(fitted)]
        limits = views.combo_limits(result["images"]["original"], ws.bands, combo)
        st.markdown(f"#### {ids[row]}")
        cols = st.columns(max(len(names), 6))  # at least 6 columns: panels stay thumbnail-sized
        for col, name in zip(cols, names):
            img = views.framed(views.render(result["images"][name], ws.bands, combo, limits if shared else None))
            m = result["metrics"].get(name)
            label = "Original" if name == "original" else views.method_label(name)
            cap = "" if m is None else f"PSNR {m['psnr_mean']:.1f} dB · SSIM {m['ssim_mean']:.3f}"
            col.markdown(f"<span style='color:{views.method_color(name) if name != 'original' else '#000'}'>■</span> "
                         f"**{label}**", unsafe_allow_html=True)
            col.image(img, caption=cap or "input", width="stretch")
        if result.get("untrained"):
            st.caption(f"⚠️ {result['note']}")
        with st.expander(f"Per-band residuals of {ids[row]}"):
            which = st.selectbox("Reconstruction", names[1:], format_func=views.method_label, key=f"res_{row}")
            res = views.residuals(result["images"]["original"], result["images"][which])
            units = result["data_range"].get("units", "")
            fig = views.residual_figure(res * ws.sensor.scale, ws.bands,
                                        title=f"{views.method_label(which)} − original ({units})")
            st.plotly_chart(fig, width="stretch", key=f"resfig_{row}_{which}")

# ---------------------------------------------------------------------------------------------- summary
if ev:
    st.subheader("All chips")
    if why:
        st.warning(f"These metrics are out of date: {why}. Evaluate again (button above, or "
                   "`clay-explore evaluate`) before comparing methods.")
    table = ui.evaluation_table(ev)
    st.dataframe(table, hide_index=True)
    m1, m2 = st.columns(2)
    m1.plotly_chart(views.metrics_figure(table, "PSNR (dB)", "Mean PSNR over all chips"), width="stretch")
    m2.plotly_chart(views.metrics_figure(table.dropna(subset=["NP@k"]), "NP@k",
                                         "Neighbourhood preservation vs full tokens"), width="stretch")
