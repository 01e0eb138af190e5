"""Entry point of `clay-explore`: the root group, error handling and sub-command registration."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

from clay_explore.core.errors import ClayExploreError

#: Modules whose ``register(group)`` adds their commands; one per stage, same names as the library.
COMMAND_MODULES = (
    "clay_explore.cli.model_cmd",
    "clay_explore.cli.imagery_cmd",
    "clay_explore.cli.research_cmd",
    "clay_explore.cli.views_cmd",
    "clay_explore.cli.app_cmd",
    "clay_explore.cli.pack_cmd",
)


class _Group(click.Group):
    """Shows a ClayExploreError as one clear line (exit 2) instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClayExploreError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(2)
        except OSError as err:  # permission, not a folder, disk full: one line too (core.fs)
            from clay_explore.core.fs import as_user_error

            user = as_user_error(err)
            if user is None:
                raise
            click.echo(f"Error: {user}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("Cancelled. Finished work is kept in the workspace; run the same command to resume.", err=True)
            ctx.exit(130)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Every command that writes a workspace gets ``--wait/--no-wait`` for its writer lock."""
        if any(p.name == "workspace" for p in cmd.params) and (name or cmd.name) not in READ_ONLY_COMMANDS:
            cmd.params.append(_wait_option())
        super().add_command(cmd, name)


#: Commands that take --workspace but never write it (no writer lock, no --wait).
READ_ONLY_COMMANDS = ("info", "reconstruct")


def _wait_option() -> click.Option:
    def apply(ctx: click.Context, _param: click.Parameter, wait: bool) -> None:
        from clay_explore.core.lock import set_wait_policy

        ctx.call_on_close(set_wait_policy(wait, lambda msg: click.echo(msg, err=True)))

    return click.Option(
        ["--wait/--no-wait"],
        default=False,
        show_default=True,
        expose_value=False,
        callback=apply,
        help="When another process writes the workspace: wait for it (--wait) "
        "or stop at once with an error naming it (--no-wait).",
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clay-explore")
def cli() -> None:
    """Explore what the Clay v1.5 foundation model keeps and loses in one image embedding."""


def echo_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (the `--json` output of every command)."""
    from clay_explore.core.workspace import _json_default

    click.echo(json.dumps(obj, indent=2, default=_json_default))


for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as _err:  # a stage not built yet
        if _err.name != _name:
            raise
        continue
    _mod.register(cli)


def main() -> None:
    """Console-script entry."""
    cli(prog_name="clay-explore")


if __name__ == "__main__":
    sys.exit(main())
