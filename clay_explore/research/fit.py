"""Fit an aggregator and its expander on precomputed tokens, with Clay's decoder frozen.

The chain trained here is: patch tokens -> aggregator -> image vector -> expander -> tokens ->
Clay's decoder (frozen; gradients pass through it to the expander, never into Clay) -> normalised
pixels, compared with the chip's own normalised pixels (L1 or MSE over valid pixels). Tokens and
chips stream from the workspace in batches; nothing but one batch (and the next, prefetched) is
in memory. Chips are split into training and validation sets once per seed; training stops
early when the validation loss has not improved for ``patience`` epochs, and the best weights
are saved under ``methods/<method>/`` (weights.safetensors + config.json).
"""

from __future__ import annotations

import copy
import pickle
import time as _time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from clay_explore.research.aggregate import Aggregator, Expander, build_aggregator
from clay_explore.core.progress import Cancel, Progress, ProgressFn, is_cancelled
from clay_explore.research.inputs import ChipMeta, batches_by_gsd, chip_meta, embeddings_info, normalised_chips, read_tokens, waves_of
from clay_explore.research.provenance import model_for_workspace, model_honesty
from clay_explore.research.embed import STAGE as EMBED_STAGE
from clay_explore.core.errors import CancelledError, StageMissingError, WorkspaceError
from clay_explore.core.workspace import METHODS_DIR, Workspace, atomic_path

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
FIT_STAGE = "fit"
#: Training state after the last finished epoch (weights, optimiser, history) so a rerun resumes.
RESUME_FILE = "resume.pt"
#: Config entries that must match for a rerun to resume a previous, unfinished fit.
RESUME_KEYS = (
    "method", "aggregator", "expander", "loss", "lr", "weight_decay", "batch_size", "seed",
    "epochs_requested", "patience", "val_fraction", "train_rows", "embeddings_sha256", "embeddings_precision",
)  # fmt: skip
DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 8
DEFAULT_LR = 3e-3
DEFAULT_WEIGHT_DECAY = 1e-4
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_PATIENCE = 3
#: A validation loss must beat the best by this relative margin to count as an improvement.
MIN_REL_IMPROVEMENT = 1e-4
LOSSES = ("l1", "mse")


# ---------------------------------------------------------------------------- data
def split_rows(n: int, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split by chip (at least one chip in each when n >= 2)."""
    if n < 2:
        raise WorkspaceError(
            f"Fitting needs at least 2 chips (one to train, one to validate); the workspace has {n}. "
            "Re-chip into a new --workspace with a smaller --chip-size or a --stride below the chip size, "
            "or ingest/fetch a larger area or more files."
        )
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(np.clip(round(n * val_fraction), 1, n - 1))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


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
) -> Iterator[Batch]:
    """Batches of one gsd each, read in a background thread one batch ahead of use."""
    groups = gsd_batches(rows, meta, batch_size, shuffle_seed)
    if not groups:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(load_batch, ws, groups[0], meta, patch, with_pixels)
        for i in range(len(groups)):
            batch = future.result()
            if i + 1 < len(groups):
                future = pool.submit(load_batch, ws, groups[i + 1], meta, patch, with_pixels)
            yield batch


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


# ---------------------------------------------------------------------------- save / load
def method_dir(ws: Workspace, method: str) -> Path:
    return ws.path(METHODS_DIR, method)


def _record_stage(ws: Workspace, method: str, config: dict[str, Any]) -> None:
    """List the fitted method in the manifest's 'fit' stage (the weights themselves live in methods/)."""
    methods = dict((ws.stage(FIT_STAGE) or {}).get("methods") or {})
    methods[method] = {k: config.get(k) for k in ("status", "fitted", "epochs_run", "best_val_loss", "seed")}
    done = all(m.get("status") == "complete" for m in methods.values())
    ws.set_stage(FIT_STAGE, status="complete" if done else "partial", methods=methods)


def method_config(ws: Workspace, method: str) -> dict[str, Any] | None:
    """The config.json saved with a fitted method (settings, history, fit time), or None."""
    return ws.read_json(str(Path(METHODS_DIR, method, CONFIG_FILE)))


def save_method(ws: Workspace, method: str, aggregator: Aggregator, expander: Expander, config: dict[str, Any]) -> Path:
    """Write weights (safetensors) then config.json, each atomically; returns the folder."""
    folder = method_dir(ws, method)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"aggregator.{k}": v.detach().contiguous().clone() for k, v in aggregator.state_dict().items()}
    tensors.update({f"expander.{k}": v.detach().contiguous().clone() for k, v in expander.state_dict().items()})
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"method": method})
    ws.write_json(str(Path(METHODS_DIR, method, CONFIG_FILE)), config)
    return folder


@dataclass
class FittedMethod:
    """A fitted aggregator + expander and the config.json written with them."""

    name: str
    aggregator: Aggregator
    expander: Expander
    config: dict[str, Any]


def is_stale(ws: Workspace, method: str) -> bool:
    """True when ``method`` was fitted on embeddings of another checkpoint (or precision) than the current ones."""
    config = method_config(ws, method) or {}
    embed = ws.stage(EMBED_STAGE) or {}
    for key, fitted_key in (("sha256", "embeddings_sha256"), ("precision", "embeddings_precision")):
        current, fitted_on = embed.get(key), config.get(fitted_key)
        if current and fitted_on and current != fitted_on:
            return True
    return False


def fitted_methods(ws: Workspace, *, include_stale: bool = False) -> list[str]:
    """Names of the methods with saved weights (fitted on the current embeddings), in registry order."""
    from clay_explore.research.aggregate import METHODS

    root = ws.path(METHODS_DIR)
    present = (
        {p.name for p in root.iterdir() if (p / WEIGHTS_FILE).exists() and (p / CONFIG_FILE).exists()}
        if root.exists()
        else set()
    )
    return [m for m in METHODS if m in present and (include_stale or not is_stale(ws, m))]


def load_method(ws: Workspace, method: str) -> FittedMethod:
    """Rebuild a fitted method from ``methods/<method>/``."""
    folder = method_dir(ws, method)
    config = method_config(ws, method)
    if config is None or not (folder / WEIGHTS_FILE).exists():
        raise StageMissingError(
            f"Method '{method}' has not been fitted in {ws.root}. "
            f"Run `clay-explore fit --workspace {ws.root} --method {method}`."
        )
    agg = build_aggregator(**{**config["aggregator"], "name": method})
    exp = Expander(**config["expander"])
    tensors = load_file(str(folder / WEIGHTS_FILE))
    agg.load_state_dict(
        {k[len("aggregator.") :]: v for k, v in tensors.items() if k.startswith("aggregator.")}, strict=True
    )
    exp.load_state_dict(
        {k[len("expander.") :]: v for k, v in tensors.items() if k.startswith("expander.")}, strict=True
    )
    return FittedMethod(method, agg.eval(), exp.eval(), config)


# ---------------------------------------------------------------------------- resume
def _resume_path(ws: Workspace, method: str) -> Path:
    return method_dir(ws, method) / RESUME_FILE


def _save_resume(ws: Workspace, method: str, state: dict[str, Any]) -> None:
    """Write the training state after a finished epoch (atomically)."""
    path = _resume_path(ws, method)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_resume(ws: Workspace, method: str, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The saved training state of an unfinished fit with the same settings, else None."""
    path = _resume_path(ws, method)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # damaged: start over
        return None
    return state if state.get("settings") == settings else None


def _has_complete_fit(ws: Workspace, method: str) -> bool:
    config = method_config(ws, method) or {}
    return config.get("status") == "complete" and (method_dir(ws, method) / WEIGHTS_FILE).exists()


# ---------------------------------------------------------------------------- training
def _evaluate_loss(net: VectorToPixels, batches: Iterator[Batch], waves: Tensor, loss: str) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            pred = net(batch, waves)
            n = int(batch.valid.sum())
            total += float(masked_loss(pred, batch.target, batch.valid, loss)) * n
            count += n
    return total / max(count, 1)


def fit_method(
    workspace: str | Path | Workspace,
    method: str,
    *,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    patience: int = DEFAULT_PATIENCE,
    loss: str = "mse",
    out_dim: int | None = None,
    hidden: int | None = None,
    agg_kwargs: dict[str, Any] | None = None,
    checkpoint: str | Path | None = None,
    model: Any = None,
    progress: ProgressFn | None = None,
    cancel: Cancel = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train ``method``'s aggregator (if it has weights) and its expander; save the best epoch.

    Returns the saved config (history, best epoch, losses, parameter counts, fit seconds).
    The training state is kept after every finished epoch: cancelling (or Ctrl-C) raises
    CancelledError/KeyboardInterrupt, and running the same fit again resumes after the last
    finished epoch with the same result as an uninterrupted run. An interrupted fit never replaces
    a complete one; when there is none, the best finished epoch is saved with status 'cancelled'.
    """
    from clay_explore.research.aggregate import METHODS

    if method not in METHODS:
        raise ValueError(f"Unknown aggregation method '{method}'. Choose one of: {', '.join(METHODS)}.")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    info = embeddings_info(ws)
    model = model_for_workspace(ws, checkpoint, model)
    n, grid, dim, patch = int(info["n_chips"]), int(info["grid"]), int(model.config.dim), int(model.config.patch_size)
    torch.manual_seed(seed)
    train_rows, val_rows = split_rows(n, val_fraction, seed)
    aggregator, expander = build_pair(method, dim, grid, out_dim=out_dim, hidden=hidden, agg_kwargs=agg_kwargs)
    net = VectorToPixels(aggregator, expander, model)
    meta = chip_meta(ws)
    waves = torch.from_numpy(waves_of(ws))
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = len(gsd_batches(train_rows, meta, batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    table = ws.chip_table()
    chip_ids = [str(c) for c in table["chip_id"]] if "chip_id" in table else [str(i) for i in range(n)]

    config: dict[str, Any] = {
        "method": method,
        "aggregator": aggregator.config(),
        "expander": expander.config(),
        "n_params": {
            "aggregator": aggregator.n_params,
            "expander": expander.n_params,
            "total": aggregator.n_params + expander.n_params,
        },
        "loss": loss,
        "lr": lr,
        "weight_decay": weight_decay,
        "batch_size": batch_size,
        "seed": seed,
        "epochs_requested": epochs,
        "patience": patience,
        "val_fraction": val_fraction,
        "train_rows": train_rows.tolist(),
        "val_rows": val_rows.tolist(),
        "val_chip_ids": [chip_ids[i] for i in val_rows],
        "embeddings_sha256": info.get("sha256"),
        "embeddings_precision": info.get("precision"),
        "checkpoint_preset": info.get("preset"),
        **model_honesty(model),
    }
    settings = {k: config[k] for k in RESUME_KEYS}

    def validation_loss() -> float:
        return _evaluate_loss(net, stream_batches(ws, val_rows, meta, patch, batch_size), waves, loss)

    def snapshot(epoch: int, val: float) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "val_loss": val,
            "state": (copy.deepcopy(aggregator.state_dict()), copy.deepcopy(expander.state_dict())),
        }

    t0 = _time.perf_counter()
    resume = _load_resume(ws, method, settings)
    if resume is not None:
        aggregator.load_state_dict(resume["aggregator"])
        expander.load_state_dict(resume["expander"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        history, best, stale = resume["history"], resume["best"], int(resume["stale"])
        t0 -= float(resume["fit_seconds"])
    else:
        history = [{"epoch": 0, "train_loss": None, "val_loss": validation_loss()}]
        best, stale = snapshot(0, history[0]["val_loss"]), 0
    first_epoch, status = history[-1]["epoch"] + 1, "complete"
    config["resumed_from_epoch"] = first_epoch - 1 if resume is not None else None
    bar = Progress(
        epochs * len(train_rows),
        stage=f"fit {method}",
        callback=progress,
        show=show_progress,
        done=(first_epoch - 1) * len(train_rows),
    )
    try:
        for epoch in range(first_epoch, epochs + 1):
            if stale >= patience:  # a resumed fit that had already stopped early
                break
            total, count, epoch_start = 0.0, 0, _time.perf_counter()
            for batch in stream_batches(ws, train_rows, meta, patch, batch_size, shuffle_seed=seed * 100_003 + epoch):
                if is_cancelled(cancel):
                    raise CancelledError(
                        f"Fitting '{method}' cancelled in epoch {epoch}; the {epoch - 1} finished epochs are kept "
                        f"(best weights so far: epoch {best['epoch']}). Run the same `clay-explore fit` again "
                        f"to resume from epoch {epoch}."
                    )
                batch_loss = masked_loss(net(batch, waves), batch.target, batch.valid, loss)
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                opt.step()
                sched.step()
                total += batch_loss.item() * len(batch.rows)
                count += len(batch.rows)
                bar.update(len(batch.rows), epoch=epoch, loss=batch_loss.item())
            val = validation_loss()
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": total / max(count, 1),
                    "val_loss": val,
                    "seconds": round(_time.perf_counter() - epoch_start, 3),
                }
            )
            if val < best["val_loss"] * (1 - MIN_REL_IMPROVEMENT):
                best, stale = snapshot(epoch, val), 0
            else:
                stale += 1
            _save_resume(
                ws,
                method,
                {
                    "settings": settings,
                    "history": history,
                    "best": best,
                    "stale": stale,
                    "aggregator": aggregator.state_dict(),
                    "expander": expander.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "fit_seconds": _time.perf_counter() - t0,
                },
            )
            if stale >= patience:
                break
    except CancelledError:
        status = "cancelled"
        raise
    except BaseException:
        status = "interrupted"
        raise
    finally:
        bar.close()
        # an interrupted fit keeps its finished epochs in resume.pt; it is saved as the method only
        # when it finished an epoch and there is no complete fit it would replace
        if status == "complete" or (len(history) > 1 and not _has_complete_fit(ws, method)):
            aggregator.load_state_dict(best["state"][0])
            expander.load_state_dict(best["state"][1])
            config.update(
                {
                    "status": status,
                    "history": history,
                    "epochs_run": history[-1]["epoch"],
                    "best_epoch": best["epoch"],
                    "best_val_loss": best["val_loss"],
                    "initial_val_loss": history[0]["val_loss"],
                    "fit_seconds": round(_time.perf_counter() - t0, 3),
                    "fitted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            )
            save_method(ws, method, aggregator, expander, config)
            _record_stage(ws, method, config)
        if status == "complete":
            _resume_path(ws, method).unlink(missing_ok=True)
    return config
