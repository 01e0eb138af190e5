"""Streamlit pieces every page shares: header, error guard, workspace/model resources, progress, scatter.

Pages stay thin: they lay out widgets and call ``clay_explore``; everything they share (the model
loaded once per server, the numba warm-up, the session's workspace, turning a ClayExploreError
into ``st.error``, the progress bar with rate and ETA) lives here, once.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from clay_explore import DATA_DIR
from clay_explore.app import jobs as app_jobs
from clay_explore.app import state as S
from clay_explore.core.errors import CheckpointError, ClayExploreError, StageMissingError
from clay_explore.core.workspace import Workspace
from clay_explore.viz import fmt, glossary

UNTRAINED_BANNER = (
    "**Untrained test model.** The loaded checkpoint is not Clay v1.5's trained weights: embeddings, "
    "projections and reconstructions below show the app working, not what Clay learns."
)
SCATTER_DIR = DATA_DIR / "ui" / "scatter"
PAGES = {
    "home": "app.py",
    "area": "pages/area.py",
    "embed": "pages/embed.py",
    "projections": "pages/projections.py",
    "reconstructions": "pages/reconstructions.py",
    "similar": "pages/similar.py",
    "export": "pages/export.py",
    "present": "pages/present.py",
    "glossary": "pages/glossary.py",
}


# ---------------------------------------------------------------------------------------------- navigation
_PAGE_OBJECTS: dict[str, Any] = {}


def register_pages(pages: dict[str, Any]) -> None:
    """Remember the st.Page objects of this run (the router calls this before running a page)."""
    _PAGE_OBJECTS.clear()
    _PAGE_OBJECTS.update(pages)


def link(key: str, label: str, icon: str | None = None) -> None:
    """A link to page ``key`` (st.page_link on the registered page)."""
    st.page_link(_PAGE_OBJECTS.get(key, PAGES[key]), label=label, icon=icon)


def switch(key: str) -> None:
    """Go to page ``key``."""
    st.switch_page(_PAGE_OBJECTS.get(key, PAGES[key]))


# ---------------------------------------------------------------------------------------------- layout
def page_header(title: str, line: str) -> None:
    """Title, one-line explanation, the untrained-model banner and the sidebar status."""
    install_shutdown()  # also here: a page opened by its URL runs without the router (main.run)
    st.title(title)
    st.caption(line)
    for kind, text in st.session_state.pop(S.MESSAGES, []):
        getattr(st, kind)(text)
    ws = current_workspace()
    model = peek_model()
    if (ws is not None and _workspace_untrained(ws)) or (model is not None and not getattr(model, "is_trained", False)):
        st.warning(UNTRAINED_BANNER, icon=":material/warning:")
    sidebar_status(ws)


def _workspace_untrained(ws: Workspace) -> bool:
    rec = ws.stage("embed") or {}
    if "untrained" in rec:
        return bool(rec["untrained"])
    model = peek_model()
    return model is not None and not getattr(model, "is_trained", False)


def sidebar_status(ws: Workspace | None) -> None:
    """Workspace and model summary in the sidebar (same on every page)."""
    with st.sidebar:
        st.markdown("**Workspace**")
        if ws is None:
            st.caption("none yet — create one on Home or Area")
        else:
            name = ws.root.name
            try:
                n = ws.n_chips()
            except StageMissingError:
                n = 0
            stages = ", ".join(sorted(ws.manifest.get("stages", {}))) or "—"
            st.caption(f"`{name}` · {n} chips · {fmt.imagery_name(ws.manifest)}  \nstages: {stages}")
        model = peek_model()
        st.markdown("**Model**")
        if model is None:
            st.caption("not loaded")
        else:
            badge = "trained Clay v1.5" if getattr(model, "is_trained", False) else "UNTRAINED test model"
            st.caption(f"{model.preset} · {badge}")
        st.toggle(
            "Presenter mode",
            key=S.PRESENT_TOGGLE,
            on_change=_enter_presenter,
            help="The story in order with large type and no settings: for a room. Also `?present=1`.",
        )


def _enter_presenter() -> None:
    if st.session_state.get(S.PRESENT_TOGGLE):
        st.session_state[S.PRESENT] = True


def presenter_mode() -> bool:
    """True in presenter mode: ``?present=1`` in the URL or the sidebar toggle (kept for the session)."""
    if str(st.query_params.get(S.QUERY_PRESENT, "")).lower() in ("1", "true", "yes", "on"):
        st.session_state[S.PRESENT] = True
    return bool(st.session_state.get(S.PRESENT))


def leave_presenter() -> None:
    """Back to the normal app (Home)."""
    st.session_state[S.PRESENT] = False
    st.session_state[S.PRESENT_TOGGLE] = False
    st.query_params.pop(S.QUERY_PRESENT, None)


def next_step(key: str, text: str, help: str | None = None) -> None:
    """The guided flow: a button naming the next step that opens its page."""
    if st.button(f"Next: {text}", key=f"next_{key}", type="primary", icon=":material/arrow_forward:", help=help):
        switch(key)


def next_after(ws: Workspace) -> tuple[str, str]:
    """(page, label) of the step the workspace needs next: Area -> Embed -> Projections -> Reconstructions."""
    stages = ws.manifest.get("stages", {})

    def done(name: str) -> bool:
        return (stages.get(name) or {}).get("status") == "complete"

    if not done("chips"):
        return "area", "fetch imagery on Area"
    if not done("embed"):
        return "embed", "Embed the chips"
    if not any(ws.path("projections").glob("*.json")):
        return "projections", "Projections (UMAP)"
    return "reconstructions", "Reconstructions"


def term(*names: str) -> str:
    """Tooltip text for glossary terms (``help=term("UMAP")``); the Glossary page has the long form."""
    return glossary.help_text(*names)


def chip_names(ws: Workspace) -> list[str]:
    """Readable chip names ('Chip 12 · row 3, col 4') in row order; the id stays on hover and in exports."""
    return fmt.chip_names(ws.chip_table(), ws.chip_size)


@contextmanager
def guard(what: str = "", words: dict[str, str] | None = None) -> Iterator[None]:
    """Show a ClayExploreError as ``st.error`` with its message (problem + fix), never a traceback.

    A filesystem error a user can fix (read-only folder, disk full) is shown the same way
    (core.fs); CLI options a message names are put in the app's words (app.words, plus ``words``:
    option -> the widget to change).
    """
    from clay_explore.app.words import in_app_words
    from clay_explore.core.fs import as_user_error

    try:
        yield
    except (ClayExploreError, OSError) as err:
        user = err if isinstance(err, ClayExploreError) else as_user_error(err)
        if user is None:
            raise
        st.error(f"{what + ': ' if what else ''}{in_app_words(str(user), words)}", icon=":material/error:")


def flash(kind: str, text: str) -> None:
    """Queue a message shown at the top of the next run (after ``st.rerun``)."""
    st.session_state.setdefault(S.MESSAGES, []).append((kind, text))


# ---------------------------------------------------------------------------------------------- workspace
def session_id() -> str:
    """This browser session's id (created on first use)."""
    if S.SESSION_ID not in st.session_state:
        st.session_state[S.SESSION_ID] = S.new_session_id()
    return st.session_state[S.SESSION_ID]


def workspace_path() -> Path:
    """The folder this session works in: chosen one, ``?ws=NAME``, or its own session folder."""
    if S.WORKSPACE not in st.session_state:
        name = st.query_params.get(S.QUERY_WORKSPACE)
        path = S.session_workspace(session_id())
        if name:
            try:
                path = S.named_workspace(str(name))
            except ClayExploreError as err:
                st.error(str(err))
        st.session_state[S.WORKSPACE] = str(path)
    return Path(st.session_state[S.WORKSPACE])


def set_workspace(path: str | Path) -> None:
    """Switch this session to ``path`` (and forget selections that belonged to the old one)."""
    st.session_state[S.WORKSPACE] = str(Path(path).resolve())
    for key in (S.SELECTED_CHIPS, S.FOCUS_CHIP, S.SCENES):
        st.session_state.pop(key, None)


def current_workspace() -> Workspace | None:
    """The session's workspace when it exists on disk, else None."""
    path = workspace_path()
    if not (path / "manifest.json").exists():
        return None
    try:
        return Workspace.open(path)
    except ClayExploreError as err:
        st.error(str(err))
        return None


def require_workspace(stage: str | None = None, hint: str = "") -> Workspace:
    """The workspace (and ``stage`` done), or an explanation with a link to the page that makes it; stops."""
    ws = current_workspace()
    if ws is None:
        st.info(
            "This session has no workspace yet. Draw an area and fetch imagery, upload a GeoTIFF, "
            "or open the demo scene on Home."
        )
        link("area", "Go to Area", icon=":material/map:")
        link("home", "Open the demo scene on Home", icon=":material/home:")
        st.stop()
    if stage is not None:
        rec = ws.stage(stage)
        if rec is None or rec.get("status") != "complete":
            st.info(f"The workspace has no complete '{stage}' stage yet. {hint}")
            page = {"chips": "area", "embed": "embed"}.get(stage)
            if page:
                link(page, f"Go to {page.title()}", icon=":material/arrow_forward:")
            st.stop()
    return ws


def workspace_lock(ws: Workspace) -> app_jobs.WorkspaceLock:
    """The workspace's writer lock (core.lock), shared with jobs, other sessions and CLI runs."""
    return app_jobs.workspace_lock(ws.root)


# ---------------------------------------------------------------------------------------------- settings
def setting_widget(
    widget: Callable[..., Any], label: str, *args: Any, key: str, setting: str, default: Any, **kwargs: Any
) -> Any:
    """A widget whose value survives page switches and is used by every page: it lives in ``setting``.

    Streamlit forgets a widget's own key when its page is not shown; the value is copied into the
    plain session key ``setting`` on every change and the widget starts from it when shown again.
    """
    if setting not in st.session_state:
        st.session_state[setting] = default
    if key not in st.session_state:
        st.session_state[key] = st.session_state[setting]

    def _keep() -> None:
        st.session_state[setting] = st.session_state[key]

    return widget(label, *args, key=key, on_change=_keep, **kwargs)


def settings_used(rec: dict[str, Any]) -> str:
    """'bf16 · cpu · batch 8' from a stage record (what a run used) or from ``job_settings()`` (what it will use)."""
    if "precision" in rec:
        precision = str(rec.get("precision") or "?")
    else:
        precision = "fast mode (the device's fastest precision)" if rec.get("fast") else "float32"
    device = rec.get("device") or "auto"
    return f"{precision} · device {device} · batch {rec.get('batch_size', '?')}"


def job_settings() -> dict[str, Any]:
    """This session's settings a job uses (and records): fast mode, device, embed batch size."""
    from clay_explore.core.defaults import DEFAULT_BATCH_SIZE

    return {
        "fast": bool(st.session_state.get(S.FAST, False)),
        "device": st.session_state.get(S.DEVICE) or None,
        "batch_size": st.session_state.get(S.BATCH_SIZE, DEFAULT_BATCH_SIZE),
    }


# ---------------------------------------------------------------------------------------------- model
@st.cache_resource(show_spinner="Loading the Clay model (once per server)…")
def _load_model(path: str, fast: bool, device: str = "cpu"):
    from clay_explore.model import load_model

    model = load_model(path, fast=fast, device=device)
    # one line in the server log per load: the browser test counts them (two sessions, one load)
    print(
        f"clay-explore: loaded the Clay model from {path} ({model.fast_path['precision']} on {device})",
        file=sys.stderr,
        flush=True,
    )
    return model


_LOADED: dict[str, Any] = {}


def session_device() -> str | None:
    """The device chosen on Home (S.DEVICE: 'auto', 'cpu', 'cuda:N', 'mps'); None outside a session."""
    try:
        return st.session_state.get(S.DEVICE)
    except Exception:  # noqa: BLE001 - no script run context (a worker thread): use the default
        return None


def get_model(fast: bool = False, device: str | None = None):
    """The Clay model, loaded once per server process and device; CheckpointError when there is none.

    ``device`` None = the session's choice on Home, else $CLAY_EXPLORE_DEVICE, else auto; DeviceError
    when that device is not on this machine.
    """
    from clay_explore.model import resolve_checkpoint
    from clay_explore.model.device import resolve_device

    path = resolve_checkpoint(None, download=False, progress=False)
    dev = str(resolve_device(device if device is not None else session_device()))
    model = _load_model(str(path), fast, dev)
    _LOADED["model"] = model
    return model


def peek_model():
    """The model if this server already loaded it (never loads)."""
    return _LOADED.get("model")


def model_status() -> dict[str, Any]:
    """Where the checkpoint comes from and whether it is present (no network)."""
    try:
        from clay_explore.model.hub import checkpoint_status
    except ImportError:  # model package not installed
        return {"available": False, "problem": "The model package is not available in this install."}
    return checkpoint_status()


# ---------------------------------------------------------------------------------------------- warm-up
@st.cache_resource
def start_warmup() -> dict[str, Any]:
    """Compile UMAP's numba code once per server in a background thread (users don't wait twice)."""
    state: dict[str, Any] = {"done": False, "seconds": None, "error": None}

    def _run() -> None:
        from clay_explore.research.projection import warmup

        try:
            state["seconds"] = warmup()
        except Exception as err:  # noqa: BLE001 - a failed warm-up only costs time later
            state["error"] = repr(err)
        state["done"] = True

    thread = threading.Thread(target=_run, name="clay-umap-warmup", daemon=True)
    thread.start()
    state["thread"] = thread
    return state


# ---------------------------------------------------------------------------------------------- shutdown
#: How often the shutdown watch looks at the Streamlit runtime's state.
SHUTDOWN_POLL_S = 0.1


@st.cache_resource
def install_shutdown() -> bool:
    """Once per server: when the server stops, stop this server's job workers and end the process at once.

    After Streamlit's runtime has stopped (SIGTERM, Ctrl-C), Python would still spend seconds tearing
    down torch/numba/plotly before the process ends, and a service manager counts that as a hung stop.
    A watch thread sees the runtime stopped, sends the workers SIGTERM (each stops at its next encoder
    block and keeps its finished batches) and exits. The server itself writes nothing a job needs.
    """
    try:
        from streamlit.runtime import Runtime
    except ImportError:  # pragma: no cover - a Streamlit without the runtime API: normal exit
        return False
    runtime = Runtime.instance() if Runtime.exists() else None
    if type(runtime) is not Runtime:  # scripts, and AppTest's stand-in runtime: no server to watch
        return False
    threading.Thread(target=_exit_when_stopped, args=(runtime,), name="clay-shutdown-watch", daemon=True).start()
    return True


def _exit_when_stopped(runtime: Any) -> None:
    from streamlit.runtime import RuntimeState

    while runtime.state != RuntimeState.STOPPED:
        time.sleep(SHUTDOWN_POLL_S)
    app_jobs.stop_workers(timeout=0)
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# ---------------------------------------------------------------------------------------------- progress
def progress_text(label: str, done: int, total: int, rate: float | None, eta: float | None, unit: str) -> str:
    """'label: done/total unit · 2.1 chips/s (or 12.5 s/chip) · ETA 3 min 05 s' (every long stage says it so).

    Once everything is counted but the stage still runs (validation, saving), it says so instead of a
    stale 'N/N · ETA 0 s'.
    """
    from clay_explore.core.progress import format_eta, format_rate

    text = f"{label}: {done}/{total} {unit}".rstrip()
    if total and done >= total:
        return text + " · finishing (checking and saving)…"
    speed = format_rate(rate, unit or "item")
    if speed:
        text += f" · {speed}"
    return text + (f" · ETA {format_eta(eta)}" if eta is not None else " · ETA: measuring…")


class StageProgress:
    """A progress bar fed by ``(done, total[, info])`` callbacks; shows rate and ETA."""

    def __init__(self, label: str, unit: str = "chips"):
        self.label, self.unit = label, unit
        self.bar = st.progress(0.0, text=f"{label}: starting…")
        self.t0 = time.perf_counter()
        self.first: int | None = None

    def __call__(self, done: int, total: int, info: dict[str, Any] | None = None) -> None:
        if self.first is None:
            self.first = int(done) - 1 if done else 0
        info = info or {}
        rate, eta = info.get("rate", info.get("chips_per_s")), info.get("eta_s")
        if "eta_s" not in info:  # a stage without core.progress.Progress: rate since the first call
            elapsed = max(time.perf_counter() - self.t0, 1e-6)
            rate = max(done - self.first, 0) / elapsed
            eta = (total - done) / rate if rate else None
        position = float(info.get("position", done))
        frac = min(max(position / total, 0.0), 1.0) if total else 1.0
        self.bar.progress(frac, text=progress_text(self.label, done, total, rate, eta, self.unit))

    def fraction(self, frac: float, message: str) -> None:
        """For stages that report a fraction and a message."""
        self.bar.progress(min(max(frac, 0.0), 1.0), text=f"{self.label}: {message}")


# ---------------------------------------------------------------------------------------------- background jobs
#: Seconds between redraws of a running job's progress bar (each redraw is a short script run).
JOB_POLL_S = 1.0


def start_job(
    ws: Workspace,
    stage: str,
    label: str,
    fn: app_jobs.Task | Callable[[app_jobs.Job], Any],
    settings: dict[str, Any] | None = None,
    total: int = 0,
    done: int = 0,
) -> app_jobs.Job:
    """Start the ``stage`` job (a worker process for a Task, see ``app_jobs``) and rerun to show its progress.

    ``settings`` (default: this session's fast/device/batch-size choices) is kept with the job;
    ``total``/``done`` show the job's size from the first second.
    """
    job = app_jobs.start_job(
        ws.root, stage, label, fn, settings=job_settings() if settings is None else settings, total=total, done=done
    )
    st.rerun()
    return job


def job_panel(
    ws: Workspace, stage: str, unit: str = "chips", header: Callable[[app_jobs.Job], None] | None = None
) -> app_jobs.Job | None:
    """Progress, rate, ETA and Cancel of the ``stage`` job on this workspace; its outcome once when it ended.

    Returns the job (running or finished) or None. The panel re-reads the job every JOB_POLL_S, so a
    reloaded page re-attaches to a running worker; ``header(job)`` draws page figures that must agree
    with the bar (e.g. the Embed page's "Embedded" metric) inside the same refresh. Cancel writes the
    job's cancel file, which the worker checks between encoder blocks and batches; the page reruns by
    itself when the job ends.
    """
    job = app_jobs.get_job(ws.root, stage)
    if job is None:
        return None
    if job.running:
        _job_progress(str(ws.root), stage, unit, header)
        return job
    seen = st.session_state.setdefault(S.JOBS_SEEN, set())
    if (job.stage, job.started) not in seen:
        seen.add((job.stage, job.started))
        if job.status == app_jobs.FAILED:
            st.error(f"{job.label}: {job.message}", icon=":material/error:")
    return job


def job_text(job: app_jobs.Job, unit: str = "chips") -> tuple[float, str]:
    """(bar fraction, text) of a running job: waiting, loading, counting with rate and ETA, or finishing."""
    info = job.info or {}
    if job.waiting:
        return 0.0, f"{job.label}: waiting. {job.message or 'Another job writes this workspace.'}"
    if not job.total:
        return 0.0, f"{job.label}"
    position = min(max(float(info.get("position", job.done)), float(job.done)), float(job.total))
    frac = position / job.total
    if "rate" not in info and "chips_per_s" not in info:  # a stage label ('Loading the model…'): no figures yet
        return frac, f"{job.label} ({job.done}/{job.total} {unit} done so far)"
    plural = unit if unit.endswith("s") or not unit else unit + "s"
    return frac, progress_text(
        job.label, job.done, job.total, info.get("rate", info.get("chips_per_s")), info.get("eta_s"), plural
    )


@st.fragment(run_every=JOB_POLL_S)
def _job_progress(root: str, stage: str, unit: str, header: Callable[[app_jobs.Job], None] | None) -> None:
    job = app_jobs.get_job(root, stage)
    if job is None or not job.running:
        st.rerun()
        return
    if header is not None:
        header(job)
    frac, text = job_text(job, unit)
    st.progress(frac, text=text)
    if job.cancel.is_set():
        st.caption("Cancelling: the stage stops at the next step and keeps every finished batch…")
    else:
        st.button(
            "Cancel",
            key=f"{job.stage}_cancel",
            on_click=job.cancel.set,
            help="Stops within the current batch; finished batches are kept and the next run resumes.",
        )


def begin_long(stage: str) -> None:
    """Record that a long stage started (so an interrupted run is reported on the next one)."""
    st.session_state.setdefault(S.RUNNING, {})[stage] = time.time()


def end_long(stage: str) -> None:
    """The stage finished (or failed cleanly)."""
    st.session_state.setdefault(S.RUNNING, {}).pop(stage, None)


def report_interrupted(stage: str, what: str) -> None:
    """If ``stage`` was started and never finished in this session (Cancel, page switch), say so."""
    running = st.session_state.setdefault(S.RUNNING, {})
    if stage in running:
        running.pop(stage)
        st.warning(f"{what} was cancelled. Everything finished before is kept; start it again to resume.")


# ---------------------------------------------------------------------------------------------- scatter
def _ui_cache_dir() -> Path:
    return Path(os.environ.get("CLAY_EXPLORE_CACHE", Path.home() / ".cache" / "clay-explore")) / "ui"


def _scatter_component():
    """Declare the hover-thumbnail scatter component once (plotly.js copied from the plotly package)."""
    import plotly
    import streamlit.components.v1 as components

    target = _ui_cache_dir() / f"scatter-{plotly.__version__}"
    target.mkdir(parents=True, exist_ok=True)
    src_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    dst_js = target / "plotly.min.js"
    if not dst_js.exists() or dst_js.stat().st_size != src_js.stat().st_size:
        tmp = target / ".plotly.min.js.tmp"
        shutil.copyfile(src_js, tmp)
        os.replace(tmp, dst_js)
    html = (SCATTER_DIR / "index.html").read_bytes()
    dst_html = target / "index.html"
    if not dst_html.exists() or dst_html.read_bytes() != html:
        tmp = target / ".index.html.tmp"
        tmp.write_bytes(html)
        os.replace(tmp, dst_html)
    return components.declare_component("clay_scatter", path=str(target))


_SCATTER = None


def scatter(fig, thumbs: dict[int, str], grid: tuple[int, int] | None, key: str, height: int = 540):
    """Render a views.scatter_figure with chip thumbnails on hover; returns {'selected': [rows], 'clicked': row}."""
    global _SCATTER
    if _SCATTER is None:
        _SCATTER = _scatter_component()
    spec = json.loads(fig.to_json())
    return _SCATTER(
        figure=spec,
        thumbs={str(k): v for k, v in thumbs.items()},
        grid=list(grid) if grid else None,
        height=height,
        key=key,
        default=None,
    )


# ---------------------------------------------------------------------------------------------- map
def map_widget(m, key: str, height: int = 520) -> dict[str, Any]:
    """Show a folium/leafmap map; returns what streamlit-folium reports (drawings, last click)."""
    from streamlit_folium import st_folium

    from clay_explore.viz import map_assets

    if st.get_option("server.enableStaticServing"):  # on in .streamlit/config.toml; else the CDNs (online only)
        map_assets.use_local_assets(m, map_assets.static_base_url(st.get_option("server.baseUrlPath") or ""))
    out = st_folium(
        m,
        key=key,
        height=height,
        use_container_width=True,
        returned_objects=["last_active_drawing", "all_drawings", "last_object_clicked"],
    )
    return out or {}


# ---------------------------------------------------------------------------------------------- cached reads
def zipped(folder: Path) -> bytes:
    """``folder`` as zip bytes for a download button, zipped again only when a file in it changed."""
    files = [f.stat() for f in folder.rglob("*") if f.is_file()]
    return _zipped(
        str(folder), (len(files), max((s.st_mtime_ns for s in files), default=0), sum(s.st_size for s in files))
    )


@st.cache_data(show_spinner="Zipping…", max_entries=2)
def _zipped(folder: str, stamp: tuple[int, int, int]) -> bytes:
    from clay_explore.research import export

    return export.zip_folder(folder)


@st.cache_data(show_spinner=False, max_entries=16)
def chip_thumbnails(root: str, stamp: str, rows: tuple[int, ...], combo: tuple[str, ...], size: int) -> dict[int, str]:
    """Data URIs of chip thumbnails (cached per workspace state and band combination)."""
    from clay_explore.viz import views

    ws = Workspace.open(root)
    pixels = ws.read_chips(list(rows))
    return dict(zip(rows, views.thumbnails(pixels, ws.bands, list(combo), size)))


def ensure_image_vectors(ws: Workspace) -> None:
    """Mean/max/GeM image vectors from the stored tokens (parameter-free: no fit or evaluation needed).

    Computed once per embed run into vectors.zarr; skipped (with a note) while a job writes the workspace.
    """
    from clay_explore.research.vectors import ensure_parameter_free_vectors, stale_methods

    rec = ws.stage("embed") or {}
    if rec.get("status") != "complete" or not stale_methods(ws):
        return
    lock = workspace_lock(ws)
    if not lock.acquire(blocking=False):
        st.caption("Mean/max/GeM image vectors appear when the job running on this workspace has finished.")
        return
    try:
        with (
            st.spinner("Pooling the patch tokens into mean, max and GeM image vectors (once)…"),
            guard("Image vectors"),
        ):
            ensure_parameter_free_vectors(ws)
    finally:
        lock.release()


def workspace_stamp(ws: Workspace) -> str:
    """Changes when the workspace's stages change (cache key for derived pictures)."""
    return json.dumps(ws.manifest.get("stages", {}), sort_keys=True, default=str)


def require_checkpoint() -> Any | None:
    """The loaded model, or an error box (with the fix) and None."""
    try:
        return get_model(bool(st.session_state.get(S.FAST, False)))
    except CheckpointError as err:
        st.error(f"No model: {err}", icon=":material/error:")
        link("home", "Model status and download on Home", icon=":material/home:")
    except ModuleNotFoundError:
        st.error("The Clay model package is not available in this install yet.")
    return None


# ---------------------------------------------------------------------------------------------- research views
def _model_key(model: Any) -> str:
    return f"{getattr(model, 'sha256', None)}:{getattr(model, 'preset', None)}:{id(model)}"


@st.cache_data(show_spinner="Decoding…", max_entries=64)
def _reconstruction(root: str, stamp: str, row: int, fitted: tuple[str, ...], model_key: str, _model: Any):
    from clay_explore.research.reconstruct import reconstruct_chip

    return reconstruct_chip(root, row, model=_model, methods=list(fitted))


def reconstruction(ws: Workspace, row: int, model: Any, fitted: tuple[str, ...]) -> dict[str, Any]:
    """Every reconstruction of one chip (cached per workspace state, fits, chip and model)."""
    from clay_explore.research.fit import method_config

    fits = json.dumps([(m, (method_config(ws, m) or {}).get("fitted")) for m in fitted])
    return _reconstruction(str(ws.root), workspace_stamp(ws) + fits, int(row), tuple(fitted), _model_key(model), model)


def reset_when_changed(key: str, options: list[Any], value: list[Any]) -> None:
    """Set widget ``key`` to ``value`` whenever its ``options`` changed since the last run.

    A multiselect keeps its old choice across reruns; once those options are gone (the methods were
    fitted) it would show empty. Resetting to ``value`` lists what remains instead.
    """
    seen = f"{key}__options"
    if st.session_state.get(seen) != options:
        st.session_state[seen] = list(options)
        st.session_state[key] = list(value)


def fit_job(
    root: Path, model: Any, methods: list[str], epochs: int, seeds: int, out_dim: int | None = None
) -> app_jobs.Task:
    """The worker task that fits ``methods`` one after the other, ``seeds`` initialisations each (at vector
    width ``out_dim``; None: the token width).

    The worker loads the model that made the embeddings itself (``model`` is the page's; unused here).
    """
    return app_jobs.Task(
        "fit",
        {
            "methods": list(methods),
            "epochs": int(epochs),
            "seeds": int(seeds),
            "out_dim": None if out_dim is None else int(out_dim),
            "device": job_settings()["device"],
        },
    )


def evaluate_job() -> app_jobs.Task:
    """The worker task that evaluates every fitted method and the references (evaluation.json)."""
    return app_jobs.Task("evaluate", {"device": job_settings()["device"]})


def embed_job(checkpoint: str | None = None) -> app_jobs.Task:
    """The worker task that embeds every chip with this session's settings, then pools image vectors."""
    settings = job_settings()
    return app_jobs.Task(
        "embed",
        {
            "checkpoint": checkpoint,
            "batch_size": settings["batch_size"],
            "fast": settings["fast"],
            "device": settings["device"],
        },
    )


def evaluation_verdict(ev: dict[str, Any] | None, outdated: str | None) -> None:
    """The page's lead: the verdict sentence of the evaluation, the other honest sentences, on which chips."""
    from clay_explore.research import evaluation_summary as E

    if not ev:
        st.info(
            "**No verdict yet.** Fit the aggregators below, then press *Evaluate all methods*: the verdict "
            "(does a learned squeeze keep more than mean pooling, on held-out test chips?) appears here.",
            icon=":material/balance:",
        )
        return
    st.markdown(f"### {E.verdict(ev)}")
    more = E.sentences(ev)
    if more:
        st.markdown("\n".join(f"- {line}" for line in more))
    st.caption(f"Numbers {E.scope_line(ev)}.")
    if outdated:
        st.warning(
            f"This verdict is out of date: {outdated}. Evaluate again (button below, or "
            "`clay-explore evaluate`) before trusting it."
        )


def evaluation_table(ev: dict[str, Any]):
    """evaluation.json as one row per reference, method and baseline, on the held-out test chips.

    Metric cells read 'mean ± sd' (sd over seeds; references and baselines are single numbers), the
    comparison with mean pooling is the difference, its 95 % CI and the verdict in words.
    """
    import pandas as pd

    from clay_explore.research import evaluation_summary as E
    from clay_explore.viz import views

    recs = []
    for r in E.rows(ev):
        npk = r["np"] or {}
        recs.append(
            {
                "method": r["name"],
                "kind": r["kind"],
                "label": views.method_label(r["name"]),
                "PSNR (dB)": None if r["psnr"]["mean"] is None else E.fmt_stat(r["psnr"], "psnr"),
                "SSIM": None if r["ssim"]["mean"] is None else E.fmt_stat(r["ssim"], "ssim"),
                "SAM (deg)": None if r["sam_deg"]["mean"] is None else E.fmt_stat(r["sam_deg"], "sam_deg"),
                f"PSNR vs {views.method_label(E.AGAINST)}": E.comparison_words(
                    r["vs_mean"], "psnr", views.method_label(E.AGAINST).lower()
                )
                or None,
                "NP@k": None if npk.get("value") is None else E.fmt(npk["value"], "np"),
                "NP chance": None if npk.get("chance") is None else E.fmt(npk["chance"], "np"),
                "numbers": r["n_numbers"],
                "test chips": r["n_chips"],
                "params": r["n_params"],
            }
        )
    table = pd.DataFrame.from_records(recs)
    for col in ("numbers", "test chips", "params"):  # whole numbers stay whole next to missing ones
        if col in table:
            table[col] = pd.to_numeric(table[col], errors="coerce").round().astype("Int64")
    if len(table):
        order = {n: i for i, n in enumerate(views.sort_methods(list(table["method"])))}
        table = table.sort_values("method", key=lambda s: s.map(order), ignore_index=True)
    return table


# ---------------------------------------------------------------------------------------------- projections
def chip_labels(ws: Workspace) -> str | None:
    """Name of the chip table's label column ('labels' or 'label'), or None."""
    from clay_explore.research.metrics import label_column

    return label_column(ws.chip_table().columns)


@st.cache_data(show_spinner="Computing NDVI per patch…", max_entries=8)
def _patch_ndvi(root: str, stamp: str, patch: int):
    import numpy as np

    from clay_explore.viz import views

    ws = Workspace.open(root)
    n = ws.n_chips()
    out = []
    for r in range(n):
        nd = views.ndvi(ws.read_chips([r])[0], ws.bands, ws.sensor.scale, ws.sensor.offset)  # [H, W]
        out.append(views.patch_means(nd, patch))
    return np.stack(out) if out else np.zeros((0, 0, 0), np.float32)  # [N, h, w]


def projection_colours(ws: Workspace, table, color: str):
    """The projection table with a 'value' (NDVI) or 'label' column for the chosen colouring."""
    import numpy as np

    from clay_explore.viz import views

    table = table.copy()
    if color == "NDVI":
        if views.ndvi_bands(ws.bands) is None:
            st.caption("NDVI needs red and NIR bands; colouring by embedding instead.")
            return table
        nd = _patch_ndvi(str(ws.root), workspace_stamp(ws), ws.chip_size // grid_side(ws))
        rows, i, j = table["row"].to_numpy(), table["i"].to_numpy(), table["j"].to_numpy()
        chip_mean = np.nanmean(nd.reshape(len(nd), -1), axis=1) if len(nd) else np.zeros(0)
        patch_val = nd[rows, np.maximum(i, 0), np.maximum(j, 0)]
        table["value"] = np.where(i >= 0, patch_val, chip_mean[rows]).astype(np.float32)
        table.attrs["value_name"] = "NDVI"
    elif color == "label":
        from clay_explore.research.metrics import primary_labels

        col = chip_labels(ws)
        first = primary_labels(ws.chip_table()[col].reset_index(drop=True))  # the label probe's parser
        table["label"] = [first[r] or "none" for r in table["row"]]
    return table


def grid_side(ws: Workspace) -> int:
    """Patch grid side of the stored tokens."""
    try:
        from clay_explore.core.workspace import EMBEDDINGS_ZARR

        return int(ws.open_array(EMBEDDINGS_ZARR, "patches").shape[1])
    except StageMissingError:
        return ws.chip_size // 8
