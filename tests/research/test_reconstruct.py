"""Decoder paths: all tokens reproduce the parity fixture, CLS-only masks every patch, the PNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from clay_explore.core.sensors import get_sensor
from clay_explore.imagery.chipping import ChipSettings
from clay_explore.research.fit import patchify
from clay_explore.research.reconstruct import (
    ALL_TOKENS,
    CLS_ONLY,
    FULL,
    MAE,
    ORIGINAL,
    decode_cls_only,
    decode_full,
    reconstruct_chip,
    unpatchify,
    write_comparison,
)


@pytest.fixture
def highest_precision():
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(old)


def test_all_tokens_reproduce_the_parity_decoder_pixels(parity_dir, tiny_model, highest_precision):
    inputs = load_file(str(parity_dir / "inputs.safetensors"))
    expected = load_file(str(parity_dir / "expected.safetensors"))
    tokens = expected["encoder_tokens"]  # [2, 65, 64]
    with torch.inference_mode():
        out = decode_full(
            tiny_model, tokens[:, 0], tokens[:, 1:], inputs["time"], inputs["latlon"], inputs["gsd"], inputs["waves"]
        )
    torch.testing.assert_close(out, expected["decoder_pixels"], rtol=1e-4, atol=5e-6)


def test_cls_only_masks_every_patch(parity_dir, tiny_model):
    inputs = load_file(str(parity_dir / "inputs.safetensors"))
    tokens = load_file(str(parity_dir / "expected.safetensors"))["encoder_tokens"]
    args = (inputs["time"], inputs["latlon"], inputs["gsd"], inputs["waves"])
    with torch.inference_mode():
        out = decode_cls_only(tiny_model, tokens[:, 0], 8, *args)
        # the patch tokens must not matter: whatever sits there is replaced by the mask token
        noisy = torch.cat([tokens[:, :1], torch.randn_like(tokens[:, 1:])], dim=1)
        masked = tiny_model.decode(noisy, *args, mask=torch.ones(2, 64, dtype=torch.bool))
        full = decode_full(tiny_model, tokens[:, 0], tokens[:, 1:], *args)
    assert out.shape == full.shape == (2, 64, 640)
    torch.testing.assert_close(out, masked)
    assert not torch.allclose(out, full)


def test_unpatchify_inverts_patchify():
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(unpatchify(patchify(x, 8), 3, 8), x)


def test_reconstruct_chip_in_sensor_units_and_png(generated_embedded, tiny_model, tmp_path):
    result = reconstruct_chip(generated_embedded, "chip-001", model=tiny_model)
    assert set(result["images"]) == {ORIGINAL, MAE, ALL_TOKENS, CLS_ONLY, "chip_mean", "thumbnail"}
    assert FULL == ALL_TOKENS  # the old name still imports
    assert result["images"][FULL].shape == result["images"][MAE].shape == (10, 64, 64)
    # de-normalised: values sit around the Sentinel-2 band means (DN), not around 0
    assert 500 < float(np.nanmean(result["images"][FULL])) < 5000
    assert result["untrained"] and "untrained" in result["note"]
    assert set(result["metrics"][FULL]) == {"psnr", "ssim", "psnr_mean", "ssim_mean", "sam_deg"}
    out = write_comparison(generated_embedded, "chip-001", tmp_path / "cmp.png", model=tiny_model)
    img = Image.open(out["out"])
    assert img.size[0] > 3 * 256 and {ORIGINAL, MAE, ALL_TOKENS, CLS_ONLY} <= set(out["panels"])


def test_mae_reference_masks_each_patch_in_all_passes_but_one(tiny_model):
    """Complementary 75 % masks: each patch is visible in exactly one of 4 passes, masks do not depend on
    the batch, and each patch's output comes from the passes that hid it (so its own token is not copied)."""
    from clay_explore.research.reconstruct import decode_mae, mae_masks

    masks = mae_masks([3, 7], 64)
    assert masks.shape == (2, 4, 64) and (~masks).sum(1).eq(1).all() and masks.float().mean() == 0.75
    assert torch.equal(mae_masks([7], 64)[0], masks[1]) and not torch.equal(masks[0], masks[1])
    gen = torch.Generator().manual_seed(0)
    cls, patches = torch.randn(2, 64, generator=gen), torch.randn(2, 64, 64, generator=gen)
    args = (torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor(10.0), torch.linspace(0.5, 2.2, 10))
    with torch.inference_mode():
        out = decode_mae(tiny_model, cls, patches, *args, rows=[3, 7])
        tokens = torch.cat([cls[:, None], patches], 1)
        by_pass = [tiny_model.decode(tokens, *args, mask=masks[:, j]) for j in range(4)]
    want = sum(p * masks[:, j, :, None] for j, p in enumerate(by_pass)) / 3.0
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-5)


def test_unknown_chip_is_a_clear_error(generated_embedded, tiny_model):
    from clay_explore.core.errors import WorkspaceError

    with pytest.raises(WorkspaceError, match="Chip ids look like"):
        reconstruct_chip(generated_embedded, "nope", model=tiny_model)


def test_sentinel1_panels_share_the_originals_units(tmp_path, tiny_model):
    """The original was linear power while reconstructions were dB: every decoded panel came out black."""
    import rasterio
    from rasterio.transform import from_origin

    from clay_explore.imagery.geotiff import ingest_geotiff
    from clay_explore.research.embed import embed_workspace
    from clay_explore.research.reconstruct import display_bands, to_rgb8

    rng = np.random.default_rng(3)
    power = rng.uniform(0.005, 0.3, size=(2, 64, 64)).astype(np.float32)  # linear backscatter
    f = tmp_path / "s1.tif"
    with rasterio.open(
        f,
        "w",
        driver="GTiff",
        count=2,
        height=64,
        width=64,
        dtype="float32",
        crs="EPSG:32633",
        transform=from_origin(400000, 5300000, 10, 10),
        nodata=float("nan"),
    ) as ds:
        ds.write(power)
    ingest_geotiff(f, tmp_path / "ws", sensor="sentinel-1-rtc", chips=ChipSettings(64))
    embed_workspace(tmp_path / "ws", model=tiny_model, show_progress=False)
    result = reconstruct_chip(tmp_path / "ws", 0, model=tiny_model)
    np.testing.assert_allclose(result["images"][ORIGINAL], 10 * np.log10(power), rtol=1e-5)  # dB, like the rest
    assert float(np.nanmean(result["images"][FULL])) < 0  # decoder output is dB too
    rgb = to_rgb8(result["images"], display_bands(get_sensor("sentinel-1-rtc"), ["vv", "vh"]))
    for name in (FULL, CLS_ONLY):
        assert 0 < rgb[name].mean() < 255, name
