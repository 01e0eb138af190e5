"""Glossary: the terms the app uses (UMAP, patch token, CLS, pooling, PSNR, SSIM, spectral angle, NP@k) in plain
language; the same words are tooltips (?) wherever a term appears."""

from __future__ import annotations

import streamlit as st

from clay_explore.app import ui
from clay_explore.viz import glossary

ui.page_header("Glossary", "The words on these pages, for people who do not work with machine learning.")
for entry in glossary.TERMS.values():
    st.markdown(f"**{entry.name}** — {entry.long}")
