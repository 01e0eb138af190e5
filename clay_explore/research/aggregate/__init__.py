"""Patch tokens -> one image vector (aggregators), and one vector -> patch tokens (expander).

``build_aggregator(name, dim=, grid=, ...)`` is the one way to make an aggregator by name;
``METHODS`` lists the names the CLI and the app offer.
"""

from __future__ import annotations

from typing import Any

from clay_explore.research.aggregate.attention import AttentionPool, PerceiverPool
from clay_explore.research.aggregate.base import META_DIM, Aggregator
from clay_explore.research.aggregate.expander import Expander
from clay_explore.research.aggregate.linear import LinearAggregator
from clay_explore.research.aggregate.pooling import ClsToken, GeMPool, MaxPool, MeanPool

#: Every aggregator by name, in the order they are shown.
AGGREGATORS: dict[str, type[Aggregator]] = {
    cls.name: cls for cls in (MeanPool, MaxPool, GeMPool, ClsToken, LinearAggregator, AttentionPool, PerceiverPool)
}
#: Names offered by `clay-explore fit --method`.
METHODS = tuple(AGGREGATORS)


def build_aggregator(name: str, **kwargs: Any) -> Aggregator:
    """Make the aggregator called ``name`` (kwargs: dim, grid, out_dim and its own options).

    ``build_aggregator(**agg.config())`` rebuilds an aggregator from its saved config.
    """
    if name not in AGGREGATORS:
        raise ValueError(f"Unknown aggregation method '{name}'. Choose one of: {', '.join(METHODS)}.")
    return AGGREGATORS[name](**kwargs)


__all__ = [
    "AGGREGATORS",
    "META_DIM",
    "METHODS",
    "Aggregator",
    "AttentionPool",
    "ClsToken",
    "Expander",
    "GeMPool",
    "LinearAggregator",
    "MaxPool",
    "MeanPool",
    "PerceiverPool",
    "build_aggregator",
]
