"""Reconstructions: each chip rendered back by Clay's decoder from all tokens, from CLS alone, and from
each single image vector, with PSNR/SSIM; band combinations and per-band residual maps."""

from __future__ import annotations

import streamlit as st

from clay_explore import app_state as S
from clay_explore import app_ui as ui
from clay_explore import views

ui.page_header("Reconstructions", "What survives in one vector: Clay's frozen decoder renders each chip from all "
                                   "patch tokens (upper bound), from the CLS token alone, and from each aggregator.")
ws = ui.require_workspace("embed", "Embed the chips first.")
model = ui.require_checkpoint()
if model is None:
    st.stop()

from clay_explore.aggregate import METHODS
from clay_explore.fit import fitted_methods

fitted = fitted_methods(ws)
ids = ws.chip_table()["chip_id"].astype(str).tolist()

# ---------------------------------------------------------------------------------------------- fit
with st.expander(f"Aggregators: {len(fitted)} of {len(METHODS)} fitted", expanded=not fitted):
    st.caption("Each aggregator gets a trained expander that maps its vector back to patch tokens (Clay stays "
               "frozen). Parameter-free ones (mean, max, GeM, CLS) train only the expander, so the comparison is fair.")
    missing = [m for m in METHODS if m not in fitted]
    f1, f2, f3 = st.columns([3, 1, 1])
    todo = f1.multiselect("Fit", missing, default=missing, format_func=views.method_label, key="fit_methods")
    epochs = f2.number_input("Epochs", 1, 200, 10, key="fit_epochs")
    go = f3.button("Fit", type="primary", key="fit_go", disabled=not todo)
    f3.button("Cancel", key="fit_cancel", help="Stops after the current batch; the best weights so far are kept.")
    ui.report_interrupted("fit", "Fitting")
    if go:
        from clay_explore.fit import fit_method

        ui.begin_long("fit")
        with ui.workspace_lock(ws):
            for m in todo:
                prog = ui.StageProgress(f"Fitting {views.method_label(m)}", unit="chips")
                with ui.guard(f"Fitting {m}"):
                    fit_method(ws, m, epochs=int(epochs), model=model, progress=prog, show_progress=False)
        ui.end_long("fit")
        st.rerun()
    ev = ws.read_json("evaluation.json")
    stale = ev is None or any(not (ev.get("methods", {}).get(m) or {}).get("fitted") for m in fitted)
    if fitted and stale and st.button("Evaluate all methods (metrics + image vectors)", key="eval_go"):
        from clay_explore.evaluate import evaluate_workspace

        prog = ui.StageProgress("Evaluating")
        with ui.workspace_lock(ws), ui.guard("Evaluation"):
            evaluate_workspace(ws, model=model, progress=prog, show_progress=False)
            st.rerun()

# ---------------------------------------------------------------------------------------------- grid
focus = st.session_state.get(S.FOCUS_CHIP)
selected = st.session_state.get(S.SELECTED_CHIPS) or ([focus] if focus is not None else [0])
c1, c2 = st.columns([3, 2])
rows = c1.multiselect("Chips", list(range(len(ids))), default=[r for r in selected if r < len(ids)][:4],
                      format_func=lambda r: ids[r], key="recon_rows", max_selections=8)
combos = views.band_combinations(ws.sensor, ws.bands)
combo_name = c2.selectbox("Bands", list(combos), key="recon_combo")
combo = combos[combo_name]
shared = st.toggle("Stretch every panel like the original (compare brightness); off = each panel on its own",
                   value=True, key="recon_shared_stretch")

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
ev = ws.read_json("evaluation.json")
if ev:
    st.subheader("All chips")
    table = ui.evaluation_table(ev)
    st.dataframe(table, hide_index=True)
    m1, m2 = st.columns(2)
    m1.plotly_chart(views.metrics_figure(table, "PSNR (dB)", "Mean PSNR over all chips"), width="stretch")
    m2.plotly_chart(views.metrics_figure(table.dropna(subset=["NP@k"]), "NP@k",
                                         "Neighbourhood preservation vs full tokens"), width="stretch")
