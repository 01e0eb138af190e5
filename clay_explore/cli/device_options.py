"""The shared `--device` and `--batch-size int|auto` options (no torch import: `--help` stays fast).

The library resolves the device (clay_explore.model.device.resolve_device), so a device this machine
lacks is one `Error:` line naming the devices that are there.
"""

from __future__ import annotations

import click

AUTO = "auto"
#: Same spelling as clay_explore.model.device.ENV_DEVICE (kept here so the CLI need not import torch).
ENV_DEVICE = "CLAY_EXPLORE_DEVICE"

DEVICE = click.option(
    "--device",
    default=None,
    metavar="auto|cpu|cuda|cuda:N|mps",
    help=f"Torch device. Default: ${ENV_DEVICE}, else auto (CUDA if present, else MPS, else CPU).",
)


class BatchSize(click.ParamType):
    """A whole number >= 1, or 'auto'."""

    name = "int|auto"

    def convert(self, value, param, ctx):  # noqa: ANN001 - click's signature
        if isinstance(value, int) and value >= 1:
            return value
        text = str(value).strip().lower()
        if text == AUTO:
            return AUTO
        if text.isdigit() and int(text) >= 1:
            return int(text)
        self.fail(f"{value!r} is neither 'auto' nor a whole number >= 1 (e.g. --batch-size 8).", param, ctx)


BATCH_SIZE_AUTO = click.option(
    "--batch-size",
    type=BatchSize(),
    default=AUTO,
    show_default=True,
    help="Chips per forward pass; auto = as many as the device's free memory allows. "
    "A batch that runs out of memory is retried at half size.",
)
