"""Scale-out overhead: chips/s of `embed` in one process vs on a Dask LocalCluster of N workers.

Both runs embed the same chips of the offline demo scene with the same random-weight checkpoint of
one preset and the same batch size, on this machine. The single process uses torch's default thread
count; the cluster's workers share the cores (cores / N threads each), so on a 2-core machine the
cluster cannot be faster: the figure of interest is the overhead ratio (cluster seconds per chip /
single-process seconds per chip; target <= 1.15), measured over the embed stage's own seconds with
the model already loaded (the cluster's workers load it before the timed run; `--cold` also times
`embed --workers N` from nothing, start-up included). The machine's load average is printed too.

    python bench/scale.py [--preset small] [--chips 48] [--chip-size 64] [--batch-size 4] [--workers 2] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

#: Hyper-parameters written with the random checkpoint (the loader reads the preset from model_size).
CKPT_HPARAMS = {"mask_ratio": 0.75, "shuffle": False, "patch_size": 8}


def write_checkpoint(path: Path, preset: str) -> Path:
    """A random-weight checkpoint of ``preset`` in the official Lightning layout (speed ignores values)."""
    import torch

    from clay_explore.model import PRESETS, ClayModel

    torch.manual_seed(0)
    model = ClayModel(PRESETS[preset], preset=preset)
    torch.save(
        {
            "epoch": 0,
            "global_step": 0,
            "pytorch-lightning_version": "2.6.6",
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"model_size": preset, **CKPT_HPARAMS},
        },
        path,
    )
    return path


def demo_workspace(root: Path, chip_size: int, n_chips: int) -> Path:
    """A workspace holding the first ``n_chips`` chips of the demo scene chipped at ``chip_size``."""
    from clay_explore.core.workspace import CHIP_TABLE, CHIPS_ZARR, Workspace
    from clay_explore.imagery.chipping import ChipSettings
    from clay_explore.imagery.demo import ingest_demo

    full = root.with_name(root.name + "-full")
    ingest_demo(full, chips=ChipSettings(chip_size))
    src = Workspace.open(full)
    n = min(n_chips, src.n_chips())
    ws = Workspace.create(root, sensor=src.sensor.name, bands=src.bands, chip_size=chip_size, source={"kind": "bench"})
    pixels = src.read_chips(slice(0, n))
    ws.create_array(CHIPS_ZARR, "pixels", shape=pixels.shape, dtype="float32")[:] = pixels
    ws.mark_done(CHIPS_ZARR, "pixels", range(n))
    ws.write_table(CHIP_TABLE, src.chip_table().iloc[:n])
    ws.set_stage("chips", status="complete", n_chips=n, chips=n)
    return root


def timed_embed(root: Path, checkpoint: Path, batch_size: int, threads: int | None = None, **cluster) -> dict:
    """Embed once: wall seconds, and chips/s over the stage's own seconds (after the model is loaded).

    On a cluster ``threads`` sets torch threads per worker (research.distributed's ``torch_threads``).
    """
    from clay_explore.core.workspace import Workspace
    from clay_explore.research.distributed import embed_distributed
    from clay_explore.research.embed import embed_workspace

    t0 = time.perf_counter()
    if cluster:
        rec = embed_distributed(
            Workspace.open(root),
            checkpoint=str(checkpoint),
            batch_size=batch_size,
            show_progress=False,
            torch_threads=threads,
            **cluster,
        )
    else:
        rec = embed_workspace(str(root), checkpoint=str(checkpoint), batch_size=batch_size, show_progress=False)
    wall = time.perf_counter() - t0
    return {
        "wall_s": round(wall, 2),
        "stage_s": rec["seconds"],
        "chips": rec["n_chips"],
        "chips_per_s": round(rec["n_chips"] / rec["seconds"], 3),
    }


def warm_cluster(workers: int, checkpoint: Path):
    """A LocalCluster like ``embed --workers`` starts, with the model already loaded on every worker."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    from clay_explore.research.distributed import LOCAL_WORKER_CONFIG, ModelSpec, worker_model
    from clay_explore.research.provenance import load_model_for, model_sha256

    with dask.config.set(LOCAL_WORKER_CONFIG):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    client = Client(cluster, set_as_default=False)
    sha = model_sha256(load_model_for(str(checkpoint)))
    client.run(worker_model, ModelSpec(path=str(checkpoint), sha256=sha, fast=False))
    return client, cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="small", choices=["tiny", "small", "base", "large"])
    ap.add_argument("--chips", type=int, default=48)
    ap.add_argument("--chip-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the single process and of each worker (default: torch's for the single "
        "process, the cores shared among workers for the cluster, as `embed --workers` does).",
    )
    ap.add_argument("--cold", action="store_true", help="Also time `embed --workers N` from a cold start.")
    ap.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="clay-scale-"))
    try:
        ckpt = write_checkpoint(tmp / f"{args.preset}.ckpt", args.preset)
        template = demo_workspace(tmp / "template", args.chip_size, args.chips)
        runs = {}
        shutil.copytree(template, tmp / "single")
        runs["single"] = timed_embed(tmp / "single", ckpt, args.batch_size)
        client, cluster = warm_cluster(args.workers, ckpt)
        try:
            shutil.copytree(template, tmp / "warm")
            runs["cluster_warm"] = timed_embed(
                tmp / "warm", ckpt, args.batch_size, args.threads, scheduler=cluster.scheduler_address
            )
        finally:
            client.close()
            cluster.close()
        if args.cold:
            shutil.copytree(template, tmp / "cold")
            runs["cluster_cold"] = timed_embed(tmp / "cold", ckpt, args.batch_size, args.threads, workers=args.workers)
        ratio = runs["single"]["chips_per_s"] / runs["cluster_warm"]["chips_per_s"]
        out = {
            "preset": args.preset,
            "chip_size": args.chip_size,
            "batch_size": args.batch_size,
            "workers": args.workers,
            "cores": os.cpu_count(),
            "torch_threads_single": torch.get_num_threads(),
            "torch_threads_worker": args.threads or "cores shared",
            "load_average_1m": round(os.getloadavg()[0], 2),
            **runs,
            "overhead_ratio": round(ratio, 3),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"preset {out['preset']}, {out['chip_size']} px chips, batch {out['batch_size']}, {out['cores']} cores, "
        f"load average {out['load_average_1m']}"
    )
    for name, r in runs.items():
        print(
            f"{name:>13}: {r['chips_per_s']:8.3f} chips/s over {r['stage_s']:6.1f} s of embedding, "
            f"{r['wall_s']:6.1f} s wall ({r['chips']} chips)"
        )
    print(f"overhead ratio (cluster s/chip / single s/chip): {out['overhead_ratio']:.3f} (target <= 1.15)")


if __name__ == "__main__":
    main()
