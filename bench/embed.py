"""Throughput of the large (v1.5) encoder: exact fp32 vs bf16 vs the fast path this machine chooses.

Prints, in one run: dense-matmul GFLOP/s for fp32 and bf16 (same shapes as the encoder's
matmuls), chips/s and achieved GFLOP/s of the encoder in each mode, the fraction of peak, the fast
mode's max abs / cosine difference of CLS and patch tokens against fp32, then the fast path that
``clay_explore.model.fastpath`` picks on this device (bf16 / fp16 / int8 / fp32, and why) with its
chips/s against fp32 and its CLS cosine, and peak RSS (peak device memory on a GPU).
Random weights are fine: speed does not depend on the values.

    python bench/embed.py [--device auto] [--chips 2] [--bands 10] [--size 256] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import resource
import time

import torch

from clay_explore.model import PRESETS, ClayModel
from clay_explore.model.device import resolve_device
from clay_explore.model.fastpath import apply_fast_path, cached_probe, cpu_flags, native_bf16, try_int8


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock times measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def encoder_flops(cfg, n_tokens: int, n_bands: int, size: int) -> tuple[float, float]:
    """(dense, attention) multiply-adds x 2 of one chip's encoder pass (transformer + patch conv)."""
    d, inner, mlp = cfg.dim, cfg.heads * cfg.dim_head, cfg.dim * cfg.mlp_ratio
    dense = 2 * n_tokens * d * (3 * inner) + 2 * n_tokens * inner * d + 2 * 2 * n_tokens * d * mlp
    attention = 2 * 2 * n_tokens * n_tokens * inner  # q k^T and attn v
    patch = 2 * (n_tokens - 1) * d * n_bands * cfg.patch_size**2
    return cfg.depth * dense + patch, cfg.depth * attention


def attention_peak(
    dtype: torch.dtype,
    batch: int,
    heads: int,
    n: int,
    dim_head: int,
    seconds: float = 3.0,
    device: torch.device = torch.device("cpu"),
) -> float:
    """GFLOP/s of torch's fused scaled_dot_product_attention at the encoder's shape."""
    q, k, v = (torch.randn(batch, heads, n, dim_head, device=device).to(dtype) for _ in range(3))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for _ in range(2):
        sdpa(q, k, v)
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sdpa(q, k, v)
        sync(device)
        count += 1
    return 4 * batch * heads * n * n * dim_head * count / (time.perf_counter() - start) / 1e9


def matmul_peak(
    dtype: torch.dtype, m: int, k: int, n: int, seconds: float = 3.0, device: torch.device = torch.device("cpu")
) -> float:
    """GFLOP/s of torch.matmul at the encoder's MLP shape."""
    a, b = torch.randn(m, k, device=device).to(dtype), torch.randn(k, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        sync(device)
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - start) / 1e9


def time_encode(model: ClayModel, inputs, repeats: int) -> float:
    """Best-of-``repeats`` seconds per call (after one warm-up)."""
    device = inputs[0].device
    with torch.inference_mode():
        model.encode(*inputs)
        sync(device)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.encode(*inputs)
            sync(device)
            best = min(best, time.perf_counter() - t0)
    return best


def peak_memory_text(device: torch.device) -> str:
    """Peak RSS of this process, and the peak allocated device memory on a GPU."""
    text = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    if device.type == "cuda":
        text += f"; peak {device} memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=2)
    parser.add_argument("--bands", type=int, default=10)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="large")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(0)

    cfg = PRESETS[args.preset]
    model = ClayModel(cfg, preset=args.preset).eval().requires_grad_(False)
    chosen = apply_fast_path(copy.deepcopy(model).to(device), device)  # the path `embed --fast` takes here
    model = model.to(device)
    fast = copy.deepcopy(model).to_fast()
    n_tokens = (args.size // cfg.patch_size) ** 2 + 1
    rows = args.chips * n_tokens
    inputs = tuple(
        t.to(device)
        for t in (
            torch.randn(args.chips, args.bands, args.size, args.size),
            torch.randn(args.chips, 4),
            torch.randn(args.chips, 4),
            torch.tensor(10.0),
            torch.linspace(0.49, 2.19, args.bands),
        )
    )
    dense_flops, attn_flops = (f * args.chips for f in encoder_flops(cfg, n_tokens, args.bands, args.size))
    flops = dense_flops + attn_flops

    peak32 = matmul_peak(torch.float32, rows, cfg.dim, cfg.dim * cfg.mlp_ratio, device=device)
    peak16 = matmul_peak(torch.bfloat16, rows, cfg.dim, cfg.dim * cfg.mlp_ratio, device=device)
    attn32 = attention_peak(torch.float32, args.chips, cfg.heads, n_tokens, cfg.dim_head, device=device)
    attn16 = attention_peak(torch.bfloat16, args.chips, cfg.heads, n_tokens, cfg.dim_head, device=device)
    t32 = time_encode(model, inputs, args.repeats)
    t16 = time_encode(fast, inputs, args.repeats)
    same_as_bf16 = chosen.fast_path["precision"] == "bf16"  # then its timing is the bf16 line's
    tfast = t16 if same_as_bf16 else time_encode(chosen, inputs, args.repeats)
    with torch.inference_mode():
        ref, out = model.encode(*inputs), fast.encode(*inputs)
        out_fast = out if same_as_bf16 else chosen.encode(*inputs)
    cos = torch.nn.functional.cosine_similarity
    g32, g16 = flops / t32 / 1e9, flops / t16 / 1e9

    print(
        f"preset {args.preset}: {args.chips} chips x {args.bands} bands x {args.size} px, {args.threads} threads, "
        f"device {device}"
    )
    print(f"dense matmul peak   fp32 {peak32:7.1f} GFLOP/s   bf16 {peak16:7.1f} GFLOP/s")
    print(
        f"fused attention     fp32 {attn32:7.1f} GFLOP/s   bf16 {attn16:7.1f} GFLOP/s  "
        f"(attention is {attn_flops / flops:.0%} of the encoder's FLOPs)"
    )
    bound32 = dense_flops / peak32 + attn_flops / attn32  # seconds if every op ran at its kernel's peak
    bound16 = dense_flops / peak16 + attn_flops / attn16
    print(
        f"attainable (each op at its kernel peak): fp32 {flops / bound32:7.1f} GFLOP/s   "
        f"bf16 {flops / bound16:7.1f} GFLOP/s"
    )
    print(
        f"encoder fp32 exact  {args.chips / t32:6.3f} chips/s  {t32 / args.chips:6.2f} s/chip  "
        f"{g32:7.1f} GFLOP/s = {g32 / peak32:.2f} of fp32 matmul peak, {g32 * bound32 / flops:.2f} of attainable"
    )
    print(
        f"encoder fast bf16   {args.chips / t16:6.3f} chips/s  {t16 / args.chips:6.2f} s/chip  "
        f"{g16:7.1f} GFLOP/s = {g16 / peak16:.2f} of bf16 matmul peak, {g16 * bound16 / flops:.2f} of attainable  "
        f"({t32 / t16:.2f}x fp32)"
    )
    print(
        f"fast vs fp32: CLS max|d| {(out[:, 0] - ref[:, 0]).abs().max():.4f}  "
        f"CLS cos min {cos(out[:, 0], ref[:, 0], dim=-1).min():.5f}  "
        f"patch max|d| {(out[:, 1:] - ref[:, 1:]).abs().max():.4f}  "
        f"patch cos min {cos(out[:, 1:], ref[:, 1:], dim=-1).min():.5f}"
    )
    print(f"fast path chosen on {device}: {chosen.fast_path['precision']} ({chosen.fast_path['reason']})")
    if device.type == "cpu":
        probe = cached_probe()
        print(f"  CPU native bf16: {native_bf16(cpu_flags())}; probe {'cached' if probe['cached'] else 'measured now'}")
    print(
        f"encoder fast ({chosen.fast_path['precision']:>7}) {args.chips / tfast:6.3f} chips/s  "
        f"{tfast / args.chips:6.2f} s/chip  ({t32 / tfast:.2f}x fp32)  "
        f"CLS cos min {cos(out_fast[:, 0].float(), ref[:, 0], dim=-1).min():.5f}  "
        f"patch cos min {cos(out_fast[:, 1:].float(), ref[:, 1:], dim=-1).min():.5f}"
    )
    if device.type == "cpu" and chosen.fast_path["precision"] != "int8":  # the CPU alternative, for comparison
        int8 = copy.deepcopy(model)
        if try_int8(int8, floor=-1.0)[0]:
            t8 = time_encode(int8, inputs, args.repeats)
            with torch.inference_mode():
                out8 = int8.encode(*inputs)
            print(
                f"encoder int8 dynamic {args.chips / t8:6.3f} chips/s  {t8 / args.chips:6.2f} s/chip  "
                f"({t32 / t8:.2f}x fp32, not chosen)  CLS cos min {cos(out8[:, 0], ref[:, 0], dim=-1).min():.5f}  "
                f"patch cos min {cos(out8[:, 1:], ref[:, 1:], dim=-1).min():.5f}"
            )
    print(peak_memory_text(device))


if __name__ == "__main__":
    main()
