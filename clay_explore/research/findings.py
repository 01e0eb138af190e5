"""The evaluation's findings in plain sentences: which methods beat mean pooling, whether anything
beats Clay's own ``mae`` reference, whether a no-Clay baseline beats a method, which pairs are
indistinguishable. ``verdict`` is the one sentence that leads every table and page.

Only paired comparisons with a 95 % interval decide a word: "beats" needs the whole interval on the
good side of zero; an interval that holds zero is "indistinguishable", never a ranking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

AGAINST = "mean"
MAE = "mae"


def _join(names: Sequence[str]) -> str:
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _psnr(c: Mapping[str, Any]) -> str:
    ci = c.get("ci95") or [None, None]
    if c.get("diff") is None or ci[0] is None:
        return "no test chips"
    return f"PSNR {c['diff']:+.2f} dB, 95 % CI [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _by(comparisons: Sequence[Mapping[str, Any]], against: str | None = None, metric: str = "psnr") -> list:
    return [
        c for c in comparisons
        if c.get("metric") == metric and (against is None or c.get("against") == against)
    ]  # fmt: skip


def sentences(
    comparisons: Sequence[Mapping[str, Any]],
    *,
    methods: Sequence[str],
    baselines: Sequence[str],
    n_test: int,
    n_seeds: int,
    untrained: bool,
) -> tuple[str, list[str]]:
    """(verdict, sentences) from the PSNR comparisons of the methods with mean pooling, with the
    ``mae`` reference and with each baseline (entries of evaluation.json's ``comparisons``)."""
    scope = f"on {n_test} held-out test chips" + (f" and {n_seeds} seeds" if n_seeds > 1 else "")
    caveat = " (an untrained test model: these numbers say nothing about Clay itself)" if untrained else ""
    if not methods:
        lead = (f"No method is fitted yet, so nothing is compared with mean pooling; the references and "
                f"no-Clay baselines are scored {scope}{caveat}.")  # fmt: skip
        return lead, [lead]
    if n_test == 0:
        lead = f"There are no held-out test chips, so no method can be compared{caveat}."
        return lead, [lead]
    out: list[str] = []
    vs_mean = [c for c in _by(comparisons, None) if str(c.get("against", "")).split("@")[0] == AGAINST]
    better = [c["method"] for c in vs_mean if c["verdict"] == "better"]
    worse = [c["method"] for c in vs_mean if c["verdict"] == "worse"]
    same = [c["method"] for c in vs_mean if c["verdict"] == "indistinguishable"]
    for c in vs_mean:
        word = {"better": "beats", "worse": "is worse than", "indistinguishable": "is indistinguishable from"}
        out.append(f"{c['method']} {word[c['verdict']]} {c['against']} pooling {scope} ({_psnr(c)}).")
    vs_mae = _by(comparisons, MAE)
    beats_mae = [c["method"] for c in vs_mae if c["verdict"] == "better"]
    for c in vs_mae:
        if c["verdict"] == "better":
            out.append(f"{c['method']} beats Clay's own mae reference (75 % masking) {scope} ({_psnr(c)}).")
    beaten: dict[str, list[str]] = {}
    for c in comparisons:
        if c.get("metric") == "psnr" and c.get("against") in baselines and c["verdict"] == "worse":
            beaten.setdefault(c["against"], []).append(c["method"])
            out.append(f"The no-Clay {c['against']} baseline beats {c['method']} {scope} ({_psnr(c)} for the method).")
    parts = []
    if vs_mean:
        if better:
            parts.append(f"{_join(better)} beat{'s' if len(better) == 1 else ''} mean pooling")
        else:
            parts.append("no method beats mean pooling")
        if same:
            parts.append(f"{_join(same)} {'is' if len(same) == 1 else 'are'} indistinguishable from it")
        if worse:
            parts.append(f"{_join(worse)} {'is' if len(worse) == 1 else 'are'} worse")
    else:
        parts.append("mean pooling is not fitted, so no method is compared with it")
    if vs_mae:
        parts.append(f"{_join(beats_mae)} beat{'s' if len(beats_mae) == 1 else ''} Clay's mae reference"
                     if beats_mae else "none beats Clay's mae reference")  # fmt: skip
    for base, names in beaten.items():
        parts.append(f"the no-Clay {base} baseline beats {_join(names)}")
    lead = f"{scope[0].upper() + scope[1:]}: " + "; ".join(parts) + caveat + "."
    return lead, [lead, *out]
