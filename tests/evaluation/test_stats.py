"""medsr.evaluation.stats: bootstrap intervals and Wilcoxon tests with known answers, grouping, case selection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medsr import evaluation as ev
from medsr.errors import UsageError


def test_bootstrap_ci_normal_mean_and_width() -> None:
    rng = np.random.default_rng(42)
    n, mu, sd = 400, 0.5, 1.0
    d = rng.normal(mu, sd, n)
    lo, hi = ev.bootstrap_ci(d, n_resamples=4000, confidence=0.95, seed=1)
    assert lo < mu < hi
    assert lo < d.mean() < hi
    analytic = 3.92 * d.std(ddof=1) / math.sqrt(n)
    assert hi - lo == pytest.approx(analytic, rel=0.1)


def test_bootstrap_ci_coverage_is_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    hits = 0
    trials = 200
    for t in range(trials):
        d = rng.normal(1.0, 2.0, 60)
        lo, hi = ev.bootstrap_ci(d, n_resamples=1000, seed=t)
        hits += lo <= 1.0 <= hi
    assert 0.88 <= hits / trials <= 0.99


def test_bootstrap_ci_is_seeded_and_handles_degenerate_input() -> None:
    d = np.random.default_rng(0).normal(size=30)
    assert ev.bootstrap_ci(d, seed=3) == ev.bootstrap_ci(d, seed=3)
    assert ev.bootstrap_ci(np.zeros(10)) == (0.0, 0.0)
    assert all(math.isnan(v) for v in ev.bootstrap_ci([1.0]))
    assert all(math.isnan(v) for v in ev.bootstrap_ci([1.0, math.nan]))
    with pytest.raises(UsageError, match="confidence"):
        ev.bootstrap_ci(d, confidence=95)
    with pytest.raises(UsageError, match="n_resamples"):
        ev.bootstrap_ci(d, n_resamples=0)


def test_paired_wilcoxon_known_answers() -> None:
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(0)
    a = rng.normal(30, 2, 50)
    p, note = ev.paired_wilcoxon(a, a.copy())
    assert math.isnan(p) and "zero" in note
    p, note = ev.paired_wilcoxon(a + 1.0 + rng.normal(0, 0.1, 50), a)
    assert p < 1e-8 and note == ""
    b = a + rng.normal(0, 1, 50)
    p, _ = ev.paired_wilcoxon(b, a)
    assert p == pytest.approx(wilcoxon(b - a).pvalue)
    p, note = ev.paired_wilcoxon([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert p > 0.05 and "cannot fall below 0.05" in note
    p, note = ev.paired_wilcoxon([1.0], [0.0])
    assert math.isnan(p) and "too few" in note
    with pytest.raises(UsageError, match="same length"):
        ev.paired_wilcoxon([1.0, 2.0], [1.0])


def _rows() -> list[dict]:
    rows = []
    rng = np.random.default_rng(1)
    for i in range(12):
        label = "A" if i < 6 else "B"
        base = 30 + rng.normal(0, 1)
        for model, gain in (("bicubic", 0.0), ("net", 1.0 + 0.1 * i)):
            r = {"case": f"case-{i:04d}", "modality": "xray", "class": label, "model": model, "scale": 2, "is_gan": False}
            for m in ev.STAT_METRICS:
                r[m] = base + gain if m == "psnr" else 0.5 + gain / 10
            rows.append(r)
    return rows


def test_summarize_groups_and_pooled_class() -> None:
    groups = ev.summarize(_rows(), n_resamples=500)
    keys = [(g["class"], g["model"]) for g in groups]
    assert keys == [("A", "bicubic"), ("A", "net"), ("B", "bicubic"), ("B", "net"), ("all", "bicubic"), ("all", "net")]
    net_all = groups[-1]
    assert net_all["n"] == 12
    d = net_all["psnr"]["diff"]
    assert d["mean"] == pytest.approx(1.0 + 0.1 * np.mean(range(12)))
    assert d["ci_low"] < d["mean"] < d["ci_high"]
    assert d["p"] < 0.001
    assert "diff" not in groups[0]["psnr"]
    assert groups[1]["psnr"]["mean"] == pytest.approx(np.mean([r["psnr"] for r in _rows() if r["class"] == "A" and r["model"] == "net"]))


def test_select_cases_best_median_worst() -> None:
    sel = ev.select_cases(_rows())
    net = [s for s in sel if s["model"] == "net"]
    assert [s["rank"] for s in net] == ["best", "median", "worst"]
    assert [s["case"] for s in net] == ["case-0011", "case-0005", "case-0000"]
    assert net[0]["gain"] == pytest.approx(2.1)
    assert [s["rank"] for s in sel if s["model"] == "bicubic"] == ["best", "median", "worst"]
    one = [r for r in _rows() if r["case"] == "case-0003"]
    assert [s["rank"] for s in ev.select_cases(one) if s["model"] == "net"] == ["best/median/worst"]
