"""`clay-explore project | export | vectors`: the app's projections and exports from the command line.

Each command parses its options, calls one library function and prints the result, so the CLI
produces exactly the files the Projections and Export pages read and offer.
"""

from __future__ import annotations

import click

from clay_explore.cli.device_options import DEVICE
from clay_explore.core import defaults as D
from clay_explore.core.defaults import EXPORT_WHAT as WHAT
from clay_explore.core.defaults import PATCH_FORMATS
from clay_explore.core.defaults import UMAP_METRICS as METRICS

_WORKSPACE = click.option(
    "--workspace", "-w", required=True, type=click.Path(file_okay=False), help="Workspace folder."
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def register(group: click.Group) -> None:
    for command in (project, export, vectors):
        group.add_command(command)


@click.command()
@_WORKSPACE
@click.option(
    "--source",
    "-s",
    "sources",
    multiple=True,
    default=("patches",),
    show_default=True,
    help="Embedding to project: patches, cls or an aggregator in vectors.zarr; repeat to overlay "
    "(one joint UMAP; needs equal dimensions).",
)
@click.option("--n-neighbors", type=click.IntRange(min=2), default=D.UMAP_N_NEIGHBORS, show_default=True)
@click.option("--min-dist", type=click.FloatRange(0, 1), default=D.UMAP_MIN_DIST, show_default=True)
@click.option("--metric", type=click.Choice(METRICS), default=D.UMAP_METRIC, show_default=True)
@click.option(
    "--seed", type=int, default=D.UMAP_SEED, show_default=True, help="Random seed; -1 = unseeded (parallel, faster)."
)
@click.option(
    "--pca",
    "pca_components",
    type=click.IntRange(min=0),
    default=D.UMAP_PCA_COMPONENTS,
    show_default=True,
    help="PCA dimensions before UMAP (0 = UMAP on the raw vectors).",
)
@click.option(
    "--max-points",
    type=click.IntRange(min=10),
    default=D.UMAP_MAX_POINTS,
    show_default=True,
    help="Patch points are subsampled (seeded) beyond this.",
)
@click.option("--recompute", is_flag=True, help="Ignore a stored result with the same parameters.")
@_JSON
def project(
    workspace: str,
    sources: tuple[str, ...],
    n_neighbors: int,
    min_dist: float,
    metric: str,
    seed: int,
    pca_components: int,
    max_points: int,
    recompute: bool,
    as_json: bool,
) -> None:
    """UMAP (after PCA) of embeddings; stored in the workspace as projections/<key>.parquet + .json."""
    from clay_explore.cli.main import echo_json
    from clay_explore.core.workspace import Workspace
    from clay_explore.research.projection import UmapParams, project_workspace

    params = UmapParams(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        seed=None if seed < 0 else seed,
        pca_components=pca_components,
        max_points=max_points,
    )
    result = project_workspace(Workspace.open(workspace), list(sources), params, recompute=recompute)
    if as_json:
        echo_json(result.info)
        return
    info = result.info
    click.echo(
        f"projected {info['n_points']:,} points of {'+'.join(info['sources'])} ({info['input_dim']}-d -> "
        f"{info['umap_input_dim']}-d) in {info['seconds_pca'] + info['seconds_umap']:.1f} s; "
        f"trustworthiness@10 {info['trustworthiness']:.3f}; stored projections/{result.key}.parquet"
    )


@click.command()
@_WORKSPACE
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--what",
    multiple=True,
    type=click.Choice(WHAT),
    default=("image",),
    show_default=True,
    help="What to export; repeat for several.",
)
@click.option("--patch-format", type=click.Choice(PATCH_FORMATS), default=PATCH_FORMATS[0], show_default=True)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Clay checkpoint for reconstructions (default: the one the embeddings were made with).",
)
@_JSON
def export(
    workspace: str, out_dir: str, what: tuple[str, ...], patch_format: str, checkpoint: str | None, as_json: bool
) -> None:
    """Image embeddings as GeoParquet, patch embeddings as zarr/GeoParquet, reconstructions as PNG."""
    from clay_explore.cli.main import echo_json
    from clay_explore.core.workspace import Workspace
    from clay_explore.research.export import export as run_export

    result = run_export(Workspace.open(workspace), out_dir, what=what, patch_format=patch_format, checkpoint=checkpoint)
    if as_json:
        echo_json(result)
        return
    for kind, path in result.items():
        if isinstance(path, list):
            click.echo(f"{kind}: {len(path)} files in {path[0].parent if path else out_dir}")
        else:
            click.echo(f"{kind}: {path}")


@click.command()
@_WORKSPACE
@DEVICE
def vectors(workspace: str, device: str | None) -> None:
    """Mean, max and GeM image vectors from the stored patch tokens (no fit needed) into vectors.zarr."""
    from clay_explore.research.vectors import ensure_parameter_free_vectors

    done = ensure_parameter_free_vectors(workspace, device=device)
    click.echo(f"computed {', '.join(done)}" if done else "mean, max and GeM vectors are up to date")
