"""End to end in a real Chromium: draw an area, fetch from a loopback STAC API, embed, UMAP, reconstruct, export.

``streamlit run app.py`` and ``tests/imagery/stac_server.py`` run as subprocesses on 127.0.0.1 with the
tiny checkpoint; folium's CDN assets come from the npm copies of ``tests/app/install_assets.sh``.
Screenshots of every page go to a temporary folder; ``CLAY_EXPLORE_SCREENSHOTS=docs/screenshots`` refreshes
the README's pictures (see tests/app/app_browser.screenshot_dir).
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time

import numpy as np
import pytest
from app_browser import (
    CHROMIUM,
    REPO,
    AppServer,
    StacServer,
    have_assets,
    launch,
    route_cdns,
    screenshot_dir,
)

from clay_explore.viz.views import method_label

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real Chromium against a real server: minutes

SHOTS: list = []  # [Path]: set by the module's screenshot fixture (a temporary folder unless asked otherwise)
WAIT = 180_000  # ms: generous; the first UMAP waits for numba's one-time compile
ORIGIN = (400_000.0, 5_300_000.0)  # UTM 33N; the generated scene is 6 x 4 km north-west of ~13.66 E 47.84 N
SHAPE = (400, 600)


def _skip_reasons() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (install Debian's chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "python playwright is not installed"
    if not have_assets():
        return "leaflet assets missing: run `bash tests/app/install_assets.sh` (npm)"
    return None


@pytest.fixture(scope="module")
def stac(tmp_path_factory):
    sys.path.insert(0, str(REPO / "tests" / "imagery"))
    from gen_data import write_s2

    folder = tmp_path_factory.mktemp("scenes")
    write_s2(
        folder,
        "S2A_e2e_20230610",
        shape=SHAPE,
        origin=ORIGIN,
        scl=np.full(SHAPE, 4),
        properties={"eo:cloud_cover": 3.0, "s2:processing_baseline": "05.09"},
        tags={"ACQUISITION_DATETIME": "2023-06-10T10:20:00Z"},
        seed=7,
    )
    srv = StacServer(folder, tmp_path_factory.mktemp("stac_logs"))
    try:
        srv.wait()
        yield srv
    finally:
        srv.stop()


def _scene_bbox() -> tuple[float, float, float, float]:
    from pyproj import Transformer

    t = Transformer.from_crs(32633, 4326, always_xy=True)
    h, w = SHAPE
    xs = [ORIGIN[0], ORIGIN[0] + w * 10.0]
    ys = [ORIGIN[1] - h * 10.0, ORIGIN[1]]
    lons, lats = zip(*[t.transform(x, y) for x in xs for y in ys])
    return min(lons), min(lats), max(lons), max(lats)


def _nav(page, label: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=label).first.click()
    page.get_by_role("heading", name=label, exact=False).first.wait_for(timeout=WAIT)


def _idle(page) -> None:
    """Wait until the script run finished (the 'Running…' status widget is gone)."""
    page.wait_for_timeout(400)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !/Running/i.test(document.querySelector('[data-testid=\"stStatusWidget\"]').innerText)",
        timeout=WAIT,
    )


def _maps_drawn(page, timeout: int = 30_000) -> None:
    """Best effort, for screenshots: wait until each map iframe has drawn its chip layer."""
    for frame_el in page.locator('iframe[title*="st_folium"]').all():
        try:
            frame = frame_el.element_handle(timeout=5_000).content_frame()
            frame.wait_for_selector(".leaflet-container .leaflet-interactive", timeout=timeout)
        except Exception:  # noqa: BLE001 - a map without chips (or re-rendering) is still worth a picture
            pass


@pytest.fixture(scope="module", autouse=True)
def _screenshots(tmp_path_factory):
    SHOTS[:] = [screenshot_dir(tmp_path_factory.mktemp("screenshots"))]
    yield SHOTS[0]


def _shot(page, name: str) -> None:
    SHOTS[0].mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(800)
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    _maps_drawn(page)
    from PIL import Image

    path = SHOTS[0] / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)  # small PNGs for the README


def _fill(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True).first
    box.fill(value)
    box.press("Enter")
    _idle(page)


def _date(page, label: str, digits: str) -> None:
    """Type a date into st.date_input's segmented field (year, month, day segments)."""
    group = page.get_by_label(label, exact=True).first
    group.locator('[role="spinbutton"]').first.click()
    page.keyboard.type(digits, delay=60)
    page.keyboard.press("Tab")
    _idle(page)


def _choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).first.click()
    page.get_by_role("option", name=option, exact=True).first.click()
    _idle(page)


#: streamlit-folium keeps the Leaflet map in ``window.map`` inside its iframe
_MAP_JS = "() => (window.map && window.map.latLngToContainerPoint) ? window.map : null"


def _map_frame(page, centre: tuple[float, float]):
    """The st_folium iframe once its Leaflet map is up and centred near ``centre`` (lon, lat).

    The component's iframe is replaced when the page re-renders the map, so poll with fresh handles.
    """
    check = (
        f"([x, y]) => {{ const m = ({_MAP_JS})(); if (!m) return false; const c = m.getCenter();"
        " return Math.abs(c.lng - x) < 0.05 && Math.abs(c.lat - y) < 0.05"
        " && !!document.querySelector('.leaflet-draw-draw-rectangle'); }"
    )
    deadline = time.monotonic() + WAIT / 1000
    stable = 0
    while time.monotonic() < deadline:
        try:
            frame_el = page.locator('iframe[title*="st_folium"]').first
            frame = frame_el.element_handle(timeout=5_000).content_frame()
            if frame is not None and frame.evaluate(check, list(centre)):
                stable += 1
                if stable >= 3:  # the same map answered three polls in a row
                    return frame_el, frame
            else:
                stable = 0
        except Exception:  # noqa: BLE001 - detached or not mounted yet
            stable = 0
        page.wait_for_timeout(500)
    raise TimeoutError(f"the map never centred on {centre}")


def _draw_rectangle(page, bounds: tuple[float, float, float, float]) -> None:
    """Use leaflet.draw's rectangle tool: press the toolbar button, then drag between two corners."""
    w, s, e, n = bounds
    frame_el, frame = _map_frame(page, ((w + e) / 2, (s + n) / 2))
    frame.locator(".leaflet-draw-draw-rectangle").click()
    # container pixels of the corners, from the folium map object inside the component (frame coordinates)
    pts = frame.evaluate(
        f"""([w, s, e, n]) => {{
            const m = ({_MAP_JS})();
            const a = m.latLngToContainerPoint([n, w]), b = m.latLngToContainerPoint([s, e]);
            const r = m.getContainer().getBoundingClientRect();
            return [a.x + r.left, a.y + r.top, b.x + r.left, b.y + r.top];
        }}""",
        [w, s, e, n],
    )
    box = frame_el.bounding_box()
    x0, y0, x1, y1 = box["x"] + pts[0], box["y"] + pts[1], box["x"] + pts[2], box["y"] + pts[3]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=8)
    page.mouse.move(x1, y1, steps=8)
    page.mouse.up()


def _draw_until_accepted(page, bounds: tuple[float, float, float, float], attempts: int = 3) -> None:
    """Draw, and wait for the page to show the drawn area; redraw if the map re-rendered meanwhile."""
    expected = re.compile(rf"Area {bounds[0]:.2f}\d*, {bounds[1]:.2f}")
    for attempt in range(attempts):
        _draw_rectangle(page, bounds)
        try:
            page.get_by_text(expected).first.wait_for(timeout=30_000)
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            _idle(page)


def _hover_first_point(page) -> None:
    """Move the mouse onto the first plotted point: the chip thumbnail (with the patch outlined) appears."""
    frame_el = page.locator('iframe[title*="clay_scatter"]').first
    frame = frame_el.element_handle().content_frame()
    frame.wait_for_function(
        "() => { const gd = document.getElementById('plot'); return gd && gd._fullLayout"
        " && gd._fullLayout.xaxis && gd.data && gd.data.length; }"
    )
    px, py = frame.evaluate("""() => {
        const gd = document.getElementById('plot'), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const tr = gd._fullData[0];  // decoded arrays (the JSON may hold typed-array specs)
        return [xa._offset + xa.l2p(tr.x[0]), ya._offset + ya.l2p(tr.y[0])];
    }""")
    box = frame_el.bounding_box()
    for dx in (0, 1, -1, 2):  # plotly needs a real mouse move onto the point
        page.mouse.move(box["x"] + px + dx, box["y"] + py)
        page.wait_for_timeout(300)
    frame.wait_for_function(
        "() => document.getElementById('tip').style.display === 'block'"
        " && document.getElementById('tipimg').src.startsWith('data:image/png')"
    )
    assert frame.evaluate("() => document.getElementById('tippatch').style.display") == "block"


def test_draw_fetch_embed_project_reconstruct_export(stac, tiny_checkpoint, tmp_path):
    reason = _skip_reasons()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    env = {
        "CLAY_CHECKPOINT": str(tiny_checkpoint),
        "CLAY_EXPLORE_WORKSPACES": str(tmp_path / "ws"),
        "CLAY_EXPLORE_CACHE": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
    }
    app = AppServer(tmp_path, env)
    try:
        app.wait()
        _step("server up")
        with sync_playwright() as p:
            browser = launch(p)
            logs: list[str] = []
            page, demo = (_session(browser, logs, name) for name in ("A", "B"))
            try:
                _flow(page, demo, app.url, stac, tmp_path)
                # two sessions, one server: the model was loaded once, and no script ever raised
                assert app.tail(10**6).count("clay-explore: loaded the Clay model") == 1, app.tail()
                assert "Traceback" not in app.tail(10**6), app.tail()
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                demo.screenshot(path=str(tmp_path / "failure-demo.png"), full_page=True)
                print("--- streamlit log ---\n" + app.tail(), file=sys.stderr)
                print("--- browser console ---\n" + "\n".join(logs[-60:]), file=sys.stderr)
                raise
            finally:
                browser.close()
    finally:
        app.stop()


_T0 = [time.monotonic()]


def _step(name: str) -> None:
    """Print the seconds since the previous step (pytest -s shows where the time goes)."""
    now = time.monotonic()
    print(f"[e2e] {name}: {now - _T0[0]:.1f} s", file=sys.stderr, flush=True)
    _T0[0] = now


def _session(browser, logs: list[str], name: str):
    """A page in its own browser context (= its own Streamlit session), CDNs served locally."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    route_cdns(context)
    page = context.new_page()
    page.set_default_timeout(WAIT)
    page.on("console", lambda m: logs.append(f"{name} console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: logs.append(f"{name} pageerror: {e}"))
    return page


def _own_workspace(page) -> str:
    text = page.get_by_text(re.compile(r"This session's workspace session-\w+ is empty")).first.inner_text()
    return re.search(r"session-\w+", text).group(0)


def _flow(page, demo, url: str, stac, tmp_path) -> None:
    _step("home, in two sessions at once: ea")
    # ---- home, in two sessions at once: each gets its own workspace, the model loads once
    page.goto(url, wait_until="domcontentloaded")
    demo.goto(url, wait_until="domcontentloaded")
    for p in (page, demo):
        p.get_by_role("heading", name="Clay explore").wait_for()
        p.get_by_text("Untrained test model").first.wait_for()
        _idle(p)
    assert _own_workspace(page) != _own_workspace(demo)
    _shot(page, "home")

    _step("area: type the scene's bbox (cent")
    # ---- area: type the scene's bbox (centres the map), then draw a rectangle inside it
    _nav(page, "Area")
    w, s, e, n = _scene_bbox()
    for label, value in (("West", w), ("South", s), ("East", e), ("North", n)):
        _fill(page, label, f"{value:.5f}")
    page.get_by_role("button", name="Use this bbox").click()
    _idle(page)
    cx, cy = (w + e) / 2, (s + n) / 2
    dx, dy = (e - w) * 0.12, (n - s) * 0.12
    _draw_until_accepted(page, (cx - dx, cy - dy, cx + dx, cy + dy))
    _idle(page)
    _date(page, "Start", "20230601")
    _date(page, "End", "20230630")
    _choose(page, "Endpoint", "Custom URL")
    _fill(page, "STAC API URL", stac.url)
    _choose(page, "Chip size (px)", "64")
    page.get_by_role("button", name="Search scenes").click()
    page.get_by_text("matching scenes").first.wait_for()
    _idle(page)
    page.get_by_role("button", name="Fetch and chip").click()
    page.get_by_text(re.compile(r"Stored \d+ chips")).first.wait_for()
    _idle(page)
    page.get_by_text("Max scene cloud cover").first.wait_for()  # the whole page is back, not just the message
    _map_frame(page, (cx, cy))
    _shot(page, "area")

    _step("embed")
    # ---- embed
    _nav(page, "Embed")
    page.get_by_role("button", name="Embed").first.click()
    page.get_by_text("Every chip is embedded").wait_for()
    _idle(page)

    _step("projections: compute once, see th")
    # ---- projections: compute once, see the plot
    _nav(page, "Projections")
    page.get_by_role("button", name="Compute UMAP").click()
    frame_el = page.locator('iframe[title*="clay_scatter"]').first
    frame_el.wait_for()
    frame_el.content_frame.locator(".js-plotly-plot .scatterlayer, .js-plotly-plot canvas").first.wait_for()
    page.get_by_text("trustworthiness@10").first.wait_for()
    _idle(page)
    _hover_first_point(page)

    _step("reconstructions: the grid of orig")
    # ---- reconstructions: the grid of original / full tokens / CLS only
    _nav(page, "Reconstructions")
    page.get_by_text(method_label("all_tokens")).first.wait_for()  # the panel titles of the reference decodes
    page.get_by_text(method_label("cls_only")).first.wait_for()
    page.locator('[data-testid="stImage"] img').nth(2).wait_for()
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('[data-testid=\"stImage\"] img'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    _idle(page)

    _step("similar chips")
    # ---- similar chips
    _nav(page, "Similar chips")
    page.get_by_text("Query").first.wait_for()
    _idle(page)

    _step("export: build and download the Ge")
    # ---- export: build and download the GeoParquet, open it with geopandas
    _nav(page, "Export")
    page.get_by_role("button", name="Build image_embeddings.parquet").click()
    button = page.get_by_role("button", name="Download image_embeddings.parquet")
    button.wait_for()
    _idle(page)
    _shot(page, "export")
    with page.expect_download() as dl:
        button.click()
    target = tmp_path / "downloaded.parquet"
    dl.value.save_as(target)

    import geopandas as gpd

    _step("session B, the workshop path: dem")
    # ---- session B, the workshop path: demo scene (offline), (A's session stays open)
    demo.get_by_role("button", name="Open the demo scene").click()
    demo.get_by_text("Working in demo").first.wait_for()
    _idle(demo)
    _nav(demo, "Embed")
    demo.get_by_role("button", name="Embed").first.click()  # a background job; the page polls its progress

    _step("session B: embedding finished mea")
    # ---- session B: projections of a patch subsample + image vectors,
    # reconstructions and similar chips of the real demo scene (these screenshots go to the README)
    demo.get_by_text("Every chip is embedded").wait_for()
    _idle(demo)
    _shot(demo, "embed")
    _nav(demo, "Projections")
    demo.get_by_text("UMAP parameters").first.click()
    _fill(demo, "max points", "4000")
    demo.get_by_role("button", name="Compute UMAP").click()
    demo.get_by_text("trustworthiness@10").first.wait_for()
    _idle(demo)
    _hover_first_point(demo)
    _shot(demo, "projections")
    _nav(demo, "Reconstructions")
    demo.get_by_text(method_label("cls_only")).first.wait_for()
    demo.wait_for_function(
        "() => Array.from(document.querySelectorAll('[data-testid=\"stImage\"] img'))"
        ".filter(i => i.complete && i.naturalWidth > 0).length >= 3"
    )
    _idle(demo)
    _shot(demo, "reconstructions")
    _nav(demo, "Similar chips")
    demo.get_by_text("Mean pooling").first.wait_for()  # parameter-free vectors without any fit
    _idle(demo)
    _shot(demo, "similar")

    _step("end")
    g = gpd.read_parquet(target)
    assert len(g) >= 1 and "emb_cls" in g.columns and g.crs.to_epsg() == 4326
    assert g.geometry.is_valid.all()
