"""Progress inside one forward pass: a callback after each encoder block (attention or MLP).

A batch of the real-size model on a CPU can take minutes; counting finished blocks lets a progress
bar move within the batch and lets Cancel stop it between blocks (the batch is then dropped, the
batches stored before are kept). Forward hooks leave the model's code and results unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from torch import nn

from clay_explore.core.errors import CancelledError
from clay_explore.core.progress import Cancel, is_cancelled

#: ``on_block(fraction, batch)``: the forward pass of a ``batch``-item batch is ``fraction`` (0..1] done.
BlockFn = Callable[[float, int], Any]


def encoder_blocks(model: Any) -> list[nn.Module]:
    """The encoder's attention and MLP modules in the order they run (2 per transformer layer)."""
    return [m for pair in model.encoder.transformer.layers for m in pair]


class BlockProgress:
    """Hooks on ``modules`` calling ``on_block`` after each one and raising CancelledError when cancelled.

    ``remove()`` takes the hooks off (call it in a ``finally``); also usable as a context manager. Only
    forward passes run by the thread that attached the hooks count (a model shared by a server's
    threads is never cancelled or counted for another caller).
    """

    def __init__(
        self,
        modules: list[nn.Module],
        on_block: BlockFn | None,
        cancel: Cancel = None,
        message: Callable[[], str] | None = None,
    ):
        self.steps = len(modules)
        self.on_block, self.cancel = on_block, cancel
        self._thread = threading.get_ident()
        self.message = message or (lambda: "Cancelled during a batch; the batches finished before are kept.")
        self._handles = [m.register_forward_hook(self._hook(k + 1)) for k, m in enumerate(modules)]

    def _hook(self, step: int):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if threading.get_ident() != self._thread:
                return
            if is_cancelled(self.cancel):
                raise CancelledError(self.message())
            if self.on_block is not None:
                batch = int(output.shape[0]) if hasattr(output, "shape") and output.ndim else 1  # [B, N, D]
                self.on_block(step / self.steps, batch)

        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> BlockProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def encoder_progress(
    model: Any, on_block: BlockFn | None, cancel: Cancel = None, message: Callable[[], str] | None = None
) -> BlockProgress:
    """BlockProgress over the Clay encoder's blocks (a no-op when the model has no such blocks)."""
    try:
        modules = encoder_blocks(model)
    except AttributeError:  # another encoder (e.g. a wrapped or distributed model): batch-level progress only
        modules = []
    return BlockProgress(modules, on_block, cancel, message)
