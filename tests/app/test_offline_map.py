"""The maps work without network: folium's CDN links point at static/vendor, served by Streamlit.

The browser test runs ``streamlit run app.py`` on 127.0.0.1 and aborts every request that leaves
127.0.0.1 (no local CDN copies, unlike test_browser.py): the Area page's Leaflet map and its draw
toolbar must still render inside the st_folium iframe.
"""

from __future__ import annotations

import importlib.util
import sys
from urllib.parse import urlsplit

import pytest
from app_browser import CHROMIUM, AppServer, launch

from clay_explore.viz import map_assets
from clay_explore.viz.maps import build_map

WAIT = 60_000  # ms


def test_vendored_assets_present_and_small():
    assert map_assets.missing_assets() == []
    total = sum(p.stat().st_size for p in (map_assets.STATIC_DIR / "vendor").rglob("*") if p.is_file())
    assert total < 1_500_000  # keep the repository light
    for folder in (map_assets.STATIC_DIR / "vendor").iterdir():
        if folder.is_dir():
            assert list(folder.glob("LICENSE*")), f"{folder.name} has no licence file"


def test_map_links_are_local():
    m = build_map(bbox=(13.6, 47.8, 13.7, 47.9))
    assert map_assets.external_links(m)  # folium's defaults are CDN links
    map_assets.use_local_assets(m, map_assets.static_base_url("/lab/"))
    assert map_assets.external_links(m) == []
    html = m.get_root().render()
    assert "/lab/app/static/vendor/leaflet-1.9.3/leaflet.js" in html
    assert "/lab/app/static/vendor/leaflet-draw-1.0.2/leaflet.draw.js" in html
    assert "cdn" not in html.split("<body>")[0].lower()
    assert map_assets.static_base_url("") == "/app/static"


@pytest.mark.browser
def test_area_map_renders_offline(tiny_checkpoint, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("python playwright is not installed")
    from playwright.sync_api import sync_playwright

    env = {
        "CLAY_CHECKPOINT": str(tiny_checkpoint),
        "CLAY_EXPLORE_WORKSPACES": str(tmp_path / "ws"),
        "CLAY_EXPLORE_CACHE": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
    }
    app = AppServer(tmp_path, env)
    blocked: list[tuple[str, str]] = []

    def offline(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            return route.continue_()
        blocked.append((route.request.resource_type, route.request.url))
        return route.abort("internetdisconnected")

    try:
        app.wait()
        with sync_playwright() as p:
            browser = launch(p)
            try:
                context = browser.new_context(viewport={"width": 1200, "height": 900})
                context.route("**/*", offline)
                page = context.new_page()
                page.set_default_timeout(WAIT)
                page.goto(f"{app.url}/area")
                page.get_by_role("heading", name="Area").first.wait_for()
                frame = page.locator('iframe[title*="st_folium"]').first.element_handle().content_frame()
                frame.wait_for_selector(".leaflet-container .leaflet-draw-draw-rectangle", state="visible")
                assert frame.evaluate("() => window.L.version") == "1.9.3"
                assert frame.evaluate("() => !!(window.map && window.map.getCenter())")
                # the draw toolbar's icons come from the vendored spritesheet; the stylesheet
                # loads asynchronously after the toolbar exists, so wait for it to apply
                sprite_js = (
                    "() => getComputedStyle(document.querySelector('.leaflet-draw-draw-rectangle')).backgroundImage"
                )
                frame.wait_for_function(f"() => ({sprite_js})().includes('spritesheet')")
                sprite = frame.evaluate(sprite_js)
                assert "/app/static/vendor/leaflet-draw-1.0.2/images/spritesheet" in sprite
                page.screenshot(path=str(tmp_path / "area-offline.png"))
            finally:
                browser.close()
    except Exception:
        print("--- streamlit log ---\n" + app.tail(), file=sys.stderr)
        raise
    finally:
        app.stop()
    # only map tiles (images) may want the network; no script or stylesheet does
    assert all(kind == "image" for kind, _ in blocked), blocked
    assert "Traceback" not in app.tail(10**6)
