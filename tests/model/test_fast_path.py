"""Fast mode chooses by the hardware: bf16 only where native and faster, else int8 only if accurate, else fp32."""

from __future__ import annotations

import json

import pytest
import torch

from clay_explore.model import ClayModel, load_model
from clay_explore.model import fastpath as fp
from clay_explore.research.provenance import describe_model

BF16_CPU = frozenset({"avx2", "avx512f", "avx512_bf16"})
AVX2_CPU = frozenset({"avx2", "fma"})
#: Timings (seconds) like the issue's AVX2 machine: emulated bf16 about 20x slower, int8 faster.
AVX2_TIMINGS = {"float32": 0.2, "bf16": 4.1, "int8": 0.08}
BF16_TIMINGS = {"float32": 0.09, "bf16": 0.04, "int8": 0.02}


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(fp.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture
def model(tiny_checkpoint) -> ClayModel:
    return ClayModel.from_checkpoint(tiny_checkpoint).eval()


def _linear_dtypes(m: ClayModel) -> set:
    return {mod.weight.dtype for mod in m.encoder.transformer.modules() if isinstance(mod, torch.nn.Linear)}


def test_chooser_bf16_only_when_native_and_faster():
    assert fp.choose_cpu_precision(BF16_CPU, BF16_TIMINGS)[0] == "bf16"
    # native but the probe says no gain -> not bf16 (int8 here, since it is faster)
    slow_bf16 = {**BF16_TIMINGS, "bf16": 0.09}
    assert fp.choose_cpu_precision(BF16_CPU, slow_bf16)[0] == "int8"
    # no native bf16 (the trap of issue 11): never bf16, even if a noisy probe said it was faster
    precision, reason = fp.choose_cpu_precision(AVX2_CPU, {**AVX2_TIMINGS, "bf16": 0.1})
    assert precision == "int8" and "no native bf16" in reason
    # nothing faster than fp32 -> fp32; int8 unavailable -> fp32
    assert fp.choose_cpu_precision(AVX2_CPU, {"float32": 0.2, "bf16": 4.1, "int8": 0.19})[0] == "float32"
    precision, reason = fp.choose_cpu_precision(AVX2_CPU, {"float32": 0.2, "bf16": 4.1, "int8": None})
    assert precision == "float32" and "int8 unavailable" in reason


def test_bf16_cpu_gets_bf16_weights_and_the_reason_is_recorded(model):
    fp.apply_fast_path(model, "cpu", flags=BF16_CPU, timings=BF16_TIMINGS)
    assert model.fast_path["precision"] == "bf16" and "avx512_bf16" in model.fast_path["reason"]
    assert _linear_dtypes(model) == {torch.bfloat16}
    facts = describe_model(model)
    assert facts["precision"] == "bf16" and facts["device"] == "cpu" and "bf16" in facts["precision_reason"]


def test_avx2_cpu_gets_int8_when_the_cls_stays_close(model, tiny_checkpoint):
    reference = ClayModel.from_checkpoint(tiny_checkpoint).eval()
    fp.apply_fast_path(model, "cpu", flags=AVX2_CPU, timings=AVX2_TIMINGS, cosine_floor=0.9)
    assert model.fast_path["precision"] == "int8", model.fast_path
    assert "cosine" in model.fast_path["reason"]
    qkv = model.encoder.transformer.layers[0][0].to_qkv
    assert "quantized" in type(qkv).__module__  # the encoder's linear layers are int8 dynamic
    assert isinstance(model.decoder.transformer.layers[0][0].to_qkv, torch.nn.Linear)  # the decoder stays fp32
    inputs = fp._probe_inputs(torch.device("cpu"))
    with torch.inference_mode():
        ref, out = reference.encode(*inputs), model.encode(*inputs)
    assert out.shape == ref.shape and out.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(out[:, 0], ref[:, 0], dim=-1)
    assert float(cos.min()) >= 0.9
    assert describe_model(model)["precision"] == "int8"


def test_int8_is_dropped_when_the_cls_drifts(model, monkeypatch):
    monkeypatch.setattr(fp, "cls_cosine", lambda m, ref: 0.99)
    fp.apply_fast_path(model, "cpu", flags=AVX2_CPU, timings=AVX2_TIMINGS)
    assert model.fast_path["precision"] == "float32"
    assert "0.99000 < 0.999" in model.fast_path["reason"]
    assert isinstance(model.encoder.transformer.layers[0][0].to_qkv, torch.nn.Linear)  # swapped back
    assert _linear_dtypes(model) == {torch.float32}


def test_int8_is_kept_exactly_at_the_floor(model, monkeypatch):
    monkeypatch.setattr(fp, "cls_cosine", lambda m, ref: fp.COSINE_FLOOR)
    fp.apply_fast_path(model, "cpu", flags=AVX2_CPU, timings=AVX2_TIMINGS)
    assert model.fast_path["precision"] == "int8"


def test_no_faster_path_stays_float32(model):
    fp.apply_fast_path(model, "cpu", flags=AVX2_CPU, timings={"float32": 0.2, "bf16": 4.1, "int8": 0.3})
    assert model.fast_path["precision"] == "float32" and _linear_dtypes(model) == {torch.float32}


def test_probe_runs_once_per_machine_and_is_cached(tmp_path, monkeypatch):
    calls = []

    def probe():
        calls.append(1)
        return dict(BF16_TIMINGS)

    path = tmp_path / "fp.json"
    first = fp.cached_probe(path, probe)
    second = fp.cached_probe(path, probe)
    assert calls == [1] and first["cached"] is False and second["cached"] is True
    assert second["timings"] == BF16_TIMINGS
    stored = json.loads(path.read_text())
    assert list(stored) == [fp.machine_key()] and str(torch.__version__) in fp.machine_key()
    path.write_text("{not json")  # a damaged cache is measured again, not an error
    assert fp.cached_probe(path, probe)["cached"] is False and len(calls) == 2


def test_real_probe_measures_all_three_paths():
    timings = fp.probe_linear(repeats=1)
    assert timings["float32"] > 0 and timings["bf16"] > 0
    assert timings["int8"] is None or timings["int8"] > 0


def test_load_model_records_the_path_on_this_machine(tiny_checkpoint):
    exact = load_model(tiny_checkpoint, fast=False, device="cpu")
    assert exact.fast_path == {"precision": "float32", "reason": "exact mode (fast mode off)", "device": "cpu"}
    fast = load_model(tiny_checkpoint, fast=True, device="cpu")
    assert fast.fast_path["precision"] in ("bf16", "int8", "float32") and fast.fast_path["reason"]
    if not fp.native_bf16(fp.cpu_flags()):
        assert fast.fast_path["precision"] != "bf16"  # never emulated bf16
    assert fp.preview("cpu")["precision"] in ("bf16", "int8", "float32")
