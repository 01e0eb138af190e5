"""Fit an aggregator and its expander on precomputed tokens, with Clay's decoder frozen.

The chain trained here is: patch tokens -> aggregator -> image vector -> expander -> tokens ->
Clay's decoder (frozen; gradients pass through it to the expander, never into Clay) -> normalised
pixels, compared with the chip's own normalised pixels (L1 or MSE over valid pixels). Tokens and
chips stream from the workspace in batches; nothing but one batch (and the next, prefetched) is
in memory. Chips are split once, by ``split_seed``, into spatially blocked train / val / test
sets (``splits``); each of ``seeds`` initialisation seeds trains on train, stops early when the
val loss has not improved for ``patience`` epochs and keeps its best epoch. Test chips are left
for ``evaluate``. Storage (one folder per seed) is in ``fit_store``.
"""

from __future__ import annotations

import copy
import time as _time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from clay_explore.core.defaults import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_FIT_SEEDS, DEFAULT_LR, LOSSES
from clay_explore.core.errors import CancelledError
from clay_explore.core.lock import writes_workspace
from clay_explore.core.progress import Cancel, Progress, ProgressFn, is_cancelled
from clay_explore.core.workspace import Workspace
from clay_explore.model.device import model_device, to_device
from clay_explore.research.aggregate import Aggregator, Expander, build_aggregator
from clay_explore.research.fit_store import (  # noqa: F401  (re-exported: callers import these from fit)
    CONFIG_FILE,
    FIT_STAGE,
    RESUME_FILE,
    WEIGHTS_FILE,
    FittedMethod,
    base_method,
    fit_name,
    fit_seeds,
    fitted_methods,
    has_complete_fit,
    is_stale,
    load_method,
    load_resume,
    load_seeds,
    method_config,
    method_dir,
    record_stage,
    resume_path,
    save_resume,
    save_weights,
)
from clay_explore.research.inputs import (
    ChipMeta,
    batches_by_gsd,
    chip_meta,
    embeddings_info,
    normalised_chips,
    read_tokens,
    waves_of,
)
from clay_explore.research.provenance import model_for_workspace, model_honesty
from clay_explore.research.splits import DEFAULT_FRACTIONS, DEFAULT_SPLIT_SEED, Split, blocked_split

#: Config entries that must match for a rerun to resume a previous, unfinished fit of a seed.
RESUME_KEYS = (
    "method", "aggregator", "expander", "loss", "lr", "weight_decay", "batch_size", "seed", "split_seed",
    "epochs_requested", "patience", "train_rows", "val_rows", "embeddings_sha256", "embeddings_precision",
)  # fmt: skip
DEFAULT_WEIGHT_DECAY = 1e-4
DEFAULT_PATIENCE = 3
#: A validation loss must beat the best by this relative margin to count as an improvement.
MIN_REL_IMPROVEMENT = 1e-4


# ---------------------------------------------------------------------------- data
@dataclass
class Batch:
    """One batch of chips of a single gsd, ready for the model."""

    rows: np.ndarray
    cls: Tensor  # [B, D]
    patches: Tensor  # [B, L, D]
    meta: Tensor  # [B, 8]
    time: Tensor  # [B, 4]
    latlon: Tensor  # [B, 4]
    gsd: Tensor  # 0-d
    target: Tensor  # [B, L, C*P*P] normalised pixels
    valid: Tensor  # [B, L, C*P*P] bool


def patchify(x: Tensor, patch: int) -> Tensor:
    """[B, C, H, W] -> [B, L, C*P*P], the decoder's output layout (band, row, col)."""
    return rearrange(x, "b c (h i) (w j) -> b (h w) (c i j)", i=patch, j=patch)


def load_batch(ws: Workspace, rows: np.ndarray, meta: ChipMeta, patch: int, with_pixels: bool = True) -> Batch:
    """Read the tokens (and the normalised chips) of ``rows``."""
    cls, patches = read_tokens(ws, rows)
    if with_pixels:
        z, valid = normalised_chips(ws, rows)
        target, valid_t = patchify(torch.from_numpy(z), patch), patchify(torch.from_numpy(valid), patch)
    else:
        target = valid_t = torch.empty(0)
    return Batch(
        rows=rows,
        cls=torch.from_numpy(cls),
        patches=torch.from_numpy(patches),
        meta=torch.from_numpy(meta.meta[rows]),
        time=torch.from_numpy(meta.time[rows]),
        latlon=torch.from_numpy(meta.latlon[rows]),
        gsd=torch.tensor(float(meta.gsd[rows[0]]), dtype=torch.float32),
        target=target,
        valid=valid_t,
    )


def gsd_batches(
    rows: Sequence[int], meta: ChipMeta, batch_size: int, shuffle_seed: int | None = None
) -> list[np.ndarray]:
    """Single-gsd batches of ``rows``; with a seed, chips and batch order are shuffled."""
    if shuffle_seed is None:
        return list(batches_by_gsd(rows, meta.gsd, batch_size))
    rng = np.random.default_rng(shuffle_seed)
    groups = list(batches_by_gsd(rng.permutation(np.asarray(rows, dtype=np.int64)), meta.gsd, batch_size))
    return [np.sort(groups[i]) for i in rng.permutation(len(groups))]


def stream_batches(
    ws: Workspace,
    rows: Sequence[int],
    meta: ChipMeta,
    patch: int,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    with_pixels: bool = True,
    device: Any = None,
) -> Iterator[Batch]:
    """Batches of one gsd each, read in a background thread one batch ahead of use (moved to ``device``)."""
    groups = gsd_batches(rows, meta, batch_size, shuffle_seed)
    if not groups:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(load_batch, ws, groups[0], meta, patch, with_pixels)
        for i in range(len(groups)):
            batch = future.result()
            if i + 1 < len(groups):
                future = pool.submit(load_batch, ws, groups[i + 1], meta, patch, with_pixels)
            yield to_device(batch, device)


# ---------------------------------------------------------------------------- model
class VectorToPixels(nn.Module):
    """Aggregator + expander + Clay's frozen decoder: tokens -> vector -> tokens -> pixels."""

    def __init__(self, aggregator: Aggregator, expander: Expander, clay: nn.Module):
        super().__init__()
        self.aggregator = aggregator
        self.expander = expander
        self.clay = [clay]  # a list, so Clay's weights are neither trained nor saved with ours

    @property
    def model(self) -> Any:
        return self.clay[0]

    def vector(self, batch: Batch) -> Tensor:
        """Image vectors [B, D']."""
        return self.aggregator(batch.patches, batch.cls, batch.meta)

    def render(self, vector: Tensor, batch: Batch, waves: Tensor) -> Tensor:
        """Image vectors -> normalised pixels [B, L, C*P*P] through the frozen decoder."""
        tokens = self.expander(vector)  # [B, 1+L, D]
        return self.model.decode(tokens, batch.time, batch.latlon, batch.gsd, waves)

    def forward(self, batch: Batch, waves: Tensor) -> Tensor:
        return self.render(self.vector(batch), batch, waves)


def masked_loss(pred: Tensor, target: Tensor, valid: Tensor, kind: str) -> Tensor:
    """L1 or MSE over the valid pixels (nodata pixels do not count)."""
    diff = (pred.float() - target)[valid]
    if diff.numel() == 0:
        return pred.sum() * 0.0
    return diff.abs().mean() if kind == "l1" else diff.pow(2).mean()


def default_hidden(dim: int) -> int:
    """Expander width: the encoder width, kept between 64 and 256 (the decoder dominates the cost)."""
    return int(min(256, max(64, dim)))


def build_pair(
    method: str,
    dim: int,
    grid: int,
    *,
    out_dim: int | None = None,
    hidden: int | None = None,
    agg_kwargs: dict[str, Any] | None = None,
) -> tuple[Aggregator, Expander]:
    """A fresh aggregator and the matching expander."""
    agg = build_aggregator(method, dim=dim, grid=grid, out_dim=out_dim, **(agg_kwargs or {}))
    exp = Expander(in_dim=agg.out_dim, dim=dim, grid=grid, hidden=hidden or default_hidden(dim))
    return agg, exp


# ---------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class FitSettings:
    """Everything that defines a fit besides the method and its initialisation seed."""

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    patience: int = DEFAULT_PATIENCE
    loss: str = "mse"
    out_dim: int | None = None
    hidden: int | None = None
    split_seed: int = DEFAULT_SPLIT_SEED
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.out_dim is not None and self.out_dim < 1:
            raise ValueError(f"out_dim (the vector width) must be >= 1, got {self.out_dim}")


@dataclass
class FitContext:
    """What every seed of one fit shares: workspace, frozen Clay, chip metadata, split, storage name."""

    ws: Workspace
    method: str
    name: str
    model: Any
    settings: FitSettings
    agg_kwargs: dict[str, Any]
    info: dict[str, Any]
    meta: ChipMeta
    waves: Tensor
    split: Split
    grid: int
    dim: int
    patch: int
    chip_ids: list[str]


def _context(
    ws: Workspace,
    method: str,
    settings: FitSettings,
    agg_kwargs: dict[str, Any] | None,
    checkpoint: Any,
    model: Any,
    device: Any = None,
) -> FitContext:
    info = embeddings_info(ws)
    model = model_for_workspace(ws, checkpoint, model, device=device)
    n, grid, dim, patch = int(info["n_chips"]), int(info["grid"]), int(model.config.dim), int(model.config.patch_size)
    table = ws.chip_table()
    split = blocked_split(table.iloc[:n], split_seed=settings.split_seed, fractions=settings.fractions)
    chip_ids = [str(c) for c in table["chip_id"]] if "chip_id" in table else [str(i) for i in range(n)]
    return FitContext(
        ws, method, fit_name(method, settings.out_dim, dim), model, settings, dict(agg_kwargs or {}), info,
        chip_meta(ws), torch.from_numpy(waves_of(ws)), split, grid, dim, patch, chip_ids,
    )  # fmt: skip


def _seed_config(ctx: FitContext, aggregator: Aggregator, expander: Expander, seed: int) -> dict[str, Any]:
    """The config saved with one seed's weights (its settings part decides whether a rerun resumes)."""
    s, split = ctx.settings, ctx.split
    return {
        "method": ctx.method,
        "name": ctx.name,
        "aggregator": aggregator.config(),
        "expander": expander.config(),
        "out_dim": aggregator.out_dim,
        "n_params": {
            "aggregator": aggregator.n_params,
            "expander": expander.n_params,
            "total": aggregator.n_params + expander.n_params,
        },
        "loss": s.loss,
        "lr": s.lr,
        "weight_decay": s.weight_decay,
        "batch_size": s.batch_size,
        "seed": seed,
        "split_seed": s.split_seed,
        "fractions": list(s.fractions),
        "epochs_requested": s.epochs,
        "patience": s.patience,
        "split": split.record(),
        "train_rows": split.train.tolist(),
        "val_rows": split.val.tolist(),
        "test_rows": split.test.tolist(),
        "val_chip_ids": [ctx.chip_ids[i] for i in split.val],
        "test_chip_ids": [ctx.chip_ids[i] for i in split.test],
        "embeddings_sha256": ctx.info.get("sha256"),
        "embeddings_precision": ctx.info.get("precision"),
        "checkpoint_preset": ctx.info.get("preset"),
        **model_honesty(ctx.model),
    }


# ---------------------------------------------------------------------------- training loop
def _evaluate_loss(net: VectorToPixels, batches: Iterator[Batch], waves: Tensor, loss: str) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            pred = net(batch, waves)
            n = int(batch.valid.sum())
            total += float(masked_loss(pred, batch.target, batch.valid, loss)) * n
            count += n
    return total / max(count, 1)


def _snapshot(aggregator: Aggregator, expander: Expander, epoch: int, val: float) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "val_loss": val,
        "state": (copy.deepcopy(aggregator.state_dict()), copy.deepcopy(expander.state_dict())),
    }


class _SeedRun:
    """One initialisation seed of a fit: build, (resume,) train with early stopping on val, save the best."""

    def __init__(self, ctx: FitContext, seed: int):
        self.ctx, self.seed = ctx, seed
        s = ctx.settings
        torch.manual_seed(seed)
        self.aggregator, self.expander = build_pair(
            ctx.method, ctx.dim, ctx.grid, out_dim=s.out_dim, hidden=s.hidden, agg_kwargs=ctx.agg_kwargs
        )
        self.device = model_device(ctx.model)  # train where Clay's decoder runs
        self.aggregator.to(self.device)
        self.expander.to(self.device)
        self.waves = ctx.waves.to(self.device)
        self.net = VectorToPixels(self.aggregator, self.expander, ctx.model)
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        steps = len(gsd_batches(ctx.split.train, ctx.meta, s.batch_size))
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=max(1, s.epochs * steps))
        self.config = _seed_config(ctx, self.aggregator, self.expander, seed)
        self.resume_settings = {k: self.config[k] for k in RESUME_KEYS}

    def val_loss(self) -> float:
        ctx, s = self.ctx, self.ctx.settings
        batches = stream_batches(ctx.ws, ctx.split.val, ctx.meta, ctx.patch, s.batch_size, device=self.device)
        return _evaluate_loss(self.net, batches, self.waves, s.loss)

    def _train_epoch(self, epoch: int, bar: Progress, cancel: Cancel, best_epoch: int) -> float:
        ctx, s = self.ctx, self.ctx.settings
        total, count = 0.0, 0
        shuffle = self.seed * 100_003 + epoch
        batches = stream_batches(
            ctx.ws, ctx.split.train, ctx.meta, ctx.patch, s.batch_size, shuffle_seed=shuffle, device=self.device
        )
        for batch in batches:
            if is_cancelled(cancel):
                raise CancelledError(
                    f"Fitting '{ctx.name}' (seed {self.seed}) cancelled in epoch {epoch}; the {epoch - 1} finished "
                    f"epochs are kept (best weights so far: epoch {best_epoch}). Run the same `clay-explore fit` "
                    f"again to resume from epoch {epoch}."
                )
            batch_loss = masked_loss(self.net(batch, self.waves), batch.target, batch.valid, s.loss)
            self.opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            self.opt.step()
            self.sched.step()
            total += batch_loss.item() * len(batch.rows)
            count += len(batch.rows)
            bar.update(len(batch.rows), epoch=epoch, loss=batch_loss.item(), seed=self.seed)
        return total / max(count, 1)

    def run(self, progress: ProgressFn | None, cancel: Cancel, show_progress: bool, label: str) -> dict[str, Any]:
        ctx, s = self.ctx, self.ctx.settings
        agg, exp = self.aggregator, self.expander
        t0 = _time.perf_counter()
        resume = load_resume(ctx.ws, ctx.name, self.seed, self.resume_settings)
        if resume is not None:
            agg.load_state_dict(resume["aggregator"])
            exp.load_state_dict(resume["expander"])
            self.opt.load_state_dict(resume["optimizer"])
            self.sched.load_state_dict(resume["scheduler"])
            history, best, stale = resume["history"], resume["best"], int(resume["stale"])
            t0 -= float(resume["fit_seconds"])
        else:
            history = [{"epoch": 0, "train_loss": None, "val_loss": self.val_loss()}]
            best, stale = _snapshot(agg, exp, 0, history[0]["val_loss"]), 0
        first_epoch, status = history[-1]["epoch"] + 1, "complete"
        self.config["resumed_from_epoch"] = first_epoch - 1 if resume is not None else None
        n_train = len(ctx.split.train)
        bar = Progress(s.epochs * n_train, stage=label, callback=progress, show=show_progress,
                       done=(first_epoch - 1) * n_train)  # fmt: skip
        try:
            for epoch in range(first_epoch, s.epochs + 1):
                if stale >= s.patience:  # a resumed fit that had already stopped early
                    break
                epoch_start = _time.perf_counter()
                train_loss = self._train_epoch(epoch, bar, cancel, best["epoch"])
                val = self.val_loss()
                seconds = round(_time.perf_counter() - epoch_start, 3)
                history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val, "seconds": seconds})
                if val < best["val_loss"] * (1 - MIN_REL_IMPROVEMENT):
                    best, stale = _snapshot(agg, exp, epoch, val), 0
                else:
                    stale += 1
                save_resume(ctx.ws, ctx.name, self.seed, {
                    "settings": self.resume_settings, "history": history, "best": best, "stale": stale,
                    "aggregator": agg.state_dict(), "expander": exp.state_dict(),
                    "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                    "fit_seconds": _time.perf_counter() - t0,
                })  # fmt: skip
                if stale >= s.patience:
                    break
        except CancelledError:
            status = "cancelled"
            raise
        except BaseException:
            status = "interrupted"
            raise
        finally:
            bar.close()
            self._store(status, history, best, t0)
        return self.config

    def _store(self, status: str, history: list[dict[str, Any]], best: dict[str, Any], t0: float) -> None:
        """Save the best epoch; an interrupted fit is saved only when it finished an epoch and there is
        no complete fit of this seed it would replace (its finished epochs stay in resume.pt)."""
        ctx = self.ctx
        if status == "complete" or (len(history) > 1 and not has_complete_fit(ctx.ws, ctx.name, self.seed)):
            self.aggregator.load_state_dict(best["state"][0])
            self.expander.load_state_dict(best["state"][1])
            self.config.update({
                "status": status,
                "history": history,
                "epochs_run": history[-1]["epoch"],
                "best_epoch": best["epoch"],
                "best_val_loss": best["val_loss"],
                "initial_val_loss": history[0]["val_loss"],
                "fit_seconds": round(_time.perf_counter() - t0, 3),
                "fitted": datetime.now(UTC).isoformat(timespec="seconds"),
            })  # fmt: skip
            save_weights(ctx.ws, ctx.name, self.aggregator, self.expander, self.config, self.seed)
        if status == "complete":
            resume_path(ctx.ws, ctx.name, self.seed).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- storage of the whole fit
#: Per-seed entries copied into the summary's ``per_seed`` list.
PER_SEED_KEYS = ("seed", "status", "epochs_run", "best_epoch", "best_val_loss", "initial_val_loss", "fit_seconds")


def _write_summary(ctx: FitContext, seeds: Sequence[int]) -> dict[str, Any] | None:
    """methods/<name>/config.json (+ the first seed's weights at the top) from the seeds saved so far.

    The summary lists only the seeds of this run that have weights; it never replaces a complete
    summary by an incomplete one.
    """
    ws, name = ctx.ws, ctx.name
    configs = [(s, method_config(ws, name, s)) for s in seeds]
    saved = [(s, c) for s, c in configs if c is not None and (method_dir(ws, name, s) / WEIGHTS_FILE).exists()]
    if not saved:
        return None
    complete = all((c or {}).get("status") == "complete" for _, c in configs)
    if not complete and has_complete_fit(ws, name):
        return None
    primary_seed, primary = saved[0]
    summary = {
        **primary,
        "status": "complete" if complete else ("partial" if len(saved) > 1 else primary.get("status")),
        "seeds": [s for s, _ in saved],
        "per_seed": [{k: c.get(k) for k in PER_SEED_KEYS} for _, c in saved],
        "fit_seconds": round(sum(float(c.get("fit_seconds") or 0.0) for _, c in saved), 3),
        "best_val_loss_mean": float(np.mean([c["best_val_loss"] for _, c in saved])),
    }
    fm = load_method(ws, name, primary_seed)
    save_weights(ws, name, fm.aggregator, fm.expander, summary, None)
    record_stage(ws, name, summary)
    return summary


@writes_workspace("fit")
def fit_method(
    workspace: str | Path | Workspace,
    method: str,
    *,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    seeds: int = DEFAULT_FIT_SEEDS,
    split_seed: int = DEFAULT_SPLIT_SEED,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    patience: int = DEFAULT_PATIENCE,
    loss: str = "mse",
    out_dim: int | None = None,
    hidden: int | None = None,
    agg_kwargs: dict[str, Any] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    checkpoint: str | Path | None = None,
    model: Any = None,
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
    show_progress: bool = True,
    device: Any = None,
) -> dict[str, Any]:
    """Fit ``method`` ``seeds`` times (initialisation seeds seed, seed+1, ...) on one blocked split.

    ``device`` ("auto", "cpu", "cuda[:N]", "mps"; None = $CLAY_EXPLORE_DEVICE, or where a given model is)
    is where Clay's decoder, the aggregator and the expander run.

    Every seed trains the aggregator (if it has weights) and its expander on the train chips, stops
    early on the val chips and saves its best epoch under ``methods/<name>/seed<k>/``; test chips
    are never seen. ``out_dim`` sets the vector width D' (the fit is then named ``method@D'``).
    Returns the summary config (settings, split, seeds, per-seed results, total fit seconds).

    Cancelling (or Ctrl-C) raises CancelledError/KeyboardInterrupt; running the same fit again
    resumes each seed after its last finished epoch with the same result as an uninterrupted run.
    An interrupted fit never replaces a complete one. ``device``: where Clay's decoder runs
    ("auto", "cpu", "cuda[:N]", "mps"; None = $CLAY_EXPLORE_DEVICE).
    """
    from clay_explore.research.aggregate import METHODS

    if method not in METHODS:
        raise ValueError(f"Unknown aggregation method '{method}'. Choose one of: {', '.join(METHODS)}.")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    settings = FitSettings(epochs, batch_size, lr, weight_decay, patience, loss, out_dim, hidden, split_seed,
                           tuple(float(f) for f in fractions))  # fmt: skip
    settings.check()
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    ctx = _context(ws, method, settings, agg_kwargs, checkpoint, model, device)
    seed_list = [seed + i for i in range(seeds)]
    try:
        for i, s in enumerate(seed_list):
            label = f"fit {ctx.name}" + (f" seed {s} ({i + 1}/{seeds})" if seeds > 1 else "")
            _SeedRun(ctx, s).run(progress, cancel, show_progress, label)
    finally:
        summary = _write_summary(ctx, seed_list)
    return summary if summary is not None else method_config(ws, ctx.name) or {}
