"""Streamlit page shim: the similar page lives in clay_explore/app/pages/similar.py (installed with the package)."""

from clay_explore.app.pages import run_page

run_page(__file__)
