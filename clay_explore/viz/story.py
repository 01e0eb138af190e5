"""The story presenter mode tells, in order, with one plain-language caption per figure.

question -> map -> patch vs image UMAP -> reconstructions -> the verdict of ``evaluate``. Pure
functions over workspace facts (no Streamlit), so the words are tested once and read the same in
every room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clay_explore.viz import fmt

TITLE = "What does one image embedding keep?"
QUESTION = (
    "Clay describes every small square of a satellite image with 1,024 numbers — a **patch token**. "
    "Most applications squeeze all of a chip's patch tokens into **one vector**, usually by averaging. "
    "What does that throw away? Could a learned way of squeezing keep more?"
)
PATCHES = "patches"
#: Sources shown next to the patches when a projection holds several (the usual image embeddings first).
IMAGE_PREFERENCE = ("mean", "cls", "gem", "max", "linear", "attention", "perceiver")
#: Single-vector methods shown in the reconstruction row (beside the original and the references).
MAX_METHOD_PANELS = 3


def map_caption(n_chips: int, sensor: str, place: str | None = None) -> str:
    """Caption of the map: what the squares are."""
    where = f" over {place}" if place else ""
    return (
        f"Each square is one chip{where}: an image tile the model looks at ({sensor}). "
        f"{n_chips:,} chips in this workspace."
    )


def umap_caption(sources: Sequence[str], labels: Mapping[str, str]) -> str:
    """Caption of the UMAP: patch points vs image points, what closeness means."""
    images = [labels.get(s, s) for s in sources if s != PATCHES]
    parts = []
    if PATCHES in sources:
        parts.append("small dots are single patches")
    if images:
        parts.append(f"diamonds are whole chips summarised as one vector ({', '.join(images)})")
    what = "; ".join(parts) if parts else "each point is one embedding"
    return (
        f"Points that sit together are things the model finds alike: {what}. If the single vectors cover the "
        "patch clouds, little is lost; if they collapse to one spot, detail is gone."
    )


def recon_caption(chip: str, best: str | None, best_psnr: float | None) -> str:
    """Caption of the reconstruction row."""
    text = (
        f"{chip}: the original, Clay's decoder given its own tokens (the yardsticks), then the same decoder "
        "fed tokens rebuilt from one vector."
    )
    if best and best_psnr is not None:
        text += f" Closest single vector here: {best} ({fmt.num(best_psnr, 'psnr')} dB PSNR; higher is closer)."
    return text


def recon_panels(names: Sequence[str], original: str, references: Sequence[str], sort) -> list[str]:
    """Panels of the reconstruction row: the original, the references present, then at most
    MAX_METHOD_PANELS single-vector methods (in ``sort`` order)."""
    refs = [r for r in references if r in names]
    methods = sort([n for n in names if n != original and n not in refs])[:MAX_METHOD_PANELS]
    return ([original] if original in names else []) + refs + list(methods)


def choose_projections(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Which stored projections tell 'patch vs image' best: one overlay of patches with image vectors,
    else the newest patches-only and image-only ones, else the newest of any (records newest first)."""
    overlays = [r for r in records if PATCHES in r.get("sources", []) and len(r.get("sources", [])) > 1]
    if overlays:
        return [overlays[0]]
    patch_only = [r for r in records if list(r.get("sources", [])) == [PATCHES]]
    image_only = [r for r in records if r.get("sources") and PATCHES not in r["sources"]]
    picked = patch_only[:1] + image_only[:1]
    return picked or list(records[:1])


def default_sources(available: Sequence[str]) -> list[str]:
    """Sources of the projection presenter mode computes when none is stored: patches + one image vector."""
    out = [PATCHES] if PATCHES in available else []
    image = next((s for s in IMAGE_PREFERENCE if s in available), None)
    return out + ([image] if image else [])


def _psnr_of(entry: Mapping[str, Any]) -> float | None:
    """Mean PSNR of one method's evaluation entry, whichever layout evaluate wrote."""
    for path in (("reconstruction", "all", "psnr"), ("test", "psnr", "mean"), ("psnr", "mean"), ("psnr",)):
        cur: Any = entry
        for key in path:
            cur = cur.get(key) if isinstance(cur, Mapping) else None
        if isinstance(cur, (int, float)):
            return float(cur)
    return None


def best_method(evaluation: Mapping[str, Any] | None) -> tuple[str, float] | None:
    """(method, PSNR) of the single-vector method with the highest PSNR in evaluation.json, or None."""
    methods = (evaluation or {}).get("methods") or {}
    scores = {m: _psnr_of(e) for m, e in methods.items() if isinstance(e, Mapping) and m not in ("full", "cls_only")}
    scores = {m: v for m, v in scores.items() if v is not None}
    if not scores:
        return None
    m = max(scores, key=scores.get)
    return m, scores[m]


def verdict(evaluation: Mapping[str, Any] | None, labels: Mapping[str, str] | None = None) -> str | None:
    """The lead sentence of ``evaluate`` (evaluation.json's "verdict"), else one built from the scores, else None."""
    if not evaluation:
        return None
    text = evaluation.get("verdict")
    if isinstance(text, str) and text.strip():
        return text.strip()
    best = best_method(evaluation)
    if best is None:
        return None
    name = (labels or {}).get(best[0], best[0])
    return (
        f"Of the single vectors evaluated, {name} rebuilds the chips best ({fmt.num(best[1], 'psnr')} dB PSNR). "
        "Compare it with Clay's own masked reconstruction (the mae reference) to see what one vector still loses."
    )
