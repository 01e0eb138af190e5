"""clay-explore: the Streamlit entry point (router) and the Home page.

Run with ``clay-explore app`` (or ``streamlit run app.py`` in a checkout). ``run()`` builds the navigation; each page in ``pages/`` is a
thin layout over ``clay_explore`` functions, so the app and the CLI always agree.
"""

from __future__ import annotations

import streamlit as st

from clay_explore.app import jobs as app_jobs
from clay_explore.viz import maps
from clay_explore.app import state as S
from clay_explore.app import ui
from clay_explore.core.errors import ClayExploreError

INTRO = """
Clay v1.5 turns each 8 × 8-pixel **patch** of a chip into a 1,024-number token. Most applications
squeeze a chip's 1,024 patch tokens into **one image embedding** — usually by averaging — and
[Clay issue #107](https://github.com/Clay-foundation/model/issues/107) asks what that throws away:
would a learned layer that aggregates the patches (plus place and time) keep more, and could one
vector be expanded back into the tokens the decoder turns into pixels?

This app measures it on **your own area**: fetch imagery, embed it with Clay, compare patch and
image embeddings in UMAP, and reconstruct every chip from each single vector (mean, max, GeM,
CLS, learned linear, attention pooling) next to Clay's full-token reconstruction, with PSNR/SSIM.
"""

STEPS = (
    ("area", "1 · Area", "Draw an area and fetch imagery, upload a GeoTIFF, or open the demo scene."),
    ("embed", "2 · Embed", "Encode every chip with Clay (patch tokens + CLS)."),
    ("projections", "3 · Projections", "UMAP of patch and image embeddings."),
    ("reconstructions", "4 · Reconstructions", "Pixels back from one vector, per aggregator."),
    ("similar", "5 · Similar chips", "Nearest chips under each aggregator."),
    ("export", "6 · Export", "GeoParquet / zarr / PNG downloads."),
)


def _model_box() -> None:
    st.subheader("Model")
    status = ui.model_status()
    if not status.get("available"):
        fix = status.get("problem") or ("Press the button below to download it once (about 1.3 GB), run "
                                        "`clay-explore model download`, or set CLAY_CHECKPOINT=/path/to/clay-v1.5.ckpt.")
        st.error(f"No Clay checkpoint yet: embedding and reconstructions need it. {fix}", icon=":material/error:")
        st.caption(f"It would be downloaded from {status.get('url', 'the Hugging Face Hub')} into "
                   f"{status.get('cache_dir', 'the Hugging Face cache')} (about 1.3 GB).")
        if st.button("Download the Clay v1.5 checkpoint", key="download_ckpt", disabled=bool(status.get("offline"))):
            _download()
        return
    model = None
    with ui.guard("Loading the model"):
        model = ui.get_model(bool(st.session_state.get(S.FAST, False)))
    if model is None:
        return
    from clay_explore.research.provenance import model_sha256

    trained = getattr(model, "is_trained", False)
    facts = {
        "Weights": "Clay v1.5 (trained)" if trained else "**untrained** (test model)",
        "Preset": f"`{model.preset}` (D = {model.config.dim}, patch {model.config.patch_size} px)",
        "Device": str(next(model.parameters()).device),
        "Precision": "bf16 (fast)" if st.session_state.get(S.FAST) else "float32",
        "Checkpoint": f"`{status.get('path')}` ({status.get('source')})",
        "sha256": f"`{model_sha256(model) or '—'}`",
    }
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in facts.items()))
    st.toggle("Fast inference (bf16 transformer weights, about 2× faster on CPU)", key=S.FAST)


def _download() -> None:
    from clay_explore.model.hub import download_checkpoint

    bar = st.progress(0.0, text="Downloading the checkpoint…")

    def cb(done: int, total: int | None) -> None:
        frac = done / total if total else 0.0
        bar.progress(min(frac, 1.0), text=f"Downloading: {done / 1e6:,.0f} / {(total or 0) / 1e6:,.0f} MB")

    with ui.guard("Download"):
        path = download_checkpoint(progress_callback=cb, progress=False)
        ui.flash("success", f"Checkpoint downloaded to {path}.")
        st.rerun()


def _workspace_box() -> None:
    st.subheader("Workspace")
    ws = ui.current_workspace()
    here = ui.workspace_path()
    if ws is not None:
        summ = ws.summary()
        st.success(f"Working in `{here.name}`: {summ['chips']} chips of {summ['chip_size']} px, "
                   f"{summ['sensor']}, stages: {', '.join(summ['stages']) or 'none'}.")
    else:
        st.info(f"This session's workspace `{here.name}` is empty: start from the Area page, or open one below.")
    st.caption("Each browser session works in its own folder under "
               f"`{S.workspaces_root()}`; a shared one opens for everybody with `?ws=NAME`.")


def _start_row() -> None:
    new, open_, demo = st.columns(3, border=True)
    with new:
        st.markdown("**New workspace**")
        st.caption("A fresh private workspace for this session; then draw an area or upload a GeoTIFF.")
        if st.button("Start a new workspace", key="ws_new", width="stretch"):
            ui.set_workspace(S.session_workspace(S.new_session_id()))
            ui.switch("area")
    with open_:
        st.markdown("**Open a workspace**")
        known = [p.name for p in S.list_workspaces()]
        choice = st.selectbox("Existing workspaces", known, index=None, placeholder="choose…", key="ws_open_choice",
                              label_visibility="collapsed")
        if st.button("Open", key="ws_open", disabled=choice is None, width="stretch"):
            with ui.guard("Open workspace"):
                ui.set_workspace(S.named_workspace(choice))
                st.rerun()
    with demo:
        st.markdown("**Demo scene**")
        st.caption("Sentinel-2 L1C over Virginia's Eastern Shore (farmland, marsh, bay), shipped with the "
                   "install; works offline. Shared by every session.")
        if st.button("Open the demo scene", key="ws_demo", width="stretch"):
            _open_demo()


def _open_demo() -> None:
    path = S.named_workspace(S.DEMO_NAME)
    with ui.guard("Demo scene"), app_jobs.workspace_lock(path):  # two sessions never chip it at once
        if not (path / "manifest.json").exists() or not _chips_complete(path):
            from clay_explore.imagery import ingest_demo

            prog = ui.StageProgress("Chipping the demo scene")
            rec = ingest_demo(path, progress=prog)
            ui.flash("success", maps.chips_message(rec))
        ui.set_workspace(path)
        st.rerun()


def _chips_complete(path) -> bool:
    from clay_explore.core.workspace import Workspace

    rec = Workspace.open(path).stage("chips")
    return bool(rec and rec.get("status") == "complete")


def home() -> None:
    """The Home page: what and why, model status, workspace picker, the steps."""
    if ui.model_status().get("available"):
        try:  # load first, so the page header and sidebar know whether the model is untrained
            ui.get_model(bool(st.session_state.get(S.FAST, False)))
        except ClayExploreError:  # shown with its message by the model box below
            st.session_state.pop(S.FAST, None)
    ui.page_header("Clay explore", "What does one image embedding keep of Clay's patch embeddings?")
    st.markdown(INTRO)
    left, right = st.columns([1, 1])
    with left:
        _model_box()
    with right:
        _workspace_box()
    _start_row()
    st.subheader("Steps")
    for key, label, text in STEPS:
        ui.link(key, f"{label} — {text}")


def run() -> None:
    """Configure the page, start the UMAP warm-up and route to the chosen page."""
    st.set_page_config(page_title="Clay explore", page_icon=":material/satellite_alt:", layout="wide")
    ui.start_warmup()
    ui.session_id()
    pages = {
        "home": st.Page(home, title="Home", icon=":material/home:", default=True),
        "area": st.Page(ui.PAGES["area"], title="Area", icon=":material/map:"),
        "embed": st.Page(ui.PAGES["embed"], title="Embed", icon=":material/memory:"),
        "projections": st.Page(ui.PAGES["projections"], title="Projections", icon=":material/scatter_plot:"),
        "reconstructions": st.Page(ui.PAGES["reconstructions"], title="Reconstructions", icon=":material/image:"),
        "similar": st.Page(ui.PAGES["similar"], title="Similar chips", icon=":material/search:"),
        "export": st.Page(ui.PAGES["export"], title="Export", icon=":material/download:"),
    }
    ui.register_pages(pages)
    st.navigation(list(pages.values())).run()


if __name__ == "__main__":
    run()
