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
st.caption(
    "One row per chip: footprint polygon (EPSG:4326), chip facts, one `emb_<method>` column per method, "
    "and the chip's `split` (train / val / test) from the fit."
)
if st.button("Build image_embeddings.parquet", key="exp_image", type="primary"):
    with ui.guard("Export"):
        export.export_image_embeddings(ws, out_dir / export.IMAGE_FILE)
img_path = out_dir / export.IMAGE_FILE
if img_path.exists():
    st.download_button(
        "Download image_embeddings.parquet",
        img_path.read_bytes(),
        file_name=export.IMAGE_FILE,
        mime="application/vnd.apache.parquet",
        key="dl_image",
    )

st.subheader("Patch embeddings")
fmt = st.radio(
    "Format",
    ["zarr", "parquet"],
    horizontal=True,
    key="exp_fmt",
    format_func={"zarr": "zarr (xarray, zipped)", "parquet": "GeoParquet (one row per patch)"}.get,
)
if st.button("Build patch embeddings", key="exp_patches"):
    prog = ui.StageProgress("Patch export", unit="")
    with ui.guard("Export"):
        name = export.PATCH_ZARR if fmt == "zarr" else export.PATCH_PARQUET
        export.export_patch_embeddings(ws, out_dir / name, fmt, progress=prog.fraction)
zpath, ppath = out_dir / export.PATCH_ZARR, out_dir / export.PATCH_PARQUET
if fmt == "zarr" and zpath.exists():
    st.download_button(
        "Download patch_embeddings.zarr.zip",
        ui.zipped(zpath),
        file_name="patch_embeddings.zarr.zip",
        mime="application/zip",
        key="dl_zarr",
    )
if fmt == "parquet" and ppath.exists():
    st.download_button(
        "Download patch_embeddings.parquet",
        ppath.read_bytes(),
        file_name=export.PATCH_PARQUET,
        mime="application/vnd.apache.parquet",
        key="dl_patches",
    )

st.subheader("Reconstructions")
st.caption(
    "One PNG per chip: the references (Clay MAE at 75 % masking, all tokens visible, CLS only), each fitted "
    "aggregator and the baselines without Clay, with that chip's PSNR/SSIM under each and its split on top."
)
n = ws.n_chips()
count = st.number_input("Chips", 1, n, min(n, 8), key="exp_recon_n")
if st.button("Render PNGs", key="exp_recon"):
    model = ui.require_checkpoint()
    if model is not None:
        prog = ui.StageProgress("Rendering", unit="")
        with ui.guard("Export"):
            export.export_reconstructions(
                ws, out_dir / export.RECON_DIR, rows=range(int(count)), model=model, progress=prog.fraction
            )
recon_dir = out_dir / export.RECON_DIR
if recon_dir.exists() and any(recon_dir.glob("*.png")):
    pngs = sorted(recon_dir.glob("*.png"))
    st.image(str(pngs[0]), caption=Path(pngs[0]).name)
    st.download_button(
        f"Download {len(pngs)} PNGs (zip)",
        ui.zipped(recon_dir),
        file_name="reconstructions.zip",
        mime="application/zip",
        key="dl_recon",
    )

st.subheader("Evaluation summary")
st.caption(
    "One CSV row per reference, method and baseline on the held-out test chips (mean, sd over seeds, 95 % CI), "
    "the comparison with mean pooling and its verdict; the verdict sentence on top."
)
if st.button("Build evaluation_summary.csv", key="exp_eval"):
    with ui.guard("Export"):
        export.export_evaluation(ws, out_dir / export.EVALUATION_FILE)
eval_path = out_dir / export.EVALUATION_FILE
if eval_path.exists():
    st.download_button(
        "Download evaluation_summary.csv",
        eval_path.read_bytes(),
        file_name=export.EVALUATION_FILE,
        mime="text/csv",
        key="dl_eval",
    )
eval_side = eval_path.with_suffix(".json")
if eval_side.exists():
    st.download_button(
        "Download its provenance (model, checkpoint, precision, untrained flag) as JSON",
        eval_side.read_bytes(),
        file_name=eval_side.name,
        mime="application/json",
        key="dl_eval_json",
    )

st.subheader("The whole workspace, packed")
st.caption(
    "One `.clay.zip` with the chips, embeddings, fitted methods, evaluation and projections, and a checksum per "
    'file: compute on a fast machine, then open it on Home ("Open a packed workspace") or with '
    "`clay-explore unpack FILE --workspace WS` — in the room, in seconds."
)
k1, k2 = st.columns(2)
keep_patches = k1.checkbox(
    "Include the patch tokens (patch UMAPs, full-token reconstructions)", value=True, key="pack_patches"
)
keep_chips = k2.checkbox("Include the chip pixels (thumbnails, reconstructions)", value=True, key="pack_chips")
pack_path = out_dir / f"{ws.root.name}.clay.zip"
if st.button("Pack this workspace", key="pack_go"):
    from clay_explore.core.pack import pack_workspace

    prog = ui.StageProgress("Packing", unit="B")
    with ui.guard("Pack"):
        pack_workspace(ws.root, pack_path, patches=keep_patches, chips=keep_chips, progress=prog)
if pack_path.exists():
    st.download_button(
        f"Download this workspace packed ({pack_path.stat().st_size / 1e6:,.1f} MB)",
        pack_path.read_bytes(),
        file_name=pack_path.name,
        mime="application/zip",
        key="dl_pack",
    )
