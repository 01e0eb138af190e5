"""Similar chips: the nearest chips to one chip under each image embedding, and how much methods agree."""

from __future__ import annotations

import streamlit as st

from clay_explore.app import state as S
from clay_explore.app import ui
from clay_explore.research import projection as P
from clay_explore.research import similar
from clay_explore.viz import fmt, maps, views

ui.page_header(
    "Similar chips",
    "Pick a chip (here, on the map, or in a UMAP plot) and compare its nearest "
    "neighbours under each aggregator; methods that keep the same information agree.",
)
ws = ui.require_workspace("embed", "Embed the chips first.")
ui.ensure_image_vectors(ws)
ids = ws.chip_table()["chip_id"].astype(str).tolist()
chip_names = ui.chip_names(ws)  # readable names; the id is in the caption under the chip box and the table
focus = st.session_state.get(S.FOCUS_CHIP) or 0
c1, c2, c3 = st.columns([2, 1, 3])
row = c1.selectbox(
    "Chip",
    list(range(len(ids))),
    index=min(int(focus), len(ids) - 1),
    format_func=lambda r: chip_names[r],
    key="sim_chip",
    help="Chips are named by their place in the scene grid (row, column).",
)
c1.caption(f"id `{ids[int(row)]}`")
k = c2.number_input("k", 1, 50, min(8, max(1, len(ids) - 1)), key="sim_k")
st.session_state[S.FOCUS_CHIP] = int(row)

with ui.guard("Similar chips"):
    names = views.sort_methods([s for s in P.available_sources(ws) if s != P.PATCHES])  # vectors are read once, below
    methods = c3.multiselect(
        "Methods",
        names,
        default=names,
        format_func=views.method_label,
        key="sim_methods",
        help=ui.term("mean pooling", "max pooling", "GeM pooling", "CLS", "learned aggregator"),
    )
    if not any(m in names for m in ("linear", "attention", "perceiver")):
        st.caption(
            "Learned aggregators (linear, attention) appear here after they are fitted and evaluated on "
            "the Reconstructions page."
        )
    neigh = similar.top_k(ws, int(row), int(k), methods or None)
    combo = next(iter(views.band_combinations(ws.sensor, ws.bands).values()))
    rows_needed = tuple(sorted({int(row), *neigh["row"].tolist()}))
    thumbs = ui.chip_thumbnails(str(ws.root), ui.workspace_stamp(ws), rows_needed, tuple(combo), 112)
    left, right = st.columns([1, 3])
    with left:
        st.markdown("**Query**")
        st.image(thumbs[int(row)], caption=chip_names[int(row)], width=160)
    with right:
        cons = similar.consensus(neigh)
        chips = maps.chip_layer_table(ws, [int(row)], cons["row"].tolist())
        out = ui.map_widget(maps.build_map(chips, draw=False, height=300), key="sim_map", height=300)
        clicked = maps.chip_at(chips, out.get("last_object_clicked"))
        if clicked is not None and clicked != int(row):
            st.session_state[S.FOCUS_CHIP] = clicked
            st.session_state.pop("sim_chip", None)
            st.rerun()
        st.caption(maps.legend_markdown(), unsafe_allow_html=True)
    for m, g in neigh.groupby("method", sort=False):
        st.markdown(
            f"<span style='color:{views.method_color(m)}'>■</span> **{views.method_label(m)}**", unsafe_allow_html=True
        )
        st.image(
            [thumbs[r] for r in g["row"]],
            width=96,
            caption=[f"Chip {r + 1} · {fmt.num(s)}" for r, s in zip(g["row"], g["similarity"])],
        )
    if len(methods) > 1:
        st.plotly_chart(views.agreement_figure(similar.agreement(neigh)), width="stretch")
        table = fmt.round_frame(cons)
        if "row" in table:
            table.insert(0, "chip", [chip_names[r] for r in table["row"]])
        st.dataframe(table, hide_index=True)
