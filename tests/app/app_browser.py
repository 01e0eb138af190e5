"""Helpers for the browser tests and the app benchmark: servers on 127.0.0.1, Chromium, offline CDN assets.

``AppServer`` runs ``streamlit run app.py`` as a subprocess; ``StacServer`` runs
``tests/imagery/stac_server.py``; ``route_cdns`` answers every CDN request folium/leafmap makes
from the npm copies installed by ``tests/app/install_assets.sh`` (empty 200s for the rest, so
nothing waits on an unreachable network).
"""

from __future__ import annotations

import mimetypes
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ASSETS = REPO / ".cache" / "e2e-assets" / "node_modules"
CDN_HOSTS = (
    "cdn.jsdelivr.net",
    "cdnjs.cloudflare.com",
    "code.jquery.com",
    "netdna.bootstrapcdn.com",
    "unpkg.com",
    "tile.openstreetmap.org",
    "fonts.googleapis.com",
    "fonts.gstatic.com",
)
#: (substring of the URL, local package folder): the asset's path after ``dist/`` (or the version) is kept.
LOCAL_PACKAGES = (("/leaflet@", "leaflet/dist"), ("/leaflet.draw/", "leaflet-draw/dist"))
# A 1x1 light-grey PNG for map tiles (the tile servers are unreachable offline).
GREY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8fbf3e73f0007f503f9a0c1b1bb0000000049454e44ae426082"
)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 90.0) -> None:
    """Wait until ``url`` answers 200 (or raise TimeoutError)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except Exception as err:  # noqa: BLE001 - not up yet
            last = err
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s ({last})")


class _Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self._fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=self._fh, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class AppServer(_Proc):
    """``streamlit run app.py`` on 127.0.0.1 with the given environment additions."""

    def __init__(self, workdir: Path, env: dict[str, str], port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        args = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(REPO / "app.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(self.port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ]
        self.started = time.perf_counter()
        super().__init__(args, full, workdir / f"streamlit-{self.port}.log")

    def wait(self, timeout: float = 120.0) -> None:
        try:
            wait_http(f"{self.url}/_stcore/health", timeout)
        except TimeoutError as err:
            raise TimeoutError(f"{err}\n--- streamlit log ---\n{self.tail()}") from err


class StacServer(_Proc):
    """``python tests/imagery/stac_server.py --port P DIR`` on 127.0.0.1."""

    def __init__(self, folder: Path, workdir: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable,
            str(REPO / "tests" / "imagery" / "stac_server.py"),
            "--port",
            str(self.port),
            str(folder),
        ]
        super().__init__(args, {**os.environ, "PYTHONUNBUFFERED": "1"}, workdir / f"stac-{self.port}.log")

    def wait(self, timeout: float = 120.0) -> None:
        try:
            wait_http(f"{self.url}/", timeout)
        except TimeoutError as err:
            raise TimeoutError(f"{err}\n--- stac log ---\n{self.tail()}") from err


def _local_asset(url: str) -> Path | None:
    for marker, folder in LOCAL_PACKAGES:
        if marker in url:
            rest = url.split(marker, 1)[1].split("?", 1)[0]
            rest = rest.split("/", 1)[1] if "/" in rest else ""  # drop the version
            rest = rest.split("dist/", 1)[1] if "dist/" in rest else rest
            path = ASSETS / folder / rest
            return path if path.is_file() else None
    return None


def route_cdns(context: Any, counter: dict[str, int] | None = None) -> None:
    """Serve CDN URLs from local npm copies (or empty 200s) in a playwright browser context."""

    def handle(route):
        url = route.request.url
        if counter is not None:
            counter["cdn"] = counter.get("cdn", 0) + 1
        if "tile.openstreetmap.org" in url or url.endswith(".png") and _local_asset(url) is None:
            return route.fulfill(status=200, content_type="image/png", body=GREY_PNG)
        path = _local_asset(url)
        ctype = mimetypes.guess_type(url.split("?", 1)[0])[0] or "text/plain"
        if path is not None:
            return route.fulfill(status=200, content_type=ctype, body=path.read_bytes())
        if counter is not None:
            counter["empty"] = counter.get("empty", 0) + 1
        return route.fulfill(status=200, content_type=ctype, body=b"")

    for host in CDN_HOSTS:
        context.route(f"**://{host}/**", handle)


def launch(playwright):
    """Chromium from Debian, headless and offline-friendly."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


#: Screenshots go to a temporary folder; ``CLAY_EXPLORE_SCREENSHOTS=docs/screenshots`` (relative to the
#: repository, or absolute) refreshes the README's pictures instead, so the test command leaves a clone clean.
SCREENSHOTS_ENV = "CLAY_EXPLORE_SCREENSHOTS"


def screenshot_dir(default: Path) -> Path:
    """Where the browser tests write screenshots: ``$CLAY_EXPLORE_SCREENSHOTS`` when set, else ``default``."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    if not chosen:
        return default
    path = Path(chosen)
    return path if path.is_absolute() else REPO / path


def have_assets() -> bool:
    """True when the leaflet / leaflet-draw copies are installed."""
    return (ASSETS / "leaflet" / "dist" / "leaflet.js").is_file() and (
        ASSETS / "leaflet-draw" / "dist" / "leaflet.draw.js"
    ).is_file()
