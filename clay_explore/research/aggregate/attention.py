"""Attention pooling: a learned query attends over the patch tokens (a MAP head, as in SigLIP/ViT),
made centred (mean pooling + attention over the offsets from the mean) and position-aware (a learned
score bias per grid position), so it starts as mean pooling and can keep where things are.

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


def attention_weights(attn: nn.MultiheadAttention, queries: Tensor, keys: Tensor, bias: Tensor | None = None) -> Tensor:
    """Per-head softmax weights of ``attn`` for a few queries, without projecting every key.

    q_h . (W_k^h k_l) = ((W_k^h)^T q_h) . k_l, so the key projection moves to the query side; the key
    bias only shifts every score of a head equally (softmax ignores it). ``bias`` [H, S, L] is added
    to the scores (what nn.MultiheadAttention's float ``attn_mask`` does).

    queries [B, S, D], keys [B, L, D] -> weights [B, S, H, L] (each row sums to 1).
    """
    heads, dim = attn.num_heads, attn.embed_dim
    head_dim = dim // heads
    wq, wk, _ = attn.in_proj_weight.chunk(3)  # each [D, D]
    q = queries @ wq.T
    if attn.in_proj_bias is not None:
        q = q + attn.in_proj_bias.chunk(3)[0]
    q = q.unflatten(-1, (heads, head_dim))  # [B, S, H, dh]
    u = torch.einsum("bshe,hed->bshd", q, wk.unflatten(0, (heads, head_dim)))  # [B, S, H, D]
    scores = torch.einsum("bshd,bld->bshl", u, keys) / math.sqrt(head_dim)  # [B, S, H, L]
    if bias is not None:
        scores = scores + bias.transpose(0, 1)  # [S, H, L] broadcast over the batch
    return scores.softmax(dim=-1)


def attend(attn: nn.MultiheadAttention, weights: Tensor, values: Tensor) -> Tensor:
    """``attn``'s output for given per-head weights: sum_l a_l W_v^h x_l = W_v^h (sum_l a_l x_l).

    The value bias passes through as (sum_l a_l) b_v, so for weights that sum to 1 this equals
    nn.MultiheadAttention's output; the map is linear in the weights when ``attn`` has no biases.
    Cost O(S H L D) instead of O(L D^2).

    weights [B, S, H, L], values [B, L, D] -> [B, S, D].
    """
    heads, dim = attn.num_heads, attn.embed_dim
    head_dim = dim // heads
    wv = attn.in_proj_weight.chunk(3)[2].unflatten(0, (heads, head_dim))  # [H, dh, D]
    pooled = torch.einsum("bshl,bld->bshd", weights, values)  # [B, S, H, D]
    v = torch.einsum("bshd,hed->bshe", pooled, wv)  # [B, S, H, dh]
    if attn.in_proj_bias is not None:
        v = v + weights.sum(-1, keepdim=True) * attn.in_proj_bias.chunk(3)[2].unflatten(0, (heads, head_dim))
    return attn.out_proj(v.flatten(-2))  # [B, S, D]


def pooled_attention(
    attn: nn.MultiheadAttention, queries: Tensor, keys: Tensor, values: Tensor | None = None, bias: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``attn(queries, keys, values, attn_mask=bias)`` for a few queries, without projecting every token.

    With S queries and L >> S tokens the key and value projections move to the query side (see
    ``attention_weights`` and ``attend``); the result equals nn.MultiheadAttention's (tested).

    queries [B, S, D], keys [B, L, D], values [B, L, D] (default: keys), bias [H, S, L]
    -> (output [B, S, D], weights averaged over heads [B, S, L]).
    """
    weights = attention_weights(attn, queries, keys, bias)  # [B, S, H, L]
    out = attend(attn, weights, keys if values is None else values)
    return out, weights.mean(dim=2)


class AttentionPool(Aggregator):
    """Mean pooling plus what one learned query finds where the tokens differ from their mean.

    vector = mean_l x_l + W_o [W_v^h sum_l (a_hl - 1/L) x_l]_h, with a_hl = softmax_l(q_h . W_k^h LN(x_l)
    + b_hl): a learned query (shifted by the time/lat-lon numbers) that looks at content, plus a learned
    bias per head and grid position, so the weights can depend on *where* a token is as well as what
    it shows (the linear aggregator's weight maps, made content-adaptive).

    Why centred: plain attention pooling returns sum_l a_l x_l, a convex mix whose bulk is what every
    token (and every chip) shares; a where-signal is then a sliver of the vector. Pooling the offsets
    from the mean with weights (a - 1/L), which sum to 0, puts that sliver at full scale, and the mean
    is still passed on. The query and the position biases start at zero, so the weights start uniform
    and the vector starts exactly at mean pooling (training starts from the usual baseline, as the
    linear aggregator does). No value/output biases: they would cancel in the centred term.
    """

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
        self.query = nn.Parameter(torch.zeros(1, 1, dim))  # [1, 1, D]: zero -> uniform weights at init
        self.meta_proj = zero_linear(META_DIM, dim) if self.use_meta else None
        self.norm_kv = nn.LayerNorm(dim)  # keys only: the scores see normalised tokens
        self.attn = nn.MultiheadAttention(dim, self.heads, bias=False, batch_first=True)
        self.position_bias = nn.Parameter(torch.zeros(self.heads, 1, self.n_patches))  # [H, 1, L], see position_logits
        # as mean pooling: the token width as it is, or one learned map D -> D' for another width
        self.proj = nn.Linear(dim, self.out_dim) if self.out_dim != dim else None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "heads": self.heads, "use_meta": self.use_meta}

    def _queries(self, batch: int, meta: Tensor) -> Tensor:
        q = self.query.expand(batch, -1, -1)  # [B, S, D]
        if self.meta_proj is not None:
            q = q + self.meta_proj(meta.to(q.dtype)).unsqueeze(1)
        return q

    def position_logits(self) -> Tensor:
        """The per-head, per-position score bias [H, 1, L] = L * ``position_bias``.

        Scaled by L because near uniform weights softmax(L b)_l = 1/L + (b_l - mean(b)) + O(L b^2): a
        bias b then moves a position's weight by b itself, exactly as the linear aggregator's weight
        offsets do, so both learn where things are at the same pace. Unscaled, the same step would move
        the weights only b / L: L times slower (on the planted-signal test it stayed near uniform).
        """
        return self.position_bias * self.n_patches

    def _weights(self, x: Tensor, meta: Tensor) -> Tensor:
        """x [B, L, D] -> per-head weights [B, 1, H, L]."""
        return attention_weights(self.attn, self._queries(x.shape[0], meta), self.norm_kv(x), self.position_logits())

    def forward(self, patches: Tensor, cls: Tensor, meta: Tensor) -> Tensor:
        self.check_inputs(patches)
        x = as_float(patches)  # [B, L, D]
        offsets = self._weights(x, meta) - 1.0 / self.n_patches  # [B, 1, H, L], each row sums to 0
        pooled = x.mean(dim=1) + attend(self.attn, offsets, x)[:, 0]  # [B, D]
        return pooled if self.proj is None else self.proj(pooled)  # [B, D']

    @torch.no_grad()
    def attention_map(self, patches: Tensor, meta: Tensor) -> Tensor:
        """Where the query looks: attention weights averaged over heads, [B, h, w]."""
        w = self._weights(as_float(patches), meta)  # [B, 1, H, L]
        return w[:, 0].mean(dim=1).reshape(-1, self.grid, self.grid)


class PerceiverPool(Aggregator):
    """PMA: ``n_seeds`` learned seeds attend over LN(patches), one self-attention, concat -> D'."""

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
        super().__init__(dim=dim, grid=grid, out_dim=out_dim)
        self.heads = int(heads or default_heads(dim))
        self.use_meta = bool(use_meta)
        self.n_seeds = int(n_seeds)
        self.query = nn.Parameter(torch.randn(1, self.n_seeds, dim) * QUERY_INIT_STD)  # [1, S, D]
        self.meta_proj = zero_linear(META_DIM, dim) if self.use_meta else None
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, self.heads, batch_first=True)
        self.norm_out = nn.LayerNorm(dim)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, self.heads, batch_first=True)
        self.proj = nn.Linear(self.n_seeds * dim, self.out_dim)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "heads": self.heads, "use_meta": self.use_meta, "n_seeds": self.n_seeds}

    _queries = AttentionPool._queries

    def forward(self, patches: Tensor, cls: Tensor, meta: Tensor) -> Tensor:
        self.check_inputs(patches)
        kv = self.norm_kv(as_float(patches))  # [B, L, D]
        s, _ = pooled_attention(self.attn, self._queries(kv.shape[0], meta), kv)  # [B, S, D]
        h = self.norm_self(s)
        s = s + self.self_attn(h, h, h, need_weights=False)[0]  # [B, S, D]
        return self.proj(self.norm_out(s).flatten(1))  # [B, D']

    @torch.no_grad()
    def attention_map(self, patches: Tensor, meta: Tensor) -> Tensor:
        """Where the first seed looks: attention weights averaged over heads, [B, h, w]."""
        kv = self.norm_kv(as_float(patches))
        _, w = pooled_attention(self.attn, self._queries(kv.shape[0], meta), kv)  # [B, S, L]
        return w[:, 0].reshape(-1, self.grid, self.grid)
