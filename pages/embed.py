"""Streamlit page shim: the embed page lives in clay_explore/app/pages/embed.py (installed with the package)."""

from clay_explore.app.pages import run_page

run_page(__file__)
