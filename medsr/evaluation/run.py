"""Evaluation protocol: HR image -> simulated LR -> every method -> compared with the HR image.

:func:`run_evaluation` scores each model beside bicubic interpolation of the
same low-resolution input, per image, and summarises per modality x class x
model x scale with paired statistics against bicubic (DESIGN.md "Evaluation
protocol"). Everything the clinician report needs is written to the output
folder, so :func:`medsr.report.build_report` can rebuild the report later:

``metrics.csv``
    one row per image x model x scale (:data:`medsr.evaluation.stats.METRIC_COLUMNS`).
``summary.json`` / ``summary.csv``
    per group: n, mean and sd of every metric, the mean paired difference to
    bicubic with its 95% bootstrap confidence interval and a Wilcoxon p-value.
``cases/<case>_x<scale>/``
    display-ready PNG panels of the best, median and worst cases (by PSNR gain
    over bicubic) and ``panel.json`` describing them.
``images/<case>/<model>_x<scale>.(png|nii.gz)``
    every model output in physical units, with ``save_images=True``.
``errors.csv``
    inputs that could not be evaluated, when any.

See docs/metrics.md for the metric definitions and the statistics.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medsr import __version__
from medsr import meta as mk
from medsr.batch import check_output_folder, output_lock, progress_bar, write_errors_csv
from medsr.errors import InputError, MedsrError, OutputError
from medsr.evaluation.cases import Case, collect_cases, inputs_inside
from medsr.evaluation.panels import file_stem, render_panels
from medsr.evaluation.protocol import Prepared, like_hr, prepare, redegrade, upscale
from medsr.evaluation.stats import (
    BOOTSTRAP_METHOD,
    HIGHER_IS_BETTER,
    METRIC_COLUMNS,
    REFERENCE,
    STAT_METRICS,
    csv_value,
    json_safe,
    select_cases,
    sources,
    summarize,
    summary_table,
)
from medsr.inference import INTERPOLATIONS, load_upscaler
from medsr.io import SOURCE_INFO, atomic_path, load_image, save_image
from medsr.metrics import compute_metrics, psnr
from medsr.privacy import KEY_FILE, Redactor, one_line
from medsr.report import build_report
from medsr.report.windows import check_window
from medsr.transforms import InvertModalityNormalize
from medsr.typing import PathLike
from medsr.validation import check_degradation, check_modality_or_auto, check_scales

__all__ = ["CASES_MARKER", "RASTER_FORMATS", "run_evaluation"]

CASES_MARKER = ".medsr-cases"
"""File medsr writes in the ``cases/`` folder it creates; only a folder holding it is ever deleted."""

RASTER_FORMATS = ("png", "jpeg", "tiff")
"""Input formats whose 2D model outputs are saved as PNG (``save_images``); others as NIfTI."""

_SKIPPED = (MedsrError, OSError, ValueError, RuntimeError, MemoryError)
"""Failures that skip one input (listed in ``errors.csv``) instead of ending the run."""


@dataclass(frozen=True)
class _Settings:
    """The options of one run that every step reads."""

    data: Path
    out: Path
    scales: tuple[int, ...]
    modality: str
    degradation: str
    save_images: bool
    seed: int
    show_ids: bool
    n_resamples: int
    confidence: float
    window: str
    y_channel: bool

    @property
    def cases_dir(self) -> Path:
        return self.out / "cases"


@dataclass
class _Models:
    """The methods of one run: table labels (bicubic first), upscalers per (label, scale), GAN references."""

    labels: list[str]
    upscalers: dict[tuple[str, int], Any]
    is_gan: dict[str, bool]
    gan_ref: dict[str, str]  # a GAN's "possibly invented detail" is measured against this model


@dataclass
class _Inputs:
    """The cases of one run with their pseudonyms and shown class labels."""

    cases: list[Case]
    red: Redactor
    ids: dict[int, str]
    labels: dict[int, str]

    def pseudonym(self, case: Case) -> str:
        return self.ids[id(case)]

    def load(self, case: Case) -> Any:
        return load_image(case.source, modality=case.modality)


def run_evaluation(
    data: PathLike,
    outdir: PathLike,
    *,
    scales: Sequence[int] = (2,),
    models: Sequence[str] = ("bicubic",),
    modality: str = "auto",
    degradation: str = "bicubic",
    save_images: bool = False,
    seed: int = 0,
    show_ids: bool = False,
    progress: bool = True,
    device: str = "auto",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    report: bool = True,
    upscaler_factory: Callable[[str, int], Any] | None = None,
    trust_bundle: bool = False,
    log: Callable[[str], Any] | None = None,
    classes: Sequence[str] | None = None,
    window: str = "auto",
    y_channel: bool = False,
) -> Path:
    """Evaluate ``models`` against bicubic on the HR images in ``data``; write results to ``outdir``.

    Args:
        data: a folder (sub-folders are classes), a datalist ``.json``/``.csv``,
            a DICOM series folder or one image (:func:`collect_cases`).
        outdir: output folder, created if missing; earlier results in it are replaced.
        scales: in-plane factors (2, 4).
        models: ``bicubic``, ``lanczos``, bundle names or paths; bicubic is always added.
        modality: ``"auto"`` (from the file) or ``xray``/``ct``/``mr`` for every image.
        degradation: ``"bicubic"`` (the classic protocol: bicubic downsampling) or
            ``"modality"`` (the modality's physics simulator, seeded per image from ``seed``).
        save_images: also write every model output under ``outdir/images``.
        seed: seeds the degradations and the bootstrap.
        show_ids: write file paths and every class label instead of pseudonyms (``case-0001``,
            ``class-01``; :class:`medsr.privacy.Redactor`, whose private key file
            ``outdir/case-key.private.csv`` maps them back to the inputs).
        progress: show a progress bar on stderr.
        device: ``"auto"`` (default: CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``.
        n_resamples: bootstrap resamples per confidence interval.
        confidence: confidence level of the intervals.
        report: also build ``report.html`` and ``report.pdf`` (:func:`medsr.report.build_report`).
        upscaler_factory: ``(model, scale) -> Upscaler``; default
            :func:`medsr.inference.load_upscaler` on ``device`` (tests inject fakes).
        trust_bundle, log: passed to :func:`medsr.inference.load_upscaler` (bundles
            that medsr does not ship need ``trust_bundle``; ``log`` hears which config runs).
        classes: the declared class labels, shown as they are without ``show_ids``
            (default :data:`medsr.privacy.DEFAULT_CLASSES`).
        window: display window of the case panels: ``"auto"`` (the file's own Window
            Center/Width, else CT mediastinum or the 0.5-99.5 percentiles), a CT preset
            ``"lung"``, ``"mediastinum"``, ``"bone"``, or ``"percentile"`` (:mod:`medsr.report.windows`).
        y_channel: score the SR papers' way: RGB images on the 8-bit BT.601 luminance Y
            (MATLAB ``rgb2ycbcr``; greyscale images as they are), model outputs rounded to
            8 bits, border = scale. Without it RGB images are refused (listed in ``errors.csv``).

    medsr deletes nothing it did not create: the panel folder ``cases/`` is replaced only
    when it holds medsr's marker (:data:`CASES_MARKER`); an input inside ``outdir`` (a
    folder's images are skipped, a datalist's are refused) is never written over; the
    folder is locked against a concurrent run (:func:`medsr.batch.output_lock`).

    Returns:
        ``outdir/report.html`` when ``report`` is true, else ``outdir/summary.json``.
    """
    scales = check_scales(scales)
    check_degradation(degradation)
    check_modality_or_auto(modality, "`modality`")
    check_window(window)
    out = Path(outdir).expanduser()
    data_path = Path(data).expanduser()
    check_output_folder(out)
    if data_path.exists() and out.resolve() == data_path.resolve():
        raise OutputError(f"output {one_line(out)} is the input folder; choose another -o.")
    settings = _Settings(
        data_path, out, scales, modality, degradation, save_images, seed, show_ids, n_resamples, confidence, window,
        y_channel,
    )
    if upscaler_factory is None:

        def upscaler_factory(model: str, scale: int) -> Any:
            return load_upscaler(model, scale, device=device, trust_bundle=trust_bundle, log=log)

    with output_lock(out):
        _check_cases_dir(settings.cases_dir)
        methods = _load_models(models, scales, upscaler_factory)
        inputs = _collect_inputs(settings, classes)
        rows, errors = _score(settings, methods, inputs, progress)
        _write_errors(settings.out, inputs.red, errors)
        if not rows:
            raise InputError(f"no image could be evaluated (see {one_line(out / 'errors.csv')}).")
        try:
            summary = _write_results(settings, methods, inputs, rows, errors)
            if not report:
                return summary
            html, _ = build_report(out, show_ids=show_ids)  # the report reads only what was just written
            return html
        except OSError as err:
            raise OutputError(
                f"cannot write the results in {one_line(out)} ({err.strerror or err}); free space or choose another -o."
            ) from err


# --------------------------------------------------------------------------- steps


def _check_cases_dir(cases_dir: Path) -> None:
    """``cases/`` must be absent or medsr's own (a real folder holding :data:`CASES_MARKER`)."""
    if cases_dir.is_symlink() or (cases_dir.exists() and not cases_dir.is_dir()):
        raise OutputError(
            f"{one_line(cases_dir)} is not a folder medsr created (a link or a file); move it or choose another -o."
        )
    if cases_dir.is_dir() and not (cases_dir / CASES_MARKER).is_file():
        raise OutputError(
            f"{one_line(cases_dir)} was not created by medsr evaluate (no {CASES_MARKER} marker) and would be replaced; "
            "move it or choose another -o."
        )


def _load_models(models: Sequence[str], scales: tuple[int, ...], factory: Callable[[str, int], Any]) -> _Models:
    """Bicubic and ``models`` at every scale; each labelled by its ``Upscaler.name``, made unique."""
    names = list(dict.fromkeys([REFERENCE, *[str(m).strip() for m in models if str(m).strip()]]))
    upscalers: dict[tuple[str, int], Any] = {}
    labels: list[str] = []
    for name in names:
        ups = {s: factory(name, s) for s in scales}
        label = REFERENCE if name == REFERENCE else str(getattr(ups[scales[0]], "name", "") or Path(name).name)
        while label in labels:
            label += "+"
        labels.append(label)
        upscalers.update({(label, s): up for s, up in ups.items()})
    is_gan = {lab: bool(getattr(upscalers[(lab, scales[0])], "is_gan", False)) for lab in labels}
    # a GAN's "possibly invented detail" is measured against a pixel-loss network, else bicubic
    pixel_models = [m for m in labels if m not in INTERPOLATIONS and m != REFERENCE and not is_gan[m]]
    gan_ref = {m: (pixel_models[0] if pixel_models else REFERENCE) for m in labels if is_gan[m]}
    return _Models(labels, upscalers, is_gan, gan_ref)


def _collect_inputs(st: _Settings, classes: Sequence[str] | None) -> _Inputs:
    """The cases (none inside the output folder), their pseudonyms and shown class labels."""
    cases = collect_cases(st.data, modality=st.modality, exclude=st.out)
    inside = inputs_inside(cases, st.out)
    if inside is not None:
        raise OutputError(
            f"the datalist names an input inside the output folder {one_line(st.out)} ({inside.origin or 'a row'}); "
            "medsr writes and replaces files there: choose another -o."
        )
    red = Redactor(show_ids=st.show_ids, classes=classes)
    red.register("<data>", st.data, kind="data")
    ids = {id(c): red.case(c.path, files=c.files, detail=c.origin) for c in cases}
    labels = {id(c): red.label(c.label) for c in cases}
    return _Inputs(cases, red, ids, labels)


def _score(st: _Settings, methods: _Models, inputs: _Inputs, progress: bool) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """``(metrics rows, errors)``: every case at every scale by every method; a failing case is skipped whole."""
    rows: list[dict[str, Any]] = []
    errors: list[tuple[str, str]] = []
    red = inputs.red
    with progress_bar(progress, "images x scales") as bar:
        task = bar.add_task("evaluate", total=len(inputs.cases) * len(st.scales))
        for case in inputs.cases:
            cid = inputs.pseudonym(case)
            shown = red.shown(cid, case.path)
            advanced = 0
            try:
                img = inputs.load(case)
                first = {
                    "case": cid, "path": shown, "modality": str(img.meta.get(mk.MODALITY) or "other"),
                    "class": inputs.labels[id(case)],
                    "format": str(img.meta.get(mk.FORMAT) or Path(case.path).suffix.lstrip(".").lower() or "unknown"),
                    "size": "x".join(str(int(s)) for s in img.shape[1:]),
                }
                case_rows = []
                for s in st.scales:
                    prep = prepare(case.key, img, s, st.degradation, st.seed, st.y_channel)
                    for label in methods.labels:
                        sr = upscale(methods.upscalers[(label, s)], prep)
                        r = {**first, "model": label, "is_gan": methods.is_gan[label], "scale": s}
                        r.update(compute_metrics(sr, prep.hr, scale=s))
                        r["consistency_psnr"] = psnr(redegrade(prep, sr), prep.lr, border=1)
                        if st.save_images:
                            _save_output(sr, prep, _output_path(prep, st.out / "images" / cid, f"{file_stem(label)}_x{s}"))
                        case_rows.append(r)
                        del sr
                    bar.advance(task)
                    advanced += 1
                rows.extend(case_rows)
            except _SKIPPED as err:
                reason = red.text(_first_line(err))
                bar.console.print(f"medsr: skipped {shown}: {reason}", markup=False, highlight=False, soft_wrap=True)
                errors.append((shown, reason))
                bar.advance(task, len(st.scales) - advanced)
    return rows, errors


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _write_errors(out: Path, red: Redactor, errors: list[tuple[str, str]]) -> None:
    """The private key file, and ``errors.csv`` when inputs failed (an old one removed otherwise)."""
    err_path = out / "errors.csv"
    try:
        red.write_key(out / KEY_FILE)
        if errors:
            write_errors_csv(err_path, errors)
        elif err_path.is_file() and not err_path.is_symlink():
            err_path.unlink()
    except OSError as err:
        raise OutputError(f"cannot write in {one_line(out)} ({err.strerror or err}); free space or choose another -o.") from err


def _output_path(prep: Prepared, folder: Path, stem: str) -> Path:
    """``stem.png`` for 2D raster inputs (lossless, the input's bit depth), ``stem.nii.gz`` otherwise."""
    raster = prep.hr.meta.get(mk.FORMAT) in RASTER_FORMATS and prep.hr.ndim == 3
    return folder / f"{stem}{'.png' if raster else '.nii.gz'}"


def _save_output(sr: Any, prep: Prepared, path: Path) -> None:
    """Write a model output in physical units as PNG or NIfTI (DICOM inputs too: no derived DICOM here)."""
    img = InvertModalityNormalize()(like_hr(sr, prep))
    if path.name.endswith(".png"):
        img.meta[mk.FORMAT] = "png"
    else:
        if img.meta.get(mk.FORMAT) != "nifti":
            img.meta[SOURCE_INFO] = json.dumps({"dtype": "float32"})  # HU and friends, unclipped
        img.meta[mk.FORMAT] = "nifti"
    save_image(img, path, overwrite=True)


def _write_results(
    st: _Settings, methods: _Models, inputs: _Inputs, rows: list[dict[str, Any]], errors: list[tuple[str, str]]
) -> Path:
    """``metrics.csv``, the case panels, ``summary.json`` and ``summary.csv`` of a finished scoring pass."""
    _write_csv(st.out / "metrics.csv", METRIC_COLUMNS, ([csv_value(r[c]) for c in METRIC_COLUMNS] for r in rows))
    groups = summarize(rows, n_resamples=st.n_resamples, confidence=st.confidence, seed=st.seed)
    selections = select_cases(rows)
    panels = _draw_panels(st, methods, inputs, selections)
    for sel in selections:
        key = f"{sel['case']}_x{sel['scale']}"
        sel["panel"] = f"cases/{key}" if key in panels else None
    summary = _summary(st, methods, rows, errors, groups, selections)
    with atomic_path(st.out / "summary.json") as tmp:
        tmp.write_text(json.dumps(json_safe(summary), indent=1, allow_nan=False), encoding="utf-8")
    _write_csv(st.out / "summary.csv", *summary_table(groups))
    return st.out / "summary.json"


def _draw_panels(st: _Settings, methods: _Models, inputs: _Inputs, selections: list[dict[str, Any]]) -> set[str]:
    """Re-run the few selected cases (no images are kept while scoring) and draw their panels; returns their keys."""
    by_case: dict[tuple[str, int], set[str]] = defaultdict(set)
    for sel in selections:
        if sel["model"] == REFERENCE and len(methods.labels) > 1:
            continue  # bicubic is drawn beside every model; its own ranking gets panels only when alone
        by_case[(sel["case"], sel["scale"])].add(sel["model"])
    cases_dir = st.cases_dir
    _check_cases_dir(cases_dir)  # checked again: only medsr's own folder is replaced
    if cases_dir.is_dir():
        shutil.rmtree(cases_dir)
    cases_dir.mkdir()
    (cases_dir / CASES_MARKER).write_text("written by medsr evaluate; medsr replaces this folder on its next run here\n")
    case_of = {inputs.pseudonym(c): c for c in inputs.cases}
    done: set[str] = set()
    for (cid, s), wanted in sorted(by_case.items()):
        case = case_of[cid]
        need = {REFERENCE} | wanted | {methods.gan_ref[m] for m in wanted if m in methods.gan_ref}
        try:
            prep = prepare(case.key, inputs.load(case), s, st.degradation, st.seed, st.y_channel)
            outputs = {m: upscale(methods.upscalers[(m, s)], prep) for m in methods.labels if m in need}
            refs = {m: methods.gan_ref[m] for m in wanted if m in methods.gan_ref}
            folder = cases_dir / f"{cid}_x{s}"
            panel = render_panels(cid, case.label, prep, outputs, refs, folder, s, st.window)
            panel["class"] = inputs.red.label(case.label)
            panel["path"] = inputs.red.shown(cid, case.path)
            (folder / "panel.json").write_text(json.dumps(json_safe(panel), indent=1), encoding="utf-8")
            done.add(f"{cid}_x{s}")
        except _SKIPPED as err:
            print(f"medsr: no case panel for {cid} x{s}: {inputs.red.text(_first_line(err))}", file=sys.stderr)
    return done


def _summary(
    st: _Settings,
    methods: _Models,
    rows: list[dict[str, Any]],
    errors: list[tuple[str, str]],
    groups: list[dict[str, Any]],
    selections: list[dict[str, Any]],
) -> dict[str, Any]:
    """What ``summary.json`` records: the settings, the groups, the sources and the selected cases."""
    return {
        "medsr_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "data": one_line(st.data) if st.show_ids else None,
            "scales": list(st.scales),
            "models": methods.labels,
            "gan_models": dict(methods.gan_ref),
            "modality": st.modality,
            "degradation": st.degradation,
            "y_channel": st.y_channel,
            "seed": st.seed,
            "bootstrap": {"method": BOOTSTRAP_METHOD, "n_resamples": st.n_resamples, "confidence": st.confidence},
            "test": "two-sided Wilcoxon signed-rank, paired by image (scipy.stats.wilcoxon, zero differences dropped)",
            "metric_convention": "[0,1] normalised images, data_range 1, border of `scale` pixels cropped; "
            "SSIM 11x11 Gaussian window sigma 1.5, K1 0.01, K2 0.03 (volumes: mean of in-plane SSIM over slices)",
            "display_window": st.window,
            "show_ids": st.show_ids,
        },
        "n_images": len({r["case"] for r in rows}),
        "n_failed": len(errors),
        "metrics": list(STAT_METRICS),
        "higher_is_better": HIGHER_IS_BETTER,
        "groups": groups,
        "sources": sources(rows),
        "cases": selections,
    }


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
