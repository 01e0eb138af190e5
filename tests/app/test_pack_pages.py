"""Export packs the workspace into one verified file and offers it as a download; Home offers to open one."""

from __future__ import annotations

import zipfile

from app_data import new_app

from clay_explore.core.pack import PACK_MANIFEST


def test_export_packs_the_workspace_and_home_offers_to_open_one(model_ws):
    at = new_app("shared1").run()
    assert not at.exception
    assert any("Open a packed workspace" in m.value for m in at.markdown)
    assert any("1,024 MB" in c.value for c in at.caption)  # the upload limit is stated
    at.switch_page("pages/export.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.checkbox(key="pack_patches").uncheck().run()
    at.button(key="pack_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    path = model_ws / "exports" / "shared1.clay.zip"
    with zipfile.ZipFile(path) as zf:
        assert PACK_MANIFEST in zf.namelist()
        assert not any("/patches/" in n for n in zf.namelist())
    labels = [b.label for b in at.get("download_button")]
    assert any(label.startswith("Download this workspace packed") for label in labels), labels
