"""Embedding stage: stored tokens equal the model's, metadata per chip, gsd batching, resume."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from clay_explore.core.errors import CancelledError, StageMissingError
from clay_explore.core.sensors import encode_latlon, encode_time
from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace
from clay_explore.research.embed import embed_workspace
from clay_explore.research.inputs import chip_meta, normalised_chips, read_tokens, waves_of

from .conftest import generated_chips, make_workspace


def _direct_tokens(ws: Workspace, model, rows):
    meta = chip_meta(ws)
    pixels, _ = normalised_chips(ws, rows)
    with torch.inference_mode():
        return model.encode(
            torch.from_numpy(pixels),
            torch.from_numpy(meta.time[rows]),
            torch.from_numpy(meta.latlon[rows]),
            torch.tensor(float(meta.gsd[rows[0]])),
            torch.from_numpy(waves_of(ws)),
        ).numpy()


def test_embed_stores_the_models_tokens(generated_embedded, tiny_model):
    ws = Workspace.open(generated_embedded)
    n = ws.n_chips()
    cls_arr = ws.open_array(EMBEDDINGS_ZARR, "cls")
    patch_arr = ws.open_array(EMBEDDINGS_ZARR, "patches")
    assert cls_arr.shape == (n, 64) and patch_arr.shape == (n, 8, 8, 64)
    assert cls_arr.dtype == np.float16 and patch_arr.chunks == (1, 8, 8, 64)
    attrs = dict(patch_arr.attrs)
    assert attrs["precision"] == "float32" and attrs["preset"] == "custom" and len(attrs["sha256"]) == 64
    assert attrs["untrained"] is True and "untrained" in attrs["note"]
    stage = ws.stage("embed")
    assert stage["status"] == "complete" and stage["untrained"] is True
    rows = np.arange(n)
    expected = _direct_tokens(ws, tiny_model, rows)
    cls, patches = read_tokens(ws, rows)
    np.testing.assert_allclose(cls, expected[:, 0], rtol=2e-3, atol=2e-3)  # float16 storage
    np.testing.assert_allclose(patches, expected[:, 1:], rtol=2e-3, atol=2e-3)


def test_nodata_becomes_band_mean_and_metadata_comes_from_the_table(generated_template):
    ws = Workspace.open(generated_template)
    z, valid = normalised_chips(ws, [0])
    assert not valid[0, :, :8, :8].any() and (z[0, :, :8, :8] == 0).all()
    meta = chip_meta(ws)
    table = ws.chip_table()
    assert np.array_equal(meta.time[0], np.zeros(4, np.float32))  # chip 0 has no date
    np.testing.assert_allclose(meta.time[1], encode_time(table["datetime"].iloc[1].to_pydatetime()))
    np.testing.assert_allclose(meta.latlon[2], encode_latlon(table["lat"].iloc[2], table["lon"].iloc[2]))
    assert meta.meta.shape == (len(table), 8)


def test_mixed_gsd_chips_are_encoded_with_their_own_gsd(tmp_path, tiny_model):
    pixels, rows = generated_chips(n=5, seed=3)
    for i in (1, 3):
        rows[i]["gsd"] = 30.0
    ws = make_workspace(tmp_path / "ws", pixels, rows)
    embed_workspace(ws, model=tiny_model, batch_size=4, show_progress=False)
    cls, _ = read_tokens(ws, range(5))
    for group in ([0, 2, 4], [1, 3]):
        np.testing.assert_allclose(
            cls[group], _direct_tokens(ws, tiny_model, np.array(group))[:, 0], rtol=2e-3, atol=2e-3
        )


def test_resume_after_cancel_loses_nothing(generated_template, generated_embedded, copy_ws, tiny_model):
    root = copy_ws(generated_template)
    stop = threading.Event()
    calls = []

    def progress(done, total, info):
        calls.append((done, total, info))
        if done:
            stop.set()  # cancel after the first finished batch (earlier calls: the total, moves within the batch)

    with pytest.raises(CancelledError, match="resume"):
        embed_workspace(root, model=tiny_model, batch_size=3, progress=progress, cancel=stop, show_progress=False)
    ws = Workspace.open(root)
    assert ws.stage("embed")["status"] == "partial"
    assert ws.done_mask(EMBEDDINGS_ZARR, "cls", ws.n_chips()).sum() == 3
    assert calls[0][:2] == (0, ws.n_chips())  # the total from the start
    first = next(c for c in calls if c[0])
    assert first[0] == 3 and first[2]["chips_per_s"] > 0 and first[2]["eta_s"] is not None
    with pytest.raises(StageMissingError):
        read_tokens_requires_complete(ws)
    done_cls = read_tokens(ws, [0, 1, 2])[0]
    record = embed_workspace(root, model=tiny_model, batch_size=3, show_progress=False)
    assert record["status"] == "complete"
    resumed = read_tokens(ws, range(ws.n_chips()))
    full = read_tokens(Workspace.open(generated_embedded), range(ws.n_chips()))
    np.testing.assert_array_equal(resumed[0], full[0])
    np.testing.assert_array_equal(resumed[1], full[1])
    np.testing.assert_array_equal(resumed[0][:3], done_cls)


def read_tokens_requires_complete(ws):
    from clay_explore.research.inputs import embeddings_info

    return embeddings_info(ws)


def test_rerun_with_another_precision_starts_over(generated_template, copy_ws, tiny_model, tiny_checkpoint):
    root = copy_ws(generated_template)
    embed_workspace(root, model=tiny_model, batch_size=5, show_progress=False)
    record = embed_workspace(root, checkpoint=tiny_checkpoint, batch_size=5, fast=True, show_progress=False)
    ws = Workspace.open(root)
    assert record["precision"] == "bf16"
    assert dict(ws.open_array(EMBEDDINGS_ZARR, "patches").attrs)["precision"] == "bf16"
    assert ws.done_mask(EMBEDDINGS_ZARR, "cls", ws.n_chips()).all()


def test_ctrl_c_leaves_the_stage_partial_until_resumed(generated_template, copy_ws, tiny_model, tiny_checkpoint):
    """Ctrl-C is a KeyboardInterrupt mid-run: later stages must not see a 'complete' embed stage."""
    root = copy_ws(generated_template)
    embed_workspace(root, model=tiny_model, batch_size=5, show_progress=False)

    def ctrl_c(done, total, info):
        if done:  # after the first finished batch
            raise KeyboardInterrupt

    # re-embedding in bf16 starts over; interrupted after one batch, the old 'complete' must not survive
    with pytest.raises(KeyboardInterrupt):
        embed_workspace(root, checkpoint=tiny_checkpoint, fast=True, batch_size=3, progress=ctrl_c, show_progress=False)
    ws = Workspace.open(root)
    assert ws.stage("embed")["status"] == "partial"
    assert ws.done_mask(EMBEDDINGS_ZARR, "cls", ws.n_chips()).sum() == 3
    with pytest.raises(StageMissingError, match="clay-explore embed"):
        read_tokens_requires_complete(ws)


def test_done_list_without_its_arrays_is_not_trusted(generated_template, copy_ws, tiny_model):
    import shutil

    root = copy_ws(generated_template)
    embed_workspace(root, model=tiny_model, batch_size=5, show_progress=False)
    ws = Workspace.open(root)
    shutil.rmtree(ws.path(EMBEDDINGS_ZARR))  # e.g. deleted by hand to free space
    record = embed_workspace(root, model=tiny_model, batch_size=5, show_progress=False)
    assert record["resumed_from"] == 0
    cls, _ = read_tokens(ws, range(ws.n_chips()))
    assert np.abs(cls).sum(axis=1).min() > 0, "every chip was encoded again"


def test_rerun_of_a_finished_embed_changes_nothing(generated_embedded, copy_ws, tiny_model):
    """A no-op re-run must not rewrite the record: projections and evaluation are keyed on it."""
    from clay_explore.research.projection import fingerprint
    from clay_explore.research.vectors import embeddings_fingerprint

    root = copy_ws(generated_embedded)
    ws = Workspace.open(root)
    before = (dict(ws.stage("embed")), embeddings_fingerprint(ws), fingerprint(ws))
    rec = embed_workspace(root, model=tiny_model, batch_size=3, show_progress=False)
    ws = Workspace.open(root)
    assert rec["already_complete"] is True
    assert (ws.stage("embed"), embeddings_fingerprint(ws), fingerprint(ws)) == before
