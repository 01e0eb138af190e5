"""Files to take away: image embeddings (GeoParquet), patch embeddings (zarr or GeoParquet), PNGs.

- ``image_embeddings.parquet``: the chip table (footprint polygons, EPSG:4326) with one column
  per method (``emb_<method>``: a float32 list per chip) and each chip's ``split`` (train / val /
  test / excluded); opens with ``geopandas.read_parquet``.
- ``patch_embeddings.zarr``: an xarray Dataset ``tokens[chip, y, x, dim]`` with chip ids and
  centres as coordinates (``xarray.open_zarr``); or ``patch_embeddings.parquet``: one row per
  patch with its own footprint polygon and a ``embedding`` list column.
- ``reconstructions/<chip>.png``: the side-by-side picture of the research stage (references,
  methods and baselines, with the chip's split).
- ``evaluation_summary.csv``: the evaluation on held-out test chips, one row per reference, method
  and baseline, with the verdict.

Every file holding model outputs carries ``provenance_metadata`` (model, checkpoint name and sha256,
precision, device, untrained flag and note, clay-explore version; the evaluation's split seed and
fingerprint where its splits or numbers are in the file) under the key ``clay_explore``: Parquet schema
metadata, the zarr group's attrs, a PNG text chunk, and for the CSV a sidecar ``evaluation_summary.json``.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clay_explore.core.defaults import EXPORT_WHAT as WHAT
from clay_explore.core.defaults import PATCH_FORMATS
from clay_explore.core.errors import ClayExploreError, StageMissingError
from clay_explore.core.lock import writes_workspace
from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace, atomic_path

IMAGE_FILE = "image_embeddings.parquet"
EVALUATION_FILE = "evaluation_summary.csv"
PATCH_ZARR = "patch_embeddings.zarr"
PATCH_PARQUET = "patch_embeddings.parquet"
RECON_DIR = "reconstructions"

Progress = Callable[[float, str], None]


class ExportError(ClayExploreError, ValueError):
    """An export that cannot be made with these options."""


def _table_without_index(ws: Workspace):
    table = ws.chip_table().reset_index(drop=True)
    return table


def export_image_embeddings(ws: Workspace, out: str | Path, methods: Sequence[str] | None = None) -> Path:
    """GeoParquet of the chip table plus ``emb_<method>`` list columns for every image embedding."""
    import pyarrow as pa

    from clay_explore.research.similar import method_vectors

    vecs = method_vectors(ws, methods)
    table = _table_without_index(ws)
    for m, v in vecs.items():
        if len(v) != len(table):
            raise ExportError(f"{m} has {len(v)} vectors but the workspace has {len(table)} chips; re-run its stage.")
        table[f"emb_{m}"] = pa.array(list(v.astype(np.float32)), type=pa.list_(pa.float32())).to_pandas()
    table["split"] = chip_split_column(ws)
    table.attrs = {}
    out = Path(out)
    with atomic_path(out) as tmp:
        table.to_parquet(tmp)
        add_parquet_metadata(tmp, provenance_metadata(ws, evaluation=True))
    return out


#: Key of clay-explore's entry in a Parquet file's key-value metadata (beside GeoParquet's "geo").
METADATA_KEY = "clay_explore"


def provenance_metadata(ws: Workspace, evaluation: bool = False) -> dict[str, object]:
    """What an exported file says about the model that made it (the one dict every export carries).

    From the embed stage's record: model and preset, the checkpoint's file name and sha256, precision,
    device, the untrained flag with its note, the clay-explore version, sensor, bands and the embeddings
    fingerprint. With ``evaluation``, also the evaluation's split seed, its fingerprint and creation time
    (the split column and the summary's numbers come from it).
    """
    from clay_explore import __version__

    rec = ws.stage("embed") or {}
    untrained = bool(rec.get("untrained", False))
    info: dict[str, object] = {
        "clay_explore_version": __version__,
        "model": "Clay v1.5" + (f" ({rec['preset']})" if rec.get("preset") else ""),
        "preset": rec.get("preset"),
        "checkpoint": Path(str(rec["checkpoint"])).name if rec.get("checkpoint") else None,
        "checkpoint_sha256": rec.get("sha256") or rec.get("checkpoint_sha256"),
        "precision": rec.get("precision"),
        "device": rec.get("device"),
        "untrained": untrained,
        "note": rec.get("note") or (_honesty_note(untrained) if rec else None),
        "sensor": ws.manifest.get("sensor"),
        "bands": ws.bands,
        "embeddings_fingerprint": _embeddings_fingerprint(ws) if rec else None,
    }
    if evaluation:
        info.update(evaluation_provenance(ws))
    return info


def _honesty_note(untrained: bool) -> str:
    """The honesty note for records written before the embed stage stored one."""
    from clay_explore.research.provenance import TRAINED_NOTE, UNTRAINED_NOTE

    return UNTRAINED_NOTE if untrained else TRAINED_NOTE


def _embeddings_fingerprint(ws: Workspace) -> str:
    from clay_explore.research.vectors import embeddings_fingerprint

    return embeddings_fingerprint(ws)


def evaluation_provenance(ws: Workspace) -> dict[str, object]:
    """The evaluation an export's splits and numbers come from: split seed, fingerprint (sha256 of
    evaluation.json, first FINGERPRINT_CHARS hex digits), creation time, the embeddings it scored."""
    import hashlib
    import json

    from clay_explore.core.workspace import EVALUATION

    ev = ws.read_json(EVALUATION) or {}
    if not ev:
        return dict.fromkeys(EVALUATION_FACTS)
    digest = hashlib.sha256(json.dumps(ev, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "split_seed": (ev.get("split") or {}).get("split_seed"),
        "evaluation_fingerprint": digest[:FINGERPRINT_CHARS],
        "evaluation_created": ev.get("created"),
        "evaluation_embeddings_fingerprint": ev.get("embeddings_fingerprint"),
    }


#: Hex digits kept of a fingerprint (as vectors.embeddings_fingerprint).
FINGERPRINT_CHARS = 16
#: Keys evaluation_provenance adds (all None before any evaluation).
EVALUATION_FACTS = ("split_seed", "evaluation_fingerprint", "evaluation_created", "evaluation_embeddings_fingerprint")


def write_sidecar(path: str | Path, info: dict[str, object]) -> Path:
    """``<name>.json`` next to ``path`` (e.g. a CSV, which has no metadata of its own) holding ``info``."""
    import json

    side = Path(path).with_suffix(".json")
    with atomic_path(side) as tmp:
        Path(tmp).write_text(json.dumps({METADATA_KEY: info}, indent=2, default=str) + "\n", encoding="utf-8")
    return side


def add_parquet_metadata(path: str | Path, info: dict[str, object]) -> None:
    """Rewrite a Parquet file with ``info`` as JSON under METADATA_KEY in its schema metadata (the rest kept)."""
    import json

    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY.encode()] = json.dumps(info, default=str).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)


def read_parquet_metadata(path: str | Path) -> dict[str, object]:
    """clay-explore's provenance entry of an exported Parquet file ({} when absent)."""
    import json

    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY.encode())
    return json.loads(raw) if raw else {}


def add_png_metadata(path: str | Path, info: dict[str, object]) -> None:
    """Rewrite a PNG with ``info`` as JSON in a METADATA_KEY text chunk (its other text chunks kept)."""
    import json

    from PIL import Image, PngImagePlugin

    path = Path(path)
    with Image.open(path) as im:
        im.load()
        png = PngImagePlugin.PngInfo()
        for key, value in getattr(im, "text", {}).items():
            if key != METADATA_KEY:
                png.add_text(key, str(value))
        png.add_text(METADATA_KEY, json.dumps(info, default=str))
        with atomic_path(path) as tmp:
            im.save(tmp, format="PNG", pnginfo=png)


def read_png_metadata(path: str | Path) -> dict[str, object]:
    """clay-explore's provenance entry of an exported PNG ({} when absent)."""
    import json

    from PIL import Image

    with Image.open(path) as im:
        raw = getattr(im, "text", {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def chip_split_column(ws: Workspace) -> list[str | None]:
    """Each chip's split (train / val / test / excluded; None before any fit), so a reader of the export
    can keep to the held-out test chips the evaluation's headline numbers are on."""
    from clay_explore.core.workspace import EVALUATION
    from clay_explore.research.evaluation_summary import workspace_chip_splits

    return workspace_chip_splits(ws, ws.read_json(EVALUATION))


def export_evaluation(ws: Workspace, out: str | Path) -> Path:
    """The evaluation summary as CSV: one row per reference, fitted method and baseline, on test chips.

    Columns: kind, method, test PSNR / SSIM / SAM (mean, sd over seeds, 95 % CI), test chips, vector
    width, the comparison with mean pooling (difference, CI, verdict) and NP@k with its chance level;
    the verdict sentence goes in a ``# verdict:`` comment line on top.
    """
    import csv

    from clay_explore.core.workspace import EVALUATION
    from clay_explore.research import evaluation_summary as E

    ev = ws.read_json(EVALUATION)
    if not ev:
        raise StageMissingError(f"{ws.root} has no evaluation yet; run `clay-explore evaluate --workspace {ws.root}`.")
    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        fh.write(f"# verdict: {E.verdict(ev)}\n# {E.scope_line(ev)}\n")
        writer = csv.writer(fh)
        writer.writerow(EVALUATION_COLUMNS)
        for r in E.rows(ev):
            vs, npk = r["vs_mean"] or {}, r["np"] or {}
            metrics = [x for m in E.METRICS for x in (r[m]["mean"], r[m]["sd"], *(r[m]["ci95"] or [None, None]))]
            writer.writerow(
                [
                    r["kind"],
                    r["name"],
                    *metrics,
                    r["n_chips"],
                    r["n_numbers"],
                    vs.get("diff"),
                    *(vs.get("ci95") or [None, None]),
                    vs.get("verdict"),
                    npk.get("value"),
                    npk.get("chance"),
                    npk.get("k"),
                ]
            )
    write_sidecar(out, provenance_metadata(ws, evaluation=True))
    return out


#: Columns of ``evaluation_summary.csv`` (metrics on the held-out test chips).
EVALUATION_COLUMNS = (
    "kind", "method",
    *(f"test_{m}_{part}" for m in ("psnr", "ssim", "sam_deg") for part in ("mean", "sd", "ci95_lo", "ci95_hi")),
    "test_chips", "vector_width", "psnr_diff_vs_mean", "psnr_diff_ci95_lo", "psnr_diff_ci95_hi",
    "verdict_vs_mean", "np_at_k", "np_chance", "k",
)  # fmt: skip


def _patches(ws: Workspace):
    arr = ws.open_array(EMBEDDINGS_ZARR, "patches")
    return arr


def export_patch_embeddings(
    ws: Workspace,
    out: str | Path,
    fmt: str = "zarr",
    rows: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Patch tokens of ``rows`` (all chips by default) as a zarr Dataset or a patch-level GeoParquet."""
    if fmt not in PATCH_FORMATS:
        raise ExportError(f"Unknown patch format {fmt!r}; choose one of {', '.join(PATCH_FORMATS)}.")
    arr = _patches(ws)
    table = _table_without_index(ws)
    rows = np.arange(arr.shape[0]) if rows is None else np.asarray(list(rows), dtype=np.int64)
    progress = progress or (lambda f, m: None)
    out = Path(out)
    info = provenance_metadata(ws)
    if fmt == "zarr":
        return _patch_zarr(arr, table, rows, out, progress, info)
    return _patch_parquet(arr, table, rows, out, ws.chip_size, progress, info)


def _patch_zarr(arr, table, rows: np.ndarray, out: Path, progress: Progress, info: dict[str, object]) -> Path:
    import xarray as xr

    _, h, w, d = arr.shape
    tokens = np.stack([np.asarray(arr[int(r)]) for r in rows]) if rows.size else np.zeros((0, h, w, d), np.float16)
    progress(0.7, "writing zarr")
    ds = xr.Dataset(
        {"tokens": (("chip", "y", "x", "dim"), tokens)},
        coords={
            "chip": table["chip_id"].astype(str).to_numpy()[rows],
            "lat": ("chip", table["lat"].to_numpy()[rows]),
            "lon": ("chip", table["lon"].to_numpy()[rows]),
            "y": np.arange(h),
            "x": np.arange(w),
        },
        attrs={
            "description": "Clay patch tokens (encoder output without CLS), float16",
            "y_x": "patch row/column inside the chip, 0 = top-left",
            METADATA_KEY: info,
        },
    )
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)  # v2: readable by every zarr/xarray
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def patch_footprints(table, rows: np.ndarray, chip_size: int, grid: int):
    """Polygons (EPSG:4326) of every patch of ``rows``, row-major per chip -> GeoSeries."""
    import geopandas as gpd
    from shapely.geometry import box

    patch_px = chip_size // grid
    polys, crss = [], []
    for r in rows:
        a, b, c, d, e, f = (float(t) for t in table["transform"].iloc[int(r)])
        for i in range(grid):
            for j in range(grid):
                x0, y0 = c + a * j * patch_px + b * i * patch_px, f + d * j * patch_px + e * i * patch_px
                x1, y1 = x0 + a * patch_px + b * patch_px, y0 + d * patch_px + e * patch_px
                polys.append(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
                crss.append(str(table["crs"].iloc[int(r)]))
    parts = []
    crss_arr = np.asarray(crss)
    out = gpd.GeoSeries([None] * len(polys), crs=4326)
    for crs in dict.fromkeys(crss):
        sel = np.flatnonzero(crss_arr == crs)
        parts.append((sel, gpd.GeoSeries([polys[k] for k in sel], crs=crs).to_crs(4326)))
    for sel, geo in parts:
        out.iloc[sel] = geo.to_numpy()
    return out


def _patch_parquet(
    arr, table, rows: np.ndarray, out: Path, chip_size: int, progress: Progress, info: dict[str, object]
) -> Path:
    import geopandas as gpd
    import pyarrow as pa

    _, h, w, d = arr.shape
    if h != w:
        raise ExportError("Patch GeoParquet needs square patch grids.")
    geoms = patch_footprints(table, rows, chip_size, h)
    progress(0.3, "reading tokens")
    tokens = (
        np.concatenate([np.asarray(arr[int(r)], dtype=np.float32).reshape(h * w, d) for r in rows])
        if rows.size
        else np.zeros((0, d), np.float32)
    )
    gdf = gpd.GeoDataFrame(
        {
            "chip_id": np.repeat(table["chip_id"].astype(str).to_numpy()[rows], h * w),
            "patch_row": np.tile(np.repeat(np.arange(h), w), rows.size).astype(np.int16),
            "patch_col": np.tile(np.tile(np.arange(w), h), rows.size).astype(np.int16),
            "embedding": pa.array(list(tokens), type=pa.list_(pa.float32())).to_pandas(),
        },
        geometry=geoms.to_numpy(),
        crs=4326,
    )
    progress(0.8, "writing GeoParquet")
    with atomic_path(out) as tmp:
        gdf.to_parquet(tmp)
        add_parquet_metadata(tmp, info)
    return out


def export_reconstructions(
    ws: Workspace,
    out_dir: str | Path,
    rows: Sequence[int] | None = None,
    model: Any = None,
    progress: Progress | None = None,
    checkpoint: str | Path | None = None,
) -> list[Path]:
    """The research stage's side-by-side PNG (original, references, methods, baselines) for each chip."""
    try:
        from clay_explore.research import reconstruct as rec
        from clay_explore.research.provenance import model_for_workspace
    except ModuleNotFoundError as err:
        raise StageMissingError(
            "Reconstructions are not available in this install (clay_explore.research.reconstruct)."
        ) from err
    model = model_for_workspace(ws, checkpoint, model)  # loaded once, checked against the embeddings
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = _table_without_index(ws)
    rows = list(range(len(table))) if rows is None else [int(r) for r in rows]
    progress = progress or (lambda f, m: None)
    info = provenance_metadata(ws, evaluation=True)
    paths = []
    for n, r in enumerate(rows):
        chip_id = str(table["chip_id"].iloc[r])
        path = out_dir / f"{chip_id}.png"
        rec.write_comparison(ws, chip_id, path, model=model)
        add_png_metadata(path, info)
        paths.append(path)
        progress((n + 1) / len(rows), f"{chip_id}.png")
    return paths


@writes_workspace("export", arg="ws")
def export(
    ws: Workspace,
    out_dir: str | Path,
    what: Sequence[str] = ("image",),
    patch_format: str = "zarr",
    rows: Sequence[int] | None = None,
    model: Any = None,
    progress: Progress | None = None,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Write the chosen exports into ``out_dir``; returns {kind: path or [paths]} (the CLI's one call)."""
    bad = [w for w in what if w not in WHAT]
    if bad:
        raise ExportError(f"Unknown export {bad}; choose from {', '.join(WHAT)}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    if "image" in what:
        result["image"] = export_image_embeddings(ws, out_dir / IMAGE_FILE)
    if "patches" in what:
        name = PATCH_ZARR if patch_format == "zarr" else PATCH_PARQUET
        result["patches"] = export_patch_embeddings(ws, out_dir / name, patch_format, rows=rows, progress=progress)
    if "evaluation" in what:
        result["evaluation"] = export_evaluation(ws, out_dir / EVALUATION_FILE)
        result["evaluation_provenance"] = result["evaluation"].with_suffix(".json")  # the CSV's sidecar
    if "reconstructions" in what:
        result["reconstructions"] = export_reconstructions(
            ws, out_dir / RECON_DIR, rows=rows, model=model, progress=progress, checkpoint=checkpoint
        )
    return result


def zip_folder(path: str | Path) -> bytes:
    """A folder (e.g. a zarr store) as zip bytes, for a download button."""
    path = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(path.rglob("*")):
            if f.is_file():
                zf.write(f, arcname=str(Path(path.name) / f.relative_to(path)))
    return buf.getvalue()
