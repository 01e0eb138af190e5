"""Benchmark: chips/s and peak RSS for ingesting a large scene, locally and through a loopback STAC API.

A real sample (default: the Sentinel-2 T29RKH 10-band stack from ../shared/data/samples) is tiled
(mirrored copies, so there are no seams) into square COGs of each requested size (default 4096
and 8192 px) on a 10 m grid in its UTM zone. Each run happens in a fresh subprocess, which reports
its own peak RSS, so the numbers show whether memory grows with the scene size (it should not:
chipping reads one window at a time). The STAC server runs in this (parent) process.

    python bench/ingest.py [--sizes 4096 8192] [--chip 256] [--sample PATH] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SAMPLE = REPO.parent / "shared" / "data" / "samples" / "sentinel2" / "s2l2a_T29RKH_20200219_100m_10band.tif"
BENCH_RES = 10.0  # metres; the tiled scene is put on a 10 m grid so it stays in one UTM zone
BLOCK = 512


def build_scene(sample: Path, size: int, out: Path) -> Path:
    """Tile ``sample`` (mirrored) into a size x size COG, written block-row by block-row."""
    import numpy as np
    import rasterio
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    with rasterio.open(sample) as src:
        tile = src.read()  # small sample, [C, h, w]
        prof = src.profile.copy()
        tags, descs = src.tags(), src.descriptions
        x0, y0 = src.transform.c, src.transform.f
    c, th, tw = tile.shape
    # one period of mirrored tiles, so neighbours match at the seams
    period = np.concatenate(
        [np.concatenate([tile, tile[:, :, ::-1]], 2), np.concatenate([tile[:, ::-1], tile[:, ::-1, ::-1]], 2)], 1
    )  # [C, 2h, 2w]
    prof.update(
        driver="GTiff",
        width=size,
        height=size,
        tiled=True,
        blockxsize=BLOCK,
        blockysize=BLOCK,
        compress="deflate",
        transform=from_origin(x0, y0, BENCH_RES, BENCH_RES),
        BIGTIFF="IF_SAFER",
    )
    tmp = out.with_suffix(".tmp.tif")
    reps = (size // tw) // 2 + 2
    with rasterio.open(tmp, "w", **prof) as dst:
        for r in range(0, size, BLOCK):
            h = min(BLOCK, size - r)
            rows = np.arange(r, r + h) % (2 * th)
            strip = np.tile(period[:, rows], (1, 1, reps))[:, :, :size]
            dst.write(strip, window=Window(0, r, size, h))
        dst.update_tags(**tags)
        for i, d in enumerate(descs, start=1):
            if d:
                dst.set_band_description(i, d)
    rio_copy(tmp, out, driver="COG", blocksize=BLOCK, compress="deflate", overviews="none", BIGTIFF="IF_SAFER")
    tmp.unlink()
    return out


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM resets at exec; ru_maxrss would include the parent's at fork time."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: upper bound


def worker(args: argparse.Namespace) -> None:
    """Run one ingest in this process and print chips, seconds, chips/s and peak RSS as JSON."""
    from clay_explore.imagery.chipping import ChipSettings

    t0 = time.perf_counter()
    if args.mode == "local":
        from clay_explore.imagery.geotiff import ingest_geotiff

        rec = ingest_geotiff(args.path, args.workspace, sensor="sentinel-2-l2a", chips=ChipSettings(args.chip))
    else:
        from clay_explore.imagery.stac import fetch_stac

        bbox = json.loads(args.bbox)
        rec = fetch_stac(
            bbox,
            "2000-01-01",
            "2030-12-31",
            args.workspace,
            stac_url=args.path,
            chips=ChipSettings(args.chip),
            max_area_km=1000,
            max_cloud=100,
            epsg=args.epsg,
            timeout=30,
            retries=2,
        )
    dt = time.perf_counter() - t0
    peak_mb = _peak_rss_mb()
    print(
        json.dumps(
            {
                "chips": rec["chips"],
                "seconds": round(dt, 2),
                "chips_per_s": round(rec["chips"] / dt, 1),
                "peak_rss_mb": round(peak_mb, 1),
            }
        )
    )


def _run_worker(
    mode: str, path: str, ws: Path, chip: int, bbox: list[float] | None = None, epsg: int | None = None
) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--path", path, "--workspace", str(ws), "--chip", str(chip)]
    if bbox:
        cmd += ["--bbox", json.dumps(bbox), "--epsg", str(epsg)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _inner_bbox(path: Path, inset: float = 0.03) -> tuple[list[float], int]:
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(path) as ds:
        l, b, r, t = ds.bounds
        dx, dy = (r - l) * inset, (t - b) * inset
        return list(transform_bounds(ds.crs, "EPSG:4326", l + dx, b + dy, r - dx, t - dy)), ds.crs.to_epsg()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    ap.add_argument("--chip", type=int, default=256)
    ap.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    ap.add_argument("--keep", type=Path, default=None, help="Keep scenes and workspaces here.")
    ap.add_argument("--skip-stac", action="store_true")
    ap.add_argument("--worker", choices=("local", "stac"), help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--workspace", help=argparse.SUPPRESS)
    ap.add_argument("--bbox", help=argparse.SUPPRESS)
    ap.add_argument("--epsg", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.mode = args.worker
        return worker(args)
    if not args.sample.exists():
        sys.exit(f"Sample {args.sample} not found (needs ../shared); pass --sample PATH to a multi-band GeoTIFF.")
    sys.path.insert(0, str(REPO / "tests" / "imagery"))
    from stac_server import start_stac_server

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"sample: {args.sample.name}; chip {args.chip}px; scenes in {root}")
    print(f"{'mode':6} {'size':>11} {'chips':>6} {'seconds':>8} {'chips/s':>8} {'peak RSS MB':>12}")
    try:
        for size in args.sizes:
            folder = root / f"scene_{size}" / "sentinel2"
            folder.mkdir(parents=True, exist_ok=True)
            scene = folder / f"bench_{size}_20200219_10band.tif"
            if not scene.exists():
                t = time.perf_counter()
                build_scene(args.sample, size, scene)
                print(
                    f"  built {scene.name} ({scene.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s"
                )
            res = _run_worker("local", str(scene), root / f"ws_local_{size}", args.chip)
            print(
                f"{'local':6} {f'{size}x{size}':>11} {res['chips']:>6} {res['seconds']:>8} {res['chips_per_s']:>8} "
                f"{res['peak_rss_mb']:>12}",
                flush=True,
            )
            if args.skip_stac:
                continue
            srv = start_stac_server(folder.parent, workdir=root / f"assets_{size}")
            try:
                bbox, epsg = _inner_bbox(scene)
                res = _run_worker("stac", srv.url, root / f"ws_stac_{size}", args.chip, bbox, epsg)
            finally:
                srv.stop()
            print(
                f"{'stac':6} {f'{size}x{size}':>11} {res['chips']:>6} {res['seconds']:>8} {res['chips_per_s']:>8} "
                f"{res['peak_rss_mb']:>12}",
                flush=True,
            )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
