"""`clay-explore app` runs Streamlit on the packaged main script with the app's settings as flags;
options on the command line win, and a checkout's `.streamlit/config.toml` holds the same settings."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from click.testing import CliRunner

from clay_explore.cli import app_cmd
from clay_explore.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


def test_command_runs_the_packaged_main_script_with_the_app_settings() -> None:
    cmd = app_cmd.streamlit_command([])
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(app_cmd.MAIN_SCRIPT)]
    assert app_cmd.MAIN_SCRIPT.is_file() and (app_cmd.MAIN_SCRIPT.parent / "static" / "vendor").is_dir()
    flags = cmd[5:]
    assert "--server.enableStaticServing=true" in flags  # the maps' vendored Leaflet at /app/static
    assert "--browser.gatherUsageStats=false" in flags
    assert "--client.toolbarMode=minimal" in flags
    assert any(f.startswith("--server.maxUploadSize=") for f in flags)


def test_options_given_on_the_command_line_win() -> None:
    cmd = app_cmd.streamlit_command(
        ["--server.maxUploadSize", "50", "--theme.primaryColor=#000000", "--server.port", "8600"]
    )
    assert not any(f.startswith("--server.maxUploadSize=") for f in cmd)
    assert not any(f.startswith("--theme.primaryColor=#0072B2") for f in cmd)
    assert cmd[-5:] == ["--server.maxUploadSize", "50", "--theme.primaryColor=#000000", "--server.port", "8600"]


def test_checkout_config_is_the_packaged_settings() -> None:
    with open(REPO / ".streamlit" / "config.toml", "rb") as fh:
        checkout = tomllib.load(fh)
    with open(app_cmd.SETTINGS_FILE, "rb") as fh:
        packaged = tomllib.load(fh)
    assert checkout == packaged


def test_unknown_options_reach_streamlit(monkeypatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(app_cmd.os, "execv", lambda exe, argv: seen.append(list(argv)))
    monkeypatch.setattr(app_cmd.subprocess, "call", lambda argv: seen.append(list(argv)) or 0)
    CliRunner().invoke(cli, ["app", "--server.headless", "true"])
    assert seen and seen[0][-2:] == ["--server.headless", "true"]
