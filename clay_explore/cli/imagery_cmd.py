"""`clay-explore fetch | ingest | demo | info`: imagery into a workspace, and what a workspace holds."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

from clay_explore.imagery.aoi import DEFAULT_MAX_KM
from clay_explore.imagery.chipping import DEFAULT_CHIP_SIZE, DEFAULT_MAX_CHIP_CLOUD, DEFAULT_MIN_VALID
from clay_explore.imagery.net import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S
from clay_explore.imagery.stac import DEFAULT_COLLECTION, DEFAULT_MAX_CLOUD



@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr driven by (done, total) callbacks."""
    from tqdm import tqdm

    bar = tqdm(desc=label, unit="chip", leave=False)

    def update(done: int, total: int) -> None:
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


_workspace_option = click.option("--workspace", "-w", required=True, type=click.Path(file_okay=False),
                                 help="Workspace folder.")


def _chip_options(f: Callable) -> Callable:
    f = click.option("--json", "as_json", is_flag=True, help="Print the stage record as JSON.")(f)
    f = click.option("--min-valid", type=float, default=DEFAULT_MIN_VALID, show_default=True,
                     help="Drop chips with a smaller share of valid pixels.")(f)
    f = click.option("--stride", type=int, default=None, help="Pixels between chip origins (default: chip size).")(f)
    f = click.option("--chip-size", type=int, default=DEFAULT_CHIP_SIZE, show_default=True,
                     help="Chip side in pixels, a multiple of 8.")(f)
    return f


def register(group: click.Group) -> None:
    """Add the imagery commands to the root CLI group."""

    @group.command("fetch")
    @click.option("--bbox", nargs=4, type=float, required=True, metavar="W S E N", help="Area in degrees.")
    @click.option("--start", required=True, help="First day, YYYY-MM-DD.")
    @click.option("--end", required=True, help="Last day, YYYY-MM-DD.")
    @click.option("--stac-url", default=None, help="STAC API (default: Earth Search v1).")
    @click.option("--collection", default=DEFAULT_COLLECTION, show_default=True)
    @click.option("--max-cloud", type=float, default=DEFAULT_MAX_CLOUD, show_default=True,
                  help="Scene cloud cover limit, %.")
    @click.option("--max-chip-cloud", type=float, default=DEFAULT_MAX_CHIP_CLOUD, show_default=True,
                  help="Drop chips with a larger share of cloudy pixels (when a cloud mask exists).")
    @click.option("--sensor", default=None, help="Registry sensor, when the collection is not a known one.")
    @click.option("--bands", default=None, help="Comma-separated subset of the sensor's bands.")
    @click.option("--max-area-km", type=float, default=DEFAULT_MAX_KM, show_default=True,
                  help="Cap on each side of the area.")
    @click.option("--epsg", type=int, default=None, help="Target CRS (default: the area's UTM zone).")
    @click.option("--timeout", type=float, default=DEFAULT_TIMEOUT_S, show_default=True,
                  help="Seconds per network request.")
    @click.option("--retries", type=int, default=DEFAULT_RETRIES, show_default=True, help="Retries per network request.")
    @_workspace_option
    @_chip_options
    def fetch(bbox, start, end, stac_url, collection, max_cloud, max_chip_cloud, sensor, bands, max_area_km,
              epsg, timeout, retries, workspace, chip_size, stride, min_valid, as_json) -> None:
        """Search a STAC API, mosaic the least-cloudy scenes and store chips in WORKSPACE."""
        from clay_explore.imagery.stac import fetch_stac

        with _progress("fetch") as bar:
            rec = fetch_stac(bbox, start, end, workspace, stac_url=stac_url, collection=collection,
                             max_cloud=max_cloud, chip_size=chip_size, stride=stride, sensor=sensor,
                             bands=_csv(bands), max_area_km=max_area_km, epsg=epsg, min_valid=min_valid,
                             max_chip_cloud=max_chip_cloud, timeout=timeout, retries=retries, progress=bar)
        _report(rec, workspace, as_json)

    @group.command("ingest")
    @click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
    @click.option("--sensor", required=True, help="Registry sensor of the files (e.g. naip, landsat-c2l2-sr).")
    @click.option("--date", default=None,
                  help="Acquisition date YYYY-MM-DD for every file (default: from each file's tags or name).")
    @click.option("--bands", default=None, help="Comma-separated subset of the sensor's bands to keep.")
    @click.option("--file-bands", default=None,
                  help="Name of every file band in file order, '-' to skip one (overrides the registry order).")
    @click.option("--nodata", type=float, default=None, help="Nodata value (default: each file's).")
    @click.option("--values", type=click.Choice(["auto", "dn", "reflectance", "db"]), default="auto",
                  show_default=True,
                  help="What the stored values are: 'auto' converts float files holding 0-1 reflectance of a DN "
                       "sensor to DN, and Sentinel-1 dB to linear power; 'dn' keeps values as stored; "
                       "'reflectance' / 'db' always convert.")
    @_workspace_option
    @_chip_options
    def ingest(files, sensor, date, bands, file_bands, nodata, values, workspace, chip_size, stride, min_valid,
               as_json):
        """Cut local GeoTIFF/COG FILES of one sensor into chips in WORKSPACE.

        Several files go into one workspace (chip ids prefixed per file); a workspace already
        holding chips of the same sensor, bands and chip size takes new files after them, and a
        file already stored is skipped.
        """
        from clay_explore.cli.main import echo_json
        from clay_explore.imagery.geotiff import ingest_geotiffs

        with _progress("ingest") as bar:
            def on_file(i: int, n: int, path) -> None:
                bar.describe(f"ingest {i + 1}/{n} {path.name}" if n > 1 else "ingest")

            out = ingest_geotiffs(files, workspace, sensor=sensor, bands=_csv(bands), file_bands=_csv(file_bands),
                                  date=date, chip_size=chip_size, stride=stride, min_valid=min_valid,
                                  nodata=nodata, values=values, progress=bar, on_file=on_file)
        if as_json:
            echo_json(out["files"][0] if len(out["files"]) == 1 else out)
            return
        for rec in out["files"]:
            if "skipped" in rec:
                click.echo(f"{click.format_filename(rec['file'])}: skipped. {rec['skipped']}")
                continue
            note = (f"{click.format_filename(rec['file'])}: bands: {rec.get('band_map')}; values: {rec.get('values')}; "
                    f"date: {rec.get('datetime') or 'unknown'} (from {rec.get('date_from')}).")
            _report(rec, workspace, False, note)
        if out["n_sources"] > 1:
            click.echo(f"Workspace {workspace} holds {out['chips']} chips from {out['n_sources']} files "
                       f"({out['added']} added now).")

    @group.command("demo")
    @_workspace_option
    @_chip_options
    def demo(workspace, chip_size, stride, min_valid, as_json) -> None:
        """Store chips of the offline demo scene (real Sentinel-2 L1C, date unknown) in WORKSPACE."""
        from clay_explore.imagery.demo import DEMO_NOTE, ingest_demo

        with _progress("demo") as bar:
            rec = ingest_demo(workspace, chip_size=chip_size, stride=stride, min_valid=min_valid, progress=bar)
        _report(rec, workspace, as_json, DEMO_NOTE)

    @group.command("info")
    @_workspace_option
    @click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
    def info(workspace, as_json) -> None:
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
        click.echo(f"Workspace {summary['workspace']} (schema {summary['schema_version']})")
        click.echo(f"  {summary['chips']} chips of {summary['chip_size']} px, sensor {summary['sensor']}, "
                   f"bands {', '.join(summary['bands'])}")
        click.echo(f"  CRS: {', '.join(summary['crs']) or '-'}")
        for src in summary["sources"]:
            click.echo(f"  source: {src.get('path') or src.get('kind')}")
        for name, rec in summary["stages"].items():
            click.echo(f"  stage {name}: {rec.get('status')}")
        if summary.get("evaluation_outdated"):
            click.echo(f"  evaluation.json is out of date: {summary['evaluation_outdated']}. "
                       "Run `clay-explore evaluate` again.")
