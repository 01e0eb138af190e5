"""Embedding on a chosen device: device and precision recorded, batch size auto, out-of-memory retried smaller."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from clay_explore.core.errors import DeviceError
from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace
from clay_explore.model import ClayModel, load_model
from clay_explore.model import fastpath as fp
from clay_explore.model.device import ENV_DEVICE, MAX_AUTO_BATCH, available_devices
from clay_explore.research.embed import embed_workspace
from clay_explore.research.inputs import read_tokens

cpu_only = pytest.mark.skipif(available_devices() != ["cpu"], reason="describes a CPU-only machine")


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_DEVICE, raising=False)
    monkeypatch.setenv(fp.CACHE_ENV, str(tmp_path / "cache"))


def _tokens(root) -> tuple[np.ndarray, np.ndarray]:
    ws = Workspace.open(root)
    return read_tokens(ws, np.arange(ws.n_chips()))


def test_device_and_precision_are_recorded(generated_template, copy_ws, tiny_checkpoint):
    root = copy_ws(generated_template)
    record = embed_workspace(root, checkpoint=tiny_checkpoint, device="cpu", show_progress=False)
    assert record["device"] == "cpu" and record["precision"] == "float32"
    assert record["precision_reason"] == "exact mode (fast mode off)"
    assert record["batch_size"] == min(MAX_AUTO_BATCH["cpu"], record["batch_size"]) >= 1  # auto, bounded
    attrs = dict(Workspace.open(root).open_array(EMBEDDINGS_ZARR, "cls").attrs)
    assert attrs["device"] == "cpu" and attrs["precision"] == "float32"
    # running again on the same machine is a no-op, whatever the batch size
    again = embed_workspace(root, checkpoint=tiny_checkpoint, device="auto", batch_size=3, show_progress=False)
    assert again.get("already_complete")


def test_fast_precision_is_recorded_with_its_reason(generated_template, copy_ws, tiny_checkpoint):
    root = copy_ws(generated_template)
    model = load_model(tiny_checkpoint, device="cpu")
    fp.apply_fast_path(
        model, "cpu", flags=frozenset({"avx2"}), timings={"float32": 1.0, "bf16": 9.0, "int8": 0.5}, cosine_floor=0.5
    )
    record = embed_workspace(root, model=model, show_progress=False)
    assert record["precision"] == "int8" and "int8" in record["precision_reason"]
    assert dict(Workspace.open(root).open_array(EMBEDDINGS_ZARR, "patches").attrs)["precision"] == "int8"


@cpu_only
def test_missing_device_is_refused_before_any_work(generated_template, copy_ws, tiny_checkpoint, monkeypatch):
    root = copy_ws(generated_template)
    with pytest.raises(DeviceError, match="'cuda' is not available"):
        embed_workspace(root, checkpoint=tiny_checkpoint, device="cuda", show_progress=False)
    monkeypatch.setenv(ENV_DEVICE, "mps")
    with pytest.raises(DeviceError, match=ENV_DEVICE):
        embed_workspace(root, checkpoint=tiny_checkpoint, show_progress=False)
    assert Workspace.open(root).stage("embed") is None


def test_out_of_memory_batches_are_halved_and_give_the_same_tokens(generated_template, copy_ws, tiny_checkpoint):
    normal_root = copy_ws(generated_template)
    oom_root = normal_root.parent / "ws-oom"
    shutil.copytree(generated_template, oom_root)
    model = ClayModel.from_checkpoint(tiny_checkpoint).eval()
    embed_workspace(normal_root, model=model, batch_size=2, show_progress=False)

    sizes: list[int] = []
    real_encode = model.encode

    def small_memory_encode(pixels, *args, **kwargs):
        sizes.append(pixels.shape[0])
        if pixels.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_encode(pixels, *args, **kwargs)

    model.encode = small_memory_encode
    try:
        record = embed_workspace(oom_root, model=model, batch_size=8, show_progress=False)
    finally:
        del model.encode
    assert record["status"] == "complete" and record["oom_halvings"] == 2  # 8 -> 4 -> 2
    assert sizes[:3] == [8, 4, 2] and max(sizes[3:]) <= 2
    (cls_a, patches_a), (cls_b, patches_b) = _tokens(normal_root), _tokens(oom_root)
    np.testing.assert_array_equal(cls_a, cls_b)  # same pieces of 2 chips as the normal run: identical
    np.testing.assert_array_equal(patches_a, patches_b)


@cpu_only
def test_cli_device_not_there_is_one_error_line(generated_template, copy_ws, tiny_checkpoint):
    root = copy_ws(generated_template)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "clay_explore.cli.main",
            "embed",
            "--workspace",
            str(root),
            "--checkpoint",
            str(tiny_checkpoint),
            "--device",
            "cuda:0",
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != ENV_DEVICE},
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.startswith("Error: Device 'cuda:0' is not available") and "Available here: cpu" in out.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "clay_explore.cli.main", "embed", "--workspace", str(root), "--batch-size", "zero"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "neither 'auto' nor a whole number" in bad.stderr


@pytest.mark.parametrize("command", ["embed", "fit", "evaluate", "reconstruct", "vectors"])
def test_every_torch_command_takes_device(command):
    from click.testing import CliRunner

    from clay_explore.cli.main import cli

    out = CliRunner().invoke(cli, [command, "--help"])
    assert out.exit_code == 0 and "--device" in out.output and "CLAY_EXPLORE_DEVICE" in out.output


@cpu_only
def test_later_stages_take_the_device_too(generated_embedded, copy_ws, tiny_checkpoint, tmp_path):
    from clay_explore.research.fit import fit_method
    from clay_explore.research.reconstruct import write_comparison
    from clay_explore.research.vectors import ensure_parameter_free_vectors

    root = copy_ws(generated_embedded)
    for call in (
        lambda d: fit_method(
            root, "mean", epochs=1, seeds=1, checkpoint=tiny_checkpoint, device=d, show_progress=False
        ),
        lambda d: write_comparison(root, 0, tmp_path / "c.png", checkpoint=tiny_checkpoint, device=d),
        lambda d: ensure_parameter_free_vectors(root, device=d),
    ):
        with pytest.raises(DeviceError, match="not available"):
            call("cuda")
    assert ensure_parameter_free_vectors(root, device="cpu")
    config = fit_method(root, "mean", epochs=1, seeds=1, checkpoint=tiny_checkpoint, device="cpu", show_progress=False)
    assert config
    assert write_comparison(root, 0, tmp_path / "c.png", checkpoint=tiny_checkpoint, device="cpu")["out"]
