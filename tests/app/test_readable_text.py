"""Numbers and chips read well on screen: sensible precision, readable chip names, the demo scene named for what
it is, the heatmap without float32 noise."""

from __future__ import annotations

import json

import pandas as pd

from clay_explore.viz import fmt, views


def test_numbers_have_sensible_precision():
    assert fmt.num(0.11999999731779099) == "0.120"
    assert fmt.num(23.456, "psnr") == "23.5" and fmt.num(0.81234, "ssim") == "0.812"
    assert fmt.num(1234.5678) == "1,235" and fmt.num(3.0) == "3" and fmt.num(0.00012345) == "0.000123"
    assert fmt.num(None) == "—" and fmt.num(float("nan")) == "—"
    table = fmt.round_frame(pd.DataFrame({"a": [0.11999999731779099, 12.3456], "b": ["x", "y"]}))
    assert table["a"].tolist() == [0.12, 12.3] and table["b"].tolist() == ["x", "y"]


def test_chip_names_are_grid_positions_and_unique_across_scenes():
    table = pd.DataFrame({"row": [0, 0, 256], "col": [0, 256, 0], "source": ["a", "a", "a"]})
    assert fmt.chip_names(table, 256) == ["Chip 1 · row 1, col 1", "Chip 2 · row 1, col 2", "Chip 3 · row 2, col 1"]
    table["source"] = ["a", "a", "b"]
    assert fmt.chip_names(table, 256)[2] == "Chip 3 · row 2, col 1 (scene 2)"
    assert fmt.short_names(["x" * 30], 10) == ["x" * 9 + "…"]


def test_demo_scene_is_named_level_1c():
    assert "Level-1C" in fmt.imagery_name({"sensor": "sentinel-2-l2a", "source": {"kind": "demo"}})
    assert fmt.imagery_name({"sensor": "landsat-c2-l2", "source": {"kind": "stac"}}) == "landsat-c2-l2"


def test_agreement_heatmap_shows_two_decimals():
    m = pd.DataFrame(
        [[1.0, 0.11999999731779099], [0.11999999731779099, 1.0]],
        columns=["mean", "cls"],
        index=["mean", "cls"],
        dtype="float32",
    )
    fig = views.agreement_figure(m)
    spec = json.loads(fig.to_json())["data"][0]
    assert spec["texttemplate"] == "%{z:.2f}" and "text" not in spec


def test_scatter_hover_shows_name_and_id_and_title_clears_the_toolbar():
    table = pd.DataFrame(
        {
            "x": [0.0, 1.0],
            "y": [0.0, 1.0],
            "source": ["mean", "mean"],
            "row": [0, 1],
            "chip_id": ["r000000_c000000", "r000000_c000256"],
            "i": [-1, -1],
            "j": [-1, -1],
            "name": ["Chip 1 · row 1, col 1", "Chip 2 · row 1, col 2"],
        }
    )
    fig = views.scatter_figure(table, color_by="source", title="Mean pooling")
    text = list(fig.data[0].text)
    assert text[1].startswith("Chip 2 · row 1, col 2") and "r000000_c000256" in text[1]
    assert fig.layout.title.yref == "container" and fig.layout.margin.t >= 70
