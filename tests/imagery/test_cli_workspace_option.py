"""Every imagery command takes the workspace as -w / --workspace."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from gen_data import s2_scene, write_raster

from clay_explore.cli.main import cli

S2 = "sentinel-2-l2a"


@pytest.mark.parametrize("command", ["ingest", "fetch", "demo", "info"])
def test_short_workspace_option(command):
    res = CliRunner().invoke(cli, [command, "--help"])
    assert res.exit_code == 0
    assert "-w, --workspace" in res.output


def test_ingest_and_info_with_short_workspace_option(tmp_path):
    f = write_raster(tmp_path / "s2_20200601.tif", s2_scene((64, 64)))
    res = CliRunner().invoke(cli, ["ingest", str(f), "--sensor", S2, "--chip-size", "32", "-w", str(tmp_path / "ws")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["info", "-w", str(tmp_path / "ws")])
    assert res.exit_code == 0 and "4 chips" in res.output
