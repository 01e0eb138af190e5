"""Streamlit page shim: the reconstructions page lives in clay_explore/app/pages/reconstructions.py."""

from clay_explore.app.pages import run_page

run_page(__file__)
