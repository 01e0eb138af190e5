"""Transformer blocks in the simple-ViT style Clay uses (pre-norm, no bias in attention, no dropout).

Parameter names match Clay's state_dict: ``layers.{i}.0`` is attention, ``layers.{i}.1`` the MLP.
Each block casts its input to its weights' dtype and its output back, so a model whose Linear
weights were converted to bf16 (fast mode) keeps its residual stream in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def compute_dtype(linear: nn.Module) -> torch.dtype:
    """The dtype a linear layer takes: its weights' (bf16/fp16 in fast mode); fp32 for int8 dynamic layers."""
    weight = getattr(linear, "weight", None)
    return weight.dtype if isinstance(weight, torch.Tensor) else torch.float32  # quantized: weight is a method


class FeedForward(nn.Module):
    """LN -> Linear -> GELU -> Linear (``net.0``, ``net.1``, ``net.3``)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, N, dim]
        norm, fc1, act, fc2 = self.net
        h = norm(x).to(compute_dtype(fc1))
        return fc2(act(fc1(h))).to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with one bias-free qkv projection and a bias-free output."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, N, dim]
        h = self.norm(x).to(compute_dtype(self.to_qkv))
        q, k, v = self.to_qkv(h).chunk(3, dim=-1)  # each [B, N, heads*dim_head]
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(dim_head), no dropout
        out = rearrange(out, "b h n d -> b n (h d)")
        return self.to_out(out).to(x.dtype)


class Transformer(nn.Module):
    """``depth`` residual (attention, MLP) pairs followed by a final LayerNorm."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads, dim_head), FeedForward(dim, mlp_dim)]) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, N, dim]
        for attn, ff in self.layers:
            x = x + attn(x)
            x = x + ff(x)
        return self.norm(x)
