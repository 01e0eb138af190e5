"""Maps for the app: a leafmap/folium map with one draw tool and the chip grid coloured by status.

No Streamlit here: this builds folium objects and interprets what streamlit-folium returns
(drawn shapes -> bbox, a click -> chip row), so it is testable without a browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clay_explore.core.errors import StageMissingError
from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace
from clay_explore.viz.views import chip_status_colors

DEFAULT_CENTER = (37.67, -75.62)  # the demo scene, Virginia's Eastern Shore
DEFAULT_ZOOM = 10
EARTH_KM_PER_DEG = 111.32


def chip_layer_table(ws: Workspace, selected: Sequence[int] = (), neighbours: Sequence[int] = ()) -> Any:
    """The chip table with 'status' (stored / embedded / selected / neighbour) and 'colour' columns."""
    table = ws.chip_table().reset_index(drop=True)
    n = len(table)
    done = ws.done_mask(EMBEDDINGS_ZARR, "cls", n)
    status = np.where(done, "embedded", "stored").astype(object)
    for r in neighbours:
        if 0 <= r < n:
            status[r] = "neighbour"
    for r in selected:
        if 0 <= r < n:
            status[r] = "selected"
    colours = chip_status_colors()
    out = table[["chip_id", "geometry"]].copy()
    out["row"] = np.arange(n)
    out["status"] = status
    out["colour"] = [colours[s] for s in status]
    return out


def legend_markdown() -> str:
    """A one-line legend of the chip colours."""
    return "  ".join(f"<span style='color:{c}'>■</span> {s}" for s, c in chip_status_colors().items())


def build_map(chips: Any = None, bbox: Sequence[float] | None = None, draw: bool = True, height: int = 520) -> Any:
    """A leafmap (folium) map with a rectangle/polygon draw tool, the bbox and the chip grid."""
    import folium
    import leafmap.foliumap as leafmap
    from folium import plugins

    center, zoom = DEFAULT_CENTER, DEFAULT_ZOOM
    if chips is not None and len(chips):
        w, s, e, n = chips.total_bounds
        center, zoom = ((s + n) / 2, (w + e) / 2), _zoom_for(w, s, e, n)
    elif bbox is not None:
        w, s, e, n = bbox
        center, zoom = ((s + n) / 2, (w + e) / 2), _zoom_for(w, s, e, n)
    m = leafmap.Map(
        center=center,
        zoom=zoom,
        height=height,
        draw_control=False,
        fullscreen_control=False,
        measure_control=False,
        locate_control=False,
        search_control=False,
        layers_control=False,
    )
    if draw:
        plugins.Draw(
            export=False,
            draw_options={
                "polyline": False,
                "circle": False,
                "marker": False,
                "circlemarker": False,
                "rectangle": {"shapeOptions": {"color": "#D55E00"}},
                "polygon": {"shapeOptions": {"color": "#D55E00"}},
            },
            edit_options={"edit": False, "remove": True},
        ).add_to(m)
    if bbox is not None:
        w, s, e, n = bbox
        folium.Rectangle(bounds=[(s, w), (n, e)], color="#D55E00", weight=2, fill=False, tooltip="area").add_to(m)
    if chips is not None and len(chips):
        folium.GeoJson(
            chips[["chip_id", "row", "status", "colour", "geometry"]].to_json(),
            name="chips",
            style_function=lambda f: {
                "color": f["properties"]["colour"],
                "weight": 1,
                "fillColor": f["properties"]["colour"],
                "fillOpacity": 0.25,
            },
            tooltip=folium.GeoJsonTooltip(fields=["chip_id", "status"]),
        ).add_to(m)
    return m


def _zoom_for(w: float, s: float, e: float, n: float) -> int:
    span = max(e - w, n - s, 1e-4)
    return int(max(3, min(16, round(math.log2(360.0 / span)))))


def bbox_from_drawing(out: dict[str, Any] | None) -> tuple[float, float, float, float] | None:
    """(W, S, E, N) of the last shape drawn on the map (streamlit-folium output), or None."""
    if not out:
        return None
    geo = out.get("last_active_drawing")
    if not geo:
        drawings = out.get("all_drawings") or []
        geo = drawings[-1] if drawings else None
    if not geo:
        return None
    geom = geo.get("geometry", geo)
    coords = np.asarray(_flatten(geom.get("coordinates", [])), dtype=np.float64).reshape(-1, 2)
    if coords.size == 0:
        return None
    return (
        round(float(coords[:, 0].min()), 6),
        round(float(coords[:, 1].min()), 6),
        round(float(coords[:, 0].max()), 6),
        round(float(coords[:, 1].max()), 6),
    )


def _flatten(c) -> list[float]:
    if isinstance(c, (int, float)):
        return [float(c)]
    out: list[float] = []
    for x in c:
        out.extend(_flatten(x))
    return out


def chip_at(chips: Any, clicked: dict[str, float] | None) -> int | None:
    """Row of the chip containing a clicked point ({'lat', 'lng'}), or None."""
    if chips is None or not clicked or "lat" not in clicked:
        return None
    from shapely.geometry import Point

    pt = Point(float(clicked["lng"]), float(clicked["lat"]))
    hits = chips[chips.geometry.contains(pt)]
    return int(hits["row"].iloc[0]) if len(hits) else None


def size_km(bbox: Sequence[float]) -> tuple[float, float]:
    """Approximate width and height of a bbox in km."""
    w, s, e, n = bbox
    lat = math.radians((s + n) / 2)
    return (e - w) * EARTH_KM_PER_DEG * math.cos(lat), (n - s) * EARTH_KM_PER_DEG


def fetch_target(ws: Workspace | None, current: Path, request: dict[str, Any], new_path: Path) -> Path:
    """Where new chips go: the current folder when empty or holding this same request, else ``new_path``.

    A workspace keeps one source, so a different area starts a new workspace and the old one stays.
    """
    if ws is None:
        return current
    try:
        ws.chip_table()
    except StageMissingError:
        if not ws.stage("chips"):
            return current
    src = ws.manifest.get("source", {})
    if (
        all(src.get(k) == v for k, v in request.items() if k in src)
        and src.get("kind") == request.get("kind")
        and request.get("kind") == "stac"
    ):
        return current
    return new_path


def chips_message(rec: dict[str, Any]) -> str:
    """A one-line summary of a chips stage record (kept and dropped chips, the source's note)."""
    kept = rec.get("chips", rec.get("kept", rec.get("count")))
    msg = f"Stored {kept} chips." if kept is not None else "Chips stored."
    dropped = {k[len("dropped_") :]: v for k, v in rec.items() if k.startswith("dropped_") and v}
    if dropped:
        msg += " Dropped: " + ", ".join(f"{v} ({k})" for k, v in dropped.items()) + "."
    note = rec.get("note") or (rec.get("demo") or {}).get("note")
    return msg + (f" {note}" if note else "")
