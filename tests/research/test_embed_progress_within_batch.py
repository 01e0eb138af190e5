"""Embed progress inside a batch: the bar moves after each encoder block, and Cancel stops mid-batch
(the unfinished batch is dropped, the stored ones kept, the stage 'partial'); a resume then equals a
clean run bitwise."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from clay_explore.core.errors import CancelledError
from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace
from clay_explore.research.embed import embed_workspace
from clay_explore.research.inputs import read_tokens


def test_progress_moves_within_one_batch(generated_template, copy_ws, tiny_model):
    root = copy_ws(generated_template)
    n = Workspace.open(root).n_chips()
    calls = []
    embed_workspace(
        root,
        model=tiny_model,
        batch_size=n,
        show_progress=False,
        progress=lambda d, t, i: calls.append((d, t, i["position"])),
    )
    assert calls[0] == (0, n, 0.0)  # the total before anything is encoded
    inside = [c for c in calls if c[0] == 0 and 0 < c[2] < n]  # one batch holds every chip
    assert len(inside) >= 2 and [c[2] for c in inside] == sorted(c[2] for c in inside)
    assert calls[-1][:2] == (n, n)


def test_cancel_stops_within_a_batch_and_resume_equals_a_clean_run(
    generated_template, generated_embedded, copy_ws, tiny_model
):
    root = copy_ws(generated_template)
    n = Workspace.open(root).n_chips()
    stop = threading.Event()

    def progress(done, total, info):
        if done >= 3 and info["position"] > done:  # inside the second batch
            stop.set()

    with pytest.raises(CancelledError, match="3 of .* chips are stored"):
        embed_workspace(root, model=tiny_model, batch_size=3, progress=progress, cancel=stop, show_progress=False)
    ws = Workspace.open(root)
    assert ws.stage("embed")["status"] == "partial"
    assert ws.done_mask(EMBEDDINGS_ZARR, "cls", n).sum() == 3  # the batch in flight was dropped
    embed_workspace(root, model=tiny_model, batch_size=3, show_progress=False)
    resumed = read_tokens(Workspace.open(root), range(n))
    clean = read_tokens(Workspace.open(generated_embedded), range(n))
    np.testing.assert_array_equal(resumed[0], clean[0])
    np.testing.assert_array_equal(resumed[1], clean[1])
