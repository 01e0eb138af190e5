"""Benchmark: fitting each learned method, and evaluating, at Clay v1.5 scale: seconds and peak RSS.

Chips of 256 px (10 Sentinel-2 bands) on a grid like the demo scene's, with synthetic tokens of the
chosen preset's dimensions (large: D 1024, L 1024 = 32 x 32 patches) in a temporary workspace, and a
randomly initialised decoder of that preset (the encoder is never built: tokens are precomputed).
Each fit and the evaluation run in their own process so each peak RSS is its own.

    python bench/aggregate.py [--epochs 1] [--threads 2] [--chips 64] [--methods linear attention perceiver mean]

Run it with ``--chips 32`` and ``--chips 64``: the peak RSS should barely change, because tokens
and chips stream from zarr one batch at a time.

Evaluate (issue 8's cost: the ``mae`` reference runs 4 masked decoder passes per chip, batched),
the demo scene's 63 chips, large preset, every method fitted with 3 seeds first:

    python bench/aggregate.py --evaluate --chips 63 --seeds 3 --methods mean linear

A quick run of the same path: ``--evaluate --preset tiny --chips 12 --chip-size 64 --seeds 2``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

N_CHIPS, CHIP, PATCH = 64, 256, 8
PRESET = "large"
#: Chips per row of the grid the chips are laid on (the demo scene is 9 x 7 = 63 chips).
GRID_COLS = 9
#: Footprint of one chip in degrees (about 2.56 km at 40 N), so the blocked split sees neighbours.
CHIP_DEG = (0.030, 0.023)


def make_workspace(root: Path, n_chips: int = N_CHIPS, preset: str = PRESET, chip: int = CHIP) -> None:
    """Chips (smooth random DN) + synthetic float16 tokens, written chip by chip like embed does."""
    import geopandas as gpd
    import pandas as pd
    from scipy.ndimage import gaussian_filter
    from shapely.geometry import box

    from clay_explore.core.sensors import get_sensor
    from clay_explore.core.workspace import CHIP_TABLE, CHIPS_ZARR, EMBEDDINGS_ZARR, Workspace
    from clay_explore.model import PRESETS

    sensor = get_sensor("sentinel-2-l2a")
    dim = PRESETS[preset].dim
    grid = chip // PATCH
    ws = Workspace.create(root, sensor=sensor.name, bands=sensor.band_names, chip_size=chip, source={"kind": "bench"})
    mean, std, _ = sensor.stats()
    rng = np.random.default_rng(0)
    pixels = ws.create_array(CHIPS_ZARR, "pixels", shape=(n_chips, len(mean), chip, chip), dtype="float32")
    cls = ws.create_array(EMBEDDINGS_ZARR, "cls", shape=(n_chips, dim), dtype="float16")
    patches = ws.create_array(EMBEDDINGS_ZARR, "patches", shape=(n_chips, grid, grid, dim), dtype="float16")
    for i in range(n_chips):
        field = gaussian_filter(rng.normal(size=(chip, chip)), 8)
        field /= field.std()
        pixels[i] = (mean[:, None, None] + 0.5 * std[:, None, None] * field).astype(np.float32)
        cls[i] = rng.normal(size=dim).astype(np.float16)
        patches[i] = rng.normal(size=(grid, grid, dim)).astype(np.float16)
    rows = [
        {
            "chip_id": f"c{i:02d}",
            "lat": 40.0 - (i // GRID_COLS + 0.5) * CHIP_DEG[1],
            "lon": -3.0 + (i % GRID_COLS + 0.5) * CHIP_DEG[0],
            "datetime": pd.Timestamp("2024-06-01T11:00Z"),
            "gsd": 10.0,
            "valid_fraction": 1.0,
        }
        for i in range(n_chips)
    ]
    boxes = [
        box(
            -3.0 + (i % GRID_COLS) * CHIP_DEG[0],
            40.0 - (i // GRID_COLS + 1) * CHIP_DEG[1],
            -3.0 + (i % GRID_COLS + 1) * CHIP_DEG[0],
            40.0 - (i // GRID_COLS) * CHIP_DEG[1],
        )
        for i in range(n_chips)
    ]
    gdf = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=boxes, crs="EPSG:4326")
    ws.write_table(CHIP_TABLE, gdf)
    ws.mark_done(EMBEDDINGS_ZARR, "cls", range(n_chips))
    ws.set_stage(
        "embed",
        status="complete",
        n_chips=n_chips,
        grid=grid,
        dim=dim,
        patch_size=PATCH,
        precision="float32",
        preset=f"{preset} (random decoder)",
        sha256=None,
        untrained=True,
    )


def random_large_decoder_model(preset: str = PRESET):
    """A ClayModel of ``preset`` whose decoder is randomly initialised; the encoder stays on 'meta'."""
    from clay_explore.model import PRESETS, ClayModel

    with torch.device("meta"):
        model = ClayModel(PRESETS[preset], preset=f"{preset}-random")
    model.decoder.to_empty(device="cpu")
    # tokens are precomputed: drop the encoder, so the model's device (its first parameter) is the CPU
    # the decoder is on, not 'meta'
    model.encoder = torch.nn.Module()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_(0.0, 0.02)
        for m in model.decoder.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return model.eval().requires_grad_(False)


def _rss_mib() -> float:
    """This process's peak resident set size, MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_one(workspace: Path, method: str, epochs: int, threads: int, preset: str = PRESET, seeds: int = 1) -> dict:
    """Fit one method (``seeds`` initialisations) in this process; seconds per epoch and peak RSS."""
    from clay_explore.research.fit import fit_method

    torch.set_num_threads(threads)
    model = random_large_decoder_model(preset)
    t0 = time.perf_counter()
    extra = {"seeds": seeds} if seeds != 1 else {}
    config = fit_method(
        workspace, method, model=model, epochs=epochs, batch_size=8, patience=epochs + 1, show_progress=False, **extra
    )
    # the summary carries the first seed's history (per-seed records keep only their totals)
    epoch_s = [h["seconds"] for h in config.get("history", []) if h.get("epoch", 0) > 0]
    split = config.get("split") or {}
    return {
        "method": method,
        "seconds_per_epoch": float(np.mean(epoch_s)) if epoch_s else float("nan"),
        "epochs": len(epoch_s),
        "fit_seconds_total": round(time.perf_counter() - t0, 1),
        "peak_rss_mib": _rss_mib(),
        "params": config["n_params"],
        "train_chips": split.get("train", len(config.get("train_rows") or [])),
        "val_chips": split.get("val", len(config.get("val_rows") or [])),
    }


def evaluate_one(workspace: Path, threads: int, preset: str = PRESET) -> dict:
    """Evaluate every fitted method, the references (mae, all_tokens, cls_only) and the baselines; time, RSS."""
    from clay_explore.research.evaluate import evaluate_workspace

    torch.set_num_threads(threads)
    model = random_large_decoder_model(preset)
    rss_before = _rss_mib()
    t0 = time.perf_counter()
    report = evaluate_workspace(workspace, model=model, batch_size=8, show_progress=False)
    return {
        "evaluate_seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mib": _rss_mib(),
        "rss_before_mib": rss_before,
        "split": {k: (report.get("split") or {}).get(k) for k in ("train", "val", "test")},
        "seeds": report.get("seeds"),
        "rows": sorted(
            {*(report.get("methods") or {}), *(report.get("references") or {}), *(report.get("baselines") or {})}
        ),
    }


def _child(args: argparse.Namespace, root: Path, *extra: str) -> dict:
    """Run this script on ``root`` in a fresh process (its own peak RSS); its last stdout line is JSON."""
    cmd = [
        sys.executable,
        __file__,
        "--workspace",
        str(root),
        "--epochs",
        str(args.epochs),
        "--threads",
        str(args.threads),
        "--preset",
        args.preset,
        "--seeds",
        str(args.seeds),
        *extra,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(extra)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chips", type=int, default=N_CHIPS, help="chips in the workspace")
    parser.add_argument("--chip-size", type=int, default=CHIP, help="pixels per chip side (256: Clay's chips)")
    parser.add_argument("--preset", default=PRESET, help="model preset whose widths the tokens and decoder take")
    parser.add_argument("--seeds", type=int, default=1, help="initialisation seeds per fit (issue 8 default: 3)")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="methods to fit (default: linear attention perceiver mean; with --evaluate: mean linear)",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="fit the methods, then time `evaluate` (references incl. mae, baselines, seeds)",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--evaluate-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workspace", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(Path(args.workspace), args.one, args.epochs, args.threads, args.preset, args.seeds)))
        return
    if args.evaluate_one:
        print(json.dumps(evaluate_one(Path(args.workspace), args.threads, args.preset)))
        return
    methods = args.methods or (["mean", "linear"] if args.evaluate else ["linear", "attention", "perceiver", "mean"])
    from clay_explore.model import PRESETS

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        t0 = time.perf_counter()
        make_workspace(root, args.chips, args.preset, args.chip_size)
        grid = args.chip_size // PATCH
        print(
            f"workspace: {args.chips} chips of {args.chip_size} px, tokens [{args.chips}, {grid}x{grid}, "
            f"{PRESETS[args.preset].dim}] float16 ({args.preset} preset), written in {time.perf_counter() - t0:.1f} s; "
            f"{args.threads} threads, {args.seeds} seed(s) per fit",
            flush=True,
        )
        print(
            f"{'method':<11}{'s/epoch':>9}{'fit s':>8}{'peak RSS MiB':>14}{'agg params':>12}{'expander':>11}",
            flush=True,
        )
        for method in methods:
            r = _child(args, root, "--one", method)
            print(
                f"{method:<11}{r['seconds_per_epoch']:>9.1f}{r['fit_seconds_total']:>8.1f}{r['peak_rss_mib']:>14.0f}"
                f"{r['params']['aggregator']:>12,}{r['params']['expander']:>11,}",
                flush=True,
            )
        if args.evaluate:
            r = _child(args, root, "--evaluate-one")
            print(
                f"evaluate: {r['evaluate_seconds']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB "
                f"(model loaded: {r['rss_before_mib']:.0f} MiB); split {r['split']}, seeds {r['seeds']}; "
                f"rows: {', '.join(r['rows'])}",
                flush=True,
            )


if __name__ == "__main__":
    main()
