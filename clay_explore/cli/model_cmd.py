"""`clay-explore model download|info`: get the Clay v1.5 checkpoint and describe it."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    group.add_command(model)


@click.group()
def model() -> None:
    """Get and inspect the Clay v1.5 checkpoint."""


@model.command()
@click.option("--force", is_flag=True, help="Download again even when the cache has the file.")
def download(force: bool) -> None:
    """Download the official checkpoint (made-with-clay/Clay, v1.5/clay-v1.5.ckpt) into the HF cache."""
    from clay_explore.model.hub import download_checkpoint

    path = download_checkpoint(force=force)
    click.echo(str(path))


@model.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint file (default: CLAY_CHECKPOINT, else the HF cache / download).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(checkpoint: str | None, as_json: bool) -> None:
    """Preset, parameter counts, sha256 and supported bands of a checkpoint."""
    from clay_explore.cli.main import echo_json
    from clay_explore.model import load_model, resolve_checkpoint
    from clay_explore.model.info import model_info

    path = resolve_checkpoint(checkpoint)
    facts = model_info(load_model(path), path)
    if as_json:
        echo_json(facts)
        return
    p = facts["parameters"]
    click.echo(f"checkpoint  {facts['checkpoint']}\nsha256      {facts['sha256']}\npreset      {facts['preset']}")
    click.echo(f"parameters  encoder {p['encoder']:,}  decoder {p['decoder']:,}  total {p['total']:,}")
    click.echo(f"bands       {facts['bands_supported']}; sensors: {', '.join(facts['sensors'])}")
    if facts["notice"]:
        click.echo(facts["notice"])
