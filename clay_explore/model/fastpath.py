"""Fast mode picks what the hardware does natively, and says which path it chose and why.

* CUDA: bf16 transformer weights (fp16 where the GPU has no bf16); torch's scaled_dot_product_attention
  then runs its fused flash / memory-efficient kernels.
* MPS: fp16 transformer weights.
* CPU: bf16 only where the CPU computes it natively (avx512_bf16 or AMX flags) AND a short timed probe
  of one encoder-sized linear layer shows it faster than fp32. Otherwise int8 dynamic quantization of
  the encoder's linear layers, if the probe shows it faster AND the CLS token of a probe chip keeps a
  cosine >= 0.999 to fp32. Otherwise fp32: fast mode is never slower than exact mode (a bf16 layer on
  an AVX2-only CPU measured about 20x slower than fp32, issue 11).

The probe's timings are cached per machine (CPU model, torch version, threads) in
``$CLAY_EXPLORE_CACHE/fastpath.json`` (default ``~/.cache/clay-explore``). The choice is recorded on
the model as ``model.fast_path = {"precision": ..., "reason": ..., "device": ...}``.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

CACHE_ENV = "CLAY_EXPLORE_CACHE"
CACHE_NAME = "fastpath.json"
FLOAT32, BF16, FP16, INT8 = "float32", "bf16", "fp16", "int8"
#: CPU flags (from /proc/cpuinfo) that mean bf16 matmuls run in hardware.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: A fast path must take at most this fraction of fp32's probe time to be chosen.
SPEEDUP_MARGIN = 0.9
#: int8 is kept only when the probe chip's CLS stays this close (cosine) to fp32.
COSINE_FLOOR = 0.999
#: Probe layer: Clay v1.5's MLP up-projection (D=1024 -> 4D) over one 256-px chip's tokens (16x16 + CLS).
PROBE_TOKENS, PROBE_IN, PROBE_OUT = 257, 1024, 4096
PROBE_REPEATS = 5
#: Probe chips for the int8 accuracy check: small, Sentinel-2-like (blue, green, red, NIR; 10 m).
PROBE_CHIPS, PROBE_PX, PROBE_SEED = 2, 64, 0
PROBE_WAVES_UM = (0.49, 0.56, 0.665, 0.842)
PROBE_GSD_M = 10.0
MS = 1e3


# ---------------------------------------------------------------------------- what the CPU is
def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    return frozenset((_cpuinfo_field("flags") or "").split())


def cpu_model() -> str:
    """The CPU's model name, e.g. 'AMD EPYC' (platform's name where /proc/cpuinfo is absent)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def native_bf16(flags: frozenset[str] | set[str]) -> bool:
    """True when the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX-BF16)."""
    return bool(NATIVE_BF16_FLAGS & set(flags))


# ---------------------------------------------------------------------------- the timed probe
def quantize_int8(module: nn.Module) -> nn.Module | None:
    """A copy of ``module`` with its nn.Linear layers int8 dynamically quantized; None where torch cannot."""
    try:
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():  # torch >= 2.9 warns that eager quantization moves to torchao
            warnings.simplefilter("ignore")
            return quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=False)
    except (ImportError, AttributeError, RuntimeError, NotImplementedError):
        return None


def _best_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (first-call allocation, kernel selection)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def probe_linear(repeats: int = PROBE_REPEATS) -> dict[str, float | None]:
    """Best seconds of one encoder-sized linear layer in fp32, bf16 and int8 (None: path unavailable)."""
    gen = torch.Generator().manual_seed(PROBE_SEED)
    layer = nn.Linear(PROBE_IN, PROBE_OUT).eval().requires_grad_(False)
    x = torch.randn(1, PROBE_TOKENS, PROBE_IN, generator=gen)  # [1, N, D]
    timings: dict[str, float | None] = {}
    with torch.inference_mode():
        timings[FLOAT32] = _best_seconds(lambda: layer(x), repeats)
        layer16, x16 = copy.deepcopy(layer).to(torch.bfloat16), x.to(torch.bfloat16)
        timings[BF16] = _best_seconds(lambda: layer16(x16), repeats)
        quantized = quantize_int8(nn.Sequential(layer))
        timings[INT8] = _best_seconds(lambda: quantized(x), repeats) if quantized is not None else None
    return timings


def cache_path() -> Path:
    """``$CLAY_EXPLORE_CACHE/fastpath.json``, else ``$XDG_CACHE_HOME``/~/.cache ``/clay-explore/fastpath.json``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / CACHE_NAME
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "clay-explore" / CACHE_NAME


def machine_key() -> str:
    """What the probe's result depends on: CPU model, torch version, threads."""
    return f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def cached_probe(path: Path | None = None, probe: Callable[[], dict[str, float | None]] = probe_linear) -> dict:
    """This machine's probe timings, measured once and kept in the cache file (a damaged cache is re-measured)."""
    path = path or cache_path()
    key = machine_key()
    try:
        cache = json.loads(path.read_text())
        cache = cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("timings"), dict) and entry["timings"].get(FLOAT32):
        return {**entry, "cached": True}
    entry = {"timings": probe(), "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    cache[key] = entry
    try:  # best effort: a read-only home only costs a probe per load
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass
    return {**entry, "cached": False}


def choose_cpu_precision(flags: frozenset[str] | set[str], timings: dict[str, float | None]) -> tuple[str, str]:
    """(precision, reason) from the CPU flags and probe timings; int8 still needs its accuracy check."""
    t32, t16, t8 = timings[FLOAT32], timings.get(BF16), timings.get(INT8)
    probe = (
        f"probe layer fp32 {t32 * MS:.1f} ms"
        + (f", bf16 {t16 * MS:.1f} ms" if t16 else "")
        + (f", int8 {t8 * MS:.1f} ms" if t8 else ", int8 unavailable")
    )
    has_bf16 = native_bf16(flags)
    if has_bf16 and t16 is not None and t16 <= SPEEDUP_MARGIN * t32:
        return BF16, f"CPU has native bf16 ({', '.join(sorted(NATIVE_BF16_FLAGS & set(flags)))}); {probe}"
    why_not_bf16 = (
        "native bf16 but the probe was not faster"
        if has_bf16
        else "no native bf16 (no avx512_bf16/amx_bf16: bf16 would be emulated, slower than fp32)"
    )
    if t8 is not None and t8 <= SPEEDUP_MARGIN * t32:
        return INT8, f"{why_not_bf16}; int8 dynamic quantization of the linear layers is faster: {probe}"
    return FLOAT32, f"{why_not_bf16}; no faster path than fp32 here: {probe}"


# ---------------------------------------------------------------------------- applying it
def _probe_inputs(device: torch.device) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(PROBE_SEED)
    bands = len(PROBE_WAVES_UM)
    pixels = torch.randn(PROBE_CHIPS, bands, PROBE_PX, PROBE_PX, generator=gen)  # [B, C, H, W] normalised
    return (
        pixels.to(device),
        torch.zeros(PROBE_CHIPS, 4, device=device),
        torch.zeros(PROBE_CHIPS, 4, device=device),
        torch.tensor(PROBE_GSD_M, device=device),
        torch.tensor(PROBE_WAVES_UM, device=device),
    )


def cls_cosine(model: Any, reference_cls: torch.Tensor) -> float:
    """Smallest cosine between the model's CLS on the probe chips and ``reference_cls`` [B, D]."""
    with torch.inference_mode():
        cls = model.encode(*_probe_inputs(reference_cls.device))[:, 0].float()  # [B, D]
    return float(nn.functional.cosine_similarity(cls, reference_cls, dim=-1).min())


def try_int8(model: Any, floor: float = COSINE_FLOOR) -> tuple[bool, float]:
    """Swap in an int8 copy of the encoder's transformer if the probe CLS keeps cosine >= ``floor``.

    Returns (kept, cosine). The decoder stays fp32 (fit trains through it; int8 has no backward).
    """
    with torch.inference_mode():
        reference = model.encode(*_probe_inputs(torch.device("cpu")))[:, 0].float()  # [B, D]
    exact = model.encoder.transformer
    quantized = quantize_int8(exact)
    if quantized is None:
        return False, float("nan")
    model.encoder.transformer = quantized
    cosine = cls_cosine(model, reference)
    if cosine < floor:
        model.encoder.transformer = exact
        return False, cosine
    return True, cosine


GPU_TYPES = ("cuda", "mps")


def _gpu_choice(device: torch.device) -> tuple[str, str]:
    """(precision, reason) on a CUDA or MPS device."""
    if device.type == "mps":
        return FP16, "Apple MPS: fp16 transformer weights"
    bf16 = torch.cuda.is_bf16_supported()
    kernels = "flash" if torch.backends.cuda.flash_sdp_enabled() else "memory-efficient"
    return (BF16 if bf16 else FP16), (
        f"CUDA {torch.cuda.get_device_name(device)}: {'bf16' if bf16 else 'no bf16, so fp16'} transformer weights; "
        f"fused ({kernels}) scaled-dot-product attention"
    )


def preview(device: torch.device | str = "cpu") -> dict[str, str]:
    """What fast mode would pick on ``device``, without converting a model (the app's toggle caption).

    On a CPU this runs (or reads the cached) probe; int8 is still subject to the accuracy check at load.
    """
    device = torch.device(device)
    if device.type in GPU_TYPES:
        precision, reason = _gpu_choice(device)
    else:
        precision, reason = choose_cpu_precision(cpu_flags(), cached_probe()["timings"])
        if precision == INT8:
            reason += f"; kept at load only if the CLS cosine to fp32 stays >= {COSINE_FLOOR}"
    return {"precision": precision, "reason": reason, "device": str(device)}


def record(model: Any, precision: str, reason: str, device: torch.device | str) -> Any:
    """Set ``model.fast_path`` (what provenance records as the embeddings' precision and why)."""
    model.fast_path = {"precision": precision, "reason": reason, "device": str(device)}
    return model


def apply_fast_path(
    model: Any,
    device: torch.device | str = "cpu",
    *,
    flags: frozenset[str] | set[str] | None = None,
    timings: dict[str, float | None] | None = None,
    cosine_floor: float = COSINE_FLOOR,
) -> Any:
    """Convert ``model`` (already on ``device``) to the fastest path the device does natively; record it.

    ``flags`` and ``timings`` default to this CPU's flags and its cached probe (tests pass their own).
    """
    device = torch.device(device)
    if device.type in GPU_TYPES:
        precision, reason = _gpu_choice(device)
        model.to_fast(torch.bfloat16 if precision == BF16 else torch.float16)
        return record(model, precision, reason, device)
    flags = cpu_flags() if flags is None else flags
    timings = cached_probe()["timings"] if timings is None else timings
    precision, reason = choose_cpu_precision(flags, timings)
    if precision == BF16:
        model.to_fast(torch.bfloat16)
    elif precision == INT8:
        kept, cosine = try_int8(model, cosine_floor)
        if kept:
            reason += f"; probe CLS cosine to fp32 {cosine:.5f} >= {cosine_floor}"
        else:
            precision = FLOAT32
            reason += f"; but int8 was dropped: probe CLS cosine to fp32 {cosine:.5f} < {cosine_floor}, so fp32"
    return record(model, precision, reason, device)
