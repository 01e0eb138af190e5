"""Streamlit page shim: the reconstructions page lives in clay_explore/app/pages/reconstructions.py (installed with the package)."""

from clay_explore.app.pages import run_page

run_page(__file__)
