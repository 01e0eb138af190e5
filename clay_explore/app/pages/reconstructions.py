"""Reconstructions: the verdict first, then each chip rendered back by Clay's decoder (references: MAE at
its trained 75 % masking, all tokens visible, CLS alone), from each single image vector, and by baselines
without Clay; the evaluation on held-out test chips with ± over seeds, and the rate-distortion view."""

from __future__ import annotations

import streamlit as st

from clay_explore.app import state as S
from clay_explore.app import ui
from clay_explore.viz import views

ui.page_header(
    "Reconstructions",
    "What survives in one vector: Clay's frozen decoder renders each chip from its "
    "patch tokens (references), from each aggregator's single vector, and baselines "
    "without Clay show what any method has to beat.",
)
ws = ui.require_workspace("embed", "Embed the chips first.")
model = ui.require_checkpoint()
if model is None:
    st.stop()

from clay_explore.core.defaults import DEFAULT_FIT_SEEDS
from clay_explore.core.workspace import EVALUATION
from clay_explore.research import evaluation_summary as E
from clay_explore.research.aggregate import METHODS
from clay_explore.research.evaluate import RATE_DISTORTION_WIDTHS, outdated_reason
from clay_explore.research.fit import fitted_methods, method_config

fitted = fitted_methods(ws)
ids = ws.chip_table()["chip_id"].astype(str).tolist()
chip_names = ui.chip_names(ws)  # readable names (grid row/col); the id is in the heading's tooltip
status = {m: (method_config(ws, m) or {}).get("status") for m in fitted}
partial = [m for m in fitted if status[m] not in (None, "complete")]

# ---------------------------------------------------------------------------------------------- verdict
ev = ws.read_json(EVALUATION)
why = outdated_reason(ws, ev) if ev else None  # None: current (or no evaluation yet)
ui.evaluation_verdict(ev, why)

# ---------------------------------------------------------------------------------------------- fit
fit_job = ui.job_panel(ws, "fit")
eval_job = ui.job_panel(ws, "evaluate")
busy = any(j is not None and j.running for j in (fit_job, eval_job))
# notices and the Evaluate button stay outside the folding section: a fold never hides a pending action
if fit_job is not None and fit_job.status == "cancelled" and not busy:
    asked = ((getattr(fit_job, "task", None) or {}).get("kwargs") or {}).get("methods", [])  # cancelled early
    done_m, todo_m = fit_job.notes.get("done", []), fit_job.notes.get("todo") or asked
    st.warning(
        f"Fitting cancelled, {len(done_m)} of {len(todo_m)} methods done"
        + (f" ({', '.join(views.method_label(m) for m in partial)} kept the best weights so far)" if partial else "")
        + ". Press Fit to resume.",
        icon=":material/pause_circle:",
    )
elif partial and not busy:
    st.warning(
        f"{', '.join(views.method_label(m) for m in partial)}: fitting was cancelled early; press Fit to train fully.",
        icon=":material/pause_circle:",
    )
if eval_job is not None and eval_job.status == "cancelled" and not busy:
    st.info("Evaluation cancelled; nothing was written. Press Evaluate to run it again.")
stale = ev is None or why is not None or not E.is_current_format(ev)
if (
    fitted
    and stale
    and not busy
    and st.button("Evaluate all methods (metrics + image vectors)", key="eval_go", type="primary")
):
    ui.start_job(ws, "evaluate", "Evaluating", ui.evaluate_job())  # a worker process (app.worker)

missing = [m for m in METHODS if m not in fitted or m in partial]
done = [m for m in METHODS if m in fitted and m not in partial]  # other widths (linear@64) are extra fits
title = (
    f"Aggregators: {len(done)} of {len(METHODS)} fitted"
    + (f", {len(partial)} cancelled early" if partial else "")
    + (f"; {len(missing)} to fit" if missing else "")
)
with st.expander(title, expanded=not fitted or bool(partial) or busy or bool(missing)):
    st.caption(
        "Each aggregator gets a trained expander that maps its vector back to patch tokens (Clay stays "
        "frozen). Parameter-free ones (mean, max, GeM, CLS) train only the expander, so the comparison is "
        "fair. Each method is fitted once per seed on the training chips of a spatially blocked split; "
        "validation chips stop training early and test chips are never seen."
    )
    # every method is offered (a refit, or another vector width); the ones not fitted yet are preselected,
    # and the choice follows when that list changes (after a fit the box lists what remains, never nothing)
    ui.reset_when_changed("fit_methods", missing, missing)
    f1, f2, f3, f4, f5 = st.columns([3, 1, 1, 1, 1])
    todo = f1.multiselect(
        "Fit" if missing else "All fitted; pick any to fit again",
        list(METHODS),
        format_func=views.method_label,
        key="fit_methods",
    )
    epochs = f2.number_input("Epochs", 1, 200, 10, key="fit_epochs")
    n_seeds = f3.number_input(
        "Seeds",
        1,
        10,
        DEFAULT_FIT_SEEDS,
        key="fit_seeds",
        help="Each method is trained this many times with different initialisation seeds; "
        "tables show mean ± sd over them.",
    )
    width = f4.selectbox(
        "Vector width",
        [None, *RATE_DISTORTION_WIDTHS],
        key="fit_width",
        format_func=lambda w: "token width" if w is None else f"{w} numbers",
        help="Numbers per chip of the learned aggregators (linear, attention, perceiver); a fit "
        "at another width is kept beside the default one and fills the rate-distortion "
        "view below.",
    )
    if f5.button("Fit", type="primary", key="fit_go", disabled=not todo or busy):
        chosen, n_epochs = list(todo), int(epochs)
        ui.start_job(ws, "fit", "Fitting", ui.fit_job(ws.root, model, chosen, n_epochs, int(n_seeds), width))

# ---------------------------------------------------------------------------------------------- grid
focus = st.session_state.get(S.FOCUS_CHIP)
selected = st.session_state.get(S.SELECTED_CHIPS) or ([focus] if focus is not None else [0])
splits = E.workspace_chip_splits(ws, ev)
c1, c2 = st.columns([3, 2])
rows = c1.multiselect(
    "Chips",
    list(range(len(ids))),
    default=[r for r in selected if r < len(ids)][:4],
    format_func=lambda r: chip_names[r] + (f" ({splits[r]})" if splits[r] else ""),
    key="recon_rows",
    max_selections=8,
    help="The split of each chip is in brackets: pick test chips to judge.",
)
combos = views.band_combinations(ws.sensor, ws.bands)
combo_name = c2.selectbox("Bands", list(combos), key="recon_combo")
combo = combos[combo_name]
untrained = bool((ws.stage("embed") or {}).get("untrained"))
shared = st.toggle(
    "Stretch every panel like the original (compare brightness); off = each panel on its own",
    value=not untrained,
    key="recon_shared_stretch",
    help="An untrained model's reconstructions are far off the original's range, so each panel "
    "starts with its own stretch there.",
)
if rows:
    st.caption(
        "The figures under each panel are for that one chip, in "
        f"{(ev or {}).get('data_range', {}).get('units', 'physical units')}; "
        "the table below has the test-chip means."
    )

for row in rows:
    with ui.guard(f"Chip {ids[row]}"):
        result = ui.reconstruction(ws, row, model, tuple(fitted))
        limits = views.combo_limits(result["images"]["original"], ws.bands, combo)
        st.markdown(f"#### {chip_names[row]} · {E.split_words(splits[row])}", help=f"Chip id `{ids[row]}`")
        if splits[row] == "train":
            st.warning(
                f"{chip_names[row]} is a training chip: the methods were fitted on it, so its figures flatter "
                "them. Judge on test chips.",
                icon=":material/flag:",
            )
        names = [n for n in result["images"] if n != "original"]
        for heading, panels in views.panel_groups(names):
            st.caption(heading)
            cols = st.columns(max(len(panels), 6))  # at least 6 columns: panels stay thumbnail-sized
            for col, name in zip(cols, panels):
                img = views.framed(views.render(result["images"][name], ws.bands, combo, limits if shared else None))
                label = "Original" if name == "original" else views.method_label(name)
                colour = views.method_color(name) if name != "original" else "#000"
                col.markdown(f"<span style='color:{colour}'>■</span> **{label}**", unsafe_allow_html=True)
                col.image(
                    img,
                    caption=views.panel_caption(result["metrics"].get(name), splits[row])
                    if name != "original"
                    else "input",
                    width="stretch",
                )
        if result.get("untrained"):
            st.caption(f"⚠️ {result['note']}")
        with st.expander(f"Per-band residuals of {chip_names[row]}"):
            which = st.selectbox(
                "Reconstruction", views.sort_methods(names), format_func=views.method_label, key=f"res_{row}"
            )
            res = views.residuals(result["images"]["original"], result["images"][which])
            units = result["data_range"].get("units", "")
            fig = views.residual_figure(
                res * ws.sensor.scale,
                ws.bands,
                title=f"{views.method_label(which)} − original ({units}) · "
                f"{chip_names[row]}, {E.split_words(splits[row])}",
            )
            st.plotly_chart(fig, width="stretch", key=f"resfig_{row}_{which}")

# ---------------------------------------------------------------------------------------------- summary
if ev:
    n_test = E.n_test_chips(ev)
    st.subheader(f"Every method on {n_test} held-out test chips" if n_test is not None else "Every method (all chips)")
    st.caption(
        f"Numbers {E.scope_line(ev)}. References (hatched) are Clay's decoder with nothing fitted; "
        "baselines (dotted) use no Clay at all."
    )
    if why:
        st.warning(
            f"These metrics are out of date: {why}. Evaluate again (button above, or "
            "`clay-explore evaluate`) before comparing methods."
        )
    elif not E.is_current_format(ev):
        st.warning(E.STALE_REPORT)
    table = ui.evaluation_table(ev)
    st.dataframe(table, hide_index=True)
    summary = E.rows(ev)
    m1, m2 = st.columns(2)
    m1.plotly_chart(views.evaluation_figure(summary, "psnr", n_test), width="stretch", key="eval_psnr")
    m2.plotly_chart(
        views.np_figure([r for r in summary if r["kind"] == "method"], n_test), width="stretch", key="eval_np"
    )
    st.plotly_chart(
        views.rate_distortion_figure(E.rate_distortion(ev), summary, n_test), width="stretch", key="eval_rd"
    )
    if not E.rate_distortion(ev):
        st.caption(
            "Only one vector width so far: fit a method with other widths "
            "(`clay-explore fit --method linear --out-dim 64`) to fill the rate-distortion view."
        )
