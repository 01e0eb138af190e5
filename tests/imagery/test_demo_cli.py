"""The offline demo scene and the imagery CLI commands."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import numpy as np
from click.testing import CliRunner
from gen_data import s2_scene, write_raster
from test_stac import INSIDE_A

from clay_explore.cli.main import cli
from clay_explore.core.workspace import Workspace


def test_demo_scene_is_real_and_honest(tmp_path):
    res = CliRunner().invoke(cli, ["demo", "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 0, res.output
    assert "Level-1C" in res.output and "date is unknown" in res.output and "Eastern Shore" in res.output
    ws = Workspace.open(tmp_path / "ws")
    table = ws.chip_table()
    assert len(table) == 63 and ws.bands == ws.sensor.band_names  # 8 x 8 windows, one corner dropped
    assert table["datetime"].isna().all()
    assert table["lat"].between(37.55, 37.8).all() and table["lon"].between(-75.76, -75.48).all()
    assert (table["gsd"] == 10.0).all() and set(table["crs"]) == {"EPSG:32618"}
    chips = ws.read_chips([0, 1])
    assert np.isfinite(chips).all() and chips.mean() > 100
    assert ws.manifest["source"]["date_known"] is False


def test_info_json(tmp_path):
    f = write_raster(tmp_path / "s_20200601.tif", s2_scene((64, 128)))
    runner = CliRunner()
    res = runner.invoke(
        cli, ["ingest", str(f), "--sensor", "sentinel-2-l2a", "--chip-size", "64", "--workspace", str(tmp_path / "ws")]
    )
    assert res.exit_code == 0, res.output
    assert "Stored 2 chips" in res.output
    res = runner.invoke(cli, ["info", "--workspace", str(tmp_path / "ws"), "--json"])
    out = json.loads(res.output)
    assert out["chips"] == 2 and out["sensor"] == "sentinel-2-l2a" and out["chip_size"] == 64
    assert out["crs"] == ["EPSG:32633"] and out["stages"]["chips"]["status"] == "complete"
    assert len(out["bands"]) == 10


def test_cli_errors_are_one_line(tmp_path):
    f = tmp_path / "text.tif"
    f.write_text("nope")
    res = CliRunner().invoke(cli, ["ingest", str(f), "--sensor", "naip", "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 2 and "Error:" in res.output and "not a raster" in res.output
    res = CliRunner().invoke(
        cli,
        [
            "fetch",
            "--bbox",
            "0",
            "40",
            "10",
            "50",
            "--start",
            "2020-01-01",
            "--end",
            "2020-02-01",
            "--workspace",
            str(tmp_path / "ws2"),
        ],
    )
    assert res.exit_code == 2 and "cap" in res.output


def test_cli_fetch(gen_stac_server, tmp_path):
    res = CliRunner().invoke(
        cli,
        [
            "fetch",
            "--bbox",
            *map(str, INSIDE_A),
            "--start",
            "2023-06-01",
            "--end",
            "2023-06-30",
            "--stac-url",
            gen_stac_server.url,
            "--chip-size",
            "32",
            "--workspace",
            str(tmp_path / "ws"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output[res.output.index("{") :])
    assert rec["chips"] > 0 and rec["status"] == "complete"


def test_stac_server_runs_as_script(gen_scene_dir, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "tests/imagery/stac_server.py", "--port", str(port), str(gen_scene_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        for _ in range(50):
            try:
                doc = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/collections", timeout=2).read())
                break
            except OSError:
                time.sleep(0.1)
        assert [c["id"] for c in doc["collections"]] == ["sentinel-2-l2a"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
