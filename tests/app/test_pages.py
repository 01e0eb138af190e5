"""Every page under streamlit's AppTest with the tiny model: no exceptions, the right elements, state flowing.

The tiny checkpoint is untrained, so every page that shows model output must say so.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import geopandas as gpd
import pytest
from app_data import APP, new_app

from clay_explore.app import jobs as app_jobs
from clay_explore.app import state as S
from clay_explore.core.workspace import Workspace

PAGES = ("area", "embed", "projections", "reconstructions", "similar", "export")


def _texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [e.value for e in at.error] + [s.value for s in at.success]
    return "\n".join(map(str, parts))


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]


def test_home_shows_model_status_untrained_and_steps(app_env):
    at = new_app().run()
    _ok(at)
    assert at.title[0].value == "Clay explore"
    assert "issue #107" in _texts(at)
    text = _texts(at)
    assert "**Weights**: **untrained** (test model)" in text and "**sha256**: `" in text
    assert any("Untrained test model" in w.value for w in at.warning)
    labels = [b.label for b in at.button]
    assert {"Start a new workspace", "Open", "Open the demo scene"} <= set(labels)
    assert at.session_state[S.WORKSPACE].endswith(f"session-{at.session_state[S.SESSION_ID]}")


def test_home_without_checkpoint_explains_and_offers_download(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("CLAY_CHECKPOINT", str(tmp_path / "missing.ckpt"))
    at = new_app().run()
    _ok(at)
    assert at.error and "No Clay checkpoint" in at.error[0].value
    assert "Download the Clay v1.5 checkpoint" in [b.label for b in at.button]


@pytest.mark.parametrize("page", PAGES[1:])
def test_pages_without_workspace_point_to_area(app_env, page):
    at = new_app().run()
    at.switch_page(f"pages/{page}.py").run()
    _ok(at)
    assert "no workspace yet" in _texts(at)
    assert not at.error


def test_all_pages_render_with_a_model_workspace(model_ws):
    at = new_app("shared1").run()
    _ok(at)
    assert "Working in `shared1`" in _texts(at)
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        _ok(at)
        assert not at.error, (page, [e.value for e in at.error])
        assert at.title and at.caption, page  # a title and a one-line explanation
        if page != "area":
            assert any("Untrained test model" in w.value for w in at.warning), page


def test_area_rejects_a_too_large_bbox_and_keeps_state(app_env):
    at = new_app().run()
    at.switch_page("pages/area.py").run()
    _ok(at)
    at.number_input(key="bbox_w").set_value(-80.0)
    at.number_input(key="bbox_s").set_value(30.0)
    at.number_input(key="bbox_e").set_value(-70.0)
    at.number_input(key="bbox_n").set_value(40.0)
    at.button(key="bbox_use").click().run()
    _ok(at)
    assert at.session_state[S.BBOX] == (-80.0, 30.0, -70.0, 40.0)
    assert any("larger than" in e.value for e in at.error)
    # fetching from an unreachable endpoint is an error message, not a traceback, and creates nothing
    at.number_input(key="bbox_e").set_value(-79.95)
    at.number_input(key="bbox_n").set_value(30.05)
    at.button(key="bbox_use").click().run()
    at.selectbox(key="endpoint_name").set_value("Custom URL").run()
    at.text_input(key="endpoint_url").set_value("http://127.0.0.1:9").run()
    at.button(key="search").click().run()
    _ok(at)
    assert at.error and "127.0.0.1:9" in at.error[0].value
    assert not list(app_env.glob("*/manifest.json"))


def test_area_without_an_area_or_without_results_explains(app_env, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("app_test_stac_server", APP.parent / "tests/imagery/stac_server.py")
    stac_server = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(stac_server)
    (tmp_path / "empty").mkdir()
    stac = stac_server.start_stac_server(tmp_path / "empty", workdir=tmp_path / "assets")  # a catalogue with nothing
    try:
        at = new_app().run()
        at.switch_page("pages/area.py").run()
        _ok(at)
        assert "Draw a rectangle or polygon on the map" in _texts(at)
        assert at.button(key="search").disabled and at.button(key="fetch").disabled
        at.button(key="bbox_use").click().run()  # the typed default bbox
        at.selectbox(key="endpoint_name").set_value("Custom URL").run()
        at.text_input(key="endpoint_url").set_value(stac.url).run()
        at.button(key="search").click().run()
        _ok(at)
        assert at.error and "No " in at.error[0].value and "scenes" in at.error[0].value, [e.value for e in at.error]
        assert not list(app_env.glob("*/manifest.json"))
    finally:
        stac.stop()


def test_area_upload_of_a_wrong_file_is_a_clear_error(app_env):
    at = new_app().run()
    at.switch_page("pages/area.py").run()
    at.file_uploader(key="upload").upload("notes.tif", b"this is not a raster", "image/tiff").run()
    at.button(key="ingest").click().run()
    _ok(at)
    assert at.error and "notes.tif" in at.error[0].value and "GeoTIFF" in at.error[0].value
    assert not list(app_env.glob("*/chips.parquet"))


def test_area_ingests_an_uploaded_geotiff(app_env, tmp_path):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "s2.tif"
    data = np.random.default_rng(0).integers(500, 4000, (10, 64, 64)).astype(np.uint16)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=64,
        height=64,
        count=10,
        dtype="uint16",
        crs="EPSG:32633",
        transform=from_origin(400000, 5300000, 10, 10),
    ) as dst:
        dst.write(data)
    at = new_app().run()
    at.switch_page("pages/area.py").run()
    at.file_uploader(key="upload").upload("s2.tif", path.read_bytes(), "image/tiff").run()
    at.selectbox(key="upload_chip").set_value(64).run()
    at.button(key="ingest").click().run()
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    ws = Workspace.open(at.session_state[S.WORKSPACE])
    assert ws.n_chips() == 1 and ws.stage("chips")["status"] == "complete"
    assert any("Stored" in s.value for s in at.success)


def _until(condition, timeout: float = 120) -> None:
    """Wait for ``condition()`` (a worker process reports through its job file)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _finish(at, root, stage: str, timeout: float = 120):
    """Wait for the page's background job of ``stage`` to end, then rerun the page (what the poll does)."""
    job = app_jobs.get_job(root, stage)
    assert job is not None, f"no {stage} job was started"
    assert app_jobs.wait(job, timeout), f"{stage} job still running after {timeout} s"
    at.run()
    _ok(at)
    return job


def test_embed_page_cancel_says_how_far_and_resumes(chips_ws, tiny_checkpoint):
    from clay_explore.core.errors import CancelledError
    from clay_explore.model import load_model
    from clay_explore.research.embed import embed_workspace

    # an earlier run stopped by the library's cancel flag after its first batch: 2 of 6 chips kept
    stop = threading.Event()
    with pytest.raises(CancelledError):
        embed_workspace(
            chips_ws,
            model=load_model(tiny_checkpoint),
            batch_size=2,
            show_progress=False,
            progress=lambda done, total, info: stop.set() if done else None,
            cancel=stop,
        )
    at = new_app("chips1").run()
    at.switch_page("pages/embed.py").run()
    _ok(at)
    assert [m.value for m in at.metric][:2] == ["6", "2 / 6"]
    assert any("Embedding cancelled, 2 of 6 chips done. Press Embed to resume" in w.value for w in at.warning)

    # Cancel from the page: the job's worker waits for the workspace (held here) and says so, Cancel
    # writes its cancel file, the worker stops before its first batch and the stage stays 'partial'
    lock = app_jobs.workspace_lock(chips_ws)
    with lock:
        at.button(key="embed_go").click().run()
        _ok(at)
        _until(lambda: app_jobs.get_job(chips_ws, "embed").waiting)
        at.run()
        assert "waiting" in at.get("progress")[0].proto.text
        assert "being written by" in at.get("progress")[0].proto.text  # whom it waits for
        at.button(key="embed_cancel").click().run()
        assert app_jobs.get_job(chips_ws, "embed").cancel.is_set()
    job = _finish(at, chips_ws, "embed")
    assert job.status == app_jobs.CANCELLED
    assert Workspace.open(chips_ws).stage("embed")["status"] == "partial"
    assert any("Embedding cancelled, 2 of 6 chips done" in w.value for w in at.warning)
    assert not at.error and not at.exception

    # Embed again: resumes with the 4 chips left, then pools mean/max/GeM image vectors
    assert at.button(key="embed_go").label == "Embed (resume, 4 left)"
    at.button(key="embed_go").click().run()
    job = _finish(at, chips_ws, "embed")
    assert job.status == app_jobs.COMPLETE, job.message
    assert "Every chip is embedded" in _texts(at)
    rec = Workspace.open(chips_ws).stage("embed")
    assert rec["status"] == "complete" and rec["untrained"]

    # parameter-free image vectors are offered at once, without fit or evaluate
    at.switch_page("pages/projections.py").run()
    _ok(at)
    assert at.multiselect(key="proj_sources").options == [
        "Patch tokens",
        "Mean pooling",
        "Max pooling",
        "GeM pooling",
        "CLS token",
    ]
    at.switch_page("pages/similar.py").run()
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    assert set(at.multiselect(key="sim_methods").value) == {"mean", "max", "gem", "cls"}


@pytest.mark.slow  # the first UMAP compiles numba's code (minutes on a busy machine)
def test_projections_compute_once_then_read_from_workspace(model_ws):
    at = new_app("shared1").run()
    at.switch_page("pages/projections.py").run()
    _ok(at)
    at.number_input(key="umap_nn").set_value(5)
    at.number_input(key="umap_pca").set_value(8)
    at.run()
    assert "Compute UMAP" in [b.label for b in at.button]
    at.button(key="proj_go").click().run()
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    assert "Compute UMAP" not in [b.label for b in at.button]
    assert "trustworthiness@10" in _texts(at)
    files = list((model_ws / "projections").glob("*.json"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    at.radio(key="proj_mode").set_value("Side by side").run()  # two new projections needed
    assert "Compute UMAP" in [b.label for b in at.button]
    at.radio(key="proj_mode").set_value("Overlaid (one UMAP)").run()
    assert "Compute UMAP" not in [b.label for b in at.button]
    assert files[0].stat().st_mtime_ns == stamp  # read back, never recomputed
    at.selectbox(key="proj_color").set_value("NDVI").run()
    _ok(at)
    # colour by the chips' (BigEarthNet-style) labels: one legend entry per label
    at.selectbox(key="proj_color").set_value("label").run()
    _ok(at)
    fig = json.loads(at.get("component_instance")[0].proto.json_args)["figure"]
    names = {t["name"] for t in fig["data"] if t.get("showlegend", True)}
    assert {"Coniferous forest", "Pastures", "Water bodies"} <= names
    assert fig["layout"].get("showlegend", True)


def test_selection_flows_to_similar_and_reconstructions(model_ws):
    at = new_app("shared1").run()
    at.session_state[S.SELECTED_CHIPS] = [2, 3]
    at.session_state[S.FOCUS_CHIP] = 2
    at.switch_page("pages/projections.py").run()
    _ok(at)
    assert "Selected chips (2)" in [h.value for h in at.subheader]
    at.switch_page("pages/similar.py").run()
    _ok(at)
    assert at.selectbox(key="sim_chip").value == 2
    assert not at.error, [e.value for e in at.error]
    assert at.dataframe  # consensus table of several methods
    at.switch_page("pages/reconstructions.py").run()
    _ok(at)
    assert at.multiselect(key="recon_rows").value == [2, 3]
    # per chip: the references (mae, all tokens, CLS only), the fitted linear aggregator and the baselines,
    # each row starting with the original
    texts = _texts(at)
    assert len(at.image) >= 2 * (4 + 2 + 2)
    assert any("this chip: PSNR" in str(i.proto) for i in at.image)
    assert "All tokens visible (reference, outside Clay's training)" in texts and "Learned linear" in texts
    assert "Clay MAE, 75 % masked (reference)" in texts and "Chip's band mean (baseline, no Clay)" in texts
    at.selectbox(key="recon_combo").set_value("Band nir").run()
    _ok(at)


def test_reconstructions_fit_cancel_then_fit_and_evaluate_all(model_ws):
    at = new_app("shared1").run()
    at.switch_page("pages/reconstructions.py").run()
    _ok(at)
    # Cancel: the fit job waits for the workspace (held here); fit_method sees the Event at its first batch
    at.multiselect(key="fit_methods").set_value(["mean"])
    at.number_input(key="fit_epochs").set_value(1)
    with app_jobs.workspace_lock(model_ws):
        at.button(key="fit_go").click().run()
        _ok(at)
        at.button(key="fit_cancel").click().run()
    job = _finish(at, model_ws, "fit")
    assert job.status == app_jobs.CANCELLED, job.message
    assert not (model_ws / "methods" / "mean" / "weights.safetensors").exists()  # no epoch finished: nothing kept
    assert any(
        "Fitting cancelled, 0 of 1 methods done" in w.value and "Press Fit to resume" in w.value for w in at.warning
    ), [w.value for w in at.warning]
    assert "mean" in at.multiselect(key="fit_methods").value  # offered again

    # Fit for real, then "Evaluate all methods" (metrics, image vectors, label probe)
    at.multiselect(key="fit_methods").set_value(["mean"])
    at.number_input(key="fit_epochs").set_value(1)
    at.button(key="fit_go").click().run()
    job = _finish(at, model_ws, "fit")
    assert job.status == app_jobs.COMPLETE, job.message
    assert Workspace.open(model_ws).read_json("methods/mean/config.json")["status"] == "complete"
    assert "Evaluate all methods (metrics + image vectors)" in [b.label for b in at.button]
    at.button(key="eval_go").click().run()
    job = _finish(at, model_ws, "evaluate")
    assert job.status == app_jobs.COMPLETE, job.message
    assert not at.error, [e.value for e in at.error]
    ev = Workspace.open(model_ws).read_json("evaluation.json")
    assert ev["methods"]["mean"]["fitted"] and ev["methods"]["linear"]["fitted"]
    assert ev["labels"] == ["Coniferous forest", "Pastures", "Water bodies"]
    assert ev["methods"]["mean"]["probe"] is not None
    assert "Evaluate all methods (metrics + image vectors)" not in [b.label for b in at.button]
    table = at.dataframe[-1].value
    assert {"Mean pooling", "Learned linear"} <= set(table["label"])

    # embeddings rewritten after the evaluation: the page says its numbers are out of date
    stage = Workspace.open(model_ws).stage("embed")
    try:
        Workspace.open(model_ws).set_stage("embed", **{**stage, "n_chips": stage["n_chips"] + 1})
        at.run()
        assert any("metrics are out of date: the embeddings changed" in w.value for w in at.warning), [
            w.value for w in at.warning
        ]
        assert "Evaluate all methods (metrics + image vectors)" in [b.label for b in at.button]
    finally:
        Workspace.open(model_ws).set_stage("embed", **stage)


def test_export_image_embeddings_download_opens_in_geopandas(model_ws):
    at = new_app("shared1").run()
    at.switch_page("pages/export.py").run()
    at.button(key="exp_image").click().run()
    _ok(at)
    assert at.get("download_button")
    g = gpd.read_parquet(model_ws / "exports" / "image_embeddings.parquet")
    assert len(g) == 6 and "emb_cls" in g.columns and g.crs.to_epsg() == 4326
    at.radio(key="exp_fmt").set_value("parquet").run()
    at.button(key="exp_patches").click().run()
    _ok(at)
    assert (model_ws / "exports" / "patch_embeddings.parquet").exists()


def test_two_sessions_get_their_own_workspaces(app_env):
    a, b = new_app().run(), new_app().run()
    assert a.session_state[S.WORKSPACE] != b.session_state[S.WORKSPACE]


def test_bad_shared_workspace_name_is_refused(app_env):
    at = new_app("../etc").run()
    _ok(at)
    assert any("not a valid workspace name" in e.value for e in at.error)


def test_demo_scene_opens_for_everybody(app_env):
    at = new_app().run()
    at.button(key="ws_demo").click().run()
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    assert at.session_state[S.WORKSPACE].endswith("/demo")
    ws = Workspace.open(app_env / "demo")
    assert ws.n_chips() > 0 and ws.manifest["source"]["kind"] == "demo"
    assert any("Stored" in s.value and "Level-1C" in s.value for s in at.success)  # says what it is
    other = new_app("demo").run()  # a second session opens the same, already chipped, scene
    _ok(other)
    assert "Working in `demo`" in _texts(other)
