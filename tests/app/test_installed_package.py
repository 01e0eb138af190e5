"""A non-editable install works: the wheel carries everything the package reads at run time, and
`clay-explore demo`, `info` and `app` run from a fresh virtual environment outside the checkout.

The venv uses this machine's packages (``--system-site-packages``) for the dependencies and gets the
wheel with ``--no-deps``, so the test needs no network. The checkout is copied before building, so the
build never writes into the (shared) work tree.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
#: Folders of a checkout that are not part of the source (caches, outputs, other builds).
NOT_SOURCE = (
    ".git",
    ".cache",
    ".venv",
    "build",
    "dist",
    "workspaces",
    "node_modules",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".benchmarks",
)
#: Files the installed package reads at run time (beside its modules).
RUNTIME_FILES = (
    "clay_explore/data/sensors.yaml",
    "clay_explore/data/ui/scatter/index.html",
    "clay_explore/app/streamlit_config.toml",
    "clay_explore/app/static/vendor/leaflet-1.9.3/leaflet.js",
    "clay_explore/app/static/vendor/leaflet-1.9.3/leaflet.css",
    "clay_explore/app/static/vendor/leaflet-draw-1.0.2/leaflet.draw.js",
    "clay_explore/app/static/vendor/jquery-3.7.1/jquery.min.js",
)
PAGES = ("area", "embed", "projections", "reconstructions", "similar", "export")
STARTUP_TIMEOUT_S = 180.0
POLL_S = 0.5


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the checkout."""
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    out = tmp / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True,
        cwd=tmp,
    )
    (found,) = out.glob("clay_explore-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (this machine's packages visible) with the wheel installed; returns its bin folder."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(root)], check=True)
    bin_dir = root / ("Scripts" if os.name == "nt" else "bin")
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True)
    return bin_dir


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside the checkout (no app.py, no .streamlit/ there)."""
    here = tmp_path / "elsewhere"
    here.mkdir()
    return here


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLAY_CHECKPOINT")}
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir / "clay-explore"), *args], cwd=cwd, env=_env(), capture_output=True, text=True, check=True
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def test_the_wheel_carries_data_static_assets_and_pages(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in RUNTIME_FILES if f not in names]
    missing += [f"clay_explore/app/pages/{p}.py" for p in PAGES if f"clay_explore/app/pages/{p}.py" not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert not any(n.startswith(("tests/", "pages/", "static/", "app.py")) for n in names), "only the package ships"


def test_installed_package_is_the_one_that_runs(venv: Path, outside: Path) -> None:
    out = subprocess.run(
        [str(venv / "python"), "-c", "import clay_explore; print(clay_explore.__file__)"],
        cwd=outside,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(out.stdout.strip()).resolve().is_relative_to(venv.parent.resolve())


def test_demo_and_info_run_from_the_installed_package(venv: Path, outside: Path) -> None:
    ws = outside / "demo_ws"
    demo = _run(venv, "demo", "-w", str(ws), "--json", cwd=outside)
    assert '"chips"' in demo.stdout
    info = _run(venv, "info", "-w", str(ws), cwd=outside)
    assert "sentinel-2-l2a" in info.stdout and "stage chips: complete" in info.stdout


def test_app_starts_from_the_installed_package_and_serves_its_static_assets(venv: Path, outside: Path) -> None:
    port = _free_port()
    env = _env()
    env["CLAY_EXPLORE_WORKSPACES"] = str(outside / "workspaces")
    proc = subprocess.Popen(
        [str(venv / "clay-explore"), "app", "--server.port", str(port), "--server.headless", "true"],
        cwd=outside,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = _get(f"{base}/_stcore/health")
            except OSError:  # not listening yet
                status = None
            if status == 200:
                break
            time.sleep(POLL_S)  # polling interval while waiting for the server, not a fixed wait
        assert proc.poll() is None, f"the app exited: {proc.stdout.read() if proc.stdout else ''}"
        assert status == 200 and body.strip() == b"ok", "the app did not answer /_stcore/health in time"
        asset, _ = _get(f"{base}/app/static/vendor/leaflet-1.9.3/leaflet.js")
        assert asset == 200, "static serving of clay_explore/app/static is off"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
