"""Area: draw (or type) an area, list matching scenes, fetch and chip them; or upload a GeoTIFF."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from clay_explore.app import state as S
from clay_explore.app import ui
from clay_explore.app.words import UPLOAD_MIN_VALID, UPLOAD_WORDS
from clay_explore.core.defaults import DEFAULT_MIN_VALID
from clay_explore.core.errors import ClayExploreError
from clay_explore.core.sensors import sensor_names
from clay_explore.imagery.net import check_web_url
from clay_explore.imagery.stac import EARTH_SEARCH_URL, PLANETARY_COMPUTER_URL
from clay_explore.viz import maps, views

ENDPOINTS = {
    "Earth Search (AWS)": EARTH_SEARCH_URL,
    "Planetary Computer": PLANETARY_COMPUTER_URL,
    "Custom URL": "",
}
UPLOAD_LIMIT_MB = 200
CHIP_SIZES = (256, 128, 64)

ui.page_header("Area", "Choose where to look: draw an area on the map (or type a bbox), check the scenes, fetch.")
ws = ui.current_workspace()
if ws is not None and ui.next_after(ws)[0] == "embed":  # the guided flow: chips are stored, embedding is next
    ui.next_step("embed", "Embed the chips")

# ---------------------------------------------------------------------------------------------- map
map_col, form_col = st.columns([3, 2])
with map_col:
    chips = None
    if ws is not None:
        with ui.guard("Chip grid"):
            chips = maps.chip_layer_table(ws, st.session_state.get(S.SELECTED_CHIPS, []))
    out = ui.map_widget(maps.build_map(chips, st.session_state.get(S.BBOX)), key="area_map")
    drawn = maps.bbox_from_drawing(out)
    if drawn is not None and drawn != st.session_state.get(S.BBOX):
        st.session_state[S.BBOX] = drawn
    clicked = maps.chip_at(chips, out.get("last_object_clicked") if out else None)
    if clicked is not None:
        st.session_state[S.FOCUS_CHIP] = clicked
        st.session_state[S.SELECTED_CHIPS] = [clicked]
    if chips is not None and len(chips):
        st.caption(maps.legend_markdown(), unsafe_allow_html=True)

with form_col:
    tab_stac, tab_file = st.tabs(["Fetch from STAC", "Upload a GeoTIFF"])
    with tab_stac:
        with st.expander("Type a bbox instead (degrees)", expanded=st.session_state.get(S.BBOX) is None):
            cur = st.session_state.get(S.BBOX) or (-75.70, 37.60, -75.65, 37.64)
            c1, c2, c3, c4 = st.columns(4)
            w = c1.number_input("West", value=float(cur[0]), format="%.5f", key="bbox_w")
            s = c2.number_input("South", value=float(cur[1]), format="%.5f", key="bbox_s")
            e = c3.number_input("East", value=float(cur[2]), format="%.5f", key="bbox_e")
            n = c4.number_input("North", value=float(cur[3]), format="%.5f", key="bbox_n")
            if st.button("Use this bbox", key="bbox_use"):
                st.session_state[S.BBOX] = (w, s, e, n)
                st.rerun()
        bbox = st.session_state.get(S.BBOX)
        if bbox is None:
            st.info("Draw a rectangle or polygon on the map (toolbar on the left), or type a bbox.")
        else:
            st.markdown("**Area** " + ", ".join(f"{v:.4f}" for v in bbox) + " (W, S, E, N)")
            with ui.guard("Area"):
                from clay_explore.imagery.tiles import area_aoi, needs_tiles, plan_tiles

                aoi = area_aoi(bbox)
                wkm, hkm = maps.size_km(bbox)
                if needs_tiles(bbox):  # larger than one request or across UTM zones: fetched as tiles
                    st.caption(
                        plan_tiles(bbox, chip_size=int(st.session_state.get("chip_size", CHIP_SIZES[0]))).describe()
                    )
                else:
                    st.caption(f"{wkm:.1f} × {hkm:.1f} km, UTM EPSG:{aoi.epsg}")
        today = dt.date.today()
        d1, d2 = st.columns(2)
        start = d1.date_input("Start", value=today - dt.timedelta(days=90), key="date_start")
        end = d2.date_input("End", value=today, key="date_end")
        max_cloud = st.slider("Max scene cloud cover (%)", 0, 100, 20, key="max_cloud")
        ep_name = st.selectbox("Endpoint", list(ENDPOINTS), key="endpoint_name")
        url = ENDPOINTS[ep_name] or st.text_input(
            "STAC API URL", key="endpoint_url", placeholder="http://127.0.0.1:8080"
        )
        if url and not ENDPOINTS[ep_name]:
            try:  # only http(s) endpoints: anything else would be opened as a file on the server
                check_web_url(url)
            except ClayExploreError as err:
                st.error(str(err), icon=":material/error:")
                url = ""
        collection = st.text_input("Collection", "sentinel-2-l2a", key="collection")
        chip_size = st.selectbox("Chip size (px)", CHIP_SIZES, key="chip_size")
        b1, b2 = st.columns(2)
        search = b1.button("Search scenes", key="search", disabled=bbox is None or not url)
        fetch = b2.button("Fetch and chip", key="fetch", type="primary", disabled=bbox is None or not url)
        if bbox is not None and (search or fetch):
            if start is None or end is None:
                st.error("Choose a start and an end date.")
            else:
                if search:
                    st.session_state.pop(S.SCENES, None)  # a failed search must not leave the old list
                    with ui.guard("Search"):
                        from clay_explore.imagery import search_scenes
                        from clay_explore.imagery.tiles import area_aoi

                        with st.spinner("Searching…"):
                            items = search_scenes(
                                area_aoi(bbox),
                                start,
                                end,
                                stac_url=url,
                                collection=collection,
                                max_cloud=float(max_cloud),
                            )
                        st.session_state[S.SCENES] = views.scene_records(items)
                if fetch:
                    target = maps.fetch_target(
                        ws,
                        ui.workspace_path(),
                        {
                            "kind": "stac",
                            "url": url.rstrip("/"),
                            "collection": collection,
                            "bbox": list(bbox),
                            "start": str(start),
                            "end": str(end),
                        },
                        new_path=S.session_workspace(S.new_session_id()),
                    )
                    ui.begin_long("fetch")
                    prog = ui.StageProgress("Fetching and chipping", unit="windows")
                    with ui.guard("Fetch"):
                        from clay_explore.imagery.chipping import ChipSettings
                        from clay_explore.imagery.tiles import fetch_area

                        rec = fetch_area(
                            bbox,
                            start,
                            end,
                            target,
                            stac_url=url,
                            collection=collection,
                            max_cloud=float(max_cloud),
                            chips=ChipSettings(int(chip_size)),
                            progress=prog,
                        )
                        ui.set_workspace(target)
                        tiling = (rec.get("tiling") or {}).get("note")  # how a large area was split
                        message = maps.chips_message(rec)
                        ui.flash("success", f"{tiling} {message}" if tiling else message)
                        ui.end_long("fetch")
                        st.rerun()
                    ui.end_long("fetch")
        ui.report_interrupted("fetch", "Fetching")
        scenes = st.session_state.get(S.SCENES)
        if scenes:
            st.markdown(f"**{len(scenes)} matching scenes** (least cloudy first)")
            st.dataframe(
                scenes,
                hide_index=True,
                column_config={
                    "thumbnail": st.column_config.ImageColumn("preview"),
                    "cloud %": st.column_config.NumberColumn(format="%.1f"),
                },
            )

    with tab_file:
        st.caption(f"A GeoTIFF/COG of a sensor Clay knows (up to {UPLOAD_LIMIT_MB} MB).")
        up = st.file_uploader("GeoTIFF", type=["tif", "tiff"], key="upload")
        sensor = st.selectbox("Sensor", sensor_names(), key="upload_sensor")
        date = st.date_input("Acquisition date (optional)", value=None, key="upload_date")
        up_chip = st.selectbox("Chip size (px) ", CHIP_SIZES, key="upload_chip")
        up_valid = st.slider(
            UPLOAD_MIN_VALID,
            0,
            100,
            int(DEFAULT_MIN_VALID * 100),
            step=5,
            key="upload_min_valid",
            help="Chips with a smaller share of pixels holding data are dropped.",
        )
        if st.button("Ingest", key="ingest", disabled=up is None):
            if up.size > UPLOAD_LIMIT_MB * 1024 * 1024:
                st.error(
                    f"{up.name} is {up.size / 1e6:.0f} MB, above the {UPLOAD_LIMIT_MB} MB limit. "
                    "Use `clay-explore ingest` on the command line for large files."
                )
            else:
                from clay_explore.imagery.chipping import ChipSettings
                from clay_explore.imagery.upload import ingest_upload

                target = maps.fetch_target(
                    ws,
                    ui.workspace_path(),
                    {"kind": "file", "name": up.name},
                    new_path=S.session_workspace(S.new_session_id()),
                )
                prog = ui.StageProgress("Chipping the upload", unit="windows")
                ok = False
                with ui.guard("Upload", words=UPLOAD_WORDS):  # a failed upload leaves no file and no workspace
                    rec = ingest_upload(
                        up.getbuffer(),
                        up.name,
                        target,
                        S.workspaces_root() / "uploads",
                        sensor=sensor,
                        chips=ChipSettings(int(up_chip), min_valid=up_valid / 100),
                        date=date.isoformat() if date else None,
                        progress=prog,
                    )
                    ok = True
                if ok:
                    ui.set_workspace(target)
                    ui.flash("success", maps.chips_message(rec))
                    st.rerun()

if ws is not None:
    ui.link("embed", "Next: embed the chips with Clay", icon=":material/arrow_forward:")
