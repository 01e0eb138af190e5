"""The large preset is Clay v1.5 to the key; bad inputs get clear errors, not shape tracebacks."""

from __future__ import annotations

import json

import pytest
import torch

from clay_explore.core.errors import ModelInputError
from clay_explore.model import PRESETS, ClayConfig, ClayModel, config_from_hparams
from clay_explore.model.checkpoint import build_on_meta


def test_large_preset_matches_official_manifest(shared_dir):
    manifest = json.loads((shared_dir / "fixtures" / "clay_v15_manifest.json").read_text())
    official = {
        e["key"][len("model.") :]: tuple(e["shape"])
        for e in manifest["state_dict"]
        if e["key"].startswith(("model.encoder.", "model.decoder."))
    }
    assert all(e["dtype"] == "float32" for e in manifest["state_dict"])
    model = build_on_meta(PRESETS["large"], "large")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    n_dec = sum(p.numel() for p in model.decoder.parameters())
    assert n_enc == manifest["param_counts"]["encoder"]
    assert n_dec == manifest["param_counts"]["decoder"]


def test_hparams_of_the_official_checkpoint_pick_large(shared_dir):
    manifest = json.loads((shared_dir / "fixtures" / "clay_v15_manifest.json").read_text())
    hp = dict(manifest["hyper_parameters"], _class_path="claymodel.module.ClayMAEModule", lr="5e-6")
    preset, cfg = config_from_hparams(hp)
    assert preset == "large" and cfg == PRESETS["large"]


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_presets_build(name):
    model = build_on_meta(PRESETS[name], name)
    assert model.config.dim == PRESETS[name].dim


def test_enc_to_dec_is_identity_when_widths_match():
    cfg = ClayConfig(32, 1, 2, 16, 2, 32, 1, 2, 16, 2)
    keys = build_on_meta(cfg).state_dict().keys()
    assert not any(k.startswith("decoder.enc_to_dec") for k in keys)


def test_bad_dims_are_refused():
    with pytest.raises(ModelInputError, match="multiple of 4"):
        ClayConfig(66, 1, 2, 16, 2, 32, 1, 2, 16, 2)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return ClayModel(ClayConfig(32, 1, 2, 16, 2, 16, 1, 2, 8, 2)).eval()


def _meta(b):
    return torch.zeros(b, 4), torch.zeros(b, 4), torch.tensor(10.0), torch.tensor([0.49, 0.56, 0.665])


@pytest.mark.parametrize(
    "shape, match",
    [((1, 3, 60, 60), "multiple of the patch size"), ((1, 3, 64, 32), "square"), ((3, 64, 64), r"\[B, C, H, W\]")],
)
def test_bad_chip_shapes(small_model, shape, match):
    with pytest.raises(ModelInputError, match=match):
        small_model.encode(torch.zeros(shape), *_meta(1))


def test_band_mismatch(small_model):
    t, ll, gsd, _ = _meta(1)
    with pytest.raises(ModelInputError, match="Band mismatch"):
        small_model.encode(torch.zeros(1, 4, 16, 16), t, ll, gsd, torch.tensor([0.49, 0.56]))


def test_metadata_shapes_and_gsd(small_model):
    t, ll, gsd, waves = _meta(2)
    with pytest.raises(ModelInputError, match="time must be"):
        small_model.encode(torch.zeros(2, 3, 16, 16), t[:1], ll, gsd, waves)
    with pytest.raises(ModelInputError, match="gsd"):
        small_model.encode(torch.zeros(2, 3, 16, 16), t, ll, torch.tensor([10.0, 20.0]), waves)
    # a python float gsd is accepted (the reference needs a tensor)
    out = small_model.encode(torch.zeros(2, 3, 16, 16), t, ll, 10.0, waves)
    assert out.shape == (2, 5, 32)


@pytest.mark.parametrize("side", [8, 24, 72])
def test_odd_multiples_of_8_and_decode_roundtrip_shapes(small_model, side):
    t, ll, gsd, waves = _meta(1)
    with torch.inference_mode():
        tok = small_model.encode(torch.randn(1, 3, side, side), t, ll, gsd, waves)
        pix = small_model.decode(tok, t, ll, gsd, waves)
        img = small_model.unpatchify(pix, 3)
        cls_only = small_model.decode_from_cls(tok[:, 0], t, ll, gsd, waves, grid=side // 8)
    L = (side // 8) ** 2
    assert tok.shape == (1, 1 + L, 32) and pix.shape == (1, L, 3 * 64) and img.shape == (1, 3, side, side)
    assert cls_only.shape == pix.shape


def test_mask_changes_only_through_mask_token(small_model):
    t, ll, gsd, waves = _meta(1)
    with torch.inference_mode():
        tok = small_model.encode(torch.randn(1, 3, 16, 16), t, ll, gsd, waves)
        none = small_model.decode(tok, t, ll, gsd, waves, mask=torch.zeros(1, 4, dtype=torch.bool))
        full = small_model.decode(tok, t, ll, gsd, waves)
    torch.testing.assert_close(none, full)


def test_fast_mode_is_close(small_model):
    import copy

    fast = copy.deepcopy(small_model).to_fast()
    x = torch.randn(2, 3, 32, 32)
    t, ll, gsd, waves = _meta(2)
    with torch.inference_mode():
        a = small_model.encode(x, t, ll, gsd, waves)
        b = fast.encode(x, t, ll, gsd, waves)
    cos = torch.nn.functional.cosine_similarity(a[:, 0], b[:, 0], dim=-1)
    assert cos.min() > 0.99
    assert b.dtype == torch.float32


def test_float64_and_float16_pixels_are_cast(small_model):
    t, ll, gsd, waves = _meta(1)
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode():
        ref = small_model.encode(x, t, ll, gsd, waves)
        for dtype in (torch.float64, torch.float16):
            out = small_model.encode(x.to(dtype), t, ll, gsd, waves)
            torch.testing.assert_close(out, ref, rtol=1e-2, atol=1e-2)
        import numpy as np

        out = small_model.encode(x.numpy().astype(np.float64), t.numpy(), ll.numpy(), 10.0, waves.numpy())
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_nan_inputs_are_refused(small_model):
    t, ll, gsd, waves = _meta(1)
    x = torch.randn(1, 3, 16, 16)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ModelInputError, match="NaN"):
        small_model.encode(x, t, ll, gsd, waves)
    t[0, 0] = float("nan")
    with pytest.raises(ModelInputError, match="NaN"):
        small_model.encode(torch.zeros(1, 3, 16, 16), t, ll, gsd, waves)
