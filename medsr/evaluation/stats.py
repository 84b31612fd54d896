"""Statistics of an evaluation: per-group summaries, paired BCa intervals and Wilcoxon tests, case selection.

Also the names of what an evaluation records (:data:`STAT_METRICS`, :data:`METRIC_COLUMNS`,
:data:`HIGHER_IS_BETTER`); ``summary.json`` records them, and the report reads them from there
(it imports nothing from :mod:`medsr.evaluation`). See docs/metrics.md for the definitions.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.stats import bootstrap, wilcoxon

from medsr.data.datalist import CLASS_ALL
from medsr.errors import UsageError
from medsr.metrics import METRICS
from medsr.report.results import ROW_COLUMNS

__all__ = [
    "BOOTSTRAP_METHOD",
    "DEGRADATIONS",
    "HIGHER_IS_BETTER",
    "METRIC_COLUMNS",
    "REFERENCE",
    "STAT_METRICS",
    "bootstrap_ci",
    "paired_wilcoxon",
    "select_cases",
    "sources",
    "summarize",
    "summary_table",
    "csv_value",
    "json_safe",
]

DEGRADATIONS = ("bicubic", "modality")

REFERENCE = "bicubic"
"""The baseline every model is compared with; always evaluated."""

STAT_METRICS: tuple[str, ...] = METRICS + ("consistency_psnr",)
"""Metrics summarised per group."""

HIGHER_IS_BETTER: dict[str, bool | None] = {
    "psnr": True,
    "ssim": True,
    "mae": False,
    "nrmse": False,
    "sharpness": None,  # best at 1 (as sharp as the original)
    "consistency_psnr": True,
}

METRIC_COLUMNS: tuple[str, ...] = ROW_COLUMNS + STAT_METRICS
"""Columns of ``metrics.csv``, in order."""


BOOTSTRAP_METHOD = "BCa"
"""Confidence intervals: bias-corrected and accelerated bootstrap (``scipy.stats.bootstrap``)."""


def bootstrap_ci(
    diffs: Sequence[float] | np.ndarray,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = BOOTSTRAP_METHOD,
) -> tuple[float, float]:
    """Bootstrap confidence interval of the mean of paired differences (``scipy.stats.bootstrap``).

    ``method``: ``"BCa"`` (default: bias-corrected and accelerated, Efron 1987), ``"percentile"``
    or ``"basic"``; ``n_resamples`` resamples drawn from ``numpy.random.default_rng(seed)``.
    Non-finite values are dropped; fewer than two values give ``(nan, nan)``; constant
    differences give ``(value, value)``. BCa intervals of very small samples are still too
    narrow: the report gives no verdict below :data:`medsr.report.build.SMALL_N` images.
    """
    if int(n_resamples) < 1:
        raise UsageError(f"`n_resamples` must be >= 1, got {n_resamples}.")
    if not 0.0 < float(confidence) < 1.0:
        raise UsageError(f"`confidence` must be between 0 and 1, got {confidence}.")
    if method not in ("BCa", "percentile", "basic"):
        raise UsageError(f"`method` must be BCa, percentile or basic, got {method!r}.")
    d = np.asarray(diffs, dtype=np.float64).ravel()
    d = d[np.isfinite(d)]
    if d.size < 2:
        return math.nan, math.nan
    if float(np.ptp(d)) == 0.0:
        return float(d[0]), float(d[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns when BCa's jackknife is degenerate; the interval is then NaN
        res = bootstrap(
            (d,), np.mean, confidence_level=float(confidence), n_resamples=int(n_resamples), method=method,
            random_state=np.random.default_rng(seed), vectorized=True, batch=max(1, (1 << 20) // d.size),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else (math.nan, math.nan)


def paired_wilcoxon(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, str]:
    """Two-sided Wilcoxon signed-rank test of paired samples; returns ``(p, note)``.

    ``scipy.stats.wilcoxon(a - b)`` with zero differences dropped (Wilcox). Pairs
    with a non-finite value are left out. ``p`` is NaN with a note when no test
    is possible (fewer than two pairs, or every difference is zero); with fewer
    than six non-zero differences the note says that p cannot fall below 0.05.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise UsageError(f"paired samples must have the same length, got {x.size} and {y.size}.")
    d = x - y
    d = d[np.isfinite(d)]
    if d.size < 2:
        return math.nan, f"n = {d.size}: too few pairs for a test"
    nonzero = int(np.count_nonzero(d))
    if nonzero == 0:
        return math.nan, "all differences are zero: no test"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    note = ""
    if nonzero < 6:
        note = f"only {nonzero} non-zero differences: p cannot fall below 0.05"
    return p, note


def _finite(values: Iterable[float]) -> np.ndarray:
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    return v[np.isfinite(v)]


def summarize(
    rows: Sequence[dict[str, Any]], *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> list[dict[str, Any]]:
    """Group statistics per modality x class x model x scale, plus each modality pooled (class ``"all"``).

    Each group holds ``n`` and, per metric in :data:`STAT_METRICS`, ``mean``,
    ``sd`` (ddof 1) and ``n``; groups of models other than bicubic add
    ``diff`` (model minus bicubic on the same images): ``mean``,
    ``ci_low``/``ci_high`` (:func:`bootstrap_ci`), ``p`` (:func:`paired_wilcoxon`)
    and ``note``.
    """
    by_group: dict[tuple[str, str, str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    classes_of: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        classes_of[r["modality"]].add(r["class"])
    for r in rows:
        labels = [r["class"]]
        if classes_of[r["modality"]] != {CLASS_ALL}:
            labels.append(CLASS_ALL)
        for label in labels:
            by_group[(r["modality"], label, r["model"], int(r["scale"]))][r["case"]] = r
    groups = []
    model_order = _model_order(rows)
    for key in sorted(by_group, key=lambda k: (k[0], k[1] == CLASS_ALL, k[1], k[3], model_order.index(k[2]))):
        mod, label, model, scale = key
        members = by_group[key]
        ref = by_group.get((mod, label, REFERENCE, scale), {})
        g: dict[str, Any] = {
            "modality": mod,
            "class": label,
            "model": model,
            "scale": scale,
            "is_gan": any(_truthy(r.get("is_gan")) for r in members.values()),
            "n": len(members),
        }
        for m in STAT_METRICS:
            v = _finite(r[m] for r in members.values())
            g[m] = {
                "n": int(v.size),
                "mean": float(v.mean()) if v.size else math.nan,
                "sd": float(v.std(ddof=1)) if v.size > 1 else math.nan,
            }
            if model != REFERENCE and ref:
                cases = [c for c in members if c in ref]
                a = np.array([float(members[c][m]) for c in cases])
                b = np.array([float(ref[c][m]) for c in cases])
                ok = np.isfinite(a) & np.isfinite(b)
                d = a[ok] - b[ok]
                lo, hi = bootstrap_ci(d, n_resamples, confidence, seed)
                p, note = paired_wilcoxon(a[ok], b[ok])
                g[m]["diff"] = {
                    "n": int(d.size),
                    "mean": float(d.mean()) if d.size else math.nan,
                    "ci_low": lo,
                    "ci_high": hi,
                    "p": p,
                    "note": note,
                }
        groups.append(g)
    return groups


def _truthy(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("1", "true", "yes")


def _model_order(rows: Sequence[dict[str, Any]]) -> list[str]:
    order = [REFERENCE]
    for r in rows:
        if r["model"] not in order:
            order.append(r["model"])
    return order


def select_cases(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best, median and worst case per modality x model x scale, by PSNR gain over bicubic.

    For bicubic itself (always present) the ranking is by its own PSNR. Returns
    ``{"modality", "model", "scale", "rank", "case", "class", "psnr", "gain"}``
    dicts; a case is listed once per group even when it holds several ranks
    (e.g. ``n = 1``), with the ranks joined by ``/``.
    """
    ref = {(r["case"], int(r["scale"])): float(r["psnr"]) for r in rows if r["model"] == REFERENCE}
    grouped: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        grouped[(r["modality"], r["model"], int(r["scale"]))].append(r)
    out = []
    order = _model_order(rows)
    for (mod, model, scale) in sorted(grouped, key=lambda k: (k[0], k[2], order.index(k[1]))):
        scored = []
        for r in grouped[(mod, model, scale)]:
            base = ref.get((r["case"], scale), math.nan)
            gain = float(r["psnr"]) - base if model != REFERENCE else float(r["psnr"])
            if math.isfinite(gain):
                scored.append((gain, r["case"], r))
        if not scored:
            continue
        scored.sort(key=lambda t: (t[0], t[1]))
        picks: dict[str, list[str]] = {}
        for rank, idx in (("best", len(scored) - 1), ("median", (len(scored) - 1) // 2), ("worst", 0)):
            picks.setdefault(scored[idx][1], []).append(rank)
        for gain, case, r in reversed(scored):
            if case in picks:
                out.append(
                    {
                        "modality": mod,
                        "model": model,
                        "scale": scale,
                        "rank": "/".join(picks[case]),
                        "case": case,
                        "class": r["class"],
                        "psnr": float(r["psnr"]),
                        "gain": gain if model != REFERENCE else None,
                    }
                )
    return out


def summary_table(groups: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """``(header, rows)`` of ``summary.csv``: one row per group of :func:`summarize`, values by :func:`csv_value`."""
    header = ["modality", "class", "model", "scale", "n"]
    for m in STAT_METRICS:
        header += [f"{m}_mean", f"{m}_sd", f"{m}_diff", f"{m}_ci_low", f"{m}_ci_high", f"{m}_p"]
    header.append("notes")
    out = []
    for g in groups:
        row: list[Any] = [g["modality"], g["class"], g["model"], g["scale"], g["n"]]
        notes = []
        for m in STAT_METRICS:
            s = g[m]
            d = s.get("diff", {})
            row += [csv_value(s["mean"]), csv_value(s["sd"])] + [csv_value(d.get(k, math.nan)) for k in ("mean", "ci_low", "ci_high", "p")]
            if d.get("note"):
                notes.append(f"{m}: {d['note']}")
        row.append("; ".join(dict.fromkeys(n.split(": ", 1)[1] for n in notes)))
        out.append(row)
    return header, out


def sources(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per modality x class: file formats and image sizes (to spot classes that come from different sources)."""
    seen: dict[tuple[str, str], dict[str, dict[str, int]]] = defaultdict(lambda: {"formats": {}, "sizes": {}})
    done = set()
    for r in rows:
        if (r["case"], r["class"]) in done:
            continue
        done.add((r["case"], r["class"]))
        s = seen[(r["modality"], r["class"])]
        s["formats"][r["format"]] = s["formats"].get(r["format"], 0) + 1
        s["sizes"][r["size"]] = s["sizes"].get(r["size"], 0) + 1
    out = []
    for (mod, label), s in sorted(seen.items()):
        n = sum(s["formats"].values())
        widths = sorted(int(k.split("x")[0]) for k, c in s["sizes"].items() for _ in range(c))
        heights = sorted(int(k.split("x")[1]) for k, c in s["sizes"].items() for _ in range(c))
        out.append(
            {
                "modality": mod,
                "class": label,
                "n": n,
                "formats": s["formats"],
                "median_size": [widths[len(widths) // 2], heights[len(heights) // 2]],
            }
        )
    return out


# --------------------------------------------------------------------------- recorded values


def csv_value(v: Any) -> Any:
    """A value as a CSV cell: floats rounded to 6 digits, NaN empty, infinities ``inf``/``-inf``."""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return repr(round(v, 6)) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    return v


def json_safe(v: Any) -> Any:
    """NaN/inf -> null (strict JSON), numpy scalars -> Python."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v
