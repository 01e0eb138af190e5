"""Where fitted methods live: ``methods/<name>/`` in the workspace, one sub-folder per seed.

Layout (weights are safetensors, settings and history JSON; nothing here unpickles)::

    methods/<name>/config.json            summary: settings, split, seeds, per-seed results
    methods/<name>/weights.safetensors    the first seed's weights (what single-model readers load)
    methods/<name>/seed<k>/config.json    one initialisation seed's fit (history, best epoch, ...)
    methods/<name>/seed<k>/weights.safetensors
    methods/<name>/seed<k>/resume.pt      training state of an unfinished fit (tensors only)

``<name>`` is the aggregation method, or ``<method>@<D'>`` for a fit with another vector width.
Folders written before seeds existed (weights + config at the top only) still load, as one seed.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from clay_explore.core.errors import StageMissingError
from clay_explore.core.workspace import METHODS_DIR, Workspace, atomic_path
from clay_explore.research.aggregate import Aggregator, Expander, build_aggregator

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
FIT_STAGE = "fit"
EMBED_STAGE = "embed"
#: Training state after the last finished epoch (weights, optimiser, history) so a rerun resumes.
RESUME_FILE = "resume.pt"
#: Separates a method from its vector width in a fit's name: ``linear@64``.
WIDTH_SEP = "@"


# ---------------------------------------------------------------------------- names
def fit_name(method: str, out_dim: int | None, dim: int) -> str:
    """Folder name of a fit: the method, or ``method@D'`` when the vector width is not the token width."""
    return method if out_dim is None or int(out_dim) == int(dim) else f"{method}{WIDTH_SEP}{int(out_dim)}"


def base_method(name: str) -> str:
    """The aggregation method of a fit name (``linear@64`` -> ``linear``)."""
    return name.split(WIDTH_SEP, 1)[0]


def seed_dir_name(seed: int) -> str:
    return f"seed{int(seed)}"


# ---------------------------------------------------------------------------- paths and configs
def method_dir(ws: Workspace, method: str, seed: int | None = None) -> Path:
    """``methods/<name>`` (summary) or ``methods/<name>/seed<k>`` (one seed)."""
    folder = ws.path(METHODS_DIR, method)
    return folder if seed is None else folder / seed_dir_name(seed)


def _rel(method: str, seed: int | None, name: str) -> str:
    parts = [METHODS_DIR, method] + ([seed_dir_name(seed)] if seed is not None else []) + [name]
    return str(Path(*parts))


def method_config(ws: Workspace, method: str, seed: int | None = None) -> dict[str, Any] | None:
    """The config.json of a fit (summary, or one seed's), or None."""
    return ws.read_json(_rel(method, seed, CONFIG_FILE))


def write_config(ws: Workspace, method: str, config: dict[str, Any], seed: int | None = None) -> None:
    ws.write_json(_rel(method, seed, CONFIG_FILE), config)


def save_weights(
    ws: Workspace, method: str, aggregator: Aggregator, expander: Expander, config: dict[str, Any], seed: int | None
) -> Path:
    """Write weights (safetensors) then config.json, each atomically; returns the folder."""
    folder = method_dir(ws, method, seed)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"aggregator.{k}": v.detach().cpu().contiguous().clone() for k, v in aggregator.state_dict().items()}
    tensors.update({f"expander.{k}": v.detach().cpu().contiguous().clone() for k, v in expander.state_dict().items()})
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"method": method, "seed": str(config.get("seed"))})
    write_config(ws, method, config, seed)
    return folder


def has_complete_fit(ws: Workspace, method: str, seed: int | None = None) -> bool:
    config = method_config(ws, method, seed) or {}
    return config.get("status") == "complete" and (method_dir(ws, method, seed) / WEIGHTS_FILE).exists()


def record_stage(ws: Workspace, method: str, config: dict[str, Any]) -> None:
    """List the fit in the manifest's 'fit' stage (the weights themselves live in methods/)."""
    methods = dict((ws.stage(FIT_STAGE) or {}).get("methods") or {})
    keys = ("status", "fitted", "epochs_run", "best_val_loss", "seed", "seeds", "split_seed", "out_dim")
    methods[method] = {k: config.get(k) for k in keys}
    done = all(m.get("status") == "complete" for m in methods.values())
    ws.set_stage(FIT_STAGE, status="complete" if done else "partial", methods=methods)


# ---------------------------------------------------------------------------- listing
def is_stale(ws: Workspace, method: str) -> bool:
    """True when ``method`` was fitted on embeddings of another checkpoint (or precision) than the current ones."""
    config = method_config(ws, method) or {}
    embed = ws.stage(EMBED_STAGE) or {}
    for key, fitted_key in (("sha256", "embeddings_sha256"), ("precision", "embeddings_precision")):
        current, fitted_on = embed.get(key), config.get(fitted_key)
        if current and fitted_on and current != fitted_on:
            return True
    return False


def _order_key(name: str) -> tuple[int, int]:
    from clay_explore.research.aggregate import METHODS

    width = name.split(WIDTH_SEP, 1)[1] if WIDTH_SEP in name else ""
    return METHODS.index(base_method(name)), int(width) if width.isdigit() else 0


def fitted_methods(ws: Workspace, *, include_stale: bool = False) -> list[str]:
    """Names of the fits with saved weights (fitted on the current embeddings): registry order, then width."""
    from clay_explore.research.aggregate import METHODS

    root = ws.path(METHODS_DIR)
    present = (
        [p.name for p in root.iterdir() if (p / WEIGHTS_FILE).exists() and (p / CONFIG_FILE).exists()]
        if root.exists()
        else []
    )
    names = [m for m in present if base_method(m) in METHODS]
    return sorted((m for m in names if include_stale or not is_stale(ws, m)), key=_order_key)


def fit_seeds(ws: Workspace, method: str) -> list[int]:
    """The initialisation seeds of a fit that have weights (a fit from before seeds: its one seed)."""
    config = method_config(ws, method) or {}
    seeds = config.get("seeds")
    if not seeds:
        return [int(config.get("seed", 0))]
    return [int(s) for s in seeds if (method_dir(ws, method, int(s)) / WEIGHTS_FILE).exists()]


# ---------------------------------------------------------------------------- loading
@dataclass
class FittedMethod:
    """A fitted aggregator + expander and the config.json written with them."""

    name: str
    aggregator: Aggregator
    expander: Expander
    config: dict[str, Any]
    seed: int | None = None

    @property
    def key(self) -> str:
        """Name of its outputs: the fit's name, with ``/seed<k>`` when it is one of several seeds."""
        return self.name if self.seed is None else f"{self.name}/{seed_dir_name(self.seed)}"


def load_method(ws: Workspace, method: str, seed: int | None = None) -> FittedMethod:
    """Rebuild a fit from ``methods/<name>/`` (the first seed) or ``methods/<name>/seed<k>/``."""
    folder = method_dir(ws, method, seed)
    config = method_config(ws, method, seed)
    if config is None or not (folder / WEIGHTS_FILE).exists():
        what = f"Method '{method}'" + (f" (seed {seed})" if seed is not None else "")
        raise StageMissingError(
            f"{what} has not been fitted in {ws.root}. "
            f"Run `clay-explore fit --workspace {ws.root} --method {base_method(method)}`."
        )
    agg = build_aggregator(**{**config["aggregator"], "name": base_method(method)})
    exp = Expander(**config["expander"])
    tensors = load_file(str(folder / WEIGHTS_FILE))
    for prefix, module in (("aggregator.", agg), ("expander.", exp)):
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:  # an older version's weights (e.g. attention before it pooled centred tokens)
            raise StageMissingError(
                f"The saved weights of method '{method}' in {folder} do not match this version's "
                f"'{base_method(method)}' aggregator (fitted by an older clay-explore). Refit it: "
                f"`clay-explore fit --workspace {ws.root} --method {base_method(method)}`."
            ) from err
    return FittedMethod(method, agg.eval(), exp.eval(), config, seed)


def load_seeds(ws: Workspace, method: str) -> list[FittedMethod]:
    """Every seed of a fit (a fit from before seeds: its one model, read from the top folder)."""
    config = method_config(ws, method) or {}
    if not config.get("seeds"):
        fm = load_method(ws, method)
        fm.seed = int(config.get("seed", 0))
        return [fm]
    return [load_method(ws, method, s) for s in fit_seeds(ws, method)]


# ---------------------------------------------------------------------------- resume
def resume_path(ws: Workspace, method: str, seed: int) -> Path:
    return method_dir(ws, method, seed) / RESUME_FILE


def save_resume(ws: Workspace, method: str, seed: int, state: dict[str, Any]) -> None:
    """Write the training state after a finished epoch (atomically; tensors and plain values only)."""
    path = resume_path(ws, method, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_resume(ws: Workspace, method: str, seed: int, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The saved training state of an unfinished fit with the same settings, else None.

    Read with ``weights_only=True``: tensors and plain containers only, never arbitrary objects.
    """
    path = resume_path(ws, method, seed)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # damaged: start over
        return None
    return state if state.get("settings") == settings else None
