"""Pictures and figures from arrays: RGB stretches, thumbnails, band combinations, residual maps, plots.

Pure functions of numpy arrays and tables; no Streamlit and no workspace I/O, so the app, the CLI
and the tests draw exactly the same thing. Every figure has a legend or a colour bar, and every
aggregator has one colour (``METHOD_COLORS``) everywhere in the app.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Mapping, Sequence

import numpy as np

from clay_explore.core.sensors import Sensor

# ---------------------------------------------------------------------------------------------- colours
#: One colour per method, used by every page (Okabe-Ito based, colour-blind safe).
METHOD_COLORS: dict[str, str] = {
    "full": "#222222",      # Clay decoder from all patch tokens (upper bound)
    "cls_only": "#9a9a9a",  # Clay decoder from the CLS token alone (Clay's own one-vector baseline)
    "mean": "#0072B2",
    "max": "#56B4E9",
    "gem": "#009E73",
    "cls": "#E69F00",
    "linear": "#D55E00",
    "attention": "#CC79A7",
    "perceiver": "#F0E442",
    "patches": "#8c8c8c",
}
METHOD_LABELS: dict[str, str] = {
    "full": "Full tokens (reference)",
    "cls_only": "CLS only (Clay baseline)",
    "mean": "Mean pooling",
    "max": "Max pooling",
    "gem": "GeM pooling",
    "cls": "CLS token",
    "linear": "Learned linear",
    "attention": "Attention pooling",
    "perceiver": "Perceiver / PMA",
    "patches": "Patch tokens",
}
#: Other spellings the research stage may use for the two references.
METHOD_ALIASES: dict[str, str] = {
    "full_tokens": "full",
    "reference": "full",
    "full-tokens": "full",
    "cls-only": "cls_only",
    "cls_baseline": "cls_only",
    "clsonly": "cls_only",
}
#: Order in which methods are listed (references first, then the aggregators).
METHOD_ORDER = ("full", "cls_only", "mean", "max", "gem", "cls", "linear", "attention", "perceiver")
_EXTRA_COLORS = ("#7570b3", "#66a61e", "#e6ab02", "#a6761d", "#1b9e77", "#e7298a")

THUMB_SIZE = 96            # px of a hover / grid thumbnail
STRETCH_PERCENTILES = (2.0, 98.0)
NODATA_RGB = (40, 40, 40)  # dark grey where a chip has no data
FRAME_RGB = (150, 150, 150)
DIVERGING = "RdBu_r"       # residual maps: blue = reconstruction too dark, red = too bright


def canonical_method(name: str) -> str:
    """The palette key of a method name (aliases of the two references folded)."""
    key = name.lower()
    return METHOD_ALIASES.get(key, key)


def method_color(name: str) -> str:
    """The colour of ``name``; an unknown method gets a stable colour of its own."""
    key = canonical_method(name)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    digest = int(hashlib.sha1(key.encode()).hexdigest(), 16)
    return _EXTRA_COLORS[digest % len(_EXTRA_COLORS)]


def method_label(name: str) -> str:
    """Human label of a method."""
    return METHOD_LABELS.get(canonical_method(name), name)


def sort_methods(names: Sequence[str]) -> list[str]:
    """Methods in the app's canonical order, unknown ones last (alphabetical)."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(names, key=lambda n: (rank.get(canonical_method(n), len(rank)), n))


# ---------------------------------------------------------------------------------------------- bands
def band_combinations(sensor: Sensor, bands: Sequence[str]) -> dict[str, list[str]]:
    """Named band combinations available for these bands: true colour, false colours, single bands."""
    have = set(bands)
    combos: dict[str, list[str]] = {}
    rgb = sensor.rgb_names(bands)
    if rgb:
        combos["True colour"] = rgb
    for label, names in (
        ("False colour (NIR, red, green)", ["nir", "red", "green"]),
        ("SWIR (SWIR2, NIR, red)", ["swir22", "nir", "red"]),
        ("Agriculture (SWIR1, NIR, blue)", ["swir16", "nir", "blue"]),
    ):
        if set(names) <= have:
            combos[label] = names
    if not combos and len(bands) >= 3:
        combos["First three bands"] = list(bands[:3])
    for b in bands:
        combos[f"Band {b}"] = [b]
    return combos


def select_bands(pixels: np.ndarray, bands: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """Bands ``names`` of ``pixels`` [..., C, H, W] -> [..., len(names), H, W]."""
    index = [list(bands).index(n) for n in names]
    return pixels[..., index, :, :]


def stretch_limits(img: np.ndarray, percentiles: tuple[float, float] = STRETCH_PERCENTILES) -> np.ndarray:
    """Per-band (low, high) display limits [k, 2] of ``img`` [k, H, W] from robust percentiles."""
    flat = img.reshape(img.shape[0], -1)
    lims = np.zeros((img.shape[0], 2), dtype=np.float32)
    for b in range(img.shape[0]):
        vals = flat[b][np.isfinite(flat[b])]
        if vals.size:
            lo, hi = np.percentile(vals, percentiles)
        else:
            lo, hi = 0.0, 1.0
        if hi <= lo:
            hi = lo + 1e-6
        lims[b] = (lo, hi)
    return lims


def to_uint8(img: np.ndarray, limits: np.ndarray | None = None) -> np.ndarray:
    """Display image [k, H, W] (k = 1 or 3) -> uint8 [H, W, 3]; NaN pixels become dark grey.

    ``limits`` [k, 2] fixes the stretch (pass the original's limits to compare reconstructions
    on the same scale); by default each band is stretched between its 2nd and 98th percentile.
    """
    img = np.asarray(img, dtype=np.float32)
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"expected [1 or 3, H, W], got {img.shape}")
    lims = stretch_limits(img) if limits is None else np.asarray(limits, dtype=np.float32)
    scaled = (img - lims[:, :1, None]) / (lims[:, 1:, None] - lims[:, :1, None])
    nodata = ~np.all(np.isfinite(img), axis=0)  # [H, W]
    out = (np.clip(np.nan_to_num(scaled), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if out.shape[0] == 1:
        out = np.repeat(out, 3, axis=0)
    out = np.moveaxis(out, 0, -1).copy()  # [H, W, 3]
    out[nodata] = NODATA_RGB
    return out


def render(
    pixels: np.ndarray,
    bands: Sequence[str],
    combo: Sequence[str],
    limits: np.ndarray | None = None,
) -> np.ndarray:
    """One chip [C, H, W] shown as ``combo`` bands -> uint8 [H, W, 3]."""
    return to_uint8(select_bands(pixels, bands, combo), limits)


def combo_limits(pixels: np.ndarray, bands: Sequence[str], combo: Sequence[str]) -> np.ndarray:
    """Display limits of a chip [C, H, W] for ``combo``, to share between panels."""
    return stretch_limits(select_bands(pixels, bands, combo))


def framed(rgb: np.ndarray, width: int = 1, colour: tuple[int, int, int] = FRAME_RGB) -> np.ndarray:
    """uint8 [H, W, 3] with a thin frame, so an all-white or all-black panel still reads as a picture."""
    out = rgb.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


def resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour / box resize of uint8 [H, W, 3] to about ``size`` px on the long side."""
    from PIL import Image

    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    return np.asarray(Image.fromarray(rgb).resize(new, resample))


def png_bytes(rgb: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI for HTML/plotly hover."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def thumbnails(
    pixels: np.ndarray,
    bands: Sequence[str],
    combo: Sequence[str],
    size: int = THUMB_SIZE,
) -> list[str]:
    """Chips [n, C, H, W] -> list of PNG data URIs of about ``size`` px, each stretched on its own."""
    return [data_uri(png_bytes(framed(resize(render(chip, bands, combo), size)))) for chip in pixels]


# ---------------------------------------------------------------------------------------------- indices
#: Near-infrared band names, preferred first (Sentinel-2's broad B08, else the narrow nir08 of Landsat/B8A).
NIR_BANDS = ("nir", "nir08")


def ndvi_bands(bands: Sequence[str]) -> tuple[str, str] | None:
    """The (red, nir) band names NDVI uses for this band list, or None when it cannot be computed."""
    nir = next((b for b in NIR_BANDS if b in bands), None)
    return ("red", nir) if nir and "red" in bands else None


def ndvi(pixels: np.ndarray, bands: Sequence[str], scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """NDVI (nir - red) / (nir + red) of [..., C, H, W] -> [..., H, W] on reflectance = DN * scale + offset.

    The offset matters (Landsat C2 L2: -0.2): NDVI of raw DN would be biased.
    """
    pair = ndvi_bands(bands)
    if pair is None:
        raise ValueError("NDVI needs a red and a near-infrared band")
    red = pixels[..., list(bands).index(pair[0]), :, :].astype(np.float32) * scale + offset
    nir = pixels[..., list(bands).index(pair[1]), :, :].astype(np.float32) * scale + offset
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (nir - red) / (nir + red)
    return np.where(np.isfinite(out), out, np.nan).astype(np.float32)


def patch_means(values: np.ndarray, patch: int) -> np.ndarray:
    """Mean of [..., H, W] over ``patch`` x ``patch`` blocks -> [..., H/patch, W/patch] (NaN ignored)."""
    *lead, h, w = values.shape
    blocks = values.reshape(*lead, h // patch, patch, w // patch, patch)
    with np.errstate(invalid="ignore"), _quiet_nanmean():
        return np.nanmean(blocks, axis=(-3, -1))


class _quiet_nanmean:
    """Silence numpy's 'mean of empty slice' for all-NaN patches (they stay NaN on purpose)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


# ---------------------------------------------------------------------------------------------- residuals
def residuals(original: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Signed per-band residual reconstruction - original, [C, H, W] (NaN where no data)."""
    if original.shape != reconstruction.shape:
        raise ValueError(f"shapes differ: {original.shape} vs {reconstruction.shape}")
    return (reconstruction.astype(np.float32) - original.astype(np.float32))


def residual_figure(res: np.ndarray, bands: Sequence[str], title: str = "", units: str = "", cols: int = 5):
    """Per-band residual maps [C, H, W] as a plotly grid on one symmetric diverging colour scale."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    c = res.shape[0]
    cols = min(cols, c)
    rows = int(np.ceil(c / cols))
    finite = res[np.isfinite(res)]
    vmax = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    vmax = vmax or 1.0
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(bands), horizontal_spacing=0.02,
                        vertical_spacing=0.08)
    for k in range(c):
        fig.add_trace(
            go.Heatmap(
                z=res[k],
                zmin=-vmax, zmax=vmax, colorscale=DIVERGING, showscale=(k == 0),
                colorbar={"title": f"recon − orig {units}".strip(), "len": 0.9},
                hovertemplate=f"{bands[k]}<br>row %{{y}} col %{{x}}<br>residual %{{z:.4g}}<extra></extra>",
            ),
            row=k // cols + 1, col=k % cols + 1,
        )
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x")
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title=title, height=220 * rows + 60, margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


# ---------------------------------------------------------------------------------------------- scatter
def scatter_figure(
    table,
    color_by: str = "source",
    title: str = "",
    highlight_rows: Sequence[int] = (),
    max_legend: int = 20,
):
    """WebGL scatter of a projection table (columns x, y, source, row, chip_id, i, j, [value], [label]).

    ``color_by``: 'source' (one colour per method / patches, with legend), 'chip' (categorical
    legend up to ``max_legend`` chips, else a colour bar of the chip number), 'value' (continuous,
    e.g. NDVI, colour bar) or 'label'. ``customdata`` = [row, i, j] for hover thumbnails.
    Points of chips in ``highlight_rows`` are drawn on top with a black outline.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    df = table
    custom_cols = ["row", "i", "j"]

    def _trace(sub, name, marker, showlegend=True, legendgroup=None):
        image_pts = sub["i"].to_numpy() < 0
        if image_pts.any() and not image_pts.all():  # overlay: image vectors as larger outlined diamonds
            size = marker.get("size", 6)
            marker = {**marker, "symbol": np.where(image_pts, "diamond", "circle"),
                      "size": np.where(image_pts, size * 2.2, size),
                      "line": {"color": "black", "width": np.where(image_pts, 1.0, 0.0)}}
        return go.Scattergl(
            x=sub["x"].to_numpy(), y=sub["y"].to_numpy(), mode="markers", name=name,
            marker=marker, customdata=sub[custom_cols].to_numpy(), showlegend=showlegend,
            legendgroup=legendgroup,
            text=sub["chip_id"].astype(str).to_numpy(),
            hovertemplate="%{text}<br>patch (%{customdata[1]}, %{customdata[2]})<extra>" + name + "</extra>",
        )

    def _size(sub):
        return 4 if len(df) > 5000 else (6 if len(sub) > 200 else 9)

    sources = list(dict.fromkeys(df["source"]))
    if color_by == "source" or (color_by == "label" and "label" not in df) or (color_by == "value" and "value" not in df):
        for src in sort_methods(sources) if "patches" not in sources else ["patches", *sort_methods([s for s in sources if s != "patches"])]:
            sub = df[df["source"] == src]
            fig.add_trace(_trace(sub, method_label(src), {"color": method_color(src), "size": _size(sub),
                                                             "opacity": 0.55 if src == "patches" else 0.95}))
    elif color_by == "chip":
        chips = list(dict.fromkeys(df["row"]))
        if len(chips) <= max_legend:
            import plotly.express as px

            palette = px.colors.qualitative.Dark24
            for n, r in enumerate(chips):
                sub = df[df["row"] == r]
                name = str(sub["chip_id"].iloc[0])
                fig.add_trace(_trace(sub, name, {"color": palette[n % len(palette)], "size": _size(sub), "opacity": 0.8}))
        else:
            fig.add_trace(_trace(df, "chip #", {"color": df["row"].to_numpy(), "colorscale": "Turbo", "size": _size(df),
                                                      "opacity": 0.7, "colorbar": {"title": "chip #"}, "showscale": True},
                                 showlegend=False))
    elif color_by == "value":
        fig.add_trace(_trace(df, str(df.attrs.get("value_name", "value")), {"color": df["value"].to_numpy(), "colorscale": "RdYlGn", "cmin": -0.2, "cmax": 0.9,
                                                  "size": _size(df), "opacity": 0.8,
                                                  "colorbar": {"title": str(df.attrs.get("value_name", "value"))},
                                                  "showscale": True}, showlegend=False))
    else:  # label
        import plotly.express as px

        palette = px.colors.qualitative.Set2
        for n, lab in enumerate(sorted(set(map(str, df["label"])))):
            sub = df[df["label"].astype(str) == lab]
            fig.add_trace(_trace(sub, lab, {"color": palette[n % len(palette)], "size": _size(sub), "opacity": 0.8}))
    if color_by != "source" and len(sources) > 1:  # explain the diamonds in the legend
        fig.add_trace(go.Scattergl(x=[None], y=[None], mode="markers", name="◆ image embedding, ● patch",
                                   marker={"symbol": "diamond", "color": "white", "size": 10,
                                           "line": {"color": "black", "width": 1}}, hoverinfo="skip"))
    if len(highlight_rows):
        sub = df[df["row"].isin(list(highlight_rows))]
        if len(sub):
            fig.add_trace(_trace(sub, "selected chips", {"color": "rgba(0,0,0,0)", "size": _size(sub) + 4,
                                                             "line": {"color": "black", "width": 2}}))
    has_scale = any(getattr(t.marker, "showscale", None) for t in fig.data)
    legend = {"title": _legend_title(color_by), "itemsizing": "constant"}
    if has_scale:  # the colour bar takes the right side: the legend goes under the plot
        legend.update(orientation="h", x=0.0, y=-0.04, yanchor="top", title="")
    fig.update_layout(
        title=title, height=520, margin={"l": 10, "r": 10, "t": 50, "b": 40 if has_scale else 10},
        dragmode="lasso", legend=legend,
        xaxis={"title": "UMAP 1", "showticklabels": False, "zeroline": False},
        yaxis={"title": "UMAP 2", "showticklabels": False, "zeroline": False},
        plot_bgcolor="white",
    )
    return fig


def _legend_title(color_by: str) -> str:
    return {"source": "embedding", "chip": "chip", "value": "", "label": "label"}.get(color_by, color_by)


# ---------------------------------------------------------------------------------------------- metrics
def metrics_figure(table, metric: str, title: str = ""):
    """Bar chart of one metric per method (rows of ``table`` with columns 'method' and ``metric``)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for _, row in table.iterrows():
        m = str(row["method"])
        fig.add_trace(go.Bar(x=[method_label(m)], y=[row[metric]], name=method_label(m),
                             marker_color=method_color(m)))
    fig.update_layout(title=title or metric, height=320, showlegend=True, legend={"title": "method"},
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, yaxis_title=metric)
    return fig


def agreement_figure(matrix, title: str = "Neighbour agreement (overlap of top-k)"):
    """Heatmap of a square DataFrame of agreements in [0, 1] between methods, with a colour bar."""
    import plotly.graph_objects as go

    labels = [method_label(m) for m in matrix.columns]
    fig = go.Figure(go.Heatmap(z=matrix.to_numpy(), x=labels, y=labels, zmin=0, zmax=1, colorscale="Viridis",
                               colorbar={"title": "overlap"}, text=np.round(matrix.to_numpy(), 2),
                               texttemplate="%{text}"))
    fig.update_layout(title=title, height=360, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def scene_records(items: Sequence) -> list[dict]:
    """Rows for a scene table from STAC items: id, date, cloud %, platform and thumbnail URL (if any)."""
    rows = []
    for it in items:
        props = getattr(it, "properties", {}) or {}
        when = getattr(it, "datetime", None) or props.get("datetime")
        thumb = None
        for key in ("thumbnail", "rendered_preview", "preview"):
            asset = (getattr(it, "assets", {}) or {}).get(key)
            if asset is not None:
                thumb = getattr(asset, "href", None)
                break
        rows.append({
            "date": str(when)[:10] if when else "unknown",
            "cloud %": props.get("eo:cloud_cover"),
            "platform": props.get("platform", ""),
            "id": getattr(it, "id", ""),
            "thumbnail": thumb,
        })
    return rows


def chip_status_colors() -> Mapping[str, str]:
    """Map colours of chip states (grid on the Area page)."""
    return {"embedded": "#009E73", "stored": "#0072B2", "selected": "#D55E00", "neighbour": "#E69F00"}
