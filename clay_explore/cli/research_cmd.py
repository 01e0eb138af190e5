"""`clay-explore embed | fit | evaluate | reconstruct`: the research core's stages.

Each command parses its options, calls one library function and prints the result.
"""

from __future__ import annotations

import click

from clay_explore.research.aggregate import METHODS

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


def _untrained_line(record: dict) -> None:
    """The honesty note, on stdout with the figures it qualifies."""
    if record.get("untrained"):
        click.echo(f"NOTE: {record.get('note')}")


@click.command()
@_WORKSPACE
@_CHECKPOINT
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Chips per forward pass.")
@click.option("--fast", is_flag=True, help="bf16 transformer weights: about 2x faster on CPU, slightly less exact.")
@_JSON
def embed(workspace: str, checkpoint: str | None, batch_size: int, fast: bool, as_json: bool) -> None:
    """Encode every chip with Clay; store CLS and patch tokens (resumable)."""
    from clay_explore.cli.main import echo_json
    from clay_explore.research.embed import embed_workspace

    record = embed_workspace(workspace, checkpoint=checkpoint, batch_size=batch_size, fast=fast)
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
        f"{record['precision']}) in {record['seconds']:.1f} s with {record['preset']} checkpoint "
        f"{(record.get('sha256') or '?')[:12]}"
    )
    _untrained_line(record)


@click.command()
@_WORKSPACE
@click.option("--method", "-m", required=True, type=click.Choice(METHODS), help="Aggregation to fit.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, initialisation and batches.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True)
@click.option("--loss", type=click.Choice(["mse", "l1"]), default="mse", show_default=True)
@_CHECKPOINT
@_JSON
def fit(
    workspace: str,
    method: str,
    epochs: int,
    seed: int,
    batch_size: int,
    lr: float,
    loss: str,
    checkpoint: str | None,
    as_json: bool,
) -> None:
    """Train an aggregator (if it has weights) and its expander through Clay's frozen decoder."""
    from clay_explore.cli.main import echo_json
    from clay_explore.research.fit import fit_method

    config = fit_method(
        workspace, method, epochs=epochs, seed=seed, batch_size=batch_size, lr=lr, loss=loss, checkpoint=checkpoint
    )
    if as_json:
        echo_json({k: v for k, v in config.items() if k not in ("train_rows", "val_rows")})
        return
    if config.get("resumed_from_epoch"):
        click.echo(f"resumed after epoch {config['resumed_from_epoch']}")
    click.echo(
        f"{method}: validation {loss} {config['initial_val_loss']:.4f} -> {config['best_val_loss']:.4f} "
        f"(best epoch {config['best_epoch']} of {config['epochs_run']}), "
        f"{config['n_params']['total']:,} parameters, {config['fit_seconds']:.1f} s"
    )
    _untrained_line(config)


@click.command()
@_WORKSPACE
@_CHECKPOINT
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True, help="Neighbours for NP@k.")
@_JSON
def evaluate(workspace: str, checkpoint: str | None, batch_size: int, k: int, as_json: bool) -> None:
    """Compare all aggregations: PSNR/SSIM/SAM, NP@k, kNN agreement, probes -> evaluation.json."""
    from clay_explore.cli.main import echo_json
    from clay_explore.research.evaluate import evaluate_workspace

    report = evaluate_workspace(workspace, checkpoint=checkpoint, batch_size=batch_size, k=k)
    if as_json:
        echo_json(report)
        return
    np_label = f"NP@{report['k']}"
    click.echo(
        f"{'method':<12}{'PSNR dB':>9}{'SSIM':>8}{'SAM deg':>9}{np_label:>8}{'agg params':>12}{'total':>12}"
        f"{'kNN acc':>9}{'LR acc':>8}"
    )
    for name, m in report["methods"].items():
        rec = (m.get("reconstruction") or {}).get("all") or {}

        def fmt(v, width, digits):
            return f"{v:{width}.{digits}f}" if isinstance(v, (int, float)) else f"{'-':>{width}}"

        params = m["n_params"] if isinstance(m["n_params"], dict) else {"aggregator": 0, "total": m["n_params"]}
        click.echo(
            f"{name:<12}{fmt(rec.get('psnr'), 9, 2)}{fmt(rec.get('ssim'), 8, 3)}"
            f"{fmt(rec.get('sam_deg'), 9, 2)}{fmt(m.get('np_at_k'), 8, 2)}"
            f"{params['aggregator']:>12,}{params['total']:>12,}"
            f"{fmt((m.get('probe') or {}).get('knn_accuracy'), 9, 2)}{fmt((m.get('probe') or {}).get('logreg_accuracy'), 8, 2)}"
        )
    click.echo(
        f"data range {report['data_range']['value']} {report['data_range']['units']}; "
        f"written to {workspace}/evaluation.json"
    )
    for note in report.get("notes", []):
        if note != report["model"].get("note"):
            click.echo(f"note: {note}")
    _untrained_line(report["model"])


@click.command()
@_WORKSPACE
@click.option("--chip", required=True, help="chip_id (or row number) of the chip to show.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@_CHECKPOINT
@_JSON
def reconstruct(workspace: str, chip: str, out: str, checkpoint: str | None, as_json: bool) -> None:
    """Side-by-side PNG: original, all tokens, CLS only and each fitted method, with figures."""
    from clay_explore.cli.main import echo_json
    from clay_explore.research.reconstruct import write_comparison

    result = write_comparison(workspace, chip, out, checkpoint=checkpoint)
    if as_json:
        echo_json(result)
        return
    click.echo(f"wrote {result['out']} ({', '.join(result['panels'])})")
    _untrained_line(result)
