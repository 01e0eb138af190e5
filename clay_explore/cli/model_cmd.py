"""`clay-explore model download|info`: get the Clay v1.5 checkpoint and describe it."""

from __future__ import annotations

import click

from clay_explore.cli.device_options import DEVICE


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
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Checkpoint file (default: CLAY_CHECKPOINT, else the HF cache / download).",
)
@DEVICE
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(checkpoint: str | None, device: str | None, as_json: bool) -> None:
    """Preset, parameter counts, sha256 and supported bands of a checkpoint; the device and its fast path."""
    from clay_explore.cli.main import echo_json
    from clay_explore.model import load_model, resolve_checkpoint
    from clay_explore.model.device import device_label, model_device
    from clay_explore.model.fastpath import preview
    from clay_explore.model.info import model_info

    path = resolve_checkpoint(checkpoint)
    loaded = load_model(path, device=device)
    facts = model_info(loaded, path)
    facts["device"] = device_label(model_device(loaded))
    facts["fast_path"] = preview(model_device(loaded))  # what --fast would choose on this device, and why
    if as_json:
        echo_json(facts)
        return
    p = facts["parameters"]
    click.echo(f"checkpoint  {facts['checkpoint']}\nsha256      {facts['sha256']}\npreset      {facts['preset']}")
    click.echo(f"parameters  encoder {p['encoder']:,}  decoder {p['decoder']:,}  total {p['total']:,}")
    click.echo(f"bands       {facts['bands_supported']}; sensors: {', '.join(facts['sensors'])}")
    click.echo(
        f"device      {facts['device']}; --fast here: {facts['fast_path']['precision']} "
        f"({facts['fast_path']['reason']})"
    )
    if facts["notice"]:
        click.echo(facts["notice"])
