"""Presenter mode: the story in order for a room — question, map, patch vs image UMAP, reconstructions,
verdict — in large type, without settings, with a one-line plain-language caption under every figure."""

from __future__ import annotations

import streamlit as st

from clay_explore.app import ui
from clay_explore.core.errors import ClayExploreError
from clay_explore.core.workspace import EVALUATION
from clay_explore.viz import fmt, maps, story, views

#: Large type for a projector: body, captions and headings scaled up; the page uses the full width.
PRESENTER_CSS = """
<style>
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.45rem; line-height: 1.5; }
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p { font-size: 1.2rem !important; }
h1 { font-size: 3.2rem !important; } h2 { font-size: 2.3rem !important; } h3 { font-size: 1.9rem !important; }
.block-container { max-width: 1500px; }
</style>
"""
MAP_HEIGHT = 420
UMAP_HEIGHT = 560

st.markdown(PRESENTER_CSS, unsafe_allow_html=True)
head, leave = st.columns([3, 1], vertical_alignment="center")
head.title(story.TITLE)
if leave.button("Leave presenter mode", key="present_leave", icon=":material/close:"):
    ui.leave_presenter()
    ui.switch("home")

ws = ui.current_workspace()
if ws is None:
    st.info("This session has no workspace yet. Open a packed workspace or the demo scene on Home, then come back.")
    st.stop()
embed = ws.stage("embed") or {}
if embed.get("untrained"):
    st.warning(ui.UNTRAINED_BANNER, icon=":material/warning:")
labels = {
    m: views.method_label(m)
    for m in views.sort_methods(["mean", "max", "gem", "cls", "linear", "attention", "perceiver", "patches"])
}

# ---------------------------------------------------------------------------------------------- 1 question
st.header("1 · The question")
st.markdown(story.QUESTION, help=ui.term("patch token", "embedding", "mean pooling"))

# ---------------------------------------------------------------------------------------------- 2 map
st.header("2 · Where we look")
with ui.guard("Map"):
    chips = maps.chip_layer_table(ws)
    ui.map_widget(maps.build_map(chips, draw=False, height=MAP_HEIGHT), key="present_map", height=MAP_HEIGHT)
    place = (ws.manifest.get("source") or {}).get("place")
    st.caption(story.map_caption(len(chips), fmt.imagery_name(ws.manifest), place), help=ui.term("patch token"))

# ---------------------------------------------------------------------------------------------- 3 UMAP
st.header("3 · Patch tokens vs one vector per chip")
if embed.get("status") != "complete":
    st.info("The chips are not embedded yet: run Embed (or open a packed workspace) to show this part.")
else:
    from clay_explore.research import projection as P

    with ui.guard("Projection"):
        picked = story.choose_projections(P.list_projections(ws))
        if not picked:
            ui.ensure_image_vectors(ws)
            sources = story.default_sources(P.available_sources(ws))
            st.info("No UMAP is stored in this workspace yet (a packed workspace normally carries one).")
            if st.button("Compute the UMAP now (default settings)", key="present_umap", type="primary"):
                prog = ui.StageProgress("UMAP", unit="")
                P.project_workspace(ws, sources, P.UmapParams(), progress=prog.fraction)
                st.rerun()
        cols = st.columns(len(picked)) if len(picked) > 1 else [st.container()]
        for col, rec in zip(cols, picked):
            import pandas as pd

            table = pd.read_parquet(ws.path(P.PROJECTIONS_DIR, f"{rec['key']}.parquet"))
            title = " + ".join(labels.get(s, s) for s in rec["sources"])
            fig = views.scatter_figure(table, color_by="source", title=title)
            fig.update_layout(height=UMAP_HEIGHT, dragmode="pan", font={"size": 16})
            with col:
                st.plotly_chart(
                    fig, width="stretch", key=f"present_umap_{rec['key']}", config={"displayModeBar": False}
                )
                st.caption(story.umap_caption(rec["sources"], labels), help=ui.term("UMAP", "patch token", "CLS"))

# ---------------------------------------------------------------------------------------------- 4 reconstructions
st.header("4 · Pixels back from one vector")
ev = ws.read_json(EVALUATION)
if embed.get("status") == "complete":
    model = None
    try:
        model = ui.get_model(False)
    except (ClayExploreError, ModuleNotFoundError):
        st.info("Reconstructions need the Clay checkpoint on this machine (see Home). The verdict below still holds.")
    if model is not None:
        from clay_explore.research import reconstruct as R
        from clay_explore.research.fit import fitted_methods

        with ui.guard("Reconstruction"):
            fitted = tuple(fitted_methods(ws))
            row = 0
            names = ui.chip_names(ws)
            result = ui.reconstruction(ws, row, model, fitted)
            best = story.best_method(ev)
            refs = getattr(R, "REFERENCES", ())
            panels = [n for n in result["images"] if n == R.ORIGINAL or n in refs or n in fitted]
            shown = story.recon_panels(panels, R.ORIGINAL, refs, views.sort_methods)
            combo = next(iter(views.band_combinations(ws.sensor, ws.bands).values()))
            limits = views.combo_limits(result["images"]["original"], ws.bands, combo)
            cols = st.columns(len(shown))
            for col, name in zip(cols, shown):
                img = views.framed(views.render(result["images"][name], ws.bands, combo, limits))
                m = result["metrics"].get(name)
                label = "Original" if name == "original" else views.method_label(name)
                cap = (
                    "the input"
                    if m is None
                    else f"PSNR {fmt.num(m['psnr_mean'], 'psnr')} dB · SSIM {fmt.num(m['ssim_mean'], 'ssim')}"
                )
                col.markdown(f"**{label}**")
                col.image(img, caption=cap, width="stretch")
            st.caption(
                story.recon_caption(
                    names[row], labels.get(best[0], best[0]) if best else None, best[1] if best else None
                ),
                help=ui.term("reconstruction", "PSNR", "SSIM", "CLS"),
            )
else:
    st.info("Reconstructions appear once the chips are embedded.")

# ---------------------------------------------------------------------------------------------- 5 verdict
st.header("5 · The verdict")
text = story.verdict(ev, labels)
if text:
    st.markdown(f"### {text}", help=ui.term("PSNR", "SSIM", "spectral angle", "NP@k"))
    st.caption(
        "From `clay-explore evaluate` on this workspace: every method rebuilds the same chips with the same "
        "frozen decoder."
    )
else:
    st.info(
        "No evaluation in this workspace yet: fit and evaluate the aggregators on the Reconstructions page "
        "(or `clay-explore evaluate`) to get the verdict."
    )

with st.expander("Glossary: the words on these slides"):
    from clay_explore.viz import glossary

    st.markdown(glossary.markdown())
