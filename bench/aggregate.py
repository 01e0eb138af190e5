"""Benchmark: seconds per epoch and peak RSS of fitting each learned method at Clay v1.5 scale.

64 chips of 256 px (10 Sentinel-2 bands) with synthetic tokens of the large preset's
dimensions (D 1024, L 1024 = 32 x 32 patches) in a temporary workspace, and a randomly
initialised decoder of the large preset (Dd 512, depth 4; the encoder is never built: tokens are
precomputed). Each method runs in its own process so its peak RSS is its own.

    python bench/aggregate.py [--epochs 1] [--threads 2] [--chips 64] [--methods linear attention perceiver mean]

Run it with ``--chips 32`` and ``--chips 64``: the peak RSS should barely change, because tokens
and chips stream from zarr one batch at a time.
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
GRID = CHIP // PATCH
PRESET = "large"


def make_workspace(root: Path, n_chips: int = N_CHIPS) -> None:
    """Chips (smooth random DN) + synthetic float16 tokens, written chip by chip like embed does."""
    import geopandas as gpd
    import pandas as pd
    from scipy.ndimage import gaussian_filter
    from shapely.geometry import box

    from clay_explore.model import PRESETS
    from clay_explore.core.sensors import get_sensor
    from clay_explore.core.workspace import CHIP_TABLE, CHIPS_ZARR, EMBEDDINGS_ZARR, Workspace

    sensor = get_sensor("sentinel-2-l2a")
    dim = PRESETS[PRESET].dim
    ws = Workspace.create(root, sensor=sensor.name, bands=sensor.band_names, chip_size=CHIP, source={"kind": "bench"})
    mean, std, _ = sensor.stats()
    rng = np.random.default_rng(0)
    pixels = ws.create_array(CHIPS_ZARR, "pixels", shape=(n_chips, len(mean), CHIP, CHIP), dtype="float32")
    cls = ws.create_array(EMBEDDINGS_ZARR, "cls", shape=(n_chips, dim), dtype="float16")
    patches = ws.create_array(EMBEDDINGS_ZARR, "patches", shape=(n_chips, GRID, GRID, dim), dtype="float16")
    for i in range(n_chips):
        field = gaussian_filter(rng.normal(size=(CHIP, CHIP)), 8)
        field /= field.std()
        pixels[i] = (mean[:, None, None] + 0.5 * std[:, None, None] * field).astype(np.float32)
        cls[i] = rng.normal(size=dim).astype(np.float16)
        patches[i] = rng.normal(size=(GRID, GRID, dim)).astype(np.float16)
    rows = [
        {
            "chip_id": f"c{i:02d}",
            "lat": 40.0,
            "lon": -3.0,
            "datetime": pd.Timestamp("2024-06-01T11:00Z"),
            "gsd": 10.0,
            "valid_fraction": 1.0,
        }
        for i in range(n_chips)
    ]
    gdf = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=[box(-3, 40, -2.99, 40.01)] * n_chips, crs="EPSG:4326")
    ws.write_table(CHIP_TABLE, gdf)
    ws.mark_done(EMBEDDINGS_ZARR, "cls", range(n_chips))
    ws.set_stage(
        "embed",
        status="complete",
        n_chips=n_chips,
        grid=GRID,
        dim=dim,
        patch_size=PATCH,
        precision="float32",
        preset=f"{PRESET} (random decoder)",
        sha256=None,
        untrained=True,
    )


def random_large_decoder_model():
    """A ClayModel of the large preset whose decoder is randomly initialised; the encoder stays on 'meta'."""
    from clay_explore.model import PRESETS, ClayModel

    with torch.device("meta"):
        model = ClayModel(PRESETS[PRESET], preset=f"{PRESET}-random")
    model.decoder.to_empty(device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_(0.0, 0.02)
        for m in model.decoder.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return model.eval().requires_grad_(False)


def run_one(workspace: Path, method: str, epochs: int, threads: int) -> dict:
    """Fit one method in this process; report seconds per epoch and this process's peak RSS."""
    from clay_explore.research.fit import fit_method

    torch.set_num_threads(threads)
    model = random_large_decoder_model()
    t0 = time.perf_counter()
    config = fit_method(
        workspace, method, model=model, epochs=epochs, batch_size=8, patience=epochs + 1, show_progress=False
    )
    epoch_s = [h["seconds"] for h in config["history"] if h["epoch"] > 0]
    return {
        "method": method,
        "seconds_per_epoch": float(np.mean(epoch_s)),
        "epochs": len(epoch_s),
        "fit_seconds_total": round(time.perf_counter() - t0, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "params": config["n_params"],
        "train_chips": len(config["train_rows"]),
        "val_chips": len(config["val_rows"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chips", type=int, default=N_CHIPS, help="chips in the workspace")
    parser.add_argument("--methods", nargs="+", default=["linear", "attention", "perceiver", "mean"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--workspace", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(Path(args.workspace), args.one, args.epochs, args.threads)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        t0 = time.perf_counter()
        make_workspace(root, args.chips)
        print(
            f"workspace: {args.chips} chips of {CHIP} px, tokens [{args.chips}, {GRID}x{GRID}, 1024] float16, "
            f"written in {time.perf_counter() - t0:.1f} s; {args.threads} threads",
            flush=True,
        )
        print(f"{'method':<11}{'s/epoch':>9}{'peak RSS MiB':>14}{'agg params':>12}{'expander':>11}", flush=True)
        for method in args.methods:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    method,
                    "--workspace",
                    str(root),
                    "--epochs",
                    str(args.epochs),
                    "--threads",
                    str(args.threads),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{method:<11}{r['seconds_per_epoch']:>9.1f}{r['peak_rss_mib']:>14.0f}"
                f"{r['params']['aggregator']:>12,}{r['params']['expander']:>11,}",
                flush=True,
            )


if __name__ == "__main__":
    main()
