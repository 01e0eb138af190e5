"""Streamlit page shim: presenter mode lives in clay_explore/app/pages/present.py (installed with the package)."""

from clay_explore.app.pages import run_page

run_page(__file__)
