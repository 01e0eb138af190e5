"""`clay-explore pack` / `unpack`: carry a computed workspace to another machine as one verified file."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    group.add_command(pack)
    group.add_command(unpack)


def _bar(label: str):
    """A tqdm bar in bytes fed by the pack's ``progress(done, total, info)`` callback; returns (callback, close)."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=label, unit="B", unit_scale=True, leave=False)

    def cb(done: int, total: int, info: dict) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return cb, bar.close


@click.command()
@click.option("--workspace", "-w", required=True, type=click.Path(file_okay=False), help="Workspace folder to pack.")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="Pack file to write (a zip; by convention NAME.clay.zip).",
)
@click.option(
    "--no-patches",
    is_flag=True,
    help="Leave out the patch tokens (much smaller; patch UMAPs and full-token reconstructions then need a re-embed).",
)
@click.option(
    "--no-chips", is_flag=True, help="Leave out the chip pixels (thumbnails and reconstructions then need the imagery)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the pack manifest as JSON.")
def pack(workspace: str, out: str, no_patches: bool, no_chips: bool, as_json: bool) -> None:
    """Write a workspace (chips, embeddings, fitted methods, evaluation, projections) into one file with checksums."""
    from pathlib import Path

    from clay_explore.core.pack import pack_workspace

    cb, close = _bar("pack")
    try:
        manifest = pack_workspace(workspace, out, patches=not no_patches, chips=not no_chips, progress=cb)
    finally:
        close()
    if as_json:
        from clay_explore.cli.main import echo_json

        echo_json({k: v for k, v in manifest.items() if k != "files"} | {"out": out, "n_files": len(manifest["files"])})
        return
    size = Path(out).stat().st_size
    left = f" (left out: {', '.join(manifest['left_out'])})" if manifest["left_out"] else ""
    click.echo(f"Packed {len(manifest['files'])} files of {workspace} into {out} ({size / 1e6:,.1f} MB){left}.")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--workspace",
    "-w",
    required=True,
    type=click.Path(file_okay=False),
    help="New (or empty) folder to restore the workspace into.",
)
def unpack(file: str, workspace: str) -> None:
    """Restore a packed workspace, verifying every file's sha256; refuses unsafe paths and newer schemas."""
    from clay_explore.core.pack import unpack_workspace

    cb, close = _bar("unpack")
    try:
        ws = unpack_workspace(file, workspace, progress=cb)
    finally:
        close()
    summ = ws.summary()
    click.echo(
        f"Unpacked {file} into {workspace}: {summ['chips']} chips, stages: {', '.join(summ['stages']) or 'none'}."
    )
