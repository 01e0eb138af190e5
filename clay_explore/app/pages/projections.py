"""Projections: UMAP of patch embeddings and image embeddings, overlaid or side by side."""

from __future__ import annotations

import streamlit as st

from clay_explore.app import state as S
from clay_explore.app import ui
from clay_explore.research import projection as P
from clay_explore.viz import maps, views

ui.page_header(
    "Projections",
    "UMAP maps each embedding to a point; nearby points are embeddings Clay finds alike. "
    "Hover a point to see its chip (and patch); lasso points to select chips.",
)
ws = ui.require_workspace("embed", "Embed the chips first.")
ui.ensure_image_vectors(ws)
warm = ui.start_warmup()
if not warm["done"]:
    st.caption("⏳ UMAP is compiling in the background (once per server); the first projection may wait for it.")

found = P.available_sources(ws)
sources_all = [s for s in found if s == "patches"] + views.sort_methods([s for s in found if s != "patches"])
labels = {s: views.method_label(s) for s in sources_all}
c1, c2, c3 = st.columns([3, 2, 2])
default = [s for s in ("patches", "mean", "cls") if s in sources_all]
sources = c1.multiselect("Embeddings", sources_all, default=default, format_func=labels.get, key="proj_sources")
mode = c2.radio("Layout", ["Overlaid (one UMAP)", "Side by side"], key="proj_mode", horizontal=True)
color_options = (
    ["chip"]
    + (["NDVI"] if views.ndvi_bands(ws.bands) else [])
    + ["embedding"]
    + (["label"] if ui.chip_labels(ws) is not None else [])
)
color = c3.selectbox("Colour by", color_options, key="proj_color")
with st.expander("UMAP parameters (recorded with each result)"):
    p1, p2, p3, p4, p5, p6 = st.columns(6)
    dflt = P.UmapParams()  # the library's defaults (clay_explore.core.defaults), shared with `clay-explore project`
    params = P.UmapParams(
        n_neighbors=p1.number_input("n_neighbors", 2, 200, dflt.n_neighbors, key="umap_nn"),
        min_dist=p2.number_input("min_dist", 0.0, 1.0, dflt.min_dist, step=0.05, key="umap_md"),
        metric=p3.selectbox("metric", P.METRICS, index=P.METRICS.index(dflt.metric), key="umap_metric"),
        seed=int(p4.number_input("seed", 0, 2**31 - 1, dflt.seed, key="umap_seed")),
        pca_components=int(p5.number_input("PCA dims (0 = off)", 0, 512, dflt.pca_components, key="umap_pca")),
        max_points=int(p6.number_input("max points", 100, 500_000, dflt.max_points, step=10_000, key="umap_max")),
    )

groups = [list(sources)] if mode.startswith("Overlaid") else [[s] for s in sources]
results, missing = [], []
for g in groups:
    with ui.guard("Projection"):
        hit = P.cached_projection(ws, g, params)
        (results if hit is not None else missing).append(hit if hit is not None else g)

if not sources:
    st.info("Choose at least one embedding.")
elif missing:
    st.info(f"{len(missing)} projection(s) with these settings are not computed yet.")
    if st.button("Compute UMAP", type="primary", key="proj_go"):
        prog = ui.StageProgress("UMAP", unit="")
        for g in missing:
            with ui.guard("Projection"):
                if not warm["done"]:
                    prog.fraction(0.0, "waiting for the one-time UMAP compilation…")
                    warm["thread"].join()
                P.project_workspace(ws, g, params, progress=prog.fraction)
        st.rerun()

selected = st.session_state.get(S.SELECTED_CHIPS, [])
if results:
    ids = ws.chip_table()["chip_id"].astype(str).tolist()
    names = ui.chip_names(ws)
    combo = next(iter(views.band_combinations(ws.sensor, ws.bands).values()))
    thumbs = ui.chip_thumbnails(str(ws.root), ui.workspace_stamp(ws), tuple(range(len(ids))), tuple(combo), 112)
    grid = (ui.grid_side(ws), ui.grid_side(ws))
    cols = st.columns(len(results)) if len(results) > 1 else [st.container()]
    for col, res in zip(cols, results):
        with col:
            table = ui.projection_colours(ws, res.table, color)
            table["name"] = [names[r] for r in table["row"]]  # readable chip names; the id stays on hover
            kind = {"chip": "chip", "NDVI": "value", "embedding": "source", "label": "label"}[color]
            title = " + ".join(views.method_label(s) for s in res.info["sources"])
            fig = views.scatter_figure(table, color_by=kind, title=title, highlight_rows=selected)
            event = ui.scatter(fig, thumbs, grid, key=f"scatter_{res.key}", height=520 if len(results) == 1 else 420)
            if event and event.get("t") != st.session_state.get(f"seen_{res.key}"):
                st.session_state[f"seen_{res.key}"] = event.get("t")
                rows = event.get("selected") or ([event["clicked"]] if event.get("clicked") is not None else [])
                st.session_state[S.SELECTED_CHIPS] = [int(r) for r in rows]
                if rows:
                    st.session_state[S.FOCUS_CHIP] = int(rows[0])
                st.rerun()
            info = res.info
            st.caption(
                f"{info['n_points']:,} points · {info['input_dim']}-d"
                + (
                    f" → PCA {info['umap_input_dim']} ({info.get('pca_explained_variance', 1):.0%} variance)"
                    if info.get("pca_explained_variance") is not None
                    else ""
                )
                + f" · UMAP {info['seconds_umap']:.1f} s · trustworthiness@10 {info['trustworthiness']:.3f} "
                f"(on {info['trustworthiness_sample']:,} points) · n_neighbors {info['n_neighbors_used']}, "
                f"min_dist {info['params']['min_dist']}, {info['params']['metric']}, seed {info['params']['seed']}",
                help=ui.term("UMAP", "trustworthiness", "patch token"),
            )
    ui.next_step("reconstructions", "Reconstructions", help="Pixels back from one vector, per aggregator.")

if selected:
    st.subheader(f"Selected chips ({len(selected)})")
    chips = maps.chip_layer_table(ws, selected)
    left, right = st.columns([2, 3])
    with left:
        ui.map_widget(
            maps.build_map(chips[chips["row"].isin(selected)], draw=False, height=320), key="proj_map", height=320
        )
    with right:
        ids = ws.chip_table()["chip_id"].astype(str).tolist()
        combo = next(iter(views.band_combinations(ws.sensor, ws.bands).values()))
        th = ui.chip_thumbnails(str(ws.root), ui.workspace_stamp(ws), tuple(selected[:24]), tuple(combo), 112)
        st.image([th[r] for r in selected[:24]], caption=[ui.chip_names(ws)[r] for r in selected[:24]], width=112)
    b1, b2, b3 = st.columns(3)
    if b1.button("Clear selection", key="proj_clear"):
        st.session_state[S.SELECTED_CHIPS] = []
        st.rerun()
    with b2:
        ui.link("similar", "Similar chips of the first one", icon=":material/search:")
    with b3:
        ui.link("reconstructions", "Reconstruct the selection", icon=":material/image:")
