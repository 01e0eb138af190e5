"""The app's pages, one thin script each; ``run_page`` lets a shim elsewhere (the repository's
``pages/``) run one of them as Streamlit runs a page: top to bottom, on every rerun."""

from __future__ import annotations

import runpy
from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parent


def run_page(name: str) -> None:
    """Run the page script ``name`` (a file name or path; only its stem is used) from this package."""
    runpy.run_path(str(PAGES_DIR / f"{Path(name).stem}.py"), run_name="__main__")
