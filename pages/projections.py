"""Streamlit page shim: the projections page lives in clay_explore/app/pages/projections.py."""

from clay_explore.app.pages import run_page

run_page(__file__)
