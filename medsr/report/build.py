"""Build the clinician report from an evaluation folder (metrics.csv, summary.json, cases/)."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

from medsr import __version__
from medsr.errors import InputError, OutputError
from medsr.io import atomic_path
from medsr.report import plots
from medsr.report.pdf import write_pdf
from medsr.report.results import MAX_RESULT_FILE_BYTES, inside, load_results
from medsr.report.windows import window_text
from medsr.typing import PathLike

__all__ = ["MODALITY_NAMES", "SMALL_N", "ALPHA", "report_context", "render_html", "build_report"]

MODALITY_NAMES = {"xray": "X-ray", "ct": "CT", "mr": "MR", "other": "Other images"}

METRIC_LABELS = {
    "psnr": ("PSNR", "dB"),
    "ssim": ("SSIM", ""),
    "mae": ("Mean absolute error", "% of range"),
    "nrmse": ("Relative error (NRMSE)", ""),
    "sharpness": ("Edge sharpness", "x original"),
    "consistency_psnr": ("Consistency PSNR", "dB"),
}

RANK_WORDS = {"best": "best case", "median": "median case", "worst": "worst case"}
"""How the case ranks (by PSNR gain over bicubic; for bicubic alone by its PSNR) are worded."""

SMALL_N = 10
"""Fewest images for a verdict. A smaller group gets no coloured verdict (its bootstrap interval
is too narrow: with 2 images it is just the two per-image gains), and its images are shown one
by one in a paired dot / slope plot instead of box plots."""

ALPHA = 0.05
"""A verdict (better / worse) needs the 95% BCa interval to exclude 0 and the Wilcoxon p below this."""

VERDICT_LEGEND = (
    f"Green: reliably better than bicubic (the 95% BCa bootstrap interval excludes 0 and the paired Wilcoxon test gives "
    f"p < {ALPHA:g}); red: reliably worse; grey: no clear difference (or the interval and the test disagree); groups of "
    f"fewer than {SMALL_N} images are never coloured."
)


# --------------------------------------------------------------------------- formatting


def _f(v: Any, digits: int) -> str:
    if v is None or not math.isfinite(float(v)):
        return "n/a"
    return f"{float(v):.{digits}f}"


def _signed(v: Any, digits: int) -> str:
    if v is None or not math.isfinite(float(v)):
        return "n/a"
    return f"{float(v):+.{digits}f}".replace("-", "\u2212")


def _p_text(p: Any) -> str:
    if p is None or not math.isfinite(float(p)):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


DIGITS = {"psnr": 2, "ssim": 4, "mae": 4, "nrmse": 4, "sharpness": 2, "consistency_psnr": 1}


def _verdict(diff: dict[str, Any] | None, higher_better: bool | None) -> str:
    """``better``/``worse``/``unclear``, or ``few`` below :data:`SMALL_N` paired images.

    Better or worse only when the BCa interval excludes 0 and the Wilcoxon test agrees
    (p < :data:`ALPHA`); an interval and a test that disagree give ``unclear``.
    """
    if not diff or higher_better is None:
        return ""
    n = diff.get("n")
    if n is None or int(n) < SMALL_N:
        return "few"
    lo, hi, p = diff.get("ci_low"), diff.get("ci_high"), diff.get("p")
    if lo is None or hi is None or p is None or not p < ALPHA:
        return "unclear"
    if lo > 0:
        return "better" if higher_better else "worse"
    if hi < 0:
        return "worse" if higher_better else "better"
    return "unclear"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- context


def _class_name(label: str, classes: list[str]) -> str:
    if label == "all":
        return "All images" if classes == ["all"] else "All classes together"
    return label


def _intro(models: list[str], scales: list[int], degradation: str) -> str:
    deg_text = (
        "shrinking it with bicubic downsampling (the standard laboratory protocol)"
        if degradation == "bicubic"
        else "simulating a lower-resolution acquisition for its modality (blur, downsampling and noise)"
    )
    others = [m for m in models if m != "bicubic"]
    method_text = f"each method ({', '.join(others)}) and, for comparison, bicubic interpolation" if others else "bicubic interpolation"
    return (
        f"Each original image (the high-resolution reference) was reduced by a factor of {' and '.join(map(str, scales))} "
        f"in each in-plane direction by {deg_text}. From this low-resolution version, {method_text} produced an image at "
        "the original size, and that result was compared pixel by pixel with the original, which the methods never saw. "
        "Bicubic interpolation is the smooth enlargement every image viewer performs; a method is useful only if it "
        "beats it on the same input."
    )


METRIC_HELP = [
    ("PSNR (peak signal-to-noise ratio, in dB)", "how close the pixel values are to the original; higher is better, "
     "and +1 dB means about 20% less squared error."),
    ("SSIM (structural similarity, 0 to 1)", "how well local structure \u2013 edges, texture, contrast \u2013 matches "
     "the original; higher is better, 1 means identical."),
    ("Difference vs bicubic (95% CI)", "the average gain of a method over bicubic on the same images, with the range "
     "the true average gain lies in with 95% confidence. If the range does not include 0 and the paired test agrees, "
     f"the method is reliably better (green) or worse (red) than bicubic; otherwise the difference is unclear. With "
     f"fewer than {SMALL_N} images no verdict is given: such ranges are too narrow to trust."),
]


def _results_table(groups: list[dict[str, Any]], label: str, gan_models: dict[str, str], higher: dict[str, Any]) -> dict[str, Any]:
    """PSNR/SSIM table of one class: mean +- SD, difference to bicubic with CI and p, best means starred."""
    best = {}
    for m in ("psnr", "ssim"):
        vals = [g[m]["mean"] for g in groups if g[m]["mean"] is not None]
        best[m] = max(vals) if vals else None
    rows = []
    for g in groups:
        row = {"model": g["model"], "n": g["n"], "is_reference": g["model"] == "bicubic", "is_gan": g["model"] in gan_models, "cells": {}}
        for m in ("psnr", "ssim"):
            st, d, k = g[m], g[m].get("diff"), DIGITS[m]
            row["cells"][m] = {
                "mean": _f(st["mean"], k),
                "sd": None if st["sd"] is None else _f(st["sd"], k),
                "best": st["mean"] is not None and st["mean"] == best[m],
                "diff": None if not d else _signed(d["mean"], k),
                "ci": None if not d or d["ci_low"] is None else f"{_signed(d['ci_low'], k)} to {_signed(d['ci_high'], k)}",
                "p": None if not d else _p_text(d["p"]),
                "note": "" if not d else (d.get("note") or ""),
                "verdict": _verdict(d, higher.get(m, True)),
            }
        rows.append(row)
    # the test's caveats as footnotes, one mark per distinct note
    notes = list(dict.fromkeys(c["note"] for r in rows for c in r["cells"].values() if c["note"]))
    for r in rows:
        for c in r["cells"].values():
            c["mark"] = "\u2020" * (notes.index(c["note"]) + 1) if c["note"] else ""
    n = groups[0]["n"]
    return {"label": label, "n": n, "rows": rows, "small": n < SMALL_N, "notes": [("\u2020" * (i + 1), t) for i, t in enumerate(notes)]}


def _other_measures(g: dict[str, Any], higher: dict[str, Any]) -> list[dict[str, Any]]:
    cells = []
    for m in ("mae", "nrmse", "sharpness", "consistency_psnr"):
        st, d = g[m], g[m].get("diff")
        k = 100.0 if m == "mae" else 1.0  # MAE shown in % of the intensity range
        digits = 2 if m == "mae" else DIGITS[m]

        def scaled(v: Any) -> float | None:
            return None if v is None else float(v) * k

        cells.append(
            {
                "value": _f(scaled(st["mean"]), digits),
                "diff": None if not d else _signed(scaled(d["mean"]), digits),
                "verdict": _verdict(d, higher.get(m)),
            }
        )
    return cells


def _finding(where: str, model: str, g: dict[str, Any], gains: list[float]) -> dict[str, Any]:
    """One line of the main results; ``gains``: the per-image PSNR gains over bicubic. States n."""
    d = g["psnr"]["diff"]
    n = len(gains)
    wins = sum(1 for x in gains if x > 0)
    plural = "s" if n != 1 else ""
    v = _verdict(d, True)
    where = f"{where} (n = {n} image{plural})"
    if v == "few":
        spread = "" if n < 2 else f", per image {_signed(min(gains), 2)} to {_signed(max(gains), 2)} dB"
        return {
            "verdict": v,
            "where": where,
            "model": model,
            "word": "not judged against bicubic",
            "detail": f"only {n} image{plural}, a verdict needs at least {SMALL_N}. PSNR {_signed(d['mean'], 2)} dB on "
            f"average{spread}, higher than bicubic in {wins} of {n}; SSIM {_signed(g['ssim']['diff']['mean'], 4)}.",
        }
    word = {"better": "better than", "worse": "worse than"}.get(v, "not clearly different from")
    ci_excludes_zero = d["ci_low"] is not None and (d["ci_low"] > 0 or d["ci_high"] < 0)
    p_small = d.get("p") is not None and d["p"] < ALPHA
    disagree = " (the interval and the test disagree)" if ci_excludes_zero != p_small else ""
    return {
        "verdict": v,
        "where": where,
        "model": model,
        "word": word + " bicubic",
        "detail": f"PSNR {_signed(d['mean'], 2)} dB (95% CI {_signed(d['ci_low'], 2)} to {_signed(d['ci_high'], 2)}, "
        f"Wilcoxon p {_p_text(d.get('p'))}{disagree}), higher than bicubic in {wins} of {n} images; "
        f"SSIM {_signed(g['ssim']['diff']['mean'], 4)}.",
    }


def _gain_plot(sec_title: str, metric: str, entries: list[tuple[str, int, dict[str, Any]]]) -> dict[str, Any]:
    forest = [
        {"label": f"{label} (n = {d.get('n')})", "model_index": idx, "mean": d["mean"],
         "low": d["ci_low"] if _verdict(d, True) != "few" else None, "high": d["ci_high"] if _verdict(d, True) != "few" else None}
        for label, idx, d in entries
    ]
    name = metric.upper()
    unit = " (dB)" if metric == "psnr" else ""
    return {
        "title": f"Gain in {name} over bicubic",
        "png": plots.gain_plot(forest, xlabel=f"{name} difference vs bicubic{unit}", title=f"{sec_title}: {name} gain over bicubic"),
        "caption": "Dot: average gain over bicubic on the same images; bar: 95% BCa confidence interval. "
        f"Bars entirely right of the line mean better than bicubic. Groups of fewer than {SMALL_N} images get no bar.",
    }


def _limits(modalities: list[str], rows: list[dict[str, Any]], summary: dict[str, Any], has_gan: bool) -> list[str]:
    limits = [
        "The low-resolution images were simulated from the originals. Real low-resolution acquisitions (thicker slices, "
        "lower dose, other reconstruction kernels, motion) differ, and results on them may be worse.",
        "Good PSNR/SSIM do not prove diagnostic quality; no reader study was done. Judge the case images yourself.",
    ]
    sources = summary.get("sources", [])
    for mod in modalities:
        srcs = [x for x in sources if x["modality"] == mod]
        if len(srcs) < 2:
            continue
        differs = len({tuple(sorted(x["formats"])) for x in srcs}) > 1 or len({tuple(x["median_size"]) for x in srcs}) > 1
        limits.append(
            f"{MODALITY_NAMES.get(mod, mod)}: the classes ({', '.join(x['class'] for x in srcs)}) "
            + ("differ in file format or image size, so they very likely come from different sources. "
               if differs else "may come from different hospitals or scanners. ")
            + "Differences between classes may then reflect the source (equipment, protocol, patient age) rather "
            "than the finding itself: class is confounded with data source."
        )
    if len(modalities) > 1:
        limits.append("Modalities are evaluated separately; numbers are not comparable across X-ray, CT and MR.")
    classes = {mod: sorted({r["class"] for r in rows if r["modality"] == mod}) for mod in modalities}
    small = sorted(
        {f"{MODALITY_NAMES.get(g['modality'], g['modality'])} {_class_name(g['class'], classes.get(g['modality'], []))}"
         for g in summary.get("groups", []) if g["n"] < SMALL_N}
    )
    if small:
        limits.append(
            f"Small groups (fewer than {SMALL_N} images: {', '.join(small)}): bootstrap intervals of so few images are too "
            "narrow and p-values are unreliable, so no verdict is given for them; a larger test set is needed before "
            "drawing conclusions."
        )
    if has_gan:
        limits.append("GAN-type models are trained to look sharp; they can add plausible-looking structure that is not in the "
                      "patient. See the \u201cpossibly invented detail\u201d maps.")
    return limits


def _technical(settings: dict[str, Any], scales: list[int], version: str) -> list[str]:
    boot = settings.get("bootstrap", {})
    return [
        f"Metric convention: {settings.get('metric_convention', '')}.",
        f"Confidence intervals: {boot.get('method', 'percentile')} bootstrap of the mean paired difference "
        f"(scipy.stats.bootstrap), {boot.get('n_resamples', 2000)} resamples, seed {settings.get('seed', 0)}. "
        f"A verdict needs at least {SMALL_N} images, the interval to exclude 0 and p < {ALPHA:g}.",
        f"p-values: {settings.get('test', 'Wilcoxon signed-rank')}. No correction for multiple comparisons.",
        "Consistency PSNR: each output is degraded again with exactly the operation that produced its input and compared "
        "with that input (in low-resolution space, a 1-pixel border cropped).",
        f"Display windows ({settings.get('display_window', 'auto')}): the file's own Window Center/Width when it has one, "
        "else for CT the mediastinum preset (centre 40, width 400 HU), for MR and X-ray the 0.5th to 99.5th intensity "
        "percentiles of the original; each panel names its window. Windows are for display only; all metrics use the "
        "full intensity range.",
        f"Degradation: {settings.get('degradation', 'bicubic')}; scales: {', '.join(f'x{s}' for s in scales)}; medsr {version}.",
    ]


def report_context(
    rows: list[dict[str, Any]], summary: dict[str, Any], panels: dict[str, dict[str, Any]], *, show_ids: bool = False
) -> dict[str, Any]:
    """Everything the HTML template and the PDF show, already worded and formatted (images as PNG bytes)."""
    settings = summary.get("settings", {})
    models: list[str] = list(settings.get("models") or sorted({r["model"] for r in rows}))
    gan_models: dict[str, str] = dict(settings.get("gan_models") or {})
    model_index = {m: i for i, m in enumerate(models)}
    higher = summary.get("higher_is_better", {})
    ids_ok = bool(show_ids and settings.get("show_ids"))
    scales = sorted({r["scale"] for r in rows})
    gidx = {(g["modality"], g["class"], g["model"], int(g["scale"])): g for g in summary.get("groups", [])}
    psnr_of = {(r["case"], r["model"], r["scale"]): r["psnr"] for r in rows}
    modalities = sorted({r["modality"] for r in rows})

    sections, findings = [], []
    for mod in modalities:
        classes = sorted({r["class"] for r in rows if r["modality"] == mod})
        table_classes = classes + (["all"] if classes != ["all"] else [])
        for s in scales:
            mod_rows = [r for r in rows if r["modality"] == mod and r["scale"] == s]
            if not mod_rows:
                continue
            title = f"{MODALITY_NAMES.get(mod, mod)}, \u00d7{s}"
            sec: dict[str, Any] = {"id": f"{mod}-x{s}", "title": title, "n": len({r["case"] for r in mod_rows}),
                                   "tables": [], "plots": [], "cases": [],
                                   "consistency": [], "other": [], "has_models": len(models) > 1}
            for label in table_classes:
                present = [gidx[(mod, label, m, s)] for m in models if (mod, label, m, s) in gidx]
                if present:
                    sec["tables"].append(_results_table(present, _class_name(label, classes), gan_models, higher))
            for x in models:
                g = gidx.get((mod, "all", x, s))
                if g is None:
                    continue
                sec["other"].append({"model": x, "cells": _other_measures(g, higher)})
                cst = g["consistency_psnr"]
                sec["consistency"].append({"model": x, "mean": _f(cst["mean"], 1), "sd": None if cst["sd"] is None else _f(cst["sd"], 1), "n": cst["n"]})
                if x != "bicubic" and g["psnr"].get("diff"):
                    cases = [r["case"] for r in mod_rows if r["model"] == x]
                    pairs = [(psnr_of[(c, x, s)], psnr_of.get((c, "bicubic", s), math.nan)) for c in cases]
                    gains = [a - b for a, b in pairs if math.isfinite(a - b)]
                    findings.append(_finding(title, x, g, gains))

            order = {label: sorted({r["case"] for r in mod_rows if r["class"] == label}) for label in classes}
            values = {
                _class_name(label, classes): {x: [psnr_of.get((c, x, s), math.nan) for c in order[label]] for x in models}
                for label in classes
            }
            if min(len(v) for v in order.values()) < SMALL_N:
                sec["plots"].append(
                    {
                        "title": "PSNR of every image, per class",
                        "png": plots.paired_plot(values, models, ylabel="PSNR (dB), higher is better", title=f"{title}: PSNR per image"),
                        "caption": "Each dot is one image under one method; a line joins the results of the same image. "
                        f"Shown image by image because a group has fewer than {SMALL_N} images.",
                    }
                )
            else:
                sec["plots"].append(
                    {
                        "title": "PSNR of every image, per class",
                        "png": plots.box_plot(values, models, ylabel="PSNR (dB), higher is better", title=f"{title}: PSNR per image"),
                        "caption": "Each dot is one image; the box spans the middle half of the images, the line is the median.",
                    }
                )
            for m in ("psnr", "ssim"):
                entries = [
                    (f"{_class_name(label, classes)} \u2013 {x}", model_index[x], gidx[(mod, label, x, s)][m]["diff"])
                    for label in table_classes
                    for x in models
                    if x != "bicubic" and (mod, label, x, s) in gidx and gidx[(mod, label, x, s)][m].get("diff")
                ]
                if entries:
                    sec["plots"].append(_gain_plot(title, m, entries))

            for sel in summary.get("cases", []):
                if sel["modality"] != mod or int(sel["scale"]) != s or not sel.get("panel"):
                    continue
                if sel["model"] == "bicubic" and len(models) > 1:
                    continue  # the models' panels already show bicubic beside them
                panel = panels.get(Path(sel["panel"]).name)
                if panel is not None:
                    sec["cases"].append(_case_block(sel, panel, rows, gan_models, ids_ok))
            sections.append(sec)

    gan = [
        {"model": x, "reference": ref, "cases": [c for sec in sections for c in sec["cases"] if c["model"] == x and c.get("gan_png")]}
        for x, ref in gan_models.items()
    ]
    version = summary.get("medsr_version", __version__)
    return {
        "title": "Super-resolution evaluation",
        "created": summary.get("created", ""),
        "version": version,
        "n_images": summary.get("n_images", len({r["case"] for r in rows})),
        "n_failed": int(summary.get("n_failed", 0) or 0),
        "modalities": ", ".join(MODALITY_NAMES.get(m, m) for m in modalities),
        "scales": ", ".join(f"\u00d7{s}" for s in scales),
        "models": models,
        "intro": _intro(models, scales, settings.get("degradation", "bicubic")),
        "metric_help": METRIC_HELP,
        "findings": findings,
        "verdict_legend": VERDICT_LEGEND,
        "sections": sections,
        "gan": gan,
        "limits": _limits(modalities, rows, summary, bool(gan_models)),
        "technical": _technical(settings, scales, version),
        "show_ids": ids_ok,
        "data": settings.get("data") if ids_ok else None,
    }


def _case_block(sel: dict[str, Any], panel: dict[str, Any], rows: list[dict[str, Any]], gan_models: dict[str, str], ids_ok: bool) -> dict[str, Any]:
    """One case panel laid out on a 6-column grid.

    Row 1: whole image, original, low-resolution input, bicubic, the model, [GAN map];
    row 2: the error maps, each under the image it belongs to, and the colour scale.
    """
    folder: Path = panel["dir"]
    files = panel.get("files", {})
    model = sel["model"]
    scale = int(sel["scale"])

    def img(key: str) -> bytes | None:
        """A PNG of the panel: only a plain file name inside the panel's folder (never a path elsewhere)."""
        name = files.get(key) if isinstance(files, dict) else None
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            return None
        f = folder / name
        if not f.is_file() or not inside(folder, f) or f.stat().st_size > MAX_RESULT_FILE_BYTES:
            return None
        data = f.read_bytes()
        return data if data.startswith(b"\x89PNG\r\n\x1a\n") else None

    score = {r["model"]: r["psnr"] for r in rows if r["case"] == sel["case"] and r["scale"] == scale}
    path = next((r["path"] for r in rows if r["case"] == sel["case"]), None) if ids_ok else None
    unit = panel.get("diff_unit", "")
    win_text = window_text(panel.get("window", {}))
    top = [
        ("Original (reference)", img("hr")),
        (f"Low-resolution input (1/{scale})", img("lr")),
        (f"Bicubic – {_f(score.get('bicubic'), 2)} dB", img("bicubic")),
    ]
    bottom = [("Error of bicubic", img("diff_bicubic"), 4)]
    if model != "bicubic":
        top.append((f"{model} – {_f(score.get(model), 2)} dB", img(model)))
        bottom.append((f"Error of {model}", img(f"diff_{model}"), 5))
    gan_png = img(f"gan_{model}") if model in gan_models else None
    if gan_png is not None:
        top.append(("Possibly invented detail (red)", gan_png))
    gan_info = panel.get("gan", {}).get(model, {})
    if model == "bicubic":
        headline = f"bicubic PSNR {_f(score.get('bicubic'), 2)} dB"
    else:
        headline = f"PSNR difference vs bicubic {_signed(sel.get('gain'), 2)} dB"
    diff_max = float(panel.get("diff_max", 1.0))
    ranks = str(sel["rank"]).split("/")
    rank_text = "the only case" if len(ranks) == 3 else " / ".join(RANK_WORDS.get(r, r) for r in ranks)
    return {
        "anchor": f"{sel['case']}-x{scale}-{model}",
        "scale": scale,
        "model": model,
        "rank": rank_text.capitalize(),
        "case": sel["case"],
        "path": path,
        "class": sel.get("class", ""),
        "headline": headline,
        "overview": img("overview"),
        "top": [t for t in top if t[1] is not None],
        "bottom": [t for t in bottom if t[1] is not None],
        "colorbar": plots.colorbar(diff_max, unit),
        "diff_scale": f"black = no error, bright = {diff_max:g} {unit} or more",
        "window": win_text,
        "slice": panel.get("slice"),
        "gan_png": gan_png,
        "gan_reference": gan_info.get("reference") or gan_models.get(model),
        "gan_fraction": None if not gan_info else f"{100 * gan_info.get('fraction_flagged', 0):.1f}%",
    }


# --------------------------------------------------------------------------- output


def render_html(context: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (images inline as base64 PNG)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("medsr.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["b64"] = _b64
    return env.get_template("report.html.j2").render(**context)


def build_report(outdir: PathLike, *, show_ids: bool = False) -> tuple[Path, Path]:
    """Rebuild ``OUTDIR/report.html`` and ``OUTDIR/report.pdf`` from saved evaluation results.

    Args:
        outdir: a folder written by :func:`medsr.evaluation.run_evaluation`.
        show_ids: show file paths; only possible when the evaluation itself ran
            with ``show_ids`` (otherwise no identifiers were ever written).

    Returns:
        ``(html_path, pdf_path)``.
    """
    root = Path(outdir).expanduser()
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; pass the output folder of `medsr evaluate`.")
    rows, summary, panels = load_results(root)
    if not rows:
        raise InputError(f"{root / 'metrics.csv'} has no rows; nothing to report.")
    try:
        ctx = report_context(rows, summary, panels, show_ids=show_ids)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as err:
        # a hand-edited or damaged summary.json / panel.json: a value of the wrong type or a missing key
        raise InputError(
            f"{root} is a damaged evaluation folder ({type(err).__name__} while reading its results); "
            "run `medsr evaluate` again."
        ) from err
    html_path, pdf_path = root / "report.html", root / "report.pdf"
    try:
        with atomic_path(html_path) as tmp:
            tmp.write_text(render_html(ctx), encoding="utf-8")
        write_pdf(ctx, pdf_path)
    except OSError as err:
        raise OutputError(f"cannot write the report in {root}: {err.strerror or err}") from err
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise InputError(
            f"{root} is a damaged evaluation folder ({type(err).__name__} while drawing its report); "
            "run `medsr evaluate` again."
        ) from err
    return html_path, pdf_path
