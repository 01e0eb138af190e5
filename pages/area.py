"""Streamlit page shim: the area page lives in clay_explore/app/pages/area.py (installed with the package)."""

from clay_explore.app.pages import run_page

run_page(__file__)
