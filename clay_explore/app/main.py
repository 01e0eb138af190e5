"""clay-explore: the Streamlit entry point (router) and the Home page.

Run with ``clay-explore app`` (or ``streamlit run app.py`` in a checkout). ``run()`` builds the navigation;
each page in ``pages/`` is a thin layout over ``clay_explore`` functions, so the app and the CLI always agree.
"""

from __future__ import annotations

import streamlit as st

from clay_explore.app import jobs as app_jobs
from clay_explore.app import state as S
from clay_explore.app import ui
from clay_explore.core.errors import ClayExploreError
from clay_explore.viz import fmt, maps

INTRO = """
Clay v1.5 turns each 8 × 8-pixel **patch** of a chip into a 1,024-number token. Most applications
squeeze a chip's 1,024 patch tokens into **one image embedding** — usually by averaging — and
[Clay issue #107](https://github.com/Clay-foundation/model/issues/107) asks what that throws away:
would a learned layer that aggregates the patches (plus place and time) keep more, and could one
vector be expanded back into the tokens the decoder turns into pixels?

This app measures it on **your own area**: fetch imagery, embed it with Clay, compare patch and
image embeddings in UMAP, and reconstruct every chip from each single vector (mean, max, GeM,
CLS, learned linear, attention pooling) next to Clay's own masked-autoencoder reconstruction and simple
baselines that use no model at all, with PSNR/SSIM on held-out test chips.
"""

STEPS = (
    ("area", "1 · Area", "Draw an area and fetch imagery, upload a GeoTIFF, or open the demo scene."),
    ("embed", "2 · Embed", "Encode every chip with Clay (patch tokens + CLS)."),
    ("projections", "3 · Projections", "UMAP of patch and image embeddings."),
    ("reconstructions", "4 · Reconstructions", "Pixels back from one vector, per aggregator."),
    ("similar", "5 · Similar chips", "Nearest chips under each aggregator."),
    ("export", "6 · Export", "GeoParquet / zarr / PNG downloads, and the whole workspace packed."),
    ("present", "Presenter mode", "The story in order for a room: large type, no settings (also `?present=1`)."),
    ("glossary", "Glossary", "UMAP, patch token, CLS, pooling, PSNR, SSIM, spectral angle, NP@k in plain words."),
)


def _model_box() -> None:
    st.subheader("Model")
    status = ui.model_status()
    if not status.get("available"):
        size = _checkpoint_size()
        fix = status.get("problem") or (
            f"Press the button below to download it once ({size}), run `clay-explore "
            "model download`, or set CLAY_CHECKPOINT=/path/to/clay-v1.5.ckpt."
        )
        st.error(f"No Clay checkpoint yet: embedding and reconstructions need it. {fix}", icon=":material/error:")
        st.caption(
            f"It would be downloaded from {status.get('url', 'the Hugging Face Hub')} into "
            f"{status.get('cache_dir', 'the Hugging Face cache')} ({size})."
        )
        offline = bool(status.get("offline"))
        if offline:
            st.caption(
                "Download is off: huggingface_hub's offline mode is on (HF_HUB_OFFLINE). Unset it while "
                "online, or copy the checkpoint here and set CLAY_CHECKPOINT."
            )
        if st.button(
            "Download the Clay v1.5 checkpoint",
            key="download_ckpt",
            disabled=offline,
            help="Offline mode is on (HF_HUB_OFFLINE): no download possible." if offline else None,
        ):
            _download()
        return
    _device_select()
    model = None
    with ui.guard("Loading the model"):
        model = ui.get_model(bool(st.session_state.get(S.FAST, False)))
    if model is None:
        return
    from clay_explore.model.device import device_label, model_device
    from clay_explore.research.provenance import model_sha256

    trained = getattr(model, "is_trained", False)
    facts = {
        "Weights": "Clay v1.5 (trained)" if trained else "**untrained** (test model)",
        "Preset": f"`{model.preset}` (D = {model.config.dim}, patch {model.config.patch_size} px)",
        "Device": device_label(model_device(model)),
        "Precision": (
            (getattr(model, "fast_path", None) or {}).get("precision", "float32")
            + (" (fast)" if st.session_state.get(S.FAST) else "")
        ),
        "Checkpoint": f"`{status.get('path')}` ({status.get('source')})",
        "Size": _checkpoint_size(),
        "sha256": f"`{model_sha256(model) or '—'}`",
    }
    ws = ui.current_workspace()
    rec = (ws.stage("embed") or {}) if ws is not None else {}
    if rec:  # what the stored embeddings were actually made with (may differ from today's settings)
        facts["This workspace's embeddings"] = ui.settings_used(rec)
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in facts.items()))
    # kept in S.FAST across pages (a widget's own key is dropped when its page is not shown); jobs read S.FAST
    ui.setting_widget(
        st.toggle,
        "Fast inference (the precision this device runs fastest, slightly less exact)",
        key=S.FAST_WIDGET,
        setting=S.FAST,
        default=False,
    )
    _fast_caption(model)


def _device_select() -> None:
    """Where the model runs (S.DEVICE): auto or one of this machine's devices; default $CLAY_EXPLORE_DEVICE."""
    import os

    from clay_explore.model.device import AUTO, ENV_DEVICE, available_devices

    options = [AUTO, *available_devices()]
    if st.session_state.get(S.DEVICE) not in options:
        env = (os.environ.get(ENV_DEVICE) or AUTO).strip().lower()
        st.session_state[S.DEVICE] = env if env in options else AUTO
        st.session_state.pop(S.DEVICE_WIDGET, None)
    ui.setting_widget(
        st.selectbox,
        "Device",
        options,
        key=S.DEVICE_WIDGET,
        setting=S.DEVICE,
        default=AUTO,
        help="auto = CUDA if present, else Apple MPS, else the CPU. The jobs you start use this device.",
    )


def _fast_caption(model) -> None:
    """Which path fast mode takes on this device, and why (the chosen one when it is on)."""
    from clay_explore.model.device import model_device
    from clay_explore.model.fastpath import preview

    chosen = getattr(model, "fast_path", None) if st.session_state.get(S.FAST) else None
    chosen = chosen or preview(model_device(model))
    verb = "uses" if st.session_state.get(S.FAST) else "would use"
    st.caption(f"Fast mode {verb} **{chosen['precision']}** here: {chosen['reason']}.")


def _download() -> None:
    from clay_explore.model.hub import download_checkpoint

    slot = st.empty()  # the bar disappears when the download fails: no dead bar above the error
    bar = slot.progress(0.0, text="Downloading the checkpoint…")

    def cb(done: int, total: int | None) -> None:
        frac = done / total if total else 0.0
        bar.progress(min(frac, 1.0), text=f"Downloading: {done / 1e6:,.0f} / {(total or 0) / 1e6:,.0f} MB")

    path = None
    with ui.guard("Download"):
        path = download_checkpoint(progress_callback=cb, progress=False)
    if path is None:
        slot.empty()
        return
    ui.flash("success", f"Checkpoint downloaded to {path}.")
    st.rerun()


@st.cache_data(ttl=600, show_spinner=False)
def _size_text(local: str | None, offline: bool) -> str:
    from clay_explore.model.hub import checkpoint_size, format_size

    size, origin = checkpoint_size()
    return f"{format_size(size)} — {origin}" if size else f"size unknown, {origin}"


def _checkpoint_size() -> str:
    """The one stated checkpoint size: the local file's, else the hub's metadata (cached; no call offline)."""
    status = ui.model_status()
    return _size_text(status.get("path") if status.get("available") else None, bool(status.get("offline")))


def _workspace_box() -> None:
    st.subheader("Workspace")
    ws = ui.current_workspace()
    here = ui.workspace_path()
    if ws is not None:
        summ = ws.summary()
        st.success(
            f"Working in `{here.name}`: {summ['chips']} chips of {summ['chip_size']} px, "
            f"{fmt.imagery_name(ws.manifest)}, stages: {', '.join(summ['stages']) or 'none'}."
        )
        _next_step(ws)
    else:
        st.info(f"This session's workspace `{here.name}` is empty: start from the Area page, or open one below.")
    st.caption(
        "Each browser session works in its own folder under "
        f"`{S.workspaces_root()}`; a shared one opens for everybody with `?ws=NAME`."
    )


def _next_step(ws) -> None:
    """The guided flow on Home: the step this workspace needs next, as a button."""
    key, text = ui.next_after(ws)
    ui.next_step(key, text)


#: Largest pack the browser may upload (MB); Streamlit keeps an upload in memory. Larger packs: the CLI.
PACK_UPLOAD_LIMIT_MB = 1024


def _packed_box() -> None:
    st.markdown("**Open a packed workspace**")
    st.caption(
        f"A `.clay.zip` made with `clay-explore pack` or Export (up to {PACK_UPLOAD_LIMIT_MB:,} MB; larger "
        "ones: `clay-explore unpack FILE --workspace WS`). Every file's checksum is verified."
    )
    up = st.file_uploader(
        "Packed workspace",
        type=["zip"],
        key="pack_upload",
        label_visibility="collapsed",
        max_upload_size=PACK_UPLOAD_LIMIT_MB,
    )
    if up is not None and st.button("Unpack and open", key="pack_open", type="primary", width="stretch"):
        _open_packed(up)


def _open_packed(up) -> None:
    import tempfile
    from pathlib import Path

    from clay_explore.core.pack import PACK_SUFFIX, unpack_workspace

    root = S.workspaces_root()
    root.mkdir(parents=True, exist_ok=True)
    stem = Path(up.name).name.removesuffix(PACK_SUFFIX).removesuffix(".zip")
    target = S.unused_workspace(stem)
    with ui.guard("Packed workspace"), tempfile.TemporaryDirectory(dir=root, prefix=".upload-") as tmp:
        path = Path(tmp) / "pack.zip"
        path.write_bytes(up.getbuffer())
        prog = ui.StageProgress("Unpacking", unit="B")
        ws = unpack_workspace(path, target, progress=prog)
        ui.set_workspace(ws.root)
        ui.flash("success", f"Unpacked {up.name} into `{ws.root.name}`, verified; {ws.summary()['chips']} chips.")
        st.rerun()


def _start_row() -> None:
    new, open_, demo, packed = st.columns(4, border=True)
    with packed:
        _packed_box()
    with new:
        st.markdown("**New workspace**")
        st.caption("A fresh private workspace for this session; then draw an area or upload a GeoTIFF.")
        if st.button("Start a new workspace", key="ws_new", width="stretch"):
            ui.set_workspace(S.session_workspace(S.new_session_id()))
            ui.switch("area")
    with open_:
        st.markdown("**Open a workspace**")
        known = [p.name for p in S.list_workspaces()]
        choice = st.selectbox(
            "Existing workspaces",
            known,
            index=None,
            placeholder="choose…",
            key="ws_open_choice",
            label_visibility="collapsed",
        )
        if st.button("Open", key="ws_open", disabled=choice is None, width="stretch"):
            with ui.guard("Open workspace"):
                ui.set_workspace(S.named_workspace(choice))
                st.rerun()
    with demo:
        st.markdown("**Demo scene**")
        st.caption(
            "Sentinel-2 L1C over Virginia's Eastern Shore (farmland, marsh, bay), shipped with the "
            "install; works offline. Shared by every session."
        )
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
    st.markdown(INTRO, help=ui.term("patch token", "UMAP", "CLS", "GeM pooling", "PSNR", "SSIM"))
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
    ui.install_shutdown()  # stops within 3 s of SIGTERM, job workers told to stop (their finished batches kept)
    ui.session_id()
    present = ui.presenter_mode()
    pages = {
        "home": st.Page(home, title="Home", icon=":material/home:", default=not present),
        "area": st.Page(ui.PAGES["area"], title="Area", icon=":material/map:"),
        "embed": st.Page(ui.PAGES["embed"], title="Embed", icon=":material/memory:"),
        "projections": st.Page(ui.PAGES["projections"], title="Projections", icon=":material/scatter_plot:"),
        "reconstructions": st.Page(ui.PAGES["reconstructions"], title="Reconstructions", icon=":material/image:"),
        "similar": st.Page(ui.PAGES["similar"], title="Similar chips", icon=":material/search:"),
        "export": st.Page(ui.PAGES["export"], title="Export", icon=":material/download:"),
        "present": st.Page(
            ui.PAGES["present"],
            title="Presenter mode",
            icon=":material/co_present:",
            url_path="present",
            default=present,
        ),
        "glossary": st.Page(ui.PAGES["glossary"], title="Glossary", icon=":material/menu_book:"),
    }
    ui.register_pages(pages)
    page = st.navigation(list(pages.values()), position="hidden" if present else "sidebar")
    if present and page is not pages["present"]:  # the sidebar toggle was switched on on another page
        st.switch_page(pages["present"])
    page.run()


if __name__ == "__main__":
    run()
