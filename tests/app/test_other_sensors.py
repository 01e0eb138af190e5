"""Every page with workspaces of other sensors and band subsets: no RGB (Sentinel-1), 4-band aerial,
three Sentinel-2 bands. Held-out scenes can be any sensor of the registry, not only Sentinel-2."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from app_data import new_app
from rasterio.transform import from_origin

from clay_explore.imagery.chipping import ChipSettings
from clay_explore.imagery.geotiff import ingest_geotiff
from clay_explore.model import load_model
from clay_explore.research.embed import embed_workspace
from clay_explore.research.evaluate import evaluate_workspace
from clay_explore.research.fit import fit_method

PAGES = ("area", "embed", "projections", "reconstructions", "similar", "export")
CASES = {
    # name: (sensor, bands kept, band count, dtype, value range, epsg, pixel size)
    "s1": ("sentinel-1-rtc", None, 2, "float32", (0.002, 0.4), 32633, 10.0),
    "naip": ("naip", None, 4, "uint8", (20, 230), 26914, 1.0),
    "s2-rgb": ("sentinel-2-l2a", ["red", "green", "blue"], 10, "uint16", (200, 4000), 32633, 10.0),
}


def _scene(path: Path, count: int, dtype: str, lo: float, hi: float, epsg: int, res: float) -> Path:
    rng = np.random.default_rng(count)
    yy, xx = np.mgrid[0:96, 0:96] / 96.0
    base = 0.5 + 0.25 * np.sin(6 * xx) * np.cos(4 * yy)
    data = np.stack(
        [
            lo + (hi - lo) * np.clip(base * (0.8 + 0.05 * i) + rng.normal(0, 0.03, base.shape), 0, 1)
            for i in range(count)
        ]
    ).astype(dtype)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        count=count,
        height=96,
        width=96,
        dtype=dtype,
        crs=f"EPSG:{epsg}",
        transform=from_origin(400000, 5300000, res, res),
    ) as ds:
        ds.write(data)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_page_renders_for_other_sensors(app_env, tiny_checkpoint, tmp_path, case):
    sensor, bands, count, dtype, (lo, hi), epsg, res = CASES[case]
    f = _scene(tmp_path / f"{case}_20230610.tif", count, dtype, lo, hi, epsg, res)
    root = app_env / case
    ingest_geotiff(f, root, sensor=sensor, bands=bands, chips=ChipSettings(32))
    model = load_model(tiny_checkpoint)
    embed_workspace(root, model=model, batch_size=4, show_progress=False)
    fit_method(root, "linear", epochs=1, model=model, batch_size=4, show_progress=False)
    report = evaluate_workspace(root, model=model, show_progress=False)
    assert np.isfinite(report["methods"]["linear"]["reconstruction"]["all"]["psnr"])

    at = new_app(case).run()
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (case, page, [e.value for e in at.exception])
        assert not at.error, (case, page, [e.value for e in at.error])
    at.switch_page("pages/reconstructions.py").run()
    assert at.image, "the reconstruction grid shows images"
    at.switch_page("pages/projections.py").run()
    at.number_input(key="umap_nn").set_value(5)
    at.number_input(key="umap_pca").set_value(8)
    at.button(key="proj_go").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    colours = at.selectbox(key="proj_color").options
    assert ("NDVI" in colours) == (case == "naip")  # S1 and RGB-only have no red/NIR pair: no NDVI offered
    for colour in colours:
        at.selectbox(key="proj_color").set_value(colour).run()
        assert not at.exception, (case, colour, [e.value for e in at.exception])
    print(case, "ok", file=sys.stderr)
