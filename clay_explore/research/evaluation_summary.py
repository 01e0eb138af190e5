"""evaluation.json as something to show: rows, words, rate-distortion points and a text table.

The CLI table, the app's Reconstructions page and the exports all read an evaluation report
through these functions, so every surface shows the same numbers, on the same (test) chips, with
the same precision and the same words. Nothing here computes a metric: ``evaluate`` does that;
this module only arranges what it wrote (and tolerates reports written before the test split).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: Clay's decoder with nothing fitted, in the order they are listed.
REFERENCES = ("mae", "all_tokens", "cls_only")
#: No Clay at all: what any method has to beat.
BASELINES = ("band_mean", "chip_mean", "thumbnail")
#: The method every other is compared with.
AGAINST = "mean"
#: Older reports called ``all_tokens`` ``full``.
OLD_NAMES = {"full": "all_tokens"}
#: Digits shown per metric (dB and degrees to 0.01, SSIM and NP@k to 0.001).
DIGITS = {"psnr": 2, "ssim": 3, "sam_deg": 2, "np": 3}
UNITS = {"psnr": "dB", "ssim": "", "sam_deg": "deg"}
METRICS = ("psnr", "ssim", "sam_deg")
SPLITS = ("train", "val", "test")
#: One-line descriptions of the rows that are not fitted methods (never call all_tokens a bound).
DESCRIPTIONS = {
    "mae": "Clay at its trained operating point: complementary 75 % masks, each patch from the passes that hid it",
    "all_tokens": "Clay's decoder with every patch visible: outside the regime it was trained for",
    "cls_only": "Clay's decoder from the CLS token alone (100 % masking)",
    "band_mean": "no Clay: every pixel set to the training chips' mean of its band",
    "chip_mean": "no Clay: every pixel set to its own chip's band mean (one number per band)",
    "thumbnail": "no Clay: the chip shrunk to about a vector's width of numbers, then enlarged",
}
STALE_REPORT = (
    "This evaluation was made before the held-out test split, seeds and baselines existed; "
    "evaluate again to get numbers on test chips."
)


# ---------------------------------------------------------------------------------------------- numbers
def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def stat(value: Any) -> dict[str, Any]:
    """Any metric value (a number, or {"mean", "sd", "ci95"}) -> {"mean", "sd", "ci95"} (missing parts None)."""
    if isinstance(value, Mapping):
        ci = value.get("ci95")
        ci = [_finite(ci[0]), _finite(ci[1])] if isinstance(ci, (list, tuple)) and len(ci) == 2 else None
        return {"mean": _finite(value.get("mean", value.get("value"))), "sd": _finite(value.get("sd")), "ci95": ci}
    return {"mean": _finite(value), "sd": None, "ci95": None}


def fmt(value: Any, metric: str, signed: bool = False) -> str:
    """A number at the metric's precision ('-' when missing)."""
    x = _finite(value)
    if x is None:
        return "-"
    digits = DIGITS.get(metric, 2)
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def fmt_stat(value: Any, metric: str) -> str:
    """'24.31 ± 0.12' (mean ± sd over seeds), or '24.31' for a single number, or '-'."""
    s = stat(value)
    if s["mean"] is None:
        return "-"
    text = fmt(s["mean"], metric)
    return text + (f" ± {fmt(s['sd'], metric)}" if s["sd"] is not None else "")


def fmt_ci(ci: Sequence[Any] | None, metric: str, signed: bool = True) -> str:
    """'[+0.12, +0.70]' or ''."""
    if not ci or len(ci) != 2 or _finite(ci[0]) is None or _finite(ci[1]) is None:
        return ""
    return f"[{fmt(ci[0], metric, signed)}, {fmt(ci[1], metric, signed)}]"


# ---------------------------------------------------------------------------------------------- the report
def is_current_format(ev: Mapping[str, Any] | None) -> bool:
    """True when the report has the held-out test split (issue 8's contract)."""
    return bool(ev) and isinstance(ev.get("split"), Mapping) and "test" in ev["split"]


def n_test_chips(ev: Mapping[str, Any]) -> int | None:
    """Number of held-out test chips the headline numbers are on."""
    split = ev.get("split") or {}
    n = split.get("test") if isinstance(split, Mapping) else None
    return int(n) if isinstance(n, (int, float)) else None


def seeds(ev: Mapping[str, Any]) -> list[int]:
    """Initialisation seeds the methods were fitted with."""
    return [int(s) for s in ev.get("seeds") or []]


def verdict(ev: Mapping[str, Any]) -> str:
    """The lead sentence (what ``evaluate`` concluded), or why there is none."""
    if not is_current_format(ev):
        return STALE_REPORT
    return str(ev.get("verdict") or "").strip() or "No verdict yet: fit at least one method and evaluate."


def sentences(ev: Mapping[str, Any]) -> list[str]:
    """The other honest sentences (method beats mae, baseline beats method, indistinguishable pairs)."""
    lead = verdict(ev)
    return [str(s) for s in ev.get("sentences") or [] if str(s).strip() and str(s) != lead]


def scope_line(ev: Mapping[str, Any]) -> str:
    """Which chips and seeds the headline numbers are on, in one line."""
    split = ev.get("split") or {}
    n = n_test_chips(ev)
    if n is None:
        return f"on all {ev.get('n_chips', '?')} chips (training chips included; this report predates the test split)"
    parts = [f"on {n} held-out test chips"]
    counts = " / ".join(f"{split.get(s, '?')} {s}" for s in SPLITS)
    how = "spatially blocked" if split.get("blocked") else "random"
    seed = split.get("split_seed")
    parts.append(f"(split {counts}, {how}" + (f", split seed {seed})" if seed is not None else ")"))
    sd = seeds(ev)
    if sd:
        parts.append(
            f"; methods: mean ± sd over {len(sd)} seed{'s' if len(sd) != 1 else ''} ({', '.join(map(str, sd))})"
        )
    return " ".join(parts[:2]) + "".join(parts[2:])


def _test_block(entry: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The test figures of a report entry (old reports: the 'all' figures of 'reconstruction')."""
    if not isinstance(entry, Mapping):
        return {}
    if isinstance(entry.get("test"), Mapping):
        return entry["test"]
    old = (entry.get("reconstruction") or {}).get("all") if isinstance(entry.get("reconstruction"), Mapping) else None
    return old or {}


def comparison(
    ev: Mapping[str, Any], method: str, metric: str = "psnr", against: str = AGAINST
) -> dict[str, Any] | None:
    """The paired comparison of ``method`` with ``against`` on ``metric`` (None when not made)."""
    for c in ev.get("comparisons") or []:
        if c.get("method") == method and c.get("against", AGAINST) == against and c.get("metric", "psnr") == metric:
            return dict(c)
    return None


def comparison_words(c: Mapping[str, Any] | None, metric: str = "psnr", against_label: str = AGAINST) -> str:
    """'+0.41 dB [+0.12, +0.70]: better than mean' (the verdict in words, beside the numbers)."""
    if not c:
        return ""
    unit = UNITS.get(metric, "")
    diff = fmt(c.get("diff"), metric, signed=True) + (f" {unit}" if unit else "")
    ci = fmt_ci(c.get("ci95"), metric)
    word = str(c.get("verdict") or "")
    sentence = {
        "better": f"better than {against_label}",
        "worse": f"worse than {against_label}",
        "indistinguishable": f"indistinguishable from {against_label}",
    }.get(word, word)
    return f"{diff} {ci}".strip() + (f": {sentence}" if sentence else "")


def np_at_k(ev: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """{"value", "chance", "k"} of a method's NP@k (old reports: the value alone)."""
    top = (ev.get("np_at_k") or {}).get(name)
    if isinstance(top, Mapping):
        return {"value": _finite(top.get("value")), "chance": _finite(top.get("chance")), "k": top.get("k")}
    old = ((ev.get("methods") or {}).get(name) or {}).get("np_at_k")
    if _finite(old) is not None:
        return {"value": float(old), "chance": None, "k": ev.get("k")}
    return None


def method_rank(name: str) -> tuple[int, int, str]:
    """Sort key of a fit name: mean pooling first, then the methods in their usual order, widths ascending."""
    from clay_explore.core.defaults import METHODS

    base, _, width = name.split("/", 1)[0].partition("@")
    order = [AGAINST, *[m for m in METHODS if m != AGAINST]]
    return (order.index(base) if base in order else len(order), int(width) if width.isdigit() else 0, name)


def _entries(ev: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(name, kind, entry) for every row: references, fitted methods, baselines."""
    out: list[tuple[str, str, Mapping[str, Any]]] = []
    methods = dict(ev.get("methods") or {})
    refs = dict(ev.get("references") or {})
    for old, new in OLD_NAMES.items():  # older reports kept the references among the methods
        if old in methods and new not in refs:
            refs[new] = methods.pop(old)
    for name in ("cls_only",):
        if name in methods and name not in refs:
            refs[name] = methods.pop(name)
    for name in REFERENCES:
        if name in refs:
            out.append((name, "reference", refs[name]))
    for name in sorted(methods, key=method_rank):  # unfitted parameter-free ones too: their vectors have NP@k
        if isinstance(methods[name], Mapping):
            out.append((name, "method", methods[name]))
    for name in BASELINES:
        if name in (ev.get("baselines") or {}):
            out.append((name, "baseline", ev["baselines"][name]))
    return out


def rows(ev: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One plain dict per row (reference, method, baseline) with the test figures and the verdict.

    Keys: name, kind, psnr / ssim / sam_deg (each {"mean", "sd", "ci95"}), n_chips, out_dim,
    n_numbers, vs_mean (the PSNR comparison or None), np (NP@k dict or None), n_params, description.
    """
    out = []
    for name, kind, entry in _entries(ev):
        test = dict(_test_block(entry))
        cis = test.get("ci95") if isinstance(test.get("ci95"), Mapping) else {}  # references: {metric: [lo, hi]}
        for m in METRICS:
            if cis.get(m) is not None and not isinstance(test.get(m), Mapping):
                test[m] = {"mean": test.get(m), "ci95": cis[m]}
        params = entry.get("n_params")
        out_dim = entry.get("out_dim", entry.get("vector_dim"))
        out.append(
            {
                "name": name,
                "kind": kind,
                **{m: stat(test.get(m)) for m in METRICS},
                "n_chips": test.get("n_chips"),
                "out_dim": out_dim,
                "n_numbers": entry.get("n_numbers", out_dim),
                "vs_mean": comparison(ev, name) if kind == "method" and name != AGAINST else None,
                "np": np_at_k(ev, name),
                "n_params": params.get("total") if isinstance(params, Mapping) else params,
                "description": entry.get("description") or DESCRIPTIONS.get(name, ""),
            }
        )
    return out


def rate_distortion(ev: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Points of test PSNR against vector width: {method, kind, out_dim, n_numbers, mean, sd, lo, hi}."""
    out = []
    for p in ev.get("rate_distortion") or []:
        s = stat(p.get("psnr"))
        if s["mean"] is None:
            continue
        method = str(p.get("method"))
        width = p.get("out_dim") if p.get("out_dim") is not None else p.get("n_numbers")
        ci = s["ci95"] or [None, None]
        kind = p.get("kind") or (
            "baseline" if method in BASELINES else ("reference" if method in REFERENCES else "method")
        )
        out.append(
            {
                "method": method,
                "kind": kind,
                "out_dim": int(width) if width is not None else None,
                "n_numbers": int(p["n_numbers"]) if p.get("n_numbers") is not None else width,
                "mean": s["mean"],
                "sd": s["sd"] if kind == "method" else None,  # no seeds without a fit
                "lo": ci[0],
                "hi": ci[1],
            }
        )
    return sorted(out, key=lambda p: (p["kind"] != "method", method_rank(p["method"]), p["out_dim"] or 0))


# ---------------------------------------------------------------------------------------------- per-chip splits
def chip_splits(ev: Mapping[str, Any] | None, n_chips: int) -> list[str | None]:
    """The split (train / val / test / excluded) of every chip row, as the report recorded it (None: unknown).

    Reads ``split.rows`` ({split: [rows]}, what ``research.splits.Split.record`` writes) or a per-chip list
    ``split.chips``.
    """
    out: list[str | None] = [None] * n_chips
    split = (ev or {}).get("split") or {}
    per_chip = split.get("chips") if isinstance(split, Mapping) else None
    if isinstance(per_chip, Sequence) and not isinstance(per_chip, str) and len(per_chip) == n_chips:
        return [str(s) if s in (*SPLITS, "excluded") else None for s in per_chip]
    rows_by = split.get("rows") if isinstance(split, Mapping) else None
    if isinstance(rows_by, Mapping):
        for name in (*SPLITS, "excluded"):
            for r in rows_by.get(name) or []:
                if 0 <= int(r) < n_chips:
                    out[int(r)] = name
    return out


def workspace_chip_splits(ws: Any, ev: Mapping[str, Any] | None = None) -> list[str | None]:
    """The split of every chip: from the evaluation when it has one, else from a fitted method's record."""
    n = int(ws.n_chips())
    out = chip_splits(ev, n)
    if any(out):
        return out
    from clay_explore.research.fit import fitted_methods, method_config

    for m in fitted_methods(ws):
        config = method_config(ws, m) or {}
        if isinstance(config.get("split"), Mapping):
            found = chip_splits({"split": config["split"]}, n)
            if any(found):
                return found
        if config.get("train_rows") is not None:  # fitted before the test split: train and val only
            return chip_splits(
                {"split": {"rows": {"train": config.get("train_rows") or [], "val": config.get("val_rows") or []}}}, n
            )
    return out


def split_words(split: str | None) -> str:
    """How a panel says which split its chip is in (a training chip is flagged)."""
    return {
        "test": "test chip",
        "val": "validation chip (used for early stopping)",
        "train": "⚠ TRAINING chip: the methods were fitted on it",
        "excluded": "buffer chip (overlaps another split; left out of fitting and scoring)",
    }.get(split or "", "split unknown")


# ---------------------------------------------------------------------------------------------- text
def text_table(ev: Mapping[str, Any], label: Any = str) -> str:
    """The CLI's evaluation table: verdict first, then every row on test chips with ± and words."""
    lines = [f"VERDICT: {verdict(ev)}"]
    lines += [f"  {s}" for s in sentences(ev)]
    lines.append("")
    lines.append(f"Test-chip numbers {scope_line(ev)}.")
    k = next((r["np"]["k"] for r in rows(ev) if r["np"] and r["np"].get("k")), ev.get("k"))
    np_head = f"NP@{k}" if k else "NP@k"
    header = (
        f"{'kind':<10}{'row':<28}{'PSNR dB':>16}{'SSIM':>16}{'SAM deg':>15}{'width':>7}{np_head:>22}"
        f"  PSNR vs {label(AGAINST)} (95% CI)"
    )
    lines += [header, "-" * len(header)]
    for r in rows(ev):
        npk = r["np"]
        np_text = (
            "-"
            if not npk or npk["value"] is None
            else fmt(npk["value"], "np")
            + (f" (chance {fmt(npk['chance'], 'np')})" if npk.get("chance") is not None else "")
        )
        width = "-" if r["n_numbers"] is None else str(r["n_numbers"])
        vs = (
            comparison_words(r["vs_mean"], "psnr", label(AGAINST))
            if r["vs_mean"]
            else ("(the comparison's anchor)" if r["name"] == AGAINST else "")
        )
        lines.append(
            f"{r['kind']:<10}{str(label(r['name']))[:27]:<28}{fmt_stat(r['psnr'], 'psnr'):>16}"
            f"{fmt_stat(r['ssim'], 'ssim'):>16}{fmt_stat(r['sam_deg'], 'sam_deg'):>15}{width:>7}"
            f"{np_text:>22}  {vs}".rstrip()
        )
    chance = [r["np"]["chance"] for r in rows(ev) if r["np"] and r["np"].get("chance") is not None]
    if chance:
        lines.append(
            f"{np_head}: neighbourhood preservation vs the whole token set; chance level "
            f"{fmt(chance[0], 'np')} (k / (N - 1))."
        )
    lines.append("Methods: mean ± sd over seeds; references and baselines have no seeds (one number).")
    return "\n".join(lines)


def _rd_cell(point: Mapping[str, Any] | None) -> str:
    if point is None:
        return "-"
    return fmt(point["mean"], "psnr") + (f" ± {fmt(point['sd'], 'psnr')}" if point["sd"] is not None else "")


def rate_distortion_text(ev: Mapping[str, Any], label: Any = str) -> str:
    """Test PSNR per method and vector width (the 'how many numbers' view), baselines included."""
    points = rate_distortion(ev)
    if not points:
        return (
            "No rate-distortion points yet: fit a method at several widths "
            "(`clay-explore fit --method linear --out-dim 64`, 256, 1024) and evaluate again."
        )
    widths = sorted({p["out_dim"] for p in points if p["out_dim"] is not None})
    n = n_test_chips(ev)
    lines = [
        f"Test PSNR (dB) against vector width{f' on {n} test chips' if n is not None else ''} "
        "(mean ± sd over seeds; baselines at the same number count)"
    ]
    header = f"{'row':<28}" + "".join(f"{w:>16}" for w in widths)
    lines += [header, "-" * len(header)]
    for method in dict.fromkeys(p["method"] for p in points):
        by = {p["out_dim"]: p for p in points if p["method"] == method}
        cells = "".join(f"{_rd_cell(by.get(w)):>16}" for w in widths)
        lines.append(f"{str(label(method))[:27]:<28}{cells}")
    return "\n".join(lines)


def probe_text(ev: Mapping[str, Any]) -> str | None:
    """Label-probe accuracies per method (when the chips carry labels), one line each."""
    lines = []
    for name, entry in (ev.get("methods") or {}).items():
        probe = (entry or {}).get("probe") or {}
        if probe.get("knn_accuracy") is not None or probe.get("logreg_accuracy") is not None:
            lines.append(
                f"  {name:<14} kNN {fmt(probe.get('knn_accuracy'), 'np')}  "
                f"logistic regression {fmt(probe.get('logreg_accuracy'), 'np')}"
            )
    return "Label probe (accuracy):\n" + "\n".join(lines) if lines else None


def pair_text(ev: Mapping[str, Any], pairs: Sequence[tuple[str, str]]) -> str | None:
    """The requested pairwise comparisons (every metric), in words; None when none was asked for."""
    if not pairs:
        return None
    lines = ["Requested comparisons on the test chips (first minus second, 95 % CI):"]
    for method, other in pairs:
        found = [comparison(ev, method, m, against=other) for m in METRICS]
        found = [(m, c) for m, c in zip(METRICS, found) if c]
        if not found:
            lines.append(f"  {method} vs {other}: not in this evaluation (evaluate with --compare {method} {other})")
        for m, c in found:
            lines.append(f"  {method} vs {other}, {m}: {comparison_words(c, m, other)}")
    return "\n".join(lines)


def print_report(
    ev: Mapping[str, Any], echo: Any = print, rate_distortion: bool = False, pairs: Sequence[tuple[str, str]] = ()
) -> None:
    """Everything the CLI prints for an evaluation: verdict, table, what the rows are, probes, notes."""
    echo(text_table(ev))
    extra = pair_text(ev, pairs)
    if extra:
        echo(extra)
    named = [r["name"] for r in rows(ev) if r["kind"] != "method"]
    if named:
        echo("Rows that are not fitted methods:")
        for name in named:
            echo(f"  {name:<11} {DESCRIPTIONS.get(name, '')}")
    probes = probe_text(ev)
    if probes:
        echo(probes)
    if rate_distortion:
        echo("")
        echo(rate_distortion_text(ev))
    dr = ev.get("data_range") or {}
    if dr:
        echo(f"data range {dr.get('value')} {dr.get('units', '')}".rstrip())
    model_note = (ev.get("model") or {}).get("note")
    for note in ev.get("notes") or []:
        if note != model_note:
            echo(f"note: {note}")
