"""Export: image embeddings (GeoParquet), patch embeddings (zarr / GeoParquet) and reconstruction PNGs."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from clay_explore.app import ui
from clay_explore.research import export

ui.page_header("Export", "Take the results away: the files open in geopandas (GeoParquet) and xarray (zarr).")
ws = ui.require_workspace("embed", "Embed the chips first.")
ui.ensure_image_vectors(ws)
out_dir = ws.path("exports")

st.subheader("Image embeddings")
st.caption("One row per chip: footprint polygon (EPSG:4326), chip facts, and one `emb_<method>` column per method.")
if st.button("Build image_embeddings.parquet", key="exp_image", type="primary"):
    with ui.guard("Export"):
        export.export_image_embeddings(ws, out_dir / export.IMAGE_FILE)
img_path = out_dir / export.IMAGE_FILE
if img_path.exists():
    st.download_button("Download image_embeddings.parquet", img_path.read_bytes(), file_name=export.IMAGE_FILE,
                       mime="application/vnd.apache.parquet", key="dl_image")

st.subheader("Patch embeddings")
fmt = st.radio("Format", ["zarr", "parquet"], horizontal=True, key="exp_fmt",
               format_func={"zarr": "zarr (xarray, zipped)", "parquet": "GeoParquet (one row per patch)"}.get)
if st.button("Build patch embeddings", key="exp_patches"):
    prog = ui.StageProgress("Patch export", unit="")
    with ui.guard("Export"):
        name = export.PATCH_ZARR if fmt == "zarr" else export.PATCH_PARQUET
        export.export_patch_embeddings(ws, out_dir / name, fmt, progress=prog.fraction)
zpath, ppath = out_dir / export.PATCH_ZARR, out_dir / export.PATCH_PARQUET
if fmt == "zarr" and zpath.exists():
    st.download_button("Download patch_embeddings.zarr.zip", ui.zipped(zpath),
                       file_name="patch_embeddings.zarr.zip", mime="application/zip", key="dl_zarr")
if fmt == "parquet" and ppath.exists():
    st.download_button("Download patch_embeddings.parquet", ppath.read_bytes(), file_name=export.PATCH_PARQUET,
                       mime="application/vnd.apache.parquet", key="dl_patches")

st.subheader("Reconstructions")
st.caption("One PNG per chip: original, all tokens, CLS only and each fitted aggregator, with PSNR/SSIM under each.")
n = ws.n_chips()
count = st.number_input("Chips", 1, n, min(n, 8), key="exp_recon_n")
if st.button("Render PNGs", key="exp_recon"):
    model = ui.require_checkpoint()
    if model is not None:
        prog = ui.StageProgress("Rendering", unit="")
        with ui.guard("Export"):
            export.export_reconstructions(ws, out_dir / export.RECON_DIR, rows=range(int(count)), model=model,
                                          progress=prog.fraction)
recon_dir = out_dir / export.RECON_DIR
if recon_dir.exists() and any(recon_dir.glob("*.png")):
    pngs = sorted(recon_dir.glob("*.png"))
    st.image(str(pngs[0]), caption=Path(pngs[0]).name)
    st.download_button(f"Download {len(pngs)} PNGs (zip)", ui.zipped(recon_dir), file_name="reconstructions.zip",
                       mime="application/zip", key="dl_recon")
