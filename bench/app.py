"""Benchmark of the app: start-up to first render, warm page switches, and PCA+UMAP vs raw UMAP.

    python bench/app.py [--points 100000] [--raw-points auto|N] [--skip-browser] [--skip-umap]

1. ``streamlit run app.py`` -> Home rendered in Chromium (seconds), then every page opened twice
   through the sidebar with a workspace of generated chips embedded by the tiny checkpoint
   (../shared; first = cold caches, second = warm).
2. UMAP of ``--points`` synthetic 1,024-d "patch tokens" (clusters on a low-dimensional manifold
   plus noise) with the app's defaults (PCA 50, n_neighbors 15, min_dist 0.1, seed 42), against
   plain UMAP on the raw 1,024-d vectors. When raw UMAP on all points would take more than 5
   minutes (extrapolated from a timed subsample), raw UMAP runs on a subsample and PCA+UMAP is
   also timed on that same subsample, so the speed ratio compares equal sizes; the output says so.
   Trustworthiness (sklearn, k = 10) of every result on the same 2,000-point subsample.
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
    z = centres[labels] + rng.normal(0, 1, (n, intrinsic))                     # [n, intrinsic]
    basis = rng.normal(0, 1, (intrinsic, dim)) / np.sqrt(intrinsic)
    x = np.tanh(z @ basis) + 0.3 * np.sin(z[:, :1] @ basis[:1])               # curved embedding
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
        return {"points": n, "seconds": round(sec, 2), "trustworthiness": round(tw, 4), **{
            k: info[k] for k in ("umap_input_dim", "seconds_pca", "seconds_umap") if k in info}}

    out["pca_umap_full"] = run(x, 50, "PCA 50 + UMAP")
    if raw_points == "auto":
        probe = run(x[:PROBE_POINTS], 0, "raw UMAP probe")
        estimate = probe["seconds"] * (points / PROBE_POINTS) ** UMAP_SCALING
        out["raw_probe"] = probe
        out["raw_full_estimate_s"] = round(estimate, 1)
        n_raw = points if estimate <= RAW_BUDGET_S else int(PROBE_POINTS * (RAW_BUDGET_S / probe["seconds"]) ** (
            1 / UMAP_SCALING))
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


def _wait_idle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !/Running/i.test(document.querySelector('[data-testid=\"stStatusWidget\"]').innerText)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--raw-points", default="auto", help="'auto' (5-minute budget) or a number of points")
    ap.add_argument("--skip-browser", action="store_true")
    ap.add_argument("--skip-umap", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}}
    if not args.skip_browser:
        report["browser"] = bench_browser()
        print(json.dumps(report["browser"], indent=2), flush=True)
    if not args.skip_umap:
        report["umap"] = bench_umap(args.points, args.raw_points)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
