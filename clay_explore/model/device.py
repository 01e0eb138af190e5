"""Where the model runs: the torch device, how many chips fit in its memory, and retrying a batch that did not.

``resolve_device("auto" | "cpu" | "cuda" | "cuda:N" | "mps" | None)``: ``auto`` takes CUDA when it is
there, else Apple's MPS, else the CPU; None reads ``$CLAY_EXPLORE_DEVICE`` (default ``auto``). Asking for
a device this machine lacks is one :class:`DeviceError` naming the devices that are available.

``auto_batch_size`` sizes a batch from the device's free memory, and :class:`AdaptiveBatch` runs a batch
in pieces, halving the piece size whenever one runs out of memory (and keeping it halved), so an
out-of-memory batch is retried smaller instead of failing the stage.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import fields, is_dataclass, replace
from typing import Any, TypeVar

import numpy as np
import torch

from clay_explore.core.errors import DeviceError

ENV_DEVICE = "CLAY_EXPLORE_DEVICE"
AUTO = "auto"
#: What ``--device`` accepts (``cuda:N`` too).
DEVICE_CHOICES = (AUTO, "cpu", "cuda", "mps")

#: Fraction of the free memory a batch may plan to use (the rest: allocator slack, other processes).
MEMORY_FRACTION = {"cuda": 0.7, "mps": 0.5, "cpu": 0.25}
#: Planned bytes per chip = SAFETY x the estimate of one encoder block's live activations.
MEMORY_SAFETY = 2.0
#: Bounds of an automatic batch: CPUs gain nothing past a few chips; GPUs are capped to keep progress lively.
MAX_AUTO_BATCH = {"cuda": 128, "mps": 32, "cpu": 8}
MIN_BATCH = 1
FLOAT32_BYTES = 4
#: Residual-stream sized copies alive at once in one block (input, norm, output, residual sum, ...).
RESIDUAL_COPIES = 8

T = TypeVar("T")


# ---------------------------------------------------------------------------- which device
def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Devices torch can use here: 'cpu', then 'cuda:0'..'cuda:N-1', then 'mps'."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if mps_available():
        found.append("mps")
    return found


def _unavailable(name: str, why: str, from_env: bool) -> DeviceError:
    where = f" (from ${ENV_DEVICE})" if from_env else ""
    fix = f"change or unset ${ENV_DEVICE}" if from_env else "pass --device auto or one of those"
    return DeviceError(
        f"Device '{name}'{where} is not available: {why}. Available here: {', '.join(available_devices())}; {fix}."
    )


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device for ``device`` (None = ``$CLAY_EXPLORE_DEVICE``, else ``auto``).

    Raises DeviceError for an unknown name or a device this machine does not have.
    """
    if isinstance(device, torch.device):
        device = str(device)
    from_env = device is None or str(device).strip() == ""
    name = (os.environ.get(ENV_DEVICE, "") if from_env else str(device)).strip().lower() or AUTO
    if name == AUTO:
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not mps_available():
            raise _unavailable(name, "this is not an Apple-silicon Mac with a torch build that has MPS", from_env)
        return torch.device("mps")
    kind, _, index = name.partition(":")
    if kind == "cuda" and (index == "" or index.isdigit()):
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise _unavailable(name, why, from_env)
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise _unavailable(name, f"there {'is' if count == 1 else 'are'} only {count} CUDA device(s)", from_env)
        return torch.device("cuda", int(index) if index else torch.cuda.current_device())
    raise _unavailable(name, f"unknown device name (use {', '.join(DEVICE_CHOICES)} or cuda:N)", from_env)


def model_device(model: Any) -> torch.device:
    """Device of a model's first parameter or buffer (CPU when it has none, e.g. fully quantized)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def device_label(device: torch.device | str) -> str:
    """Human name: 'cuda:0 (NVIDIA H200)', 'cpu (AMD EPYC, 2 threads)', 'mps (Apple GPU)'."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    from clay_explore.model.fastpath import cpu_model

    return f"cpu ({cpu_model()}, {torch.get_num_threads()} threads)"


def to_device(obj: T, device: torch.device | str | None) -> T:
    """Move a tensor, or every tensor field of a dataclass, to ``device`` (None = leave as is)."""
    if device is None:
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.to(device)  # type: ignore[return-value]
    if is_dataclass(obj) and not isinstance(obj, type):
        moved = {
            f.name: getattr(obj, f.name).to(device)
            for f in fields(obj)
            if isinstance(getattr(obj, f.name), torch.Tensor)
        }
        return replace(obj, **moved)
    return obj


# ---------------------------------------------------------------------------- how many chips fit
def free_memory_bytes(device: torch.device | str) -> int | None:
    """Free memory of the device now: CUDA's mem_get_info, MPS's recommended budget, else available RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        try:
            budget = torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
            return int(budget)
        except (AttributeError, RuntimeError):
            return None
    return available_ram_bytes()


def available_ram_bytes() -> int | None:
    """Available RAM (psutil, else /proc/meminfo's MemAvailable); None when neither can tell."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return None


def bytes_per_chip(config: Any, chip_size: int) -> int:
    """Planned memory of one chip in one encoder pass (fp32 worst case, unfused attention scores)."""
    tokens = (chip_size // int(config.patch_size)) ** 2 + 1
    inner = int(config.heads) * int(config.dim_head)
    per_token = RESIDUAL_COPIES * config.dim + 3 * inner + 2 * config.dim * config.mlp_ratio
    scores = 2 * int(config.heads) * tokens * tokens  # attention logits + softmax when no fused kernel
    return int(MEMORY_SAFETY * FLOAT32_BYTES * (tokens * per_token + scores))


def auto_batch_size(config: Any, chip_size: int, device: torch.device | str, free_bytes: int | None = None) -> int:
    """Chips per forward pass that fit the device's free memory, within [1, MAX_AUTO_BATCH[device type]]."""
    device = torch.device(device)
    cap = MAX_AUTO_BATCH.get(device.type, MAX_AUTO_BATCH["cpu"])
    free = free_memory_bytes(device) if free_bytes is None else free_bytes
    if free is None:
        return cap
    budget = free * MEMORY_FRACTION.get(device.type, MEMORY_FRACTION["cpu"])
    return int(max(MIN_BATCH, min(cap, budget // bytes_per_chip(config, chip_size))))


def parse_batch_size(value: int | str | None) -> int | str:
    """``auto`` (or None) or a positive int; ValueError naming both forms otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
        return AUTO
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size < MIN_BATCH or (isinstance(value, float) and not float(value).is_integer()):
        raise ValueError(f"batch size must be 'auto' or a whole number >= 1, got {value!r}")
    return size


# ---------------------------------------------------------------------------- out-of-memory retry
def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures (the kinds a smaller batch can avoid)."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if isinstance(err, MemoryError) or (oom_type is not None and isinstance(err, oom_type)):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def release_cached_memory() -> None:
    """Hand freed blocks back after an out-of-memory error, so the smaller retry can use them."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if mps_available():
        torch.mps.empty_cache()


class AdaptiveBatch:
    """Run a function over rows in pieces of at most ``size``; halve ``size`` on out-of-memory and retry.

    The size stays halved for later calls (the next batch would not fit either). A single row that
    still does not fit is a DeviceError naming the fix. ``shrinks`` counts the halvings.
    """

    def __init__(self, size: int, device: torch.device | str | None = None):
        if size < MIN_BATCH:
            raise ValueError(f"batch size must be >= {MIN_BATCH}, got {size}")
        self.size = int(size)
        self.device = device
        self.shrinks = 0

    def run(self, rows: Sequence[int] | np.ndarray, fn: Callable[[np.ndarray], T]) -> list[T]:
        """``[fn(piece) for piece in rows split into pieces]``, in order, retrying pieces that ran out of memory."""
        rows = np.asarray(rows)
        out: list[T] = []
        start = 0
        while start < len(rows):
            piece = rows[start : start + self.size]
            try:
                out.append(fn(piece))
            except (MemoryError, RuntimeError) as err:
                if not is_out_of_memory(err):
                    raise
                if len(piece) <= MIN_BATCH:
                    raise DeviceError(
                        f"One chip alone does not fit in the memory of {self.device or 'the device'}. Free memory "
                        "(close other jobs), use --device cpu, or use chips with fewer pixels."
                    ) from err
                self.size = max(MIN_BATCH, len(piece) // 2)
                self.shrinks += 1
            else:
                start += len(piece)
                continue
            release_cached_memory()  # outside the except block: the error's frames are freed by now
        return out
