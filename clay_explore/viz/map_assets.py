"""Offline web assets for the folium maps: point CDN links at the copies vendored in ``static/vendor``.

folium and its Draw plugin list their JS/CSS as ``default_js`` / ``default_css`` (name, CDN URL) pairs,
and streamlit-folium loads them in its iframe before drawing the map: one unreachable script and the map
stays blank. Streamlit serves ``static/`` next to the main script (``clay_explore/app/static``, linked from
the repository's ``static``) at ``<baseUrlPath>/app/static/`` when ``server.enableStaticServing`` is on
(``clay-explore app`` turns it on), so the links are rewritten to that same-origin path. Assets the maps
only use cosmetically (bootstrap, awesome-markers, Font Awesome, glyphicons) are dropped. No Streamlit here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).resolve().parent.parent / "app" / "static"
STATIC_ROUTE = "app/static"  # where Streamlit serves STATIC_DIR, below server.baseUrlPath

#: folium / plugin asset name -> vendored file, relative to STATIC_DIR.
LOCAL_ASSETS = {
    "leaflet": "vendor/leaflet-1.9.3/leaflet.js",
    "leaflet_css": "vendor/leaflet-1.9.3/leaflet.css",
    "jquery": "vendor/jquery-3.7.1/jquery.min.js",
    "leaflet_draw_js": "vendor/leaflet-draw-1.0.2/leaflet.draw.js",
    "leaflet_draw_css": "vendor/leaflet-draw-1.0.2/leaflet.draw.css",
}
#: folium defaults the app's maps don't need (icons and popup styling degrade gracefully without them).
DROPPED_ASSETS = frozenset(
    {
        "bootstrap",
        "bootstrap_css",
        "awesome_markers",
        "awesome_markers_css",
        "awesome_markers_font_css",
        "glyphicons_css",
        "awesome_rotate_css",
    }
)


def static_base_url(base_url_path: str = "") -> str:
    """The URL path Streamlit serves ``static/`` under, for a server with ``server.baseUrlPath``."""
    base = base_url_path.strip("/")
    return f"/{base}/{STATIC_ROUTE}" if base else f"/{STATIC_ROUTE}"


def missing_assets() -> list[str]:
    """Vendored files that are absent (an incomplete checkout); empty when all are present."""
    return [rel for rel in LOCAL_ASSETS.values() if not (STATIC_DIR / rel).is_file()]


def use_local_assets(m: Any, base_url: str) -> Any:
    """Rewrite the JS/CSS links of every element of folium map ``m`` to the vendored copies under ``base_url``.

    Unknown assets (a plugin this module does not vendor) keep their CDN link, so they still work online;
    ``external_links(m)`` lists them. Returns ``m``.
    """
    base = base_url.rstrip("/")
    for elem in _elements(m):
        for attr in ("default_js", "default_css"):
            links = getattr(elem, attr, None)
            if links:
                setattr(
                    elem,
                    attr,
                    [
                        (name, f"{base}/{LOCAL_ASSETS[name]}" if name in LOCAL_ASSETS else url)
                        for name, url in links
                        if name not in DROPPED_ASSETS
                    ],
                )
    return m


def external_links(m: Any) -> list[str]:
    """JS/CSS links of map ``m`` that still leave the server (http(s) or protocol-relative URLs)."""
    out = []
    for elem in _elements(m):
        for attr in ("default_js", "default_css"):
            out.extend(
                url for _, url in getattr(elem, attr, None) or [] if url.startswith(("http://", "https://", "//"))
            )
    return list(dict.fromkeys(out))


def _elements(m: Any) -> Iterator[Any]:
    """``m`` and all its descendants (folium keeps children in ``_children``)."""
    yield m
    for child in getattr(m, "_children", {}).values():
        yield from _elements(child)
