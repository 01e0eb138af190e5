"""Device choice on a CPU-only machine: auto is the CPU, missing devices are one clear error, the env default."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clay_explore.core.errors import ClayExploreError, DeviceError
from clay_explore.model import PRESETS
from clay_explore.model.device import (
    ENV_DEVICE,
    MAX_AUTO_BATCH,
    AdaptiveBatch,
    auto_batch_size,
    available_devices,
    bytes_per_chip,
    is_out_of_memory,
    parse_batch_size,
    resolve_device,
)

needs_no_gpu = pytest.mark.skipif(
    torch.cuda.is_available() or available_devices() != ["cpu"], reason="this test describes a CPU-only machine"
)


@pytest.fixture(autouse=True)
def _no_env_device(monkeypatch):
    monkeypatch.delenv(ENV_DEVICE, raising=False)


@needs_no_gpu
def test_auto_and_none_resolve_to_the_cpu_here():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert available_devices() == ["cpu"]


@needs_no_gpu
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3", "mps"])
def test_missing_devices_fail_with_one_clear_error(name):
    with pytest.raises(DeviceError) as err:
        resolve_device(name)
    text = str(err.value)
    assert isinstance(err.value, ClayExploreError)
    assert f"'{name}'" in text and "not available" in text
    assert "Available here: cpu" in text and "--device auto" in text


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(DeviceError, match="unknown device name .*auto, cpu, cuda, mps or cuda:N"):
        resolve_device("tpu")
    with pytest.raises(DeviceError):
        resolve_device("cuda:x")


@needs_no_gpu
def test_env_sets_the_default_and_says_so_when_wrong(monkeypatch):
    monkeypatch.setenv(ENV_DEVICE, "cpu")
    assert resolve_device(None) == torch.device("cpu")
    monkeypatch.setenv(ENV_DEVICE, "cuda")
    with pytest.raises(DeviceError, match=rf"\(from \${ENV_DEVICE}\).*unset \${ENV_DEVICE}"):
        resolve_device(None)
    assert resolve_device("cpu") == torch.device("cpu")  # an explicit choice wins over the env


def test_batch_size_parsing():
    assert parse_batch_size("auto") == parse_batch_size(None) == parse_batch_size(" AUTO ") == "auto"
    assert parse_batch_size(4) == 4 and parse_batch_size("16") == 16
    for bad in (0, -1, "x", "2.5", 2.5):
        with pytest.raises(ValueError, match="'auto' or a whole number"):
            parse_batch_size(bad)


def test_auto_batch_size_follows_free_memory_within_bounds():
    cfg = PRESETS["large"]
    per_chip = bytes_per_chip(cfg, 256)
    assert auto_batch_size(cfg, 256, "cpu", free_bytes=0) == 1
    assert auto_batch_size(cfg, 256, "cpu", free_bytes=10**15) == MAX_AUTO_BATCH["cpu"]
    # CUDA: about MEMORY_FRACTION of free memory, capped
    assert auto_batch_size(cfg, 256, "cuda", free_bytes=int(per_chip * 10 / 0.7) + 1) == 10
    assert auto_batch_size(cfg, 256, "cuda", free_bytes=10**15) == MAX_AUTO_BATCH["cuda"]
    assert bytes_per_chip(cfg, 128) < per_chip  # fewer tokens, less memory
    assert 1 <= auto_batch_size(cfg, 256, "cpu") <= MAX_AUTO_BATCH["cpu"]  # this machine's RAM


def test_out_of_memory_kinds():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert (
        is_out_of_memory(
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory"
                ": you tried to allocate 1 bytes. Out of memory"
            )
        )
        is True
    )
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None:
        assert is_out_of_memory(oom("boom"))


def test_adaptive_batch_halves_on_out_of_memory_and_keeps_order():
    calls: list[int] = []

    def fn(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        if len(rows) > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")
        return rows * 10

    sizer = AdaptiveBatch(8, "cpu")
    out = np.concatenate(sizer.run(np.arange(11), fn))
    assert out.tolist() == [i * 10 for i in range(11)]
    assert sizer.size == 2 and sizer.shrinks == 2  # 8 -> 4 -> 2, and it stays at 2
    assert calls[:3] == [8, 4, 2] and max(calls[3:]) <= 2
    # later batches start at the reduced size
    calls.clear()
    sizer.run(np.arange(4), fn)
    assert calls == [2, 2]


def test_adaptive_batch_other_errors_pass_and_one_chip_too_big_is_clear():
    with pytest.raises(RuntimeError, match="shape mismatch"):
        AdaptiveBatch(4).run(np.arange(4), lambda rows: (_ for _ in ()).throw(RuntimeError("shape mismatch")))

    def never_fits(rows):
        raise MemoryError

    with pytest.raises(DeviceError, match="One chip alone does not fit.*--device cpu"):
        AdaptiveBatch(4, "cpu").run(np.arange(4), never_fits)
