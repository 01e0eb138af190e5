"""Attention pooling: a learned query attends over the patch tokens (MAP head, as in SigLIP/ViT).

``PerceiverPool`` is the multi-seed variant (Set Transformer's PMA): a few learned seeds attend to
the patches, talk to each other once, and their outputs are concatenated and projected to D'.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from clay_explore.research.aggregate.base import META_DIM, Aggregator, as_float, default_heads, zero_linear

#: Std of the learned query / seed initialisation (the usual ViT token init).
QUERY_INIT_STD = 0.02
#: Default number of PMA seeds.
DEFAULT_SEEDS = 4


def pooled_attention(attn: nn.MultiheadAttention, queries: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """``attn(queries, x, x)`` for a few queries, computed without projecting every token.

    With S queries and L >> S tokens, the key and value projections can move to the query side:
    q_h . (W_k^h x_l) = ((W_k^h)^T q_h) . x_l, and sum_l a_l W_v^h x_l = W_v^h (sum_l a_l x_l). The
    key bias only shifts every score of a head equally (softmax ignores it) and the value bias
    passes through because the weights sum to 1. Cost O(S H L D) instead of O(L D^2); the result
    equals nn.MultiheadAttention's (tested).

    queries [B, S, D], x [B, L, D] -> (output [B, S, D], weights averaged over heads [B, S, L]).
    """
    heads, dim = attn.num_heads, attn.embed_dim
    head_dim = dim // heads
    wq, wk, wv = attn.in_proj_weight.chunk(3)  # each [D, D]
    bq, _, bv = attn.in_proj_bias.chunk(3)
    q = (queries @ wq.T + bq).unflatten(-1, (heads, head_dim))  # [B, S, H, dh]
    u = torch.einsum("bshe,hed->bshd", q, wk.unflatten(0, (heads, head_dim)))  # [B, S, H, D]
    scores = torch.einsum("bshd,bld->bshl", u, x) / math.sqrt(head_dim)  # [B, S, H, L]
    weights = scores.softmax(dim=-1)
    pooled = torch.einsum("bshl,bld->bshd", weights, x)  # [B, S, H, D]
    v = torch.einsum("bshd,hed->bshe", pooled, wv.unflatten(0, (heads, head_dim))) + bv.unflatten(0, (heads, head_dim))
    return attn.out_proj(v.flatten(-2)), weights.mean(dim=2)  # [B, S, D], [B, S, L]


class AttentionPool(Aggregator):
    """One learned query (shifted by the time/lat-lon numbers) attends over LN(patches) -> D'."""

    name = "attention"

    def __init__(
        self,
        *,
        dim: int,
        grid: int,
        out_dim: int | None = None,
        heads: int | None = None,
        use_meta: bool = True,
    ):
        super().__init__(dim=dim, grid=grid, out_dim=out_dim)
        self.heads = int(heads or default_heads(dim))
        self.use_meta = bool(use_meta)
        self.query = nn.Parameter(torch.randn(1, 1, dim) * QUERY_INIT_STD)  # [1, 1, D]
        self.meta_proj = zero_linear(META_DIM, dim) if self.use_meta else None
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, self.heads, batch_first=True)
        self.norm_out = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, self.out_dim)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "heads": self.heads, "use_meta": self.use_meta}

    def _queries(self, batch: int, meta: Tensor) -> Tensor:
        q = self.query.expand(batch, -1, -1)  # [B, 1, D]
        if self.meta_proj is not None:
            q = q + self.meta_proj(meta.to(q.dtype)).unsqueeze(1)
        return q

    def forward(self, patches: Tensor, cls: Tensor, meta: Tensor) -> Tensor:
        self.check_inputs(patches)
        kv = self.norm_kv(as_float(patches))  # [B, L, D]
        pooled, _ = pooled_attention(self.attn, self._queries(kv.shape[0], meta), kv)  # [B, 1, D]
        return self.proj(self.norm_out(pooled[:, 0]))  # [B, D']

    @torch.no_grad()
    def attention_map(self, patches: Tensor, meta: Tensor) -> Tensor:
        """Where the query looks: attention weights averaged over heads, [B, h, w]."""
        kv = self.norm_kv(as_float(patches))
        _, w = pooled_attention(self.attn, self._queries(kv.shape[0], meta), kv)  # [B, S, L]
        return w[:, 0].reshape(-1, self.grid, self.grid)


class PerceiverPool(AttentionPool):
    """PMA: ``n_seeds`` learned seeds attend over the patches, one self-attention, concat -> D'."""

    name = "perceiver"

    def __init__(
        self,
        *,
        dim: int,
        grid: int,
        out_dim: int | None = None,
        heads: int | None = None,
        use_meta: bool = True,
        n_seeds: int = DEFAULT_SEEDS,
    ):
        super().__init__(dim=dim, grid=grid, out_dim=out_dim, heads=heads, use_meta=use_meta)
        self.n_seeds = int(n_seeds)
        self.query = nn.Parameter(torch.randn(1, self.n_seeds, dim) * QUERY_INIT_STD)  # [1, S, D]
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, self.heads, batch_first=True)
        self.proj = nn.Linear(self.n_seeds * dim, self.out_dim)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "n_seeds": self.n_seeds}

    def forward(self, patches: Tensor, cls: Tensor, meta: Tensor) -> Tensor:
        self.check_inputs(patches)
        kv = self.norm_kv(as_float(patches))  # [B, L, D]
        s, _ = pooled_attention(self.attn, self._queries(kv.shape[0], meta), kv)  # [B, S, D]
        h = self.norm_self(s)
        s = s + self.self_attn(h, h, h, need_weights=False)[0]  # [B, S, D]
        return self.proj(self.norm_out(s).flatten(1))  # [B, D']
