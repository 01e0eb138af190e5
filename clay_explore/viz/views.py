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
from typing import Any

import numpy as np

from clay_explore.core.rgb import NODATA_RGB as NODATA_RGB  # re-exported: the one nodata colour
from clay_explore.core.rgb import stretch_limits, to_uint8  # the one RGB stretch (CLI PNGs use it too)
from clay_explore.core.sensors import Sensor

# ---------------------------------------------------------------------------------------------- colours
#: One colour per method, used by every page (Okabe-Ito based, colour-blind safe).
METHOD_COLORS: dict[str, str] = {
    "mae": "#000000",  # Clay decoder at its trained operating point (75 % masked passes)
    "all_tokens": "#555555",  # Clay decoder with every patch visible (outside its training regime)
    "cls_only": "#9a9a9a",  # Clay decoder from the CLS token alone (100 % masking)
    "band_mean": "#bcbd22",  # baselines without Clay
    "chip_mean": "#8c564b",
    "thumbnail": "#17becf",
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
    "mae": "Clay MAE, 75 % masked (reference)",
    "all_tokens": "All tokens visible (reference, outside Clay's training)",
    "cls_only": "CLS only, 100 % masked (reference)",
    "band_mean": "Band mean (baseline, no Clay)",
    "chip_mean": "Chip's band mean (baseline, no Clay)",
    "thumbnail": "Thumbnail (baseline, no Clay)",
    "mean": "Mean pooling",
    "max": "Max pooling",
    "gem": "GeM pooling",
    "cls": "CLS token",
    "linear": "Learned linear",
    "attention": "Attention pooling",
    "perceiver": "Perceiver / PMA",
    "patches": "Patch tokens",
}
#: Other spellings of the references (older reports called all_tokens 'full').
METHOD_ALIASES: dict[str, str] = {
    "full": "all_tokens",
    "full_tokens": "all_tokens",
    "reference": "all_tokens",
    "full-tokens": "all_tokens",
    "all-tokens": "all_tokens",
    "cls-only": "cls_only",
    "cls_baseline": "cls_only",
    "clsonly": "cls_only",
}
#: Order in which rows are listed (references first, then the aggregators, then the baselines).
METHOD_ORDER = (
    "mae",
    "all_tokens",
    "cls_only",
    "mean",
    "max",
    "gem",
    "cls",
    "linear",
    "attention",
    "perceiver",
    "band_mean",
    "chip_mean",
    "thumbnail",
)
#: Rows of the Reconstructions grid: Clay with nothing fitted, one vector per chip, no Clay at all.
PANEL_GROUPS = (
    ("Clay's decoder, nothing fitted (references)", ("mae", "all_tokens", "cls_only")),
    ("Baselines without Clay", ("band_mean", "chip_mean", "thumbnail")),
)
_EXTRA_COLORS = ("#7570b3", "#66a61e", "#e6ab02", "#a6761d", "#1b9e77", "#e7298a")

THUMB_SIZE = 96  # px of a hover / grid thumbnail
FRAME_RGB = (150, 150, 150)
DIVERGING = "RdBu_r"  # residual maps: blue = reconstruction too dark, red = too bright


def canonical_method(name: str) -> str:
    """The palette key of a method name (aliases of the references folded; a fit's width ``@D`` and extra
    seed ``/seedK`` dropped, so ``linear@64`` has the colour of ``linear``)."""
    key = name.lower().split("/", 1)[0].split("@", 1)[0]
    return METHOD_ALIASES.get(key, key)


def _width(name: str) -> str:
    """The vector width of a fit name ``method@D`` ('' when it has the default width)."""
    return name.split("/", 1)[0].partition("@")[2]


def method_color(name: str) -> str:
    """The colour of ``name``; an unknown method gets a stable colour of its own."""
    key = canonical_method(name)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    digest = int(hashlib.sha1(key.encode()).hexdigest(), 16)
    return _EXTRA_COLORS[digest % len(_EXTRA_COLORS)]


def method_label(name: str) -> str:
    """Human label of a method (``linear@64`` -> 'Learned linear, 64 numbers')."""
    key = canonical_method(name)
    if key not in METHOD_LABELS:
        return name
    width = _width(name)
    return METHOD_LABELS[key] + (f", {width} numbers" if width else "")


def sort_methods(names: Sequence[str]) -> list[str]:
    """Methods in the app's canonical order, unknown ones last (alphabetical)."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(
        names,
        key=lambda n: (rank.get(canonical_method(n), len(rank)), int(_width(n) or 0) if _width(n).isdigit() else 0, n),
    )


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
    return reconstruction.astype(np.float32) - original.astype(np.float32)


def residual_figure(res: np.ndarray, bands: Sequence[str], title: str = "", units: str = "", cols: int = 5) -> Any:
    """Per-band residual maps [C, H, W] as a plotly grid on one symmetric diverging colour scale."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    c = res.shape[0]
    cols = min(cols, c)
    rows = int(np.ceil(c / cols))
    finite = res[np.isfinite(res)]
    vmax = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    vmax = vmax or 1.0
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=list(bands), horizontal_spacing=0.02, vertical_spacing=0.08
    )
    for k in range(c):
        fig.add_trace(
            go.Heatmap(
                z=res[k],
                zmin=-vmax,
                zmax=vmax,
                colorscale=DIVERGING,
                showscale=(k == 0),
                colorbar={"title": f"recon − orig {units}".strip(), "len": 0.9},
                hovertemplate=f"{bands[k]}<br>row %{{y}} col %{{x}}<br>residual %{{z:.4g}}<extra></extra>",
            ),
            row=k // cols + 1,
            col=k % cols + 1,
        )
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x")
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title=title, height=220 * rows + 60, margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


# ---------------------------------------------------------------------------------------------- scatter
#: Height of a projection scatter (px).
SCATTER_HEIGHT_PX = 520
#: Above this many points a scatter draws small markers; above ``MANY_IN_TRACE`` in one trace, medium ones.
MANY_POINTS, MANY_IN_TRACE = 5000, 200
#: Marker sizes (px): many points, many in the trace, few; image vectors among patches are this much larger.
POINT_PX = (4, 6, 9)
IMAGE_POINT_SCALE = 2.2
#: Colour range of NDVI values (bare soil to dense vegetation).
NDVI_RANGE = (-0.2, 0.9)


def scatter_figure(
    table: Any,
    color_by: str = "source",
    title: str = "",
    highlight_rows: Sequence[int] = (),
    max_legend: int = 20,
) -> Any:
    """WebGL scatter of a projection table (columns x, y, source, row, chip_id, i, j, [value], [label]).

    ``color_by``: 'source' (one colour per method / patches, with legend), 'chip' (categorical
    legend up to ``max_legend`` chips, else a colour bar of the chip number), 'value' (continuous,
    e.g. NDVI, colour bar) or 'label'. ``customdata`` = [row, i, j] for hover thumbnails.
    Points of chips in ``highlight_rows`` are drawn on top with a black outline.
    """
    import plotly.graph_objects as go

    df = table
    colour = color_by
    if (color_by == "label" and "label" not in df) or (color_by == "value" and "value" not in df):
        colour = "source"  # nothing to colour by: one colour per embedding
    traces = {
        "chip": lambda: _traces_by_chip(df, max_legend),
        "value": lambda: _traces_by_value(df),
        "label": lambda: _traces_by_label(df),
    }.get(colour, lambda: _traces_by_source(df))()
    fig = go.Figure(traces)
    if color_by != "source" and df["source"].nunique() > 1:  # explain the diamonds in the legend
        fig.add_trace(
            go.Scattergl(
                x=[None],
                y=[None],
                mode="markers",
                name="◆ image embedding, ● patch",
                marker={"symbol": "diamond", "color": "white", "size": 10, "line": {"color": "black", "width": 1}},
                hoverinfo="skip",
            )
        )
    if len(highlight_rows):
        sub = df[df["row"].isin(list(highlight_rows))]
        if len(sub):
            fig.add_trace(
                _scatter_trace(
                    sub,
                    "selected chips",
                    {
                        "color": "rgba(0,0,0,0)",
                        "size": _point_size(df, sub) + 4,
                        "line": {"color": "black", "width": 2},
                    },
                )
            )
    _scatter_layout(fig, title, color_by)
    return fig


def _scatter_trace(sub: Any, name: str, marker: dict[str, Any], showlegend: bool = True) -> Any:
    """One WebGL trace of the points ``sub``; image vectors among patches become larger outlined diamonds."""
    import plotly.graph_objects as go

    image_pts = sub["i"].to_numpy() < 0
    if image_pts.any() and not image_pts.all():
        size = marker.get("size", POINT_PX[1])
        marker = {
            **marker,
            "symbol": np.where(image_pts, "diamond", "circle"),
            "size": np.where(image_pts, size * IMAGE_POINT_SCALE, size),
            "line": {"color": "black", "width": np.where(image_pts, 1.0, 0.0)},
        }
    return go.Scattergl(
        x=sub["x"].to_numpy(),
        y=sub["y"].to_numpy(),
        mode="markers",
        name=name,
        marker=marker,
        customdata=sub[["row", "i", "j"]].to_numpy(),
        showlegend=showlegend,
        text=_hover_names(sub),
        hovertemplate="%{text}<br>patch (%{customdata[1]}, %{customdata[2]})<extra>" + name + "</extra>",
    )


def _point_size(df: Any, sub: Any) -> int:
    """Marker size of the points ``sub`` in a figure of ``df``: smaller when there are many."""
    many, medium, few = POINT_PX
    return many if len(df) > MANY_POINTS else (medium if len(sub) > MANY_IN_TRACE else few)


def _traces_by_source(df: Any) -> list[Any]:
    """One trace per embedding (patches first, then the methods in their order), in the method colours."""
    sources = list(dict.fromkeys(df["source"]))
    order = (["patches"] if "patches" in sources else []) + sort_methods([s for s in sources if s != "patches"])
    out = []
    for src in order:
        sub = df[df["source"] == src]
        out.append(
            _scatter_trace(
                sub,
                method_label(src),
                {
                    "color": method_color(src),
                    "size": _point_size(df, sub),
                    "opacity": 0.55 if src == "patches" else 0.95,
                },
            )
        )
    return out


def _traces_by_chip(df: Any, max_legend: int) -> list[Any]:
    """One trace per chip (up to ``max_legend``), else one trace coloured by chip number with a colour bar."""
    import plotly.express as px

    chips = list(dict.fromkeys(df["row"]))
    if len(chips) > max_legend:
        return [
            _scatter_trace(
                df,
                "chip #",
                {
                    "color": df["row"].to_numpy(),
                    "colorscale": "Turbo",
                    "size": _point_size(df, df),
                    "opacity": 0.7,
                    "colorbar": {"title": "chip #"},
                    "showscale": True,
                },
                showlegend=False,
            )
        ]
    palette = px.colors.qualitative.Dark24
    out = []
    for n, r in enumerate(chips):
        sub = df[df["row"] == r]
        name = str(sub["name"].iloc[0] if "name" in sub else sub["chip_id"].iloc[0])
        out.append(
            _scatter_trace(
                sub, name, {"color": palette[n % len(palette)], "size": _point_size(df, sub), "opacity": 0.8}
            )
        )
    return out


def _traces_by_value(df: Any) -> list[Any]:
    """One trace coloured by the table's 'value' column (e.g. NDVI) with a colour bar."""
    name = str(df.attrs.get("value_name", "value"))
    return [
        _scatter_trace(
            df,
            name,
            {
                "color": df["value"].to_numpy(),
                "colorscale": "RdYlGn",
                "cmin": NDVI_RANGE[0],
                "cmax": NDVI_RANGE[1],
                "size": _point_size(df, df),
                "opacity": 0.8,
                "colorbar": {"title": name},
                "showscale": True,
            },
            showlegend=False,
        )
    ]


def _traces_by_label(df: Any) -> list[Any]:
    """One trace per chip label."""
    import plotly.express as px

    palette = px.colors.qualitative.Set2
    out = []
    for n, lab in enumerate(sorted(set(map(str, df["label"])))):
        sub = df[df["label"].astype(str) == lab]
        out.append(
            _scatter_trace(sub, lab, {"color": palette[n % len(palette)], "size": _point_size(df, sub), "opacity": 0.8})
        )
    return out


def _scatter_layout(fig: Any, title: str, color_by: str) -> None:
    """Title below the plotly toolbar, legend (under the plot when a colour bar takes the right side), axes."""
    has_scale = any(getattr(t.marker, "showscale", None) for t in fig.data)
    legend = {"title": _legend_title(color_by), "itemsizing": "constant"}
    if has_scale:
        legend.update(orientation="h", x=0.0, y=-0.04, yanchor="top", title="")
    fig.update_layout(
        title={
            "text": title,
            "x": 0.01,
            "xanchor": "left",
            "yref": "container",
            "y": 1 - TITLE_TOP_PX / SCATTER_HEIGHT_PX,
            "yanchor": "top",
        },
        height=SCATTER_HEIGHT_PX,
        margin={"l": 10, "r": 10, "t": 80, "b": 40 if has_scale else 10},
        dragmode="lasso",
        legend=legend,
        xaxis={"title": "UMAP 1", "showticklabels": False, "zeroline": False},
        yaxis={"title": "UMAP 2", "showticklabels": False, "zeroline": False},
        plot_bgcolor="white",
    )


#: Pixels between the top of a scatter figure and its title: the plotly toolbar's row stays free.
TITLE_TOP_PX = 34


def _hover_names(sub) -> np.ndarray:
    """Hover text of scatter points: the readable chip name (column 'name') and the chip id under it."""
    ids = sub["chip_id"].astype(str).to_numpy()
    if "name" not in sub:
        return ids
    return np.array([f"{n}<br><span style='font-size:0.85em'>{i}</span>" for n, i in zip(sub["name"], ids)])


def _legend_title(color_by: str) -> str:
    return {"source": "embedding", "chip": "chip", "value": "", "label": "label"}.get(color_by, color_by)


# ---------------------------------------------------------------------------------------------- metrics
def metrics_figure(table: Any, metric: str, title: str = "") -> Any:
    """Bar chart of one metric per method (rows of ``table`` with columns 'method' and ``metric``)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for _, row in table.iterrows():
        m = str(row["method"])
        fig.add_trace(go.Bar(x=[method_label(m)], y=[row[metric]], name=method_label(m), marker_color=method_color(m)))
    fig.update_layout(
        title=title or metric,
        height=320,
        showlegend=True,
        legend={"title": "method"},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        yaxis_title=metric,
    )
    return fig


def _on_test(n_test: int | None) -> str:
    return (
        f" on {n_test} test chip{'s' if n_test != 1 else ''}" if n_test is not None else " (all chips: no test split)"
    )


#: Bar pattern of the rows that are not fitted methods, so they read as yardsticks, not contenders.
KIND_PATTERN = {"reference": "/", "baseline": ".", "method": ""}


def evaluation_figure(rows: Sequence[Mapping], metric: str = "psnr", n_test: int | None = None, title: str = "") -> Any:
    """One bar per row of ``evaluation_summary.rows`` (references, methods, baselines) with the mean on test
    chips; methods carry error bars (sd over seeds, 95 % CI on hover); references and baselines are hatched."""
    import plotly.graph_objects as go

    axis = {"psnr": "test PSNR (dB)", "ssim": "test SSIM", "sam_deg": "test spectral angle (deg)"}.get(metric, metric)
    fig = go.Figure()
    for r in rows:
        s = r.get(metric) or {}
        if s.get("mean") is None:
            continue
        ci = s.get("ci95") or [None, None]
        hover = f"{method_label(r['name'])}<br>{axis} %{{y:.3f}}"
        if s.get("sd") is not None:
            hover += f" ± {s['sd']:.3f} (sd over seeds)"
        if ci[0] is not None:
            hover += f"<br>95 % CI [{ci[0]:.3f}, {ci[1]:.3f}]"
        fig.add_trace(
            go.Bar(
                x=[method_label(r["name"])],
                y=[s["mean"]],
                name=method_label(r["name"]),
                marker={"color": method_color(r["name"]), "pattern": {"shape": KIND_PATTERN.get(r.get("kind"), "")}},
                error_y={"type": "data", "array": [s["sd"]], "visible": True} if s.get("sd") is not None else None,
                hovertemplate=hover + "<extra></extra>",
            )
        )
    fig.update_layout(
        title=(title or f"{axis} per method") + _on_test(n_test),
        height=360,
        showlegend=False,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        yaxis_title=axis,
        xaxis={"tickangle": -30, "automargin": True},
    )
    return fig


def np_figure(rows: Sequence[Mapping], n_test: int | None = None) -> Any:
    """NP@k of each method's vectors against the whole token set, with the chance level k / (N - 1) as a line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    k, chance = None, None
    for r in rows:
        npk = r.get("np") or {}
        if npk.get("value") is None:
            continue
        k = k or npk.get("k")
        chance = chance if chance is not None else npk.get("chance")
        fig.add_trace(
            go.Bar(
                x=[method_label(r["name"])],
                y=[npk["value"]],
                name=method_label(r["name"]),
                marker_color=method_color(r["name"]),
                hovertemplate="%{x}<br>NP %{y:.3f}<extra></extra>",
            )
        )
    if chance is not None:
        fig.add_hline(
            y=chance,
            line_dash="dash",
            line_color="#444",
            annotation_text=f"chance {chance:.3f} = k / (N − 1)",
            annotation_position="top left",
        )
    label = f"NP@{k}" if k else "NP@k"
    fig.update_layout(
        title=f"Neighbourhood preservation ({label}) vs the whole token set" + _on_test(n_test),
        height=360,
        showlegend=False,
        yaxis={"title": label, "range": [0, 1]},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        xaxis={"tickangle": -30, "automargin": True},
    )
    return fig


def rate_distortion_figure(points: Sequence[Mapping], rows: Sequence[Mapping] = (), n_test: int | None = None) -> Any:
    """Test PSNR against vector width (numbers per chip, log axis) per method, with error bars; baselines
    (thumbnail at the same number count, dashed) and the fixed references / baselines as horizontal lines."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for method in dict.fromkeys(p["method"] for p in points):
        pts = sorted((p for p in points if p["method"] == method), key=lambda p: p["n_numbers"] or 0)
        baseline = pts[0]["kind"] != "method"
        fig.add_trace(
            go.Scatter(
                x=[p["n_numbers"] for p in pts],
                y=[p["mean"] for p in pts],
                name=method_label(method),
                mode="lines+markers",
                line={"color": method_color(method), "dash": "dash" if baseline else "solid"},
                error_y={"type": "data", "array": [p["sd"] or 0.0 for p in pts], "visible": not baseline},
                hovertemplate=f"{method_label(method)}<br>%{{x}} numbers<br>PSNR %{{y:.2f}} dB<extra></extra>",
            )
        )
    for r in rows:
        mean = (r.get("psnr") or {}).get("mean")
        if r.get("kind") in ("reference", "baseline") and r["name"] != "thumbnail" and mean is not None:
            fig.add_hline(
                y=mean,
                line_dash="dot",
                line_color=method_color(r["name"]),
                annotation_text=method_label(r["name"]),
                annotation_position="bottom right",
            )
    fig.update_layout(
        title="How many numbers does each method need? Test PSNR vs vector width" + _on_test(n_test),
        height=400,
        xaxis={"title": "numbers per chip (vector width)", "type": "log"},
        yaxis_title="test PSNR (dB)",
        legend={"title": "method"},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def panel_groups(names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The Reconstructions grid, row by row: (heading, panels), each row starting with the original."""
    names = [n for n in names if "/" not in n]  # extra seeds of a method: the grid shows its first seed
    refs = [n for n in PANEL_GROUPS[0][1] if n in names]
    base = sort_methods([n for n in names if canonical_method(n) in PANEL_GROUPS[1][1]])
    methods = sort_methods([n for n in names if n not in (*refs, *base, "original")])
    groups = [(PANEL_GROUPS[0][0], refs), ("One vector per chip (fitted methods)", methods), (PANEL_GROUPS[1][0], base)]
    return [(head, ["original", *panels]) for head, panels in groups if panels]


def panel_caption(metrics: Mapping | None, split: str | None = None) -> str:
    """The figures under one panel: this chip's PSNR and SSIM, and which split the chip is in."""
    from clay_explore.research.evaluation_summary import split_words

    if metrics is None:
        return "input"
    psnr = metrics.get("psnr_mean", metrics.get("psnr"))
    ssim = metrics.get("ssim_mean", metrics.get("ssim"))
    psnr = float(np.nanmean(psnr)) if psnr is not None else float("nan")
    ssim = float(np.nanmean(ssim)) if ssim is not None else float("nan")
    return f"this chip: PSNR {psnr:.2f} dB · SSIM {ssim:.3f} · {split_words(split)}"


def agreement_figure(matrix: Any, title: str = "Neighbour agreement (overlap of top-k)") -> Any:
    """Heatmap of a square DataFrame of agreements in [0, 1] between methods, with a colour bar."""
    import plotly.graph_objects as go

    labels = [method_label(m) for m in matrix.columns]
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=labels,
            y=labels,
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            colorbar={"title": "overlap"},
            texttemplate="%{z:.2f}",
            hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>",
        )
    )
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
        rows.append(
            {
                "date": str(when)[:10] if when else "unknown",
                "cloud %": props.get("eo:cloud_cover"),
                "platform": props.get("platform", ""),
                "id": getattr(it, "id", ""),
                "thumbnail": thumb,
            }
        )
    return rows


def chip_status_colors() -> Mapping[str, str]:
    """Map colours of chip states (grid on the Area page)."""
    return {"embedded": "#009E73", "stored": "#0072B2", "selected": "#D55E00", "neighbour": "#E69F00"}
