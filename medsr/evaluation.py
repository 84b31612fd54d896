"""Evaluation protocol: HR image -> simulated LR -> every method -> compared with the HR image.

:func:`run_evaluation` scores each model beside bicubic interpolation of the
same low-resolution input, per image, and summarises per modality x class x
model x scale with paired statistics against bicubic (DESIGN.md "Evaluation
protocol"). Everything the clinician report needs is written to the output
folder, so :func:`medsr.report.build_report` can rebuild the report later:

``metrics.csv``
    one row per image x model x scale (:data:`METRIC_COLUMNS`).
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
import io
import json
import math
import os
import re
import sys
import warnings
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from medsr import __version__
from medsr import meta as mk
from medsr.errors import InputError, MedsrError, OutputError, UsageError
from medsr.metrics import METRICS, compute_metrics, psnr
from medsr.privacy import KEY_FILE, Redactor, one_line
from medsr.typing import MODALITIES, SCALES, PathLike

__all__ = [
    "CLASS_ALL",
    "DEGRADATIONS",
    "METRIC_COLUMNS",
    "STAT_METRICS",
    "HIGHER_IS_BETTER",
    "Case",
    "collect_cases",
    "BOOTSTRAP_METHOD",
    "bootstrap_ci",
    "paired_wilcoxon",
    "summarize",
    "select_cases",
    "run_evaluation",
]

CLASS_ALL = "all"
"""Class of images directly in the data folder, and of the pooled per-modality groups."""

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

METRIC_COLUMNS: tuple[str, ...] = (
    "case",
    "path",
    "modality",
    "class",
    "format",
    "size",
    "model",
    "is_gan",
    "scale",
) + STAT_METRICS
"""Columns of ``metrics.csv``, in order."""

ZOOM_SIDE = 160
"""Edge, in HR pixels, of the zoomed region shown in the case panels."""

PANEL_PX = 320
"""Approximate edge in pixels of a saved zoom panel (enlarged by an integer factor, nearest neighbour)."""

GAN_LOW, GAN_HIGH = 0.02, 0.10
"""GAN departure map: no colour below 2% of the display range, full red at 10%."""


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Case:
    """One HR image to evaluate.

    Args:
        source: what :func:`medsr.io.load_image` takes (a path, or the files of a series).
        path: the file or series folder, for messages and ``show_ids``.
        label: the finding class (``"all"`` when none).
        modality: a datalist's modality override, or ``None``.
        key: a stable text (path relative to the data root) that seeds the degradation.
        origin: where the case came from, for the private key file (``datalist row 3``).
    """

    source: Any
    path: Path
    label: str
    modality: str | None
    key: str
    origin: str = ""


def _load_source(item: Any) -> Any:
    return list(item.files) if getattr(item, "kind", "file") == "series" else item.path


def _check_modality(value: str | None, where: str) -> str | None:
    if value in (None, "", "auto"):
        return None
    text = str(value).strip().lower()
    if text not in MODALITIES:
        raise UsageError(f"{where}: modality must be auto, {', '.join(MODALITIES)}; got {value!r}.")
    return text


MAX_DATALIST_BYTES = 64 << 20
"""Largest datalist file medsr parses."""


def _datalist_entries(path: Path) -> list[dict[str, Any]]:
    """The rows of a datalist, each checked: ``image`` a path or a non-empty list of paths, other fields text."""
    try:
        if path.stat().st_size > MAX_DATALIST_BYTES:
            raise InputError(f"the datalist is larger than {MAX_DATALIST_BYTES >> 20} MB; split it.")
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read the datalist ({err.strerror or err}).") from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"the datalist is not UTF-8 text (byte {err.start}); save it as UTF-8.") from err
    if path.suffix.lower() == ".csv":
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            if reader.fieldnames is None or "image" not in reader.fieldnames:
                raise InputError(f"the datalist CSV needs a column named `image`; it has {len(reader.fieldnames or [])} other columns.")
            doc: Any = [{k: v for k, v in r.items() if k is not None} for r in reader]
        except csv.Error as err:
            raise InputError(f"the datalist CSV cannot be parsed ({one_line(err)}).") from err
    else:
        try:
            doc = json.loads(text)
        except RecursionError as err:
            raise InputError("the datalist JSON is nested too deeply to be a datalist.") from err
        except ValueError as err:
            raise InputError(f"the datalist is not readable JSON: {one_line(err)}") from err
    if isinstance(doc, dict):
        for key in ("data", "test", "testing", "validation", "training"):
            if isinstance(doc.get(key), list):
                doc = doc[key]
                break
    if not isinstance(doc, list) or not all(isinstance(e, dict) and "image" in e for e in doc):
        raise InputError(
            "the datalist must be a list of objects with an `image` key "
            "(or hold one under `data`, `test`, `testing`, `validation` or `training`)."
        )
    for i, entry in enumerate(doc):
        image = entry["image"]
        paths = image if isinstance(image, list) else [image]
        if not paths or not all(isinstance(p, str) and p.strip() and "\x00" not in p for p in paths):
            raise InputError(
                f"datalist row {i + 1}: `image` must be a file path or a non-empty list of file paths, "
                f"got {_kind(image)}; fix that row."
            )
        for field in ("class", "label", "modality"):
            if entry.get(field) is not None and not isinstance(entry[field], (str, int)):
                raise InputError(f"datalist row {i + 1}: `{field}` must be text, got {_kind(entry[field])}; fix that row.")
    return doc


def _kind(value: Any) -> str:
    """A description of a JSON value that quotes none of it."""
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)" + ("" if all(isinstance(v, str) for v in value) else " that are not all text")
    if isinstance(value, str):
        return "an empty text" if not value.strip() else "a text with a NUL character"
    return f"a {type(value).__name__}"


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long, a NUL: the case fails when it is read
        return False


def collect_cases(data: PathLike, *, modality: str = "auto", exclude: PathLike | None = None) -> list[Case]:
    """The images to evaluate in ``data``, sorted by path.

    ``data`` is a folder (each sub-folder is a class; images directly in it, and
    a DICOM series folder directly in it, have class ``"all"``), a datalist
    (``.json``: a list of ``{"image", "class", "modality"}`` objects, or MONAI's
    ``{"testing": [...]}``; ``.csv`` with columns ``image`` and optional
    ``class``, ``modality``; relative paths are relative to the datalist), a DICOM
    series folder, or one image file. ``exclude`` (the output folder) is skipped.
    """
    from medsr.io import discover_inputs

    root = Path(data).expanduser()
    if not root.exists():
        raise InputError(f"`data` {root} does not exist.")
    default_mod = _check_modality(modality, "`modality`")
    ex = Path(exclude).resolve() if exclude is not None else None
    cases: list[Case] = []
    if root.is_file() and root.suffix.lower() in (".json", ".csv"):
        for i, entry in enumerate(_datalist_entries(root)):
            image = entry["image"]
            files = [Path(p) for p in image] if isinstance(image, list) else [Path(str(image))]
            files = [f if f.is_absolute() else root.parent / f for f in files]
            source, path = (files if len(files) > 1 else files[0]), files[0]
            if len(files) == 1 and _is_dir(files[0]):
                try:
                    items = discover_inputs(files[0])
                except InputError:
                    items = []
                if len(items) == 1:  # otherwise reading the folder fails with its own message, in errors.csv
                    source = _load_source(items[0])
            label = str(entry.get("class") or entry.get("label") or CLASS_ALL).strip() or CLASS_ALL
            mod = _check_modality(entry.get("modality"), f"datalist row {i + 1}") or default_mod
            cases.append(Case(source, path, label, mod, str(image), origin=f"datalist row {i + 1}"))
    else:
        base = root if root.is_dir() else root.parent
        for item in discover_inputs(root):
            p = Path(item.path)
            if ex is not None and p.resolve().is_relative_to(ex):
                continue
            parts = p.relative_to(base).parts if p.is_relative_to(base) else ()
            # a class is a sub-folder of DATA; a series folder directly in DATA is a case, not a class
            is_series = getattr(item, "kind", "file") == "series"
            label = parts[0] if len(parts) >= 2 else CLASS_ALL
            if is_series and len(parts) == 1:
                label = CLASS_ALL
            key = ("/".join(parts) or p.name) + (f"#{item.series_uid}" if getattr(item, "series_uid", "") else "")
            cases.append(Case(_load_source(item), p, label, default_mod, key, origin=key))
    if not cases:
        raise InputError(f"{root} contains no images (DICOM, NIfTI, PNG, TIFF or JPEG).")
    return sorted(cases, key=lambda c: (c.label, str(c.path)))


# --------------------------------------------------------------------------- statistics


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
    from scipy.stats import bootstrap

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
    from scipy.stats import wilcoxon

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


# --------------------------------------------------------------------------- per image


def _case_seed(seed: int, key: str, scale: int) -> int:
    """A per-image, per-scale seed that does not change when other images are added."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode()), int(scale)]).generate_state(1)[0])


@dataclass
class _Prepared:
    """One case at one scale: normalised HR (cropped), its LR input and the degradation operator."""

    hr: Any  # MetaTensor on [0, 1]
    lr: Any  # torch.Tensor
    op: Any
    round8: bool = False  # outputs rounded to 8 bits before scoring (the papers' Y-channel protocol)


def _luminance(norm: Any) -> Any:
    """The 8-bit BT.601 luminance Y of a normalised RGB MetaTensor (MATLAB ``rgb2ycbcr``); grey images as they are."""
    from monai.data import MetaTensor

    from medsr.transforms.colour import rgb_to_y

    if norm.shape[0] != 3:
        return norm
    y = MetaTensor(rgb_to_y(norm.as_tensor(), round8=True).float(), meta=dict(norm.meta))
    y.affine = norm.affine
    y.meta[mk.PHOTOMETRIC] = "MONOCHROME2"
    return y


def _prepare(case: Case, img: Any, scale: int, degradation: str, seed: int, y_channel: bool = False) -> _Prepared:
    import torch
    from monai.data import MetaTensor

    from medsr.transforms import BicubicDegradation, CropToMultiple, ModalityNormalize, RandModalityDegradation

    norm = ModalityNormalize(clip=True)(img)  # scored on [0, 1]: data_range = 1
    if y_channel:
        norm = _luminance(norm)
    elif norm.meta.get(mk.PHOTOMETRIC) == "RGB":
        raise UsageError("colour image: medsr scores RGB images on their luminance; pass --y-channel.")
    hr = CropToMultiple([scale, scale] + [1] * (norm.ndim - 3))(norm)  # in-plane only
    if degradation == "bicubic":
        op = BicubicDegradation(scale)
    else:
        op = RandModalityDegradation(scale, p_classic=0.0)
        op.set_random_state(_case_seed(seed, case.key, scale))
    lr = op(hr)
    lr_t = lr.as_tensor() if isinstance(lr, MetaTensor) else torch.as_tensor(lr)
    return _Prepared(hr, lr_t.float(), op, round8=y_channel)


def _like_hr(sr: Any, prep: _Prepared) -> Any:
    """``sr`` as a MetaTensor with the HR image's meta (same grid: same affine and spacing)."""
    from monai.data import MetaTensor

    out = MetaTensor(sr, meta=dict(prep.hr.meta))
    out.affine = prep.hr.affine
    return out


def _redegrade(prep: _Prepared, sr: Any) -> Any:
    """The model output degraded again by the operator that made the LR input (same random draw)."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Randomizable

    x = _like_hr(sr, prep)
    if isinstance(prep.op, Randomizable):
        try:
            y = prep.op(x, randomize=False)
        except TypeError:
            y = prep.op(x)
    else:
        y = prep.op(x)
    return y.as_tensor() if isinstance(y, MetaTensor) else torch.as_tensor(y)


def _upscale(upscaler: Any, prep: _Prepared) -> Any:
    import torch

    sr = torch.as_tensor(upscaler(prep.lr)).float()
    if tuple(sr.shape) != tuple(prep.hr.shape):
        raise UsageError(
            f"model {upscaler.name!r} returned shape {tuple(sr.shape)} for an LR input of {tuple(prep.lr.shape)}; "
            f"expected {tuple(prep.hr.shape)}."
        )
    sr = sr.clamp(0.0, 1.0)  # not in place: network outputs may be inference-mode tensors
    if prep.round8:
        from medsr.transforms.colour import quantize8

        sr = quantize8(sr)
    return sr


def _size_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


RASTER_FORMATS = ("png", "jpeg", "tiff")


def _output_path(prep: _Prepared, folder: Path, stem: str) -> Path:
    """``stem.png`` for 2D raster inputs (lossless, the input's bit depth), ``stem.nii.gz`` otherwise."""
    raster = prep.hr.meta.get(mk.FORMAT) in RASTER_FORMATS and prep.hr.ndim == 3
    return folder / f"{stem}{'.png' if raster else '.nii.gz'}"


def _save_output(sr: Any, prep: _Prepared, path: Path) -> None:
    """Write a model output in physical units as PNG or NIfTI (DICOM inputs too: no derived DICOM here)."""
    from medsr.io import SOURCE_INFO, save_image
    from medsr.transforms import InvertModalityNormalize

    img = InvertModalityNormalize()(_like_hr(sr, prep))
    if path.name.endswith(".png"):
        img.meta[mk.FORMAT] = "png"
    else:
        if img.meta.get(mk.FORMAT) != "nifti":
            img.meta[SOURCE_INFO] = json.dumps({"dtype": "float32"})  # HU and friends, unclipped
        img.meta[mk.FORMAT] = "nifti"
    save_image(img, path, overwrite=True)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


# --------------------------------------------------------------------------- display panels


def _display_slice(x: Any, z: int | None) -> np.ndarray:
    """Channel 0 of a (C, X, Y[, Z]) tensor as a float32 (X, Y) array."""
    a = x[0] if z is None else x[0, ..., z]
    if hasattr(a, "as_tensor"):
        a = a.as_tensor()
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float32)


def _zoom_region(hr2d: np.ndarray, scale: int) -> tuple[int, int, int, int]:
    """``(x0, x1, y0, y1)``: the most detailed square centred in the middle half of the image.

    Detail is the mean gradient magnitude over the square; keeping its centre in the
    middle half avoids burned-in labels, collimator edges and the skin line at the margins.
    """
    from scipy import ndimage

    nx, ny = hr2d.shape
    side = max(2 * scale, min(ZOOM_SIDE, nx // 2, ny // 2) // scale * scale)
    step = max(1, min(nx, ny) // 256)
    small = hr2d[::step, ::step].astype(np.float32)
    g = np.hypot(ndimage.sobel(small, 0), ndimage.sobel(small, 1))
    w = max(1, side // step)
    detail = ndimage.uniform_filter(g, size=w, mode="constant")
    mask = np.zeros_like(detail, dtype=bool)
    sx, sy = detail.shape
    mask[int(0.25 * sx) : max(int(0.25 * sx) + 1, int(0.75 * sx)), int(0.25 * sy) : max(int(0.25 * sy) + 1, int(0.75 * sy))] = True
    detail[~mask] = -1.0
    cx, cy = np.unravel_index(int(np.argmax(detail)), detail.shape)
    cx, cy = cx * step, cy * step
    x0 = int(np.clip(cx - side // 2, 0, nx - side)) // scale * scale
    y0 = int(np.clip(cy - side // 2, 0, ny - side)) // scale * scale
    return x0, x0 + side, y0, y0 + side


def _flip_rows(meta: dict[str, Any], affine: Any) -> bool:
    """NIfTI slices are shown with anterior/superior up (radiological habit); other formats as stored."""
    if meta.get(mk.FORMAT) != "nifti" or affine is None:
        return False
    col = np.asarray(affine, dtype=np.float64)[:3, 1]
    axis = int(np.argmax(np.abs(col)))
    return axis in (1, 2) and col[axis] > 0


def _to_display(a: np.ndarray, flip: bool) -> np.ndarray:
    """(X, Y) array -> (rows, columns) image: rows run along Y."""
    d = np.swapaxes(a, 0, 1)
    return d[::-1] if flip else d


def _png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(img)).save(path, optimize=True)


def _gray(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip((a - lo) / max(hi - lo, 1e-12), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _enlarge(a: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1) if k > 1 else a


def _nice_ceiling(v: float) -> float:
    if not math.isfinite(v) or v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def _render_panels(
    case_id: str,
    case: Case,
    prep: _Prepared,
    outputs: dict[str, Any],
    gan_refs: dict[str, str],
    folder: Path,
    scale: int,
    display: str = "auto",
) -> dict[str, Any]:
    """Write the PNG panels of one case at one scale; returns what ``panel.json`` records.

    ``display``: the display window (:data:`medsr.report.windows.DISPLAY_WINDOWS`).
    """
    import torch
    from matplotlib import colormaps

    hr = prep.hr
    meta = dict(hr.meta)
    modality = str(meta.get(mk.MODALITY, "other"))
    z = hr.shape[-1] // 2 if hr.ndim == 4 else None
    flip = _flip_rows(meta, getattr(hr, "affine", None))
    hr2 = _display_slice(hr, z)
    x0, x1, y0, y1 = _zoom_region(hr2, scale)
    lr2 = _display_slice(prep.lr, z)
    lr_up = np.repeat(np.repeat(lr2, scale, 0), scale, 1)[: hr2.shape[0], : hr2.shape[1]]

    # Display units and window (display only; metrics use the [0, 1] images): back in physical
    # units (HU for CT) through the exact inverse mapping, then the file's own VOI window, else a
    # modality preset (CT) or percentiles (medsr.report.windows).
    from medsr.report.windows import display_window

    low, high = meta.get(mk.NORM_LOW), meta.get(mk.NORM_HIGH)
    if low is not None and high is not None:
        from medsr.transforms import InvertModalityNormalize

        inverse = InvertModalityNormalize(low=float(low), high=float(high))

        def to_units(a: np.ndarray) -> np.ndarray:
            return _display_slice(inverse(torch.from_numpy(np.ascontiguousarray(a))[None]), None)
    else:

        def to_units(a: np.ndarray) -> np.ndarray:
            return a

    window = display_window(meta, to_units(hr2), display)
    w_lo, w_hi = window["low"], window["high"]
    if modality == "ct" and low is not None:
        diff_unit, diff_factor = "HU", 1.0
    else:
        diff_unit, diff_factor = "% of display range", 100.0 / (w_hi - w_lo)

    side = x1 - x0
    k = max(1, PANEL_PX // side)
    crop = (slice(x0, x1), slice(y0, y1))
    files: dict[str, str] = {}
    folder.mkdir(parents=True, exist_ok=True)

    # overview: the whole HR slice, reduced, with the zoom box
    ov_step = max(1, math.ceil(max(hr2.shape) / 512))
    ov = _gray(_to_display(to_units(hr2[::ov_step, ::ov_step]), flip), w_lo, w_hi)
    ov = np.stack([ov] * 3, axis=-1)
    bx0, bx1, by0, by1 = x0 // ov_step, max(x0 // ov_step + 2, x1 // ov_step), y0 // ov_step, max(y0 // ov_step + 2, y1 // ov_step)
    rows_n = ov.shape[0]
    if flip:
        by0, by1 = rows_n - by1, rows_n - by0
    bx1, by1 = min(bx1, ov.shape[1] - 1), min(by1, rows_n - 1)
    for t in range(max(2, ov.shape[1] // 128)):
        ov[by0 + t, bx0:bx1 + 1] = ov[by1 - t, bx0:bx1 + 1] = (255, 200, 0)
        ov[by0:by1 + 1, bx0 + t] = ov[by0:by1 + 1, bx1 - t] = (255, 200, 0)
    _png(folder / "overview.png", ov)
    files["overview"] = "overview.png"

    norm_crops = {"hr": hr2[crop], "lr": lr_up[crop]}
    for name, sr in outputs.items():
        norm_crops[name] = _display_slice(sr, z)[crop]
    arrays = {name: to_units(a) for name, a in norm_crops.items()}
    for name, a in arrays.items():
        fname = f"{_safe(name)}.png"
        _png(folder / fname, _enlarge(_gray(_to_display(a, flip), w_lo, w_hi), k))
        files[name] = fname

    # absolute difference to HR, one colour scale per case
    diffs = {name: np.abs(arrays[name] - arrays["hr"]) * diff_factor for name in outputs}
    top = _nice_ceiling(max(float(np.percentile(d, 99.5)) for d in diffs.values()) if diffs else 1.0)
    cmap = colormaps["inferno"]
    for name, d in diffs.items():
        rgb = (cmap(np.clip(_to_display(d, flip) / top, 0, 1))[..., :3] * 255 + 0.5).astype(np.uint8)
        fname = f"diff_{_safe(name)}.png"
        _png(folder / fname, _enlarge(rgb, k))
        files[f"diff_{name}"] = fname

    # GAN: where the output departs from a pixel-loss model (or bicubic): possibly invented detail
    gan: dict[str, Any] = {}
    for name, ref in gan_refs.items():
        dep = np.abs(arrays[name] - arrays[ref]) / (w_hi - w_lo)
        alpha = np.clip((dep - GAN_LOW) / (GAN_HIGH - GAN_LOW), 0, 1)
        base = _gray(arrays["hr"], w_lo, w_hi).astype(np.float32)[..., None].repeat(3, -1)
        red = np.array([255.0, 30.0, 30.0], dtype=np.float32)
        over = base * (1 - alpha[..., None]) + red * alpha[..., None]
        over_d = _to_display(over, flip)
        fname = f"gan_{_safe(name)}.png"
        _png(folder / fname, _enlarge((over_d + 0.5).astype(np.uint8), k))
        files[f"gan_{name}"] = fname
        gan[name] = {"reference": ref, "fraction_flagged": float((dep > GAN_LOW).mean())}

    np.savez_compressed(folder / "crops.npz", **{_safe(n): a.astype(np.float32) for n, a in norm_crops.items()})
    return {
        "case": case_id,
        "scale": scale,
        "modality": modality,
        "class": case.label,
        "slice": z,
        "region": [x0, x1, y0, y1],
        "image_size": list(hr2.shape),
        "zoom": k,
        "window": window,
        "diff_max": top,
        "diff_unit": diff_unit,
        "gan": gan,
        "files": files,
    }


# --------------------------------------------------------------------------- driver


def _progress(enabled: bool) -> Any:
    """A rich progress bar on stderr (stdout stays clean for the CLI's result line)."""
    from medsr.batch import progress_bar

    return progress_bar(enabled, "images x scales")


def _json_safe(v: Any) -> Any:
    """NaN/inf -> null (strict JSON), numpy scalars -> Python."""
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from medsr.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return repr(round(v, 6)) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    return v


def _summary_csv_rows(groups: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
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
            row += [_fmt(s["mean"]), _fmt(s["sd"])] + [_fmt(d.get(k, math.nan)) for k in ("mean", "ci_low", "ci_high", "p")]
            if d.get("note"):
                notes.append(f"{m}: {d['note']}")
        row.append("; ".join(dict.fromkeys(n.split(": ", 1)[1] for n in notes)))
        out.append(row)
    return header, out


def _sources(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
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
    scales = tuple(dict.fromkeys(int(s) for s in scales))
    if not scales or any(s not in SCALES for s in scales):
        raise UsageError(f"`scales` must be taken from {SCALES}, got {tuple(scales)}.")
    if degradation not in DEGRADATIONS:
        raise UsageError(f"`degradation` must be one of {', '.join(DEGRADATIONS)}, got {degradation!r}.")
    _check_modality(modality, "`modality`")
    from medsr.report.windows import check_window

    check_window(window)
    out = Path(outdir).expanduser()
    data_path = Path(data).expanduser()
    from medsr.batch import check_output_folder, output_lock

    check_output_folder(out)
    if data_path.exists() and out.resolve() == data_path.resolve():
        raise OutputError(f"output {one_line(out)} is the input folder; choose another -o.")
    with output_lock(out):
        return _run_evaluation(
            data_path, out, scales=scales, models=models, modality=modality, degradation=degradation,
            save_images=save_images, seed=seed, show_ids=show_ids, progress=progress, device=device,
            n_resamples=n_resamples, confidence=confidence, report=report, upscaler_factory=upscaler_factory,
            trust_bundle=trust_bundle, log=log, classes=classes, window=window, y_channel=y_channel,
        )


CASES_MARKER = ".medsr-cases"
"""File medsr writes in the ``cases/`` folder it creates; only a folder holding it is ever deleted."""


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


def _inputs_inside(cases: Sequence[Case], out: Path) -> Case | None:
    """The first case with a file inside ``out`` (the output folder), if any."""
    ro = out.resolve()
    for c in cases:
        for f in c.source if isinstance(c.source, (list, tuple)) else [c.source, c.path]:
            try:
                if Path(f).resolve().is_relative_to(ro):
                    return c
            except (OSError, RuntimeError, ValueError):
                continue
    return None


def _run_evaluation(
    data_path: Path,
    out: Path,
    *,
    scales: tuple[int, ...],
    models: Sequence[str],
    modality: str,
    degradation: str,
    save_images: bool,
    seed: int,
    show_ids: bool,
    progress: bool,
    device: str,
    n_resamples: int,
    confidence: float,
    report: bool,
    upscaler_factory: Callable[[str, int], Any] | None,
    trust_bundle: bool,
    log: Callable[[str], Any] | None,
    classes: Sequence[str] | None,
    window: str,
    y_channel: bool,
) -> Path:
    """:func:`run_evaluation` once the output folder is checked and locked."""
    cases_dir = out / "cases"
    _check_cases_dir(cases_dir)

    if upscaler_factory is None:
        from medsr.inference import load_upscaler

        def upscaler_factory(model: str, scale: int) -> Any:
            return load_upscaler(model, scale, device=device, trust_bundle=trust_bundle, log=log)

    names = list(dict.fromkeys([REFERENCE, *[str(m).strip() for m in models if str(m).strip()]]))
    upscalers: dict[tuple[str, int], Any] = {}
    model_labels: list[str] = []  # what tables call each model: its Upscaler.name, unique
    for name in names:
        ups = {s: upscaler_factory(name, s) for s in scales}
        label = REFERENCE if name == REFERENCE else str(getattr(ups[scales[0]], "name", "") or Path(name).name)
        while label in model_labels:
            label += "+"
        model_labels.append(label)
        upscalers.update({(label, s): up for s, up in ups.items()})
    is_gan = {lab: bool(getattr(upscalers[(lab, scales[0])], "is_gan", False)) for lab in model_labels}
    from medsr.inference import INTERPOLATIONS

    # a GAN's "possibly invented detail" is measured against a pixel-loss network, else bicubic
    pixel_models = [m for m in model_labels if m not in INTERPOLATIONS and m != REFERENCE and not is_gan[m]]
    gan_ref = {m: (pixel_models[0] if pixel_models else REFERENCE) for m in model_labels if is_gan[m]}

    cases = collect_cases(data_path, modality=modality, exclude=out)
    inside = _inputs_inside(cases, out)
    if inside is not None:
        raise OutputError(
            f"the datalist names an input inside the output folder {one_line(out)} ({inside.origin or 'a row'}); "
            "medsr writes and replaces files there: choose another -o."
        )
    red = Redactor(show_ids=show_ids, classes=classes)
    red.register("<data>", data_path, kind="data")
    ids = {
        id(c): red.case(c.path, files=c.source if isinstance(c.source, (list, tuple)) else (), detail=c.origin)
        for c in cases
    }
    labels = {id(c): red.label(c.label) for c in cases}
    rows: list[dict[str, Any]] = []
    errors: list[tuple[str, str]] = []

    from medsr.io import load_image

    def load(case: Case) -> Any:
        return load_image(case.source, modality=case.modality)

    with _progress(progress) as bar:
        task = bar.add_task("evaluate", total=len(cases) * len(scales))
        for case in cases:
            cid = ids[id(case)]
            shown = red.shown(cid, case.path)
            advanced = 0
            try:
                img = load(case)
                mod = str(img.meta.get(mk.MODALITY) or "other")
                fmt = str(img.meta.get(mk.FORMAT) or Path(case.path).suffix.lstrip(".").lower() or "unknown")
                size = _size_text(img.shape[1:])
                case_rows = []
                for s in scales:
                    prep = _prepare(case, img, s, degradation, seed, y_channel)
                    for label in model_labels:
                        sr = _upscale(upscalers[(label, s)], prep)
                        r = {
                            "case": cid, "path": shown, "modality": mod, "class": labels[id(case)], "format": fmt,
                            "size": size, "model": label, "is_gan": is_gan[label], "scale": s,
                        }
                        r.update(compute_metrics(sr, prep.hr, scale=s))
                        r["consistency_psnr"] = psnr(_redegrade(prep, sr), prep.lr, border=1)
                        if save_images:
                            _save_output(sr, prep, _output_path(prep, out / "images" / cid, f"{_safe(label)}_x{s}"))
                        case_rows.append(r)
                        del sr
                    bar.advance(task)
                    advanced += 1
                rows.extend(case_rows)
            except (MedsrError, OSError, ValueError, RuntimeError, MemoryError) as err:
                reason = red.text(str(err).splitlines()[0] if str(err) else type(err).__name__)
                bar.console.print(f"medsr: skipped {shown}: {reason}", markup=False, highlight=False, soft_wrap=True)
                errors.append((shown, reason))
                bar.advance(task, len(scales) - advanced)

    from medsr.batch import write_errors_csv

    err_path = out / "errors.csv"
    try:
        red.write_key(out / KEY_FILE)
        if errors:
            write_errors_csv(err_path, errors)
        elif err_path.is_file() and not err_path.is_symlink():
            err_path.unlink()
    except OSError as err:
        raise OutputError(f"cannot write in {one_line(out)} ({err.strerror or err}); free space or choose another -o.") from err
    if not rows:
        raise InputError(f"no image could be evaluated (see {one_line(err_path)}).")
    try:
        return _write_results(
            out, rows, errors, cases, ids, model_labels, upscalers, gan_ref, load, red, cases_dir, data_path,
            scales=scales, modality=modality, degradation=degradation, seed=seed, show_ids=show_ids,
            n_resamples=n_resamples, confidence=confidence, report=report, window=window, y_channel=y_channel,
        )
    except OSError as err:
        raise OutputError(f"cannot write the results in {one_line(out)} ({err.strerror or err}); free space or choose another -o.") from err


def _write_results(
    out: Path,
    rows: list[dict[str, Any]],
    errors: list[tuple[str, str]],
    cases: list[Case],
    ids: dict[int, str],
    model_labels: list[str],
    upscalers: dict[tuple[str, int], Any],
    gan_ref: dict[str, str],
    load: Callable[[Case], Any],
    red: Redactor,
    cases_dir: Path,
    data_path: Path,
    *,
    scales: tuple[int, ...],
    modality: str,
    degradation: str,
    seed: int,
    show_ids: bool,
    n_resamples: int,
    confidence: float,
    report: bool,
    window: str,
    y_channel: bool,
) -> Path:
    """Tables, case panels, summary and report of a finished evaluation."""
    _write_csv(out / "metrics.csv", METRIC_COLUMNS, ([_fmt(r[c]) for c in METRIC_COLUMNS] for r in rows))
    groups = summarize(rows, n_resamples=n_resamples, confidence=confidence, seed=seed)
    selections = select_cases(rows)

    # second pass: re-run the few selected cases to draw their panels (no per-case images kept during scoring)
    by_case: dict[tuple[str, int], set[str]] = defaultdict(set)
    for sel in selections:
        if sel["model"] == REFERENCE and len(model_labels) > 1:
            continue  # bicubic is drawn beside every model; its own ranking gets panels only when alone
        by_case[(sel["case"], sel["scale"])].add(sel["model"])
    panels: dict[str, dict[str, Any]] = {}
    case_of = {ids[id(c)]: c for c in cases}
    _check_cases_dir(cases_dir)  # checked again: only medsr's own folder is replaced
    if cases_dir.is_dir():
        import shutil

        shutil.rmtree(cases_dir)
    cases_dir.mkdir()
    (cases_dir / CASES_MARKER).write_text("written by medsr evaluate; medsr replaces this folder on its next run here\n")
    for (cid, s), wanted in sorted(by_case.items()):
        case = case_of[cid]
        need = {REFERENCE} | wanted | {gan_ref[m] for m in wanted if m in gan_ref}
        try:
            prep = _prepare(case, load(case), s, degradation, seed, y_channel)
            outputs = {m: _upscale(upscalers[(m, s)], prep) for m in model_labels if m in need}
            refs = {m: gan_ref[m] for m in wanted if m in gan_ref}
            folder = cases_dir / f"{cid}_x{s}"
            panel = _render_panels(cid, case, prep, outputs, refs, folder, s, window)
            panel["class"] = red.label(case.label)
            panel["path"] = red.shown(cid, case.path)
            (folder / "panel.json").write_text(json.dumps(_json_safe(panel), indent=1), encoding="utf-8")
            panels[f"{cid}_x{s}"] = panel
        except (MedsrError, OSError, ValueError, RuntimeError, MemoryError) as err:
            print(f"medsr: no case panel for {cid} x{s}: {red.text(str(err).splitlines()[0] if str(err) else type(err).__name__)}", file=sys.stderr)
    for sel in selections:
        key = f"{sel['case']}_x{sel['scale']}"
        sel["panel"] = f"cases/{key}" if key in panels else None

    summary = {
        "medsr_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "data": one_line(data_path) if show_ids else None,
            "scales": list(scales),
            "models": model_labels,
            "gan_models": {m: gan_ref[m] for m in gan_ref},
            "modality": modality,
            "degradation": degradation,
            "y_channel": y_channel,
            "seed": seed,
            "bootstrap": {"method": BOOTSTRAP_METHOD, "n_resamples": n_resamples, "confidence": confidence},
            "test": "two-sided Wilcoxon signed-rank, paired by image (scipy.stats.wilcoxon, zero differences dropped)",
            "metric_convention": "[0,1] normalised images, data_range 1, border of `scale` pixels cropped; "
            "SSIM 11x11 Gaussian window sigma 1.5, K1 0.01, K2 0.03 (volumes: mean of in-plane SSIM over slices)",
            "display_window": window,
            "show_ids": show_ids,
        },
        "n_images": len({r["case"] for r in rows}),
        "n_failed": len(errors),
        "metrics": list(STAT_METRICS),
        "higher_is_better": HIGHER_IS_BETTER,
        "groups": groups,
        "sources": _sources(rows),
        "cases": selections,
    }
    from medsr.io import atomic_path

    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(_json_safe(summary), indent=1, allow_nan=False), encoding="utf-8")
    header, srows = _summary_csv_rows(groups)
    _write_csv(out / "summary.csv", header, srows)

    if not report:
        return out / "summary.json"
    from medsr.report import build_report

    html, _ = build_report(out, show_ids=show_ids)
    return html
