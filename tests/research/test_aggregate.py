"""Aggregators and the expander: pooling maths, the linear layer's exact-mean start, shapes, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clay_explore.research.aggregate import METHODS, Expander, LinearAggregator, build_aggregator
from clay_explore.research.aggregate.pooling import GeMPool

DIM, GRID, B = 16, 4, 3


@pytest.fixture
def tokens():
    gen = torch.Generator().manual_seed(0)
    patches = torch.randn(B, GRID * GRID, DIM, generator=gen)  # signed, like LayerNorm outputs
    cls = torch.randn(B, DIM, generator=gen)
    meta = torch.randn(B, 8, generator=gen)
    return patches, cls, meta


def test_mean_pooling_equals_numpy_mean(tokens):
    patches, cls, meta = tokens
    out = build_aggregator("mean", dim=DIM, grid=GRID)(patches, cls, meta)
    np.testing.assert_allclose(out.numpy(), patches.numpy().mean(axis=1), rtol=1e-6, atol=1e-7)


def test_mean_pooling_of_float16_tokens_is_float32(tokens):
    patches, cls, meta = tokens
    out = build_aggregator("mean", dim=DIM, grid=GRID)(patches.half(), cls.half(), meta)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), patches.half().float().numpy().mean(axis=1), rtol=1e-6, atol=1e-6)


def test_max_and_cls(tokens):
    patches, cls, meta = tokens
    np.testing.assert_array_equal(
        build_aggregator("max", dim=DIM, grid=GRID)(patches, cls, meta).numpy(), patches.numpy().max(axis=1)
    )
    assert torch.equal(build_aggregator("cls", dim=DIM, grid=GRID)(patches, cls, meta), cls)


def test_gem_is_signed_and_p1_is_the_mean(tokens):
    patches, cls, meta = tokens
    np.testing.assert_allclose(
        GeMPool(dim=DIM, grid=GRID, p=1.0)(patches, cls, meta).numpy(),
        patches.numpy().mean(axis=1),
        rtol=1e-5,
        atol=1e-6,
    )
    negative = -patches.abs()
    out = GeMPool(dim=DIM, grid=GRID)(negative, cls, meta)
    assert (out < 0).all(), "GeM must keep the sign of all-negative channels"
    x = negative.numpy().astype(np.float64)
    expected = -(np.mean(np.abs(x) ** 3, axis=1) ** (1 / 3))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)


def test_linear_initialisation_reproduces_the_mean_exactly(tokens):
    patches, cls, meta = tokens
    for n_maps in (1, 4):
        agg = LinearAggregator(dim=DIM, grid=GRID, n_maps=n_maps, use_meta=True)
        out = agg(patches, cls, meta)
        assert torch.equal(out, patches.mean(dim=1)), "must be bit-identical to mean pooling at init"
        np.testing.assert_allclose(out.detach().numpy(), patches.numpy().mean(axis=1), rtol=1e-6, atol=1e-7)
        weights = agg.position_weights()
        assert weights.shape == (n_maps, GRID, GRID)
        assert torch.allclose(weights[0], torch.full((GRID, GRID), 1 / GRID**2))


def test_linear_learns_position_and_meta(tokens):
    patches, cls, meta = tokens
    agg = LinearAggregator(dim=DIM, grid=GRID, n_maps=2)
    agg(patches, cls, meta).pow(2).sum().backward()
    assert agg.weight_offsets.grad is not None and agg.weight_offsets.grad.abs().sum() > 0
    assert agg.meta_proj.weight.grad.abs().sum() > 0
    assert agg.n_params == 2 * GRID**2 + (2 * DIM * DIM + DIM) + (8 * DIM + DIM)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_gives_one_vector_per_chip(name, tokens):
    patches, cls, meta = tokens
    agg = build_aggregator(name, dim=DIM, grid=GRID, out_dim=24)
    out = agg(patches, cls, meta)
    assert out.shape == (B, agg.out_dim)
    assert torch.isfinite(out).all()
    assert out.shape[1] == 24  # pooling included: a width other than D adds a fitted projection D -> D'
    same_width = build_aggregator(name, dim=DIM, grid=GRID)
    assert (same_width.n_params > 0) == (name in ("linear", "attention", "perceiver"))
    rebuilt = build_aggregator(**agg.config())
    rebuilt.load_state_dict(agg.state_dict())
    assert torch.equal(rebuilt(patches, cls, meta), out)


def test_attention_map_sums_to_one(tokens):
    patches, cls, meta = tokens
    agg = build_aggregator("attention", dim=DIM, grid=GRID)
    w = agg.attention_map(patches, meta)
    assert w.shape == (B, GRID, GRID)
    torch.testing.assert_close(w.sum(dim=(1, 2)), torch.ones(B))


def test_wrong_geometry_and_unknown_name_are_refused(tokens):
    patches, cls, meta = tokens
    with pytest.raises(ValueError, match="expects patch tokens"):
        build_aggregator("mean", dim=DIM, grid=GRID + 1)(patches, cls, meta)
    with pytest.raises(ValueError, match="Choose one of"):
        build_aggregator("flatten", dim=DIM, grid=GRID)


def test_expander_shapes_and_distinct_positions():
    exp = Expander(in_dim=24, dim=DIM, grid=GRID, hidden=32)
    out = exp(torch.randn(B, 24))
    assert out.shape == (B, 1 + GRID * GRID, DIM)
    assert not torch.allclose(out[:, 1], out[:, 2]), "positions must differ"
    assert exp.n_params == sum(p.numel() for p in exp.parameters())


def test_gradients_reach_the_expander_through_the_frozen_decoder(tiny_model):
    """Clay stays frozen (no grads on its weights) while the expander learns through its decoder."""
    grid = 8
    exp = Expander(in_dim=tiny_model.config.dim, dim=tiny_model.config.dim, grid=grid, hidden=32)
    tokens = exp(torch.randn(2, tiny_model.config.dim))
    out = tiny_model.decode(tokens, torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor(10.0), torch.rand(10) + 0.4)
    out.pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in exp.parameters() if p.requires_grad)
    assert all(p.grad is None for p in tiny_model.parameters())


def test_pooled_attention_equals_multihead_attention():
    from torch import nn

    from clay_explore.research.aggregate.attention import pooled_attention

    torch.manual_seed(0)
    heads, seeds = 4, 3
    attn = nn.MultiheadAttention(DIM, heads, batch_first=True)
    nn.init.normal_(attn.in_proj_bias)  # non-zero biases must be handled too
    q, x = torch.randn(B, seeds, DIM), torch.randn(B, GRID * GRID, DIM)
    ours, w = pooled_attention(attn, q, x)
    ref, ref_w = attn(q, x, x, need_weights=True)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w, ref_w, rtol=1e-5, atol=1e-6)
    # other values than keys, and a score bias per head/query/position (nn's float attn_mask, [B*H, S, L])
    values, bias = torch.randn(B, GRID * GRID, DIM), torch.randn(heads, seeds, GRID * GRID)
    ours, w = pooled_attention(attn, q, x, values, bias)
    mask = bias.unsqueeze(0).expand(B, -1, -1, -1).reshape(B * heads, seeds, GRID * GRID)
    ref, ref_w = attn(q, x, values, attn_mask=mask, need_weights=True)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w, ref_w, rtol=1e-5, atol=1e-6)


def test_attention_is_mean_plus_centred_multihead_attention(tokens):
    """vector = mean + MHA(q, LN(x), x; position bias) - MHA with uniform weights; at init exactly the mean."""
    from torch import nn

    patches, cls, meta = tokens
    agg = build_aggregator("attention", dim=DIM, grid=GRID)
    torch.testing.assert_close(agg(patches, cls, meta), patches.mean(dim=1), rtol=0, atol=1e-6)  # starts as mean
    torch.testing.assert_close(agg.attention_map(patches, meta), torch.full((B, GRID, GRID), 1 / GRID**2))
    torch.manual_seed(1)
    for p in (agg.query, agg.position_bias, agg.meta_proj.weight):  # move off the start
        nn.init.normal_(p, std=0.1)
    q = agg.query + agg.meta_proj(meta).unsqueeze(1)  # [B, 1, D]
    logits = agg.position_logits()  # [H, 1, L]
    mask = logits.unsqueeze(0).expand(B, -1, -1, -1).reshape(B * agg.heads, 1, GRID * GRID)
    looked = agg.attn(q, agg.norm_kv(patches), patches, attn_mask=mask)[0][:, 0]
    uniform = agg.attn(torch.zeros_like(q), agg.norm_kv(patches), patches)[0][:, 0]  # no biases: zero query = 1/L
    out = agg(patches, cls, meta)
    torch.testing.assert_close(out, patches.mean(dim=1) + looked - uniform, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out, patches.mean(dim=1), atol=1e-3)
    heads = agg.heads
    assert agg.n_params == DIM + (8 * DIM + DIM) + 2 * DIM + 4 * DIM * DIM + heads * GRID**2
