"""A synthetic evaluation.json in issue 8's contract (held-out test split, seeds, references, baselines).

The surfaces (CLI table, Reconstructions page, exports) are tested against this report, so they do
not need a fitted workspace to show every kind of row; the numbers are made up but consistent.
"""

from __future__ import annotations

from typing import Any

SEEDS = [0, 1, 2]
N_BANDS = 10  # Sentinel-2 bands of the app test workspaces
SPLIT = ["train", "train", "val", "test", "train", "test"]  # 6 chips, like tests/app/app_data.py
VERDICT = (
    "On 2 held-out test chips, learned linear keeps more than mean pooling (+1.10 dB PSNR, 95 % CI "
    "[+0.40, +1.80]), but no one-vector method reaches Clay's own masked reconstruction (mae)."
)
SENTENCES = [
    VERDICT,
    "Each chip's own band mean (chip_mean, 10 numbers) beats CLS token.",
    "Max pooling and mean pooling are indistinguishable (-0.05 dB, 95 % CI [-0.30, +0.20]).",
]


def _r(psnr: float, ssim: float, sam: float, n: int = 2) -> dict[str, Any]:
    return {
        "test": {"psnr": psnr, "ssim": ssim, "sam_deg": sam, "n_chips": n},
        "val": {"psnr": psnr + 0.3, "ssim": ssim, "sam_deg": sam, "n_chips": 1},
    }


def _m(psnr: float, sd: float, ssim: float, sam: float, out_dim: int, n: int = 2) -> dict[str, Any]:
    def s(x: float, d: float) -> dict[str, Any]:
        return {"mean": x, "sd": d, "ci95": [x - 2 * d, x + 2 * d]}

    return {
        "kind": "parameter-free",
        "fitted": True,
        "out_dim": out_dim,
        "vector_dim": out_dim,
        "n_params": {"aggregator": 0, "expander": 1000, "total": 1000},
        "fit_seconds": 1.5,
        "test": {"psnr": s(psnr, sd), "ssim": s(ssim, 0.01), "sam_deg": s(sam, 0.2), "n_chips": n},
        "train": {"psnr": s(psnr + 2, sd), "ssim": s(ssim, 0.01), "sam_deg": s(sam, 0.2), "n_chips": 3},
    }


def contract_report(n_test: int = 2) -> dict[str, Any]:
    """The report; ``n_test`` sets every test-chip count."""
    linear = _m(24.31, 0.12, 0.612, 7.25, 16, n_test)
    linear["kind"] = "learned"
    return {
        "created": "2099-01-01T00:00:00+00:00",
        "model": {
            "sha256": "0" * 64,
            "preset": "tiny",
            "precision": "float32",
            "untrained": True,
            "note": "Untrained test model.",
        },
        "n_chips": len(SPLIT),
        "verdict": VERDICT,
        "sentences": SENTENCES,
        "split": {
            "train": SPLIT.count("train"),
            "val": SPLIT.count("val"),
            "test": n_test,
            "blocked": True,
            "split_seed": 7,
            "excluded": 0,
            "rows": {name: [r for r, s in enumerate(SPLIT) if s == name] for name in ("train", "val", "test")}
            | {"excluded": []},
        },
        "seeds": SEEDS,
        "k": 2,
        "references": {
            "mae": _r(27.5, 0.701, 5.1, n_test),
            "all_tokens": _r(21.0, 0.401, 9.9, n_test),
            "cls_only": _r(19.5, 0.351, 11.2, n_test),
        },
        "baselines": {
            "band_mean": {
                **_r(18.2, 0.101, 14.0, n_test),
                "n_numbers": 0,
                "band_means": [1000.0 + 200.0 * b for b in range(N_BANDS)],
            },
            "chip_mean": {**_r(23.4, 0.455, 8.8, n_test), "n_numbers": N_BANDS},
            "thumbnail": {**_r(25.9, 0.655, 6.1, n_test), "n_numbers": 10, "out_dim": 16},
        },
        "methods": {
            "mean": _m(23.21, 0.05, 0.551, 8.01, 16, n_test),
            "max": _m(23.16, 0.07, 0.549, 8.05, 16, n_test),
            "linear": linear,
        },
        "comparisons": [
            {
                "method": "linear",
                "against": "mean",
                "metric": "psnr",
                "diff": 1.1,
                "ci95": [0.4, 1.8],
                "verdict": "better",
            },
            {
                "method": "max",
                "against": "mean",
                "metric": "psnr",
                "diff": -0.05,
                "ci95": [-0.3, 0.2],
                "verdict": "indistinguishable",
            },
        ],
        "np_at_k": {
            "mean": {"value": 0.5, "chance": 0.4, "k": 2},
            "max": {"value": 0.45, "chance": 0.4, "k": 2},
            "linear": {"value": 0.6, "chance": 0.4, "k": 2},
        },
        "rate_distortion": [
            {
                "method": "linear",
                "out_dim": 16,
                "psnr": {"mean": 24.31, "sd": 0.12, "ci95": [24.0, 24.6]},
                "n_numbers": 16,
            },
            {
                "method": "linear",
                "out_dim": 64,
                "psnr": {"mean": 25.02, "sd": 0.1, "ci95": [24.8, 25.2]},
                "n_numbers": 64,
            },
            {
                "method": "mean",
                "out_dim": 16,
                "psnr": {"mean": 23.21, "sd": 0.05, "ci95": [23.1, 23.3]},
                "n_numbers": 16,
            },
            {"method": "thumbnail", "out_dim": 16, "psnr": {"mean": 22.0, "sd": None, "ci95": None}, "n_numbers": 10},
            {"method": "thumbnail", "out_dim": 64, "psnr": {"mean": 24.5, "sd": None, "ci95": None}, "n_numbers": 40},
        ],
        "data_range": {"value": 1.0, "units": "reflectance (DN * scale + offset)"},
        "notes": [],
    }
