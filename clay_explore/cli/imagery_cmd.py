"""`clay-explore fetch | ingest | demo | info`: imagery into a workspace, and what a workspace holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from clay_explore.core.defaults import (
    DEFAULT_CHIP_SIZE,
    DEFAULT_COLLECTION,
    DEFAULT_MAX_AREA_KM,
    DEFAULT_MAX_CHIP_CLOUD,
    DEFAULT_MAX_CLOUD,
    DEFAULT_MIN_VALID,
    DEFAULT_RETRIES,
    DEFAULT_TILE_KM,
    DEFAULT_TIMEOUT_S,
)


@contextmanager
def _progress(label: str) -> Iterator[Callable[..., None]]:
    """A tqdm bar on stderr driven by ``core.progress`` callbacks ``(done, total, info)``."""
    from tqdm import tqdm

    bar = tqdm(desc=label, unit="chip", leave=False)

    def update(done: int, total: int, info: dict[str, Any] | None = None) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    update.describe = bar.set_description  # type: ignore[attr-defined]  # e.g. which file is chipped

    try:
        yield update
    finally:
        bar.close()


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _report(rec: dict[str, Any], workspace: str, as_json: bool, note: str | None = None) -> None:
    from clay_explore.cli.main import echo_json

    if as_json:
        echo_json(rec)
        return
    if note:
        click.echo(note)
    verb = "Already complete:" if rec.get("resumed") else "Stored"
    click.echo(
        f"{verb} {rec['chips']} chips of {rec['chip_size']} px in {workspace} "
        f"(dropped {rec['dropped_nodata']} with too little valid data, {rec['dropped_cloud']} too cloudy; "
        f"{rec['windows']} windows)."
    )


_workspace_option = click.option(
    "--workspace", "-w", required=True, type=click.Path(file_okay=False), help="Workspace folder."
)


def _chip_options(f: Callable) -> Callable:
    f = click.option("--json", "as_json", is_flag=True, help="Print the stage record as JSON.")(f)
    f = click.option(
        "--min-valid",
        type=float,
        default=DEFAULT_MIN_VALID,
        show_default=True,
        help="Drop chips with a smaller share of valid pixels.",
    )(f)
    f = click.option("--stride", type=int, default=None, help="Pixels between chip origins (default: chip size).")(f)
    f = click.option(
        "--chip-size",
        type=int,
        default=DEFAULT_CHIP_SIZE,
        show_default=True,
        help="Chip side in pixels, a multiple of 8.",
    )(f)
    return f


@click.command("fetch")
@click.option("--bbox", nargs=4, type=float, required=True, metavar="W S E N", help="Area in degrees.")
@click.option("--start", required=True, help="First day, YYYY-MM-DD.")
@click.option("--end", required=True, help="Last day, YYYY-MM-DD.")
@click.option("--stac-url", default=None, help="STAC API (default: Earth Search v1).")
@click.option("--collection", default=DEFAULT_COLLECTION, show_default=True)
@click.option(
    "--max-cloud", type=float, default=DEFAULT_MAX_CLOUD, show_default=True, help="Scene cloud cover limit, %."
)
@click.option(
    "--max-chip-cloud",
    type=float,
    default=DEFAULT_MAX_CHIP_CLOUD,
    show_default=True,
    help="Drop chips with a larger share of cloudy pixels (when a cloud mask exists).",
)
@click.option("--sensor", default=None, help="Registry sensor, when the collection is not a known one.")
@click.option("--bands", default=None, help="Comma-separated subset of the sensor's bands.")
@click.option(
    "--max-area-km",
    type=float,
    default=DEFAULT_MAX_AREA_KM,
    show_default=True,
    help="Cap on each side of the whole area.",
)
@click.option(
    "--tile-km",
    type=float,
    default=DEFAULT_TILE_KM,
    show_default=True,
    help="Side of one request: a larger area, or one crossing a UTM zone boundary, is fetched as "
    "tiles into one workspace, reprojected into the UTM zone of its centre.",
)
@click.option("--epsg", type=int, default=None, help="Target CRS (default: the UTM zone of the area's centre).")
@click.option(
    "--timeout", type=float, default=DEFAULT_TIMEOUT_S, show_default=True, help="Seconds per network request."
)
@click.option("--retries", type=int, default=DEFAULT_RETRIES, show_default=True, help="Retries per network request.")
@_workspace_option
@_chip_options
def fetch(
    bbox: tuple[float, float, float, float],
    start: str,
    end: str,
    stac_url: str | None,
    collection: str,
    max_cloud: float,
    max_chip_cloud: float,
    sensor: str | None,
    bands: str | None,
    max_area_km: float,
    tile_km: float,
    epsg: int | None,
    timeout: float,
    retries: int,
    workspace: str,
    chip_size: int,
    stride: int | None,
    min_valid: float,
    as_json: bool,
) -> None:
    """Search a STAC API, mosaic the least-cloudy scenes and store chips in WORKSPACE.

    A large area, or one crossing a UTM zone boundary, is split into tiles (see --tile-km).
    """
    from clay_explore.imagery.chipping import ChipSettings
    from clay_explore.imagery.tiles import fetch_area

    chips = ChipSettings(chip_size, stride, min_valid, max_chip_cloud)
    with _progress("fetch") as bar:
        rec = fetch_area(
            bbox,
            start,
            end,
            workspace,
            stac_url=stac_url,
            collection=collection,
            max_cloud=max_cloud,
            chips=chips,
            sensor=sensor,
            bands=_csv(bands),
            tile_km=tile_km,
            max_area_km=max_area_km,
            epsg=epsg,
            timeout=timeout,
            retries=retries,
            progress=bar,
        )
    tiling = rec.get("tiling")
    if tiling and not as_json:
        skipped = [t for t in rec["tiles"] if t.get("skipped")]
        click.echo(
            tiling["note"] + (f" {len(skipped)} tile(s) had no usable scenes and were skipped." if skipped else "")
        )
    _report(rec, workspace, as_json)


@click.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--sensor", required=True, help="Registry sensor of the files (e.g. naip, landsat-c2l2-sr).")
@click.option(
    "--date", default=None, help="Acquisition date YYYY-MM-DD for every file (default: from each file's tags or name)."
)
@click.option("--bands", default=None, help="Comma-separated subset of the sensor's bands to keep.")
@click.option(
    "--file-bands",
    default=None,
    help="Name of every file band in file order, '-' to skip one (overrides the registry order).",
)
@click.option("--nodata", type=float, default=None, help="Nodata value (default: each file's).")
@click.option(
    "--values",
    type=click.Choice(["auto", "dn", "reflectance", "db"]),
    default="auto",
    show_default=True,
    help="What the stored values are: 'auto' converts float files holding 0-1 reflectance of a DN "
    "sensor to DN, and Sentinel-1 dB to linear power; 'dn' keeps values as stored; "
    "'reflectance' / 'db' always convert.",
)
@_workspace_option
@_chip_options
def ingest(
    files: tuple[str, ...],
    sensor: str,
    date: str | None,
    bands: str | None,
    file_bands: str | None,
    nodata: float | None,
    values: str,
    workspace: str,
    chip_size: int,
    stride: int | None,
    min_valid: float,
    as_json: bool,
) -> None:
    """Cut local GeoTIFF/COG FILES of one sensor into chips in WORKSPACE.

    Several files go into one workspace (chip ids prefixed per file); a workspace already
    holding chips of the same sensor, bands and chip size takes new files after them, and a
    file already stored is skipped.
    """
    from clay_explore.cli.main import echo_json
    from clay_explore.imagery.chipping import ChipSettings
    from clay_explore.imagery.geotiff import ingest_geotiffs

    chips = ChipSettings(chip_size, stride, min_valid)
    with _progress("ingest") as bar:

        def on_file(i: int, n: int, path: Path) -> None:
            bar.describe(f"ingest {i + 1}/{n} {path.name}" if n > 1 else "ingest")

        out = ingest_geotiffs(
            files,
            workspace,
            sensor=sensor,
            bands=_csv(bands),
            file_bands=_csv(file_bands),
            date=date,
            chips=chips,
            nodata=nodata,
            values=values,
            progress=bar,
            on_file=on_file,
        )
    if as_json:
        echo_json(out["files"][0] if len(out["files"]) == 1 else out)
        return
    _report_files(out, workspace)


def _report_files(out: dict[str, Any], workspace: str) -> None:
    """One paragraph per ingested (or skipped) file, then the workspace's total when it holds several."""
    for rec in out["files"]:
        if "skipped" in rec:
            click.echo(f"{click.format_filename(rec['file'])}: skipped. {rec['skipped']}")
            continue
        note = (
            f"{click.format_filename(rec['file'])}: bands: {rec.get('band_map')}; values: {rec.get('values')}; "
            f"date: {rec.get('datetime') or 'unknown'} (from {rec.get('date_from')})."
        )
        _report(rec, workspace, False, note)
    if out["n_sources"] > 1:
        click.echo(
            f"Workspace {workspace} holds {out['chips']} chips from {out['n_sources']} files "
            f"({out['added']} added now)."
        )


@click.command("demo")
@_workspace_option
@_chip_options
def demo(workspace: str, chip_size: int, stride: int | None, min_valid: float, as_json: bool) -> None:
    """Store chips of the offline demo scene (real Sentinel-2 L1C, date unknown) in WORKSPACE."""
    from clay_explore.imagery.chipping import ChipSettings
    from clay_explore.imagery.demo import DEMO_NOTE, ingest_demo

    chips = ChipSettings(chip_size, stride, min_valid)
    with _progress("demo") as bar:
        rec = ingest_demo(workspace, chips=chips, progress=bar)
    _report(rec, workspace, as_json, DEMO_NOTE)


@click.command("info")
@_workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(workspace: str, as_json: bool) -> None:
    """Show what a workspace holds: chips, sensor, bands, CRS and stages."""
    from clay_explore.cli.main import echo_json
    from clay_explore.core.workspace import EVALUATION, Workspace

    ws = Workspace.open(workspace)
    summary = ws.summary()
    if ws.path(EVALUATION).exists():
        from clay_explore.research.evaluate import outdated_reason

        summary["evaluation_outdated"] = outdated_reason(ws)
    if as_json:
        echo_json(summary)
        return
    _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    """The workspace summary as a few indented lines."""
    click.echo(f"Workspace {summary['workspace']} (schema {summary['schema_version']})")
    click.echo(
        f"  {summary['chips']} chips of {summary['chip_size']} px, sensor {summary['sensor']}, "
        f"bands {', '.join(summary['bands'])}"
    )
    click.echo(f"  CRS: {', '.join(summary['crs']) or '-'}")
    for src in summary["sources"]:
        click.echo(f"  source: {src.get('path') or src.get('kind')}")
    for name, rec in summary["stages"].items():
        gone = (
            f" ({', '.join(rec['missing'])} missing: run this stage again to rebuild it)" if rec.get("missing") else ""
        )
        click.echo(f"  stage {name}: {rec.get('status')}{gone}")
    if summary.get("evaluation_outdated"):
        click.echo(
            f"  evaluation.json is out of date: {summary['evaluation_outdated']}. Run `clay-explore evaluate` again."
        )


def register(group: click.Group) -> None:
    """Add the imagery commands to the root CLI group."""
    for command in (fetch, ingest, demo, info):
        group.add_command(command)
