"""Benchmark of the app: start-up to first render, warm page switches, and PCA+UMAP vs raw UMAP.

    python bench/app.py [--points 100000] [--raw-points auto|N] [--skip-browser] [--skip-umap]
                        [--skip-jobs] [--job-chips 200] [--job-size 128]

1. ``streamlit run app.py`` -> Home rendered in Chromium (seconds), then every page opened twice
   through the sidebar with a workspace of generated chips embedded by the tiny checkpoint
   (../shared; first = cold caches, second = warm).
2. UMAP of ``--points`` synthetic 1,024-d "patch tokens" (clusters on a low-dimensional manifold
   plus noise) with the app's defaults (PCA 50, n_neighbors 15, min_dist 0.1, seed 42), against
   plain UMAP on the raw 1,024-d vectors. When raw UMAP on all points would take more than 5
   minutes (extrapolated from a timed subsample), raw UMAP runs on a subsample and PCA+UMAP is
   also timed on that same subsample, so the speed ratio compares equal sizes; the output says so.
   Trustworthiness (sklearn, k = 10) of every result on the same 2,000-point subsample.
3. Jobs (browser-free, ``tests/app/st_session.py``): ``--job-chips`` generated chips embedded with the tiny
   checkpoint by ``clay-explore embed`` and, on a copy of the same workspace, from the app's Embed page
   (a worker process); chips/s of each from the stage record (the embedding loop), their ratio (target
   >= 0.9), and the time one page run takes on a second session while the job runs vs idle.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "app"))

from clay_explore.research.projection import UmapParams, reduce, trustworthiness, warmup

RAW_BUDGET_S = 300.0
PROBE_POINTS = 10_000
TRUST_SAMPLE = 2000
UMAP_SCALING = 1.15  # UMAP time grows about n^1.15 (nearest-neighbour descent + layout)


def synthetic_tokens(n: int, dim: int = 1024, clusters: int = 24, intrinsic: int = 12, seed: int = 0) -> np.ndarray:
    """[n, dim] float32: clusters on a curved ``intrinsic``-d manifold embedded in ``dim`` dims, plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (clusters, intrinsic))
    labels = rng.integers(0, clusters, n)
    z = centres[labels] + rng.normal(0, 1, (n, intrinsic))  # [n, intrinsic]
    basis = rng.normal(0, 1, (intrinsic, dim)) / np.sqrt(intrinsic)
    x = np.tanh(z @ basis) + 0.3 * np.sin(z[:, :1] @ basis[:1])  # curved embedding
    return (x + rng.normal(0, 0.15, (n, dim))).astype(np.float32)


def bench_umap(points: int, raw_points: str) -> dict:
    x = synthetic_tokens(points)
    out: dict = {"points": points, "dim": int(x.shape[1])}
    t0 = time.perf_counter()
    out["numba_warmup_s"] = round(warmup(), 2)
    print(f"numba warm-up {out['numba_warmup_s']} s", flush=True)
    trust_idx = np.random.default_rng(1).choice(points, TRUST_SAMPLE, replace=False)

    def run(xs: np.ndarray, pca: int, label: str) -> dict:
        t = time.perf_counter()
        coords, info = reduce(xs, UmapParams(pca_components=pca))
        sec = time.perf_counter() - t
        n = len(xs)
        idx = trust_idx[trust_idx < n] if n == points else np.arange(min(TRUST_SAMPLE, n))
        tw = trustworthiness(xs[idx], coords[idx], sample=len(idx))
        print(f"{label}: {n:,} points in {sec:.1f} s, trustworthiness {tw:.3f}", flush=True)
        return {
            "points": n,
            "seconds": round(sec, 2),
            "trustworthiness": round(tw, 4),
            **{k: info[k] for k in ("umap_input_dim", "seconds_pca", "seconds_umap") if k in info},
        }

    out["pca_umap_full"] = run(x, 50, "PCA 50 + UMAP")
    if raw_points == "auto":
        probe = run(x[:PROBE_POINTS], 0, "raw UMAP probe")
        estimate = probe["seconds"] * (points / PROBE_POINTS) ** UMAP_SCALING
        out["raw_probe"] = probe
        out["raw_full_estimate_s"] = round(estimate, 1)
        n_raw = (
            points
            if estimate <= RAW_BUDGET_S
            else int(PROBE_POINTS * (RAW_BUDGET_S / probe["seconds"]) ** (1 / UMAP_SCALING))
        )
        n_raw = max(PROBE_POINTS, min(points, n_raw))
    else:
        n_raw = min(points, int(raw_points))
    if n_raw == PROBE_POINTS and "raw_probe" in out:
        out["raw_umap"] = out["raw_probe"]
    else:
        out["raw_umap"] = run(x[:n_raw], 0, "raw 1024-d UMAP")
    if n_raw < points:
        out["subsampled_raw"] = True
        out["pca_umap_same_n"] = run(x[:n_raw], 50, "PCA 50 + UMAP (same subsample)")
        base = out["pca_umap_same_n"]
    else:
        out["subsampled_raw"] = False
        base = out["pca_umap_full"]
    out["speed_ratio_raw_over_pca"] = round(out["raw_umap"]["seconds"] / base["seconds"], 2)
    out["total_s"] = round(time.perf_counter() - t0, 1)
    return out


def bench_browser() -> dict:
    from app_browser import CHROMIUM, AppServer, have_assets, launch, route_cdns
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        return {"skipped": f"{CHROMIUM} missing"}
    shared_ckpt = Path(os.environ.get("CLAY_EXPLORE_SHARED", REPO.parent / "shared")) / "fixtures" / "clay_parity_s2"
    tmp = Path(tempfile.mkdtemp(prefix="bench-app-"))
    env = {"CLAY_EXPLORE_WORKSPACES": str(tmp / "ws"), "CLAY_EXPLORE_CACHE": str(tmp / "cache"), "HF_HUB_OFFLINE": "1"}
    model_pages = (shared_ckpt / "model.ckpt.xz").exists()
    if model_pages:
        from app_data import build_with_model

        ckpt = tmp / "tiny.ckpt"
        ckpt.write_bytes(lzma.decompress((shared_ckpt / "model.ckpt.xz").read_bytes()))
        env["CLAY_CHECKPOINT"] = str(ckpt)
        build_with_model(tmp / "ws" / "bench", ckpt, n=32, size=64)
    result: dict = {"model_pages": model_pages, "assets_local": have_assets()}
    app = AppServer(tmp, env)
    try:
        with sync_playwright() as p:
            browser = launch(p)
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            route_cdns(ctx)
            page = ctx.new_page()
            page.set_default_timeout(300_000)
            app.wait()
            page.goto(app.url + ("/?ws=bench" if model_pages else ""), wait_until="domcontentloaded")
            page.get_by_role("heading", name="Clay explore").wait_for()
            result["start_to_first_page_s"] = round(time.perf_counter() - app.started, 2)
            _wait_idle(page)
            switches: dict = {}
            names = ["Area", "Embed", "Projections", "Reconstructions", "Similar chips", "Export", "Home"]
            for rnd in ("cold", "warm"):
                for name in names:
                    t = time.perf_counter()
                    page.locator('[data-testid="stSidebarNav"] a', has_text=name).first.click()
                    heading = "Clay explore" if name == "Home" else name
                    page.get_by_role("heading", name=heading).first.wait_for()
                    _wait_idle(page)
                    switches.setdefault(name, {})[rnd] = round(time.perf_counter() - t, 2)
            result["page_switch_s"] = switches
            result["warm_switch_median_s"] = float(np.median([v["warm"] for v in switches.values()]))
            browser.close()
    finally:
        app.stop()
    return result


def _tiny_checkpoint(tmp: Path) -> Path:
    """The parity fixture's tiny checkpoint from ../shared, else a random one of the same shape."""
    shared = Path(os.environ.get("CLAY_EXPLORE_SHARED", REPO.parent / "shared")) / "fixtures" / "clay_parity_s2"
    out = tmp / "tiny.ckpt"
    if (shared / "model.ckpt.xz").exists():
        out.write_bytes(lzma.decompress((shared / "model.ckpt.xz").read_bytes()))
        return out
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import write_random_checkpoint

    return write_random_checkpoint(out)


def _page_times(session, pages: list[str], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        for name in pages:
            t = time.perf_counter()
            session.open(name, session.query)
            times.append(time.perf_counter() - t)
    return times


def bench_jobs(n_chips: int, size: int, batch: int = 8, repeats: int = 3) -> dict:
    """Embed chips/s from the app (a worker) vs the CLI on the same workspace; page runs during a job vs idle.

    CLI and app runs alternate ``repeats`` times (fresh copies each time), so a busy shared machine
    weighs on both alike; the ratio reported is the median of the pairs.
    """
    import shutil
    import subprocess

    from app_browser import AppServer
    from app_data import make_workspace
    from st_session import Session

    from clay_explore.app import jobs as app_jobs
    from clay_explore.core.workspace import Workspace

    tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    ckpt = _tiny_checkpoint(tmp)
    root = tmp / "ws"
    make_workspace(root / "template", n=n_chips, size=size, embed=False)
    names = [f"{kind}{i}" for i in range(repeats) for kind in ("cli", "app")] + ["busy"]
    for name in names:
        shutil.copytree(root / "template", root / name)
    env = {
        **os.environ,
        "CLAY_CHECKPOINT": str(ckpt),
        "CLAY_EXPLORE_WORKSPACES": str(root),
        "CLAY_EXPLORE_CACHE": str(tmp / "cache"),
        "HF_HUB_OFFLINE": "1",
    }

    def cli_run(name: str) -> tuple[dict, float]:
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "clay_explore.cli.main",
                "embed",
                "-w",
                str(root / name),
                "--batch-size",
                str(batch),
                "--json",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        return Workspace.open(root / name).stage("embed"), time.perf_counter() - t

    app = AppServer(
        tmp, {k: env[k] for k in ("CLAY_CHECKPOINT", "CLAY_EXPLORE_WORKSPACES", "CLAY_EXPLORE_CACHE", "HF_HUB_OFFLINE")}
    )
    out: dict = {"chips": n_chips, "chip_size": size, "batch_size": batch}
    try:
        app.wait()
        # 1) the job alone (only its own page's poll), alternating with CLI runs: chips/s of each
        cli_s, app_s, cli_wall, app_wall = [], [], [], []
        for i in range(repeats):
            rec, wall = cli_run(f"cli{i}")
            cli_s.append(rec["seconds"])
            cli_wall.append(wall)
            starter = Session(app.url).open("embed", f"ws=app{i}")
            t = time.perf_counter()
            starter.click("embed_go")
            app_jobs.wait(app_jobs.get_job(root / f"app{i}", "embed"))
            app_wall.append(time.perf_counter() - t)
            app_s.append(Workspace.open(root / f"app{i}").stage("embed")["seconds"])
            starter.close()
        # 2) page runs of another session, idle and while a second job runs (they share the CPU cores)
        viewer = Session(app.url).open("", "ws=busy")
        pages = ["projections", "embed", ""]
        _page_times(viewer, pages, 1)  # warm the caches
        idle = _page_times(viewer, pages, 2)
        Session(app.url).open("embed", "ws=busy").click("embed_go")
        busy: list[float] = []
        job = app_jobs.get_job(root / "busy", "embed")
        while job is not None and job.running:
            busy += _page_times(viewer, pages, 1)
            job = app_jobs.get_job(root / "busy", "embed")
        busy_rec = Workspace.open(root / "busy").stage("embed")
        out.update(
            {
                "cli_chips_per_s": [round(n_chips / x, 2) for x in cli_s],
                "app_chips_per_s": [round(n_chips / x, 2) for x in app_s],
                "app_over_cli_median": round(float(np.median([c / a for c, a in zip(cli_s, app_s)])), 3),
                "cli_wall_s": [round(x, 2) for x in cli_wall],
                "app_wall_s_incl_worker_start_and_vectors": [round(x, 2) for x in app_wall],
                "page_run_idle_median_s": round(float(np.median(idle)), 3),
                "page_run_during_job_median_s": round(float(np.median(busy)), 3) if busy else None,
                "page_runs_during_job": len(busy),
                "app_chips_per_s_while_pages_run": round(n_chips / busy_rec["seconds"], 2),
            }
        )
        t = time.perf_counter()
        app.proc.terminate()
        app.proc.wait()
        out["stop_s"] = round(time.perf_counter() - t, 2)
    finally:
        app.stop()
    return out


def _wait_idle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !/Running/i.test(document.querySelector('[data-testid=\"stStatusWidget\"]').innerText)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--raw-points", default="auto", help="'auto' (5-minute budget) or a number of points")
    ap.add_argument("--skip-browser", action="store_true")
    ap.add_argument("--skip-umap", action="store_true")
    ap.add_argument("--skip-jobs", action="store_true")
    ap.add_argument("--job-chips", type=int, default=200, help="chips embedded by the jobs benchmark")
    ap.add_argument("--job-size", type=int, default=128, help="chip side (px) of the jobs benchmark")
    ap.add_argument("--job-repeats", type=int, default=3, help="alternating CLI / app embed runs")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}}
    if not args.skip_browser:
        report["browser"] = bench_browser()
        print(json.dumps(report["browser"], indent=2), flush=True)
    if not args.skip_jobs:
        report["jobs"] = bench_jobs(args.job_chips, args.job_size, repeats=args.job_repeats)
        print(json.dumps(report["jobs"], indent=2), flush=True)
    if not args.skip_umap:
        report["umap"] = bench_umap(args.points, args.raw_points)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
