"""views: stretches, thumbnails, band combinations, NDVI, residuals and figures on generated arrays."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clay_explore.core.sensors import get_sensor
from clay_explore.viz import views

S2 = get_sensor("sentinel-2-l2a")


def test_palette_has_one_colour_per_method_and_aliases():
    names = ["full", "cls_only", "mean", "max", "gem", "cls", "linear", "attention"]
    colours = [views.method_color(n) for n in names]
    assert len(set(colours)) == len(colours)
    assert views.method_color("full_tokens") == views.method_color("full")
    assert views.method_color("unknown-x") == views.method_color("unknown-x")  # stable
    assert views.sort_methods(["linear", "zzz", "mean", "full"]) == ["full", "mean", "linear", "zzz"]


def test_band_combinations_for_sentinel2():
    combos = views.band_combinations(S2, S2.band_names)
    assert combos["True colour"] == ["red", "green", "blue"]
    assert combos["False colour (NIR, red, green)"] == ["nir", "red", "green"]
    assert combos["Band swir22"] == ["swir22"]
    only = views.band_combinations(S2, ["nir"])
    assert list(only) == ["Band nir"]


def test_to_uint8_stretch_nodata_and_fixed_limits():
    img = np.stack([np.linspace(0, 1000, 100).reshape(10, 10)] * 3).astype(np.float32)
    img[:, 0, 0] = np.nan
    out = views.to_uint8(img)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == views.NODATA_RGB
    assert out[-1, -1, 0] == 255 and out[0, 1, 0] == 0
    fixed = views.to_uint8(img / 2, limits=np.array([[0, 1000]] * 3))
    assert fixed[-1, -1, 0] == 128  # half as bright on the original's scale
    single = views.to_uint8(img[:1])
    assert single.shape == (10, 10, 3) and np.all(single[..., 0] == single[..., 1])


def test_thumbnails_are_png_data_uris():
    chips = np.random.default_rng(0).uniform(0, 3000, (2, 10, 32, 32)).astype(np.float32)
    uris = views.thumbnails(chips, S2.band_names, ["red", "green", "blue"], size=64)
    assert len(uris) == 2 and uris[0].startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(uris[0].split(",", 1)[1])))
    assert png.size == (64, 64)


def test_ndvi_and_patch_means():
    pix = np.zeros((10, 16, 16), np.float32)
    pix[S2.band_names.index("nir")] = 3000
    pix[S2.band_names.index("red")] = 1000
    nd = views.ndvi(pix, S2.band_names)
    assert np.allclose(nd, 0.5)
    pm = views.patch_means(nd, 8)
    assert pm.shape == (2, 2) and np.allclose(pm, 0.5)
    nd[:8, :8] = np.nan
    assert np.isnan(views.patch_means(nd, 8)[0, 0])
    with pytest.raises(ValueError):
        views.ndvi(pix[:2], ["blue", "green"])
    # Landsat C2 L2: nir08 is the NIR band, and DN carry a -0.2 offset that NDVI must not ignore
    ls = get_sensor("landsat-c2l2-sr")
    red_dn, nir_dn = (0.1 + 0.2) / ls.scale, (0.5 + 0.2) / ls.scale
    dn = np.stack([np.full((4, 4), v, np.float32) for v in (red_dn, 8000, 8000, nir_dn, 9000, 9000)])
    assert views.ndvi_bands(ls.band_names) == ("red", "nir08")
    assert np.allclose(views.ndvi(dn, ls.band_names, ls.scale, ls.offset), (0.5 - 0.1) / (0.5 + 0.1), atol=1e-4)
    assert views.ndvi_bands(["vv", "vh"]) is None and views.ndvi_bands(S2.band_names) == ("red", "nir")


def test_residual_figure_has_colourbar_per_band_titles():
    res = np.random.default_rng(0).normal(size=(3, 8, 8)).astype(np.float32)
    fig = views.residual_figure(res, ["a", "b", "c"], title="t")
    assert len(fig.data) == 3 and fig.data[0].showscale and not fig.data[1].showscale
    assert fig.data[0].zmin == -fig.data[0].zmax
    with pytest.raises(ValueError):
        views.residuals(np.zeros((1, 2, 2)), np.zeros((1, 3, 3)))


def _table(n_chips=3, per=4):
    recs = []
    for r in range(n_chips):
        for k in range(per):
            recs.append(
                {
                    "source": "patches",
                    "row": r,
                    "chip_id": f"c{r}",
                    "i": k // 2,
                    "j": k % 2,
                    "x": float(r),
                    "y": float(k),
                }
            )
        recs.append({"source": "mean", "row": r, "chip_id": f"c{r}", "i": -1, "j": -1, "x": float(r), "y": -1.0})
    t = pd.DataFrame(recs)
    t["value"] = np.linspace(-0.2, 0.9, len(t))
    t["label"] = ["a", "b"] * (len(t) // 2) + ["a"] * (len(t) % 2)
    return t


@pytest.mark.parametrize("color_by", ["source", "chip", "value", "label"])
def test_scatter_figure_is_webgl_with_legend_or_colourbar(color_by):
    fig = views.scatter_figure(_table(), color_by=color_by, highlight_rows=[1])
    assert all(tr.type == "scattergl" for tr in fig.data)
    assert fig.data[0].customdata.shape[1] == 3  # row, i, j for the hover thumbnail
    legend = any(tr.showlegend is not False for tr in fig.data)
    colourbar = any(getattr(tr.marker, "showscale", False) for tr in fig.data)
    assert legend or colourbar
    assert fig.data[-1].name == "selected chips"


def test_scatter_by_source_uses_method_colours():
    fig = views.scatter_figure(_table(), color_by="source")
    by_name = {tr.name: tr.marker.color for tr in fig.data}
    assert by_name[views.method_label("mean")] == views.method_color("mean")


def test_chip_colour_falls_back_to_colourbar_for_many_chips():
    fig = views.scatter_figure(_table(n_chips=30, per=1), color_by="chip", max_legend=20)
    assert fig.data[0].marker.showscale


def test_metrics_and_agreement_figures():
    t = pd.DataFrame({"method": ["full", "mean"], "PSNR": [30.0, 20.0]})
    fig = views.metrics_figure(t, "PSNR")
    assert [tr.marker.color for tr in fig.data] == [views.method_color("full"), views.method_color("mean")]
    m = pd.DataFrame([[1, 0.5], [0.5, 1]], index=["mean", "cls"], columns=["mean", "cls"])
    assert views.agreement_figure(m).data[0].zmax == 1


def test_scene_records_from_items():
    class Asset:
        href = "http://x/thumb.png"

    class Item:
        def __init__(self):
            self.id = "S2A_1"
            self.datetime = "2023-06-10T10:00:00Z"
            self.properties = {"eo:cloud_cover": 5.0, "platform": "sentinel-2a"}
            self.assets = {"thumbnail": Asset()}

    rec = views.scene_records([Item()])[0]
    assert rec == {
        "date": "2023-06-10",
        "cloud %": 5.0,
        "platform": "sentinel-2a",
        "id": "S2A_1",
        "thumbnail": "http://x/thumb.png",
    }
