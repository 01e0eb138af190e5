"""Checkpoint loading: official layout variants load; bad files give a clear CheckpointError."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from clay_explore.core.errors import CheckpointError
from clay_explore.model import ClayConfig, ClayModel

CFG = ClayConfig(32, 1, 2, 16, 2, 16, 1, 2, 8, 2)
HPARAMS = {
    "model_size": "custom",
    "mask_ratio": 0.0,
    "shuffle": False,
    "patch_size": 8,
    "lr": "5e-6",
    **{k: v for k, v in CFG.to_dict().items() if k != "patch_size"},
}


def _official_layout(model: ClayModel, *, teacher: bool = False, extra: bool = False) -> dict:
    sd = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    sd["model.proj.weight"] = torch.randn(1024, CFG.dim)
    sd["model.proj.bias"] = torch.randn(1024)
    if teacher:
        sd["model.teacher.cls_token"] = torch.randn(1, 1, 64)
        sd["model.teacher.blocks.0.attn.qkv.weight"] = torch.randn(192, 64)
    ckpt = {
        "epoch": 3,
        "global_step": 1000,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": sd,
        "hyper_parameters": dict(HPARAMS, _class_path="claymodel.module.ClayMAEModule"),
    }
    if extra:
        ckpt["optimizer_states"] = [{"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-5}]}]
        ckpt["loops"] = {"fit_loop": {"epoch_progress": {"current": {"completed": 3}}}}
    return ckpt


@pytest.fixture(scope="module")
def ref_model():
    torch.manual_seed(1)
    return ClayModel(CFG).eval()


@pytest.mark.parametrize("teacher, extra", [(False, False), (True, True)])
def test_loads_with_or_without_teacher_and_optimizer(tmp_path, ref_model, teacher, extra):
    path = tmp_path / "m.ckpt"
    torch.save(_official_layout(ref_model, teacher=teacher, extra=extra), path)
    model = ClayModel.from_checkpoint(path)
    for k, v in ref_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    assert model.source["global_step"] == 1000
    assert not any(p.requires_grad for p in model.parameters())


def test_loads_bare_state_dict_with_preset_inference(tmp_path):
    torch.manual_seed(2)
    from clay_explore.model import PRESETS

    # a bare (prefix-less) state dict of the smallest preset, no hyper_parameters
    model = ClayModel(PRESETS["tiny"], preset="tiny")
    path = tmp_path / "bare.pt"
    torch.save(model.state_dict(), path)
    loaded = ClayModel.from_checkpoint(path)
    assert loaded.preset == "tiny"


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ClayModel.from_checkpoint(tmp_path / "nope.ckpt")


def test_truncated_file(tmp_path, ref_model):
    path = tmp_path / "m.ckpt"
    torch.save(_official_layout(ref_model), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        ClayModel.from_checkpoint(path)
    assert str(path) in str(info.value)


def test_garbage_file(tmp_path):
    path = tmp_path / "m.ckpt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="m.ckpt"):
        ClayModel.from_checkpoint(path)


def test_empty_file(tmp_path):
    path = tmp_path / "m.ckpt"
    path.touch()
    with pytest.raises(CheckpointError, match="empty"):
        ClayModel.from_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/clay_explore_pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    marker = "/tmp/clay_explore_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.encoder.cls_token": torch.zeros(1)}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="Refused to load"):
        ClayModel.from_checkpoint(path)
    assert not os.path.exists(marker)
    # the same with a legacy (non-zip) pickle
    legacy = tmp_path / "evil_legacy.ckpt"
    with open(legacy, "wb") as f:
        pickle.dump(_Evil(), f)
    with pytest.raises(CheckpointError):
        ClayModel.from_checkpoint(legacy)
    assert not os.path.exists(marker)


def test_wrong_keys_are_named(tmp_path, ref_model):
    ckpt = _official_layout(ref_model)
    sd = ckpt["state_dict"]
    del sd["model.encoder.cls_token"]
    sd["model.encoder.transformer.layers.0.0.to_qkv.weight"] = torch.zeros(10, 10)
    sd["model.encoder.something_new"] = torch.zeros(1)
    path = tmp_path / "m.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as info:
        ClayModel.from_checkpoint(path)
    msg = str(info.value)
    assert "encoder.cls_token" in msg and "to_qkv" in msg and "something_new" in msg


def test_wrong_model_size(tmp_path, ref_model):
    ckpt = _official_layout(ref_model)
    ckpt["hyper_parameters"] = {"model_size": "large"}
    path = tmp_path / "m.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="does not match the Clay large"):
        ClayModel.from_checkpoint(path)


def test_not_a_clay_checkpoint(tmp_path):
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": {"model.backbone.weight": torch.zeros(3)}}, path)
    with pytest.raises(CheckpointError, match="not a Clay checkpoint"):
        ClayModel.from_checkpoint(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="not a checkpoint dictionary"):
        ClayModel.from_checkpoint(path)


def test_nan_weights(tmp_path, ref_model):
    ckpt = _official_layout(ref_model)
    ckpt["state_dict"]["model.encoder.transformer.norm.weight"][0] = float("nan")
    path = tmp_path / "m.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="non-finite"):
        ClayModel.from_checkpoint(path)


def test_xz_compressed_checkpoint_loads(parity_dir):
    """The fixtures' .ckpt.xz layout loads directly."""
    model = ClayModel.from_checkpoint(parity_dir / "model.ckpt.xz")
    assert model.config.dim == 64


def test_cli_model_info_json(tiny_checkpoint, tmp_path):
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "clay_explore.cli.main",
            "model",
            "info",
            "--checkpoint",
            str(tiny_checkpoint),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HOME": str(tmp_path)},
    )
    info = json.loads(out.stdout)
    assert info["preset"] == "custom" and info["trained"] is False and "UNTRAINED" in info["notice"]
    assert info["parameters"]["encoder"] == 1_245_824 and len(info["sha256"]) == 64
    assert "sentinel-2-l2a" in info["sensors"]


def test_cli_bad_checkpoint_is_one_clear_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint at all" * 10)
    out = subprocess.run(
        [sys.executable, "-m", "clay_explore.cli.main", "model", "info", "--checkpoint", str(bad)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HOME": str(tmp_path)},
    )
    assert out.returncode == 2
    assert out.stderr.startswith("Error: Checkpoint") and "Traceback" not in out.stderr


def test_text_file_is_corrupt_not_keyerror(tmp_path):
    path = tmp_path / "x.ckpt"
    path.write_text("hello\n")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        ClayModel.from_checkpoint(path)
