"""`clay-explore embed | fit | evaluate | reconstruct`: the research core's stages.

Each command parses its options, calls one library function and prints the result.
"""

from __future__ import annotations

import click

from clay_explore.cli.device_options import BATCH_SIZE_AUTO, DEVICE
from clay_explore.core.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_FIT_SEEDS,
    DEFAULT_K,
    DEFAULT_LOSS,
    DEFAULT_LR,
    DEFAULT_SEED,
    DEFAULT_SPLIT_SEED,
    LOSSES,
    METHODS,
)

_WORKSPACE = click.option(
    "--workspace", "-w", required=True, type=click.Path(file_okay=False), help="Workspace folder."
)
_CHECKPOINT = click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Clay checkpoint (default: the one the embeddings were made with, "
    "else CLAY_CHECKPOINT / the Hugging Face cache).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def register(group: click.Group) -> None:
    for command in (embed, fit, evaluate, reconstruct):
        group.add_command(command)


def _fit_lines(method: str, loss: str, config: dict) -> list[str]:
    """What `fit` prints: the split, then one line per initialisation seed (validation loss, best epoch)."""
    lines = []
    split = config.get("split") or {}
    if split.get("test") is not None:
        lines.append(
            f"split (seed {split.get('split_seed')}, spatially blocked): {split.get('train')} train / "
            f"{split.get('val')} val / {split.get('test')} test chips"
        )
    runs = [r for r in config.get("runs") or config.get("per_seed") or [] if isinstance(r, dict)] or [config]
    name = config.get("name") or method
    for run in runs:
        if run.get("resumed_from_epoch"):
            lines.append(f"resumed after epoch {run['resumed_from_epoch']}")
        seed = f" seed {run['seed']}" if "seed" in run else ""
        initial, best = run.get("initial_val_loss"), run.get("best_val_loss")
        losses = f"{initial:.4f} -> {best:.4f}" if isinstance(initial, float) and isinstance(best, float) else "-"
        lines.append(
            f"{name}{seed}: validation {loss} {losses} (best epoch {run.get('best_epoch')} of "
            f"{run.get('epochs_run')}), {run.get('fit_seconds', 0.0):.1f} s"
        )
    params = (config.get("n_params") or {}).get("total")
    if params is not None:
        width = config.get("out_dim")
        lines.append(f"{params:,} parameters" + (f", vector width {width}" if width else ""))
    return lines


def _untrained_line(record: dict) -> None:
    """The honesty note, on stdout with the figures it qualifies."""
    if record.get("untrained"):
        click.echo(f"NOTE: {record.get('note')}")


@click.command()
@_WORKSPACE
@_CHECKPOINT
@BATCH_SIZE_AUTO
@click.option(
    "--fast",
    is_flag=True,
    help="Fastest precision the device does natively (bf16 on GPUs and bf16 CPUs, "
    "else int8 if as fast and accurate, else fp32); slightly less exact.",
)
@DEVICE
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Encode on a Dask cluster of N processes on this machine (this process writes the workspace).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="Encode on an existing Dask cluster (`dask scheduler` + `dask worker`); see README.",
)
@click.option(
    "--send-chips",
    is_flag=True,
    default=None,
    help="Send chips with each task (default: only when a worker cannot read the workspace itself).",
)
@_JSON
def embed(
    workspace: str,
    checkpoint: str | None,
    batch_size: int | str,
    fast: bool,
    device: str | None,
    workers: int | None,
    scheduler: str | None,
    send_chips: bool | None,
    as_json: bool,
) -> None:
    """Encode every chip with Clay; store CLS and patch tokens (resumable)."""
    from clay_explore.cli.main import echo_json
    from clay_explore.research.embed import embed_workspace

    record = embed_workspace(
        workspace,
        checkpoint=checkpoint,
        batch_size=batch_size,
        fast=fast,
        device=device,
        workers=workers,
        scheduler=scheduler,
        send_chips=send_chips or None,
    )
    if as_json:
        echo_json(record)
        return
    if record.get("already_complete") or record.get("resumed_from") == record["n_chips"]:
        click.echo(f"all {record['n_chips']} chips were already embedded with this checkpoint; nothing to do")
        _untrained_line(record)
        return
    if record.get("resumed_from"):
        click.echo(f"resumed: {record['resumed_from']} chips were already stored")
    click.echo(
        f"embedded {record['n_chips']} chips ({record['grid']}x{record['grid']} patches, D={record['dim']}, "
        f"{record['precision']} on {record.get('device', 'cpu')}, batch {record['batch_size']}) in "
        f"{record['seconds']:.1f} s with {record['preset']} checkpoint "
        f"{(record.get('sha256') or '?')[:12]}"
    )
    _untrained_line(record)


@click.command()
@_WORKSPACE
@click.option("--method", "-m", required=True, type=click.Choice(METHODS), help="Aggregation to fit.")
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULT_EPOCHS, show_default=True)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=DEFAULT_FIT_SEEDS,
    show_default=True,
    help="Train the method this many times (initialisation seeds --seed, --seed+1, ...) on the same split; "
    "evaluate reports mean ± sd over them.",
)
@click.option(
    "--seed", type=int, default=DEFAULT_SEED, show_default=True, help="First initialisation (and batch-order) seed."
)
@click.option(
    "--split-seed",
    type=int,
    default=DEFAULT_SPLIT_SEED,
    show_default=True,
    help="Seed of the spatially blocked train / val / test split (independent of the initialisation).",
)
@click.option(
    "--out-dim",
    type=click.IntRange(min=1),
    default=None,
    help="Vector width D' of the method (default: the token width). A fit at another width is kept "
    "beside the default one as METHOD@D' and feeds the rate-distortion view.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_LR, show_default=True)
@click.option("--loss", type=click.Choice(LOSSES), default=DEFAULT_LOSS, show_default=True)
@_CHECKPOINT
@DEVICE
@_JSON
def fit(
    workspace: str,
    method: str,
    epochs: int,
    seeds: int,
    seed: int,
    split_seed: int,
    out_dim: int | None,
    batch_size: int,
    lr: float,
    loss: str,
    checkpoint: str | None,
    device: str | None,
    as_json: bool,
) -> None:
    """Train an aggregator (if it has weights) and its expander through Clay's frozen decoder, once per seed."""
    from clay_explore.cli.main import echo_json
    from clay_explore.research.fit import fit_method

    config = fit_method(
        workspace,
        method,
        epochs=epochs,
        seeds=seeds,
        seed=seed,
        split_seed=split_seed,
        out_dim=out_dim,
        batch_size=batch_size,
        lr=lr,
        loss=loss,
        checkpoint=checkpoint,
        device=device,
    )
    if as_json:
        echo_json({k: v for k, v in config.items() if k not in ("train_rows", "val_rows", "test_rows")})
        return
    for line in _fit_lines(method, loss, config):
        click.echo(line)
    _untrained_line(config)


@click.command()
@_WORKSPACE
@_CHECKPOINT
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True)
@click.option("--k", type=click.IntRange(min=1), default=DEFAULT_K, show_default=True, help="Neighbours for NP@k.")
@click.option(
    "--rate-distortion",
    "rate_distortion",
    is_flag=True,
    help="Also print test PSNR against vector width per method (fit with --out-dim to add widths).",
)
@click.option(
    "--compare",
    "compare",
    nargs=2,
    multiple=True,
    metavar="METHOD OTHER",
    help="Also compare this pair (difference, 95 % CI, verdict), e.g. --compare linear attention; "
    "repeat for more pairs. Every method is always compared with mean pooling.",
)
@click.option(
    "--split-seed",
    type=int,
    default=None,
    help="Evaluate the fits made on this split (default: the split most fits share).",
)
@DEVICE
@click.option("--stored", is_flag=True, help="Show the workspace's evaluation.json as it is, without evaluating again.")
@_JSON
def evaluate(
    workspace: str,
    checkpoint: str | None,
    batch_size: int,
    k: int,
    rate_distortion: bool,
    compare: tuple[tuple[str, str], ...],
    split_seed: int | None,
    device: str | None,
    stored: bool,
    as_json: bool,
) -> None:
    """Compare every method with the references and baselines on held-out test chips -> evaluation.json.

    Prints the verdict first, then one row per reference (mae, all_tokens, cls_only), method (mean ± sd over
    seeds, difference from mean pooling with its 95 % CI and the verdict in words) and baseline (band_mean,
    chip_mean, thumbnail), NP@k with its chance level.
    """
    from clay_explore.cli.main import echo_json
    from clay_explore.research.evaluation_summary import print_report

    if stored:
        from clay_explore.core.errors import StageMissingError
        from clay_explore.core.workspace import EVALUATION, Workspace

        report = Workspace.open(workspace).read_json(EVALUATION)
        if not report:
            raise StageMissingError(
                f"{workspace} has no evaluation.json yet; run `clay-explore evaluate "
                f"--workspace {workspace}` (without --stored) first."
            )
    else:
        from clay_explore.research.evaluate import evaluate_workspace

        report = evaluate_workspace(
            workspace,
            checkpoint=checkpoint,
            batch_size=batch_size,
            k=k,
            device=device,
            split_seed=split_seed,
            compare=[tuple(p) for p in compare] or None,
        )
    if as_json:
        echo_json(report)
        return
    print_report(report, click.echo, rate_distortion=rate_distortion, pairs=[tuple(p) for p in compare])
    if not stored:
        click.echo(f"written to {workspace}/evaluation.json")
    _untrained_line(report.get("model") or {})


@click.command()
@_WORKSPACE
@click.option("--chip", required=True, help="chip_id (or row number) of the chip to show.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@_CHECKPOINT
@DEVICE
@_JSON
def reconstruct(workspace: str, chip: str, out: str, checkpoint: str | None, device: str | None, as_json: bool) -> None:
    """Side-by-side PNG: original, all tokens, CLS only and each fitted method, with figures."""
    from clay_explore.cli.main import echo_json
    from clay_explore.research.reconstruct import write_comparison

    result = write_comparison(workspace, chip, out, checkpoint=checkpoint, device=device)
    if as_json:
        echo_json(result)
        return
    click.echo(f"wrote {result['out']} ({', '.join(result['panels'])})")
    _untrained_line(result)
