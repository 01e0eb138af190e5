"""Streamlit page shim: the export page lives in clay_explore/app/pages/export.py (installed with the package)."""

from clay_explore.app.pages import run_page

run_page(__file__)
