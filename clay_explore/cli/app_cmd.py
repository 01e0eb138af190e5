"""`clay-explore app [streamlit options...]`: start the Streamlit app from the installed package.

Runs ``python -m streamlit run <package>/app/main.py`` with the app's own settings
(``clay_explore/app/streamlit_config.toml``: static serving of the vendored Leaflet copies, toolbar,
error details, upload limit, no usage statistics, theme) as command-line flags, because an installed
package has no ``.streamlit/config.toml`` beside the user's working directory. Options given on the
command line win over those settings and are passed to Streamlit unchanged. Nothing here imports Streamlit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import click

#: The app inside the installed package: its main script (router + Home) and its Streamlit settings.
APP_DIR = Path(__file__).resolve().parent.parent / "app"
MAIN_SCRIPT = APP_DIR / "main.py"
SETTINGS_FILE = APP_DIR / "streamlit_config.toml"


def register(group: click.Group) -> None:
    group.add_command(app)


def app_settings(path: Path = SETTINGS_FILE) -> dict[str, str]:
    """The app's Streamlit settings as ``{"section.option": "value"}`` (TOML booleans as true/false)."""
    with open(path, "rb") as fh:
        table = tomllib.load(fh)
    out: dict[str, str] = {}
    for section, options in table.items():
        for option, value in options.items():
            out[f"{section}.{option}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def _given_options(args: Sequence[str]) -> set[str]:
    """Streamlit options named in ``args`` (``--server.port 8600`` or ``--server.port=8600``)."""
    return {arg[2:].split("=", 1)[0] for arg in args if arg.startswith("--") and len(arg) > 2}


def streamlit_command(args: Sequence[str] = ()) -> list[str]:
    """The command that starts the app: the app's settings as flags, then ``args`` (which override them)."""
    given = _given_options(args)
    flags = [f"--{key}={value}" for key, value in app_settings().items() if key not in given]
    return [sys.executable, "-m", "streamlit", "run", str(MAIN_SCRIPT), *flags, *args]


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("streamlit_args", nargs=-1, type=click.UNPROCESSED)
def app(streamlit_args: tuple[str, ...]) -> None:
    """Start the Streamlit app (options such as --server.port 8600 go to `streamlit run`)."""
    cmd = streamlit_command(streamlit_args)
    if os.name == "posix":  # become Streamlit: signals (Ctrl-C, SIGTERM) and the exit status are its own
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(cmd[0], cmd)
    raise SystemExit(subprocess.call(cmd))
