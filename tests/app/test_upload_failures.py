"""A failed upload leaves nothing behind and speaks the app's words; the custom STAC URL is http(s) only."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from app_data import new_app

from clay_explore.app import state as S
from clay_explore.app.words import UPLOAD_WORDS, in_app_words
from clay_explore.core.errors import ClayExploreError, ImageryError, NoScenesError
from clay_explore.core.workspace import Workspace
from clay_explore.imagery.chipping import ChipSettings
from clay_explore.imagery.upload import ingest_upload

S2 = "sentinel-2-l2a"


def _tif(path: Path, fill: int | None = None, size: int = 64, seed: int = 0) -> bytes:
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    data = (
        rng.integers(500, 4000, (10, size, size)).astype(np.uint16)
        if fill is None
        else np.full((10, size, size), fill, np.uint16)
    )
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=10,
        dtype="uint16",
        nodata=0,
        crs="EPSG:32633",
        transform=from_origin(400000 + 1000 * seed, 5300000, 10, 10),
    ) as dst:
        dst.write(data)
    return path.read_bytes()


def _leftovers(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_upload_that_is_not_a_raster_leaves_nothing(tmp_path):
    target, uploads = tmp_path / "ws", tmp_path / "uploads"
    with pytest.raises(ImageryError, match="notes.tif is not a raster") as err:
        ingest_upload(b"this is not a raster", "notes.tif", target, uploads, sensor=S2, chips=ChipSettings(64))
    assert str(uploads) not in str(err.value)  # the server's folders are not shown to a web user
    assert not target.exists() and _leftovers(uploads) == []


def test_upload_whose_chips_are_all_dropped_leaves_nothing_and_names_the_slider(tmp_path):
    target, uploads = tmp_path / "ws", tmp_path / "uploads"
    data = _tif(tmp_path / "empty.tif", fill=0)
    with pytest.raises(NoScenesError) as err:
        ingest_upload(data, "empty.tif", target, uploads, sensor=S2, chips=ChipSettings(64))
    assert not target.exists() and _leftovers(uploads) == []
    text = in_app_words(str(err.value), UPLOAD_WORDS)
    assert "--" not in text.replace("a command-line option", "")


def test_failed_append_to_an_existing_workspace_leaves_it_as_it_was(tmp_path, monkeypatch):
    from clay_explore.imagery import chipping

    target, uploads = tmp_path / "ws", tmp_path / "uploads"
    ingest_upload(_tif(tmp_path / "a.tif"), "a.tif", target, uploads, sensor=S2, chips=ChipSettings(64))
    before = Workspace.open(target)
    chips, stage = before.read_chips(slice(None)), before.stage("chips")

    def full(ws, rec):
        raise OSError(errno.ENOSPC, "No space left on device", str(ws.root))

    monkeypatch.setattr(chipping, "_append_progress", full)
    with pytest.raises(ClayExploreError, match="No space left"):
        ingest_upload(_tif(tmp_path / "b.tif", seed=1), "b.tif", target, uploads, sensor=S2, chips=ChipSettings(64))
    monkeypatch.undo()
    after = Workspace.open(target)
    assert after.stage("chips")["status"] == "complete" and "appending" not in after.stage("chips")
    assert after.stage("chips")["sources"] == stage["sources"]
    np.testing.assert_array_equal(after.read_chips(slice(None)), chips)
    assert len(list(uploads.iterdir())) == 1  # only the first, successful upload (the workspace's source)
    rec = ingest_upload(_tif(tmp_path / "b.tif", seed=1), "b.tif", target, uploads, sensor=S2, chips=ChipSettings(64))
    assert rec["total_chips"] == 2  # the next upload is taken normally


def test_page_upload_error_uses_the_app_words_and_leaves_no_workspace(app_env, tmp_path):
    at = new_app().run()
    at.switch_page("pages/area.py").run()
    at.file_uploader(key="upload").upload("empty.tif", _tif(tmp_path / "empty.tif", fill=0), "image/tiff").run()
    at.selectbox(key="upload_chip").set_value(64).run()
    at.button(key="ingest").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error, "no error shown"
    text = at.error[0].value
    assert "Every chip was dropped" in text and "--min-valid" not in text and "--chip-size" not in text
    assert not list(app_env.glob("*/manifest.json"))
    assert _leftovers(app_env) == []


@pytest.mark.parametrize("url", ["/etc/passwd", "file:///etc/passwd"])
def test_custom_stac_url_must_be_http(app_env, url):
    at = new_app().run()
    at.switch_page("pages/area.py").run()
    at.button(key="bbox_use").click().run()
    at.selectbox(key="endpoint_name").set_value("Custom URL").run()
    at.text_input(key="endpoint_url").set_value(url).run()
    assert not at.exception
    assert any("not a web address" in e.value for e in at.error)
    assert at.button(key="search").disabled and at.button(key="fetch").disabled
    assert at.session_state[S.WORKSPACE]


def test_cli_options_become_the_widgets_to_change():
    text = in_app_words(
        "use --chip-size 64 (a multiple of 8 that fits) or lower --min-valid to keep the padded "
        "chip. Choose a new --workspace folder. Run `clay-explore embed --workspace w` first.",
        UPLOAD_WORDS,
    )
    assert "the 'Chip size (px)' box set to 64" in text
    assert "lower the 'Minimum valid pixels per chip (%)' slider to keep" in text
    assert "Choose a new workspace" in text and "the Embed page" in text and "--" not in text
