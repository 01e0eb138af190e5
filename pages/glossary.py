"""Streamlit page shim: the glossary lives in clay_explore/app/pages/glossary.py (installed with the package)."""

from clay_explore.app.pages import run_page

run_page(__file__)
