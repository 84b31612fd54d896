"""The slice-direction evaluation protocol (``medsr evaluate --protocol slices``).

For each thin-slice volume and slice factor N: the normalised volume (the
modality's [0, 1] mapping) is cropped to ``(m - 1) * N + 1`` slices along its slice
axis, degraded to ``m`` thick slices (:func:`medsr.slices.degrade_slices`: Gaussian
slice profile of FWHM N thin slices, centred on every N-th thin slice, then
decimation), restored by every method, and compared with the original thin slices.

Reported per volume, method and slice group — ``coinciding`` (thin slices at a thick
slice's centre, ``j % N == 0``), ``between`` (the N - 1 new slices between two thick
slices) and ``all``: PSNR (pooled over the group's voxels, ``data_range = 1``) and
mean SSIM of the axial (acquisition-plane) slices (11x11 Gaussian window, as
:mod:`medsr.metrics`), and the paired difference to cubic interpolation per slice
with a 95 % percentile-bootstrap interval over the slices of the group. The slices
of one volume are neighbours, not independent samples: the interval describes the
spread over slice positions of that volume, not over patients.

Outputs in the output folder: ``per_slice.csv``, ``summary.csv``, ``summary.json``,
``report.md`` and ``figures/<case>_n<N>_reformat.png`` (input thick slices shown at
their thickness, cubic, the first learned method, and the thin-slice reference, in
a reformatted plane that contains the slice axis, at physical aspect ratio).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from medsr.batch import progress_bar
from medsr.errors import InputError, UsageError
from medsr.evaluation import bootstrap_ci
from medsr.io import discover_inputs, load_image
from medsr.metrics import ssim
from medsr.slices import check_factor, degrade_slices, load_slice_upscaler, slice_axis, thick_length, thin_length
from medsr.transforms import ModalityNormalize
from medsr.typing import PathLike

__all__ = ["slice_metrics", "evaluate_volume", "run_slice_evaluation"]

GROUPS = ("between", "coinciding", "all")


def slice_metrics(pred: torch.Tensor, target: torch.Tensor, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per slice along ``axis`` of two ``(1, X, Y, Z)`` volumes: (MSE, SSIM) of the 2D slices."""
    p = torch.movedim(pred[0], axis, -1).double().numpy()
    t = torch.movedim(target[0], axis, -1).double().numpy()
    mse = ((p - t) ** 2).mean(axis=(0, 1))
    ss = np.array([ssim(p[None, ..., j], t[None, ..., j]) for j in range(p.shape[-1])])
    return mse, ss


def _psnr(mse: np.ndarray) -> float:
    m = float(np.mean(mse))
    return math.inf if m == 0 else 10.0 * math.log10(1.0 / m)


def _case_name(path: Path, show_ids: bool) -> str:
    return path.name if show_ids else "case-" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]


def evaluate_volume(
    hr: Any, factor: int, slicers: dict[str, Any], *, profile: str = "gaussian", fwhm: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Degrade a normalised ``(1, X, Y, Z)`` volume along its slice axis and restore it with every slicer.

    Returns ``(axis, cropped thin-slice reference, thick input, {method: restored})``.
    """
    axis = slice_axis(hr)
    t = hr.as_tensor() if hasattr(hr, "as_tensor") else torch.as_tensor(hr)
    n = int(t.shape[axis + 1])
    m = thick_length(n, factor)
    if m < 3:
        raise InputError(f"{n} slices give only {m} thick slices at N = {factor}; the protocol needs at least 3.")
    ref = t.narrow(axis + 1, 0, thin_length(m, factor)).float().contiguous()
    thick = degrade_slices(ref, axis, factor, profile, fwhm)
    return axis, ref, thick, {name: s(thick, axis, progress) for name, s in slicers.items()}


def _reformat_figure(path: Path, axis: int, factor: int, ref: torch.Tensor, thick: torch.Tensor,
                     outs: dict[str, torch.Tensor], learned: str | None, spacing: Sequence[float],
                     modality: str, norm: tuple[str, float, float]) -> None:
    """A sagittal/coronal-type reformat: input (thick slices at their thickness) | cubic | learned | reference."""
    others = [a for a in range(3) if a != axis]
    plane_axis = others[0]  # the plane holds the slice axis and the other in-plane axis
    idx = ref.shape[plane_axis + 1] // 2

    def plane(v: torch.Tensor) -> np.ndarray:
        p = v[0].select(plane_axis, idx)  # 2D, the two remaining axes in array order
        p = p.T if others[1] < axis else p  # rows: slice axis, columns: the other in-plane axis
        return np.ascontiguousarray(p.numpy()[::-1])  # top row = last slice

    thin = ref.shape[axis + 1]
    nearest = torch.clamp(torch.round(torch.arange(thin, dtype=torch.float64) / factor).long(), 0, thick.shape[axis + 1] - 1)
    shown = {"input (thick)": thick.index_select(axis + 1, nearest), "cubic": outs["cubic"]}
    if learned:
        shown[learned] = outs[learned]
    shown["thin-slice reference"] = ref
    panels = [plane(v) for v in shown.values()]
    ref_plane = panels[-1]
    if modality == "ct" and norm[0] == "window":
        lo_hu, hi_hu = -1000.0, 400.0  # lung-to-soft-tissue window, in the normalised units
        lo, hi = ((lo_hu - norm[1]) / (norm[2] - norm[1]), (hi_hu - norm[1]) / (norm[2] - norm[1]))
    else:
        lo, hi = (float(v) for v in np.percentile(ref_plane, [1, 99.5]))
    row_mm, col_mm = float(spacing[axis]) / factor, float(spacing[others[1]])
    h = max(1, int(round(ref_plane.shape[0] * row_mm / col_mm)))
    w_all = ref_plane.shape[1]
    w = min(w_all, max(64, 3 * h))  # a central crop along the in-plane axis: thin slabs are wide and flat
    c0 = (w_all - w) // 2
    zoom = max(1, math.ceil(320 / max(w, 1)))
    tiles = []
    for p in panels:
        g = (np.clip((p[:, c0 : c0 + w] - lo) / max(hi - lo, 1e-12), 0, 1) * 255 + 0.5).astype(np.uint8)
        tiles.append(Image.fromarray(np.ascontiguousarray(g)).resize((w * zoom, h * zoom), Image.Resampling.NEAREST))
    label_h = 16
    canvas = Image.new("L", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), tiles[0].height + label_h), 0)
    draw = ImageDraw.Draw(canvas)
    x = 0
    for name, t in zip(shown, tiles):
        canvas.paste(t, (x, label_h))
        draw.text((x + 2, 2), name, fill=255)
        x += t.width + 4
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)


def run_slice_evaluation(
    data: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    factors: Sequence[int] = (2, 4),
    models: Sequence[str] = ("linear", "lanczos"),
    profile: str = "gaussian",
    fwhm: float = 1.0,
    seed: int = 0,
    device: str = "cpu",
    show_ids: bool = False,
    trust_bundle: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Run the slice protocol on the volumes in ``data`` (a volume, a folder of volumes, or a list); returns report.md.

    Cubic interpolation is always evaluated and is the reference of every paired difference.
    """
    factors = [check_factor(f, "scale") for f in factors]
    names = ["cubic"] + [m for m in dict.fromkeys(models) if m not in ("cubic", "bicubic")]
    paths = [Path(p) for p in ([data] if isinstance(data, (str, Path)) else data)]
    items = [it for p in paths for it in discover_inputs(p)]
    if not items:
        raise UsageError(f"no volumes found in {', '.join(map(str, paths))}; pass DICOM series folders or NIfTI files.")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    slicers = {f: {m: load_slice_upscaler(m, f, device=device, trust_bundle=trust_bundle, log=log) for m in names}
               for f in factors}
    learned = next((m for m in names if slicers[factors[0]][m].network is not None), None)
    per_slice: list[list[Any]] = []
    summary: list[dict[str, Any]] = []
    with progress_bar(progress, "images x scales") as bar:
        task = bar.add_task("slice protocol", total=len(items) * len(factors))
        for item in items:
            img = load_image(item.files if item.kind == "series" else item.path)
            if img.ndim != 4:
                raise InputError(f"{item.path}: the slice protocol needs volumes, got shape {tuple(img.shape)}.")
            norm = ModalityNormalize()(img)
            case = _case_name(item.path, show_ids)
            modality = str(norm.meta.get("modality", "other"))
            spacing = tuple(float(s) for s in norm.meta.get("spacing"))
            for f in factors:
                axis, ref, thick, outs = evaluate_volume(norm, f, slicers[f], profile=profile, fwhm=fwhm)
                metrics = {m: slice_metrics(v, ref, axis) for m, v in outs.items()}
                j = np.arange(ref.shape[axis + 1])
                masks = {"coinciding": j % f == 0, "between": j % f != 0, "all": np.ones_like(j, dtype=bool)}
                for m, (mse, ss) in metrics.items():
                    for k in j:
                        per_slice.append([case, modality, f, m, int(k), "coinciding" if k % f == 0 else "between",
                                          _psnr(mse[k:k + 1]), float(ss[k])])
                    for g in GROUPS:
                        sel = masks[g]
                        d_psnr = 10 * np.log10(metrics["cubic"][0][sel] / np.maximum(mse[sel], 1e-20))
                        d_ssim = ss[sel] - metrics["cubic"][1][sel]
                        ci_p = bootstrap_ci(d_psnr, seed=seed) if m != "cubic" else (0.0, 0.0)
                        ci_s = bootstrap_ci(d_ssim, seed=seed) if m != "cubic" else (0.0, 0.0)
                        summary.append({
                            "case": case, "modality": modality, "factor": f, "method": m, "group": g,
                            "slices": int(sel.sum()), "psnr": _psnr(mse[sel]), "ssim": float(np.mean(ss[sel])),
                            "psnr_vs_cubic": _psnr(mse[sel]) - _psnr(metrics["cubic"][0][sel]),
                            "psnr_vs_cubic_per_slice_mean": float(np.mean(d_psnr)),
                            "psnr_vs_cubic_ci95": [float(ci_p[0]), float(ci_p[1])],
                            "ssim_vs_cubic": float(np.mean(d_ssim)),
                            "ssim_vs_cubic_ci95": [float(ci_s[0]), float(ci_s[1])],
                            "input_slices": int(thick.shape[axis + 1]), "thin_spacing_mm": spacing[axis],
                            "profile": f"{profile} fwhm {fwhm:g}",
                        })
                _reformat_figure(out / "figures" / f"{case}_n{f}_reformat.png", axis, f, ref, thick, outs, learned,
                                 spacing, modality,
                                 (str(norm.meta.get("norm_method")), float(norm.meta.get("norm_low", 0)),
                                  float(norm.meta.get("norm_high", 1))))
                bar.advance(task)
    with open(out / "per_slice.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "modality", "factor", "method", "slice", "group", "psnr", "ssim"])
        w.writerows(per_slice)
    cols = ["case", "modality", "factor", "method", "group", "slices", "psnr", "ssim", "psnr_vs_cubic",
            "psnr_vs_cubic_ci95", "ssim_vs_cubic", "ssim_vs_cubic_ci95"]
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in summary:
            w.writerow([(f"{r[c][0]:.4f}..{r[c][1]:.4f}" if isinstance(r[c], list) else
                         round(r[c], 4) if isinstance(r[c], float) else r[c]) for c in cols])
    (out / "summary.json").write_text(json.dumps({"protocol": "slices", "profile": profile, "fwhm": fwhm,
                                                  "seed": seed, "rows": summary}, indent=1))
    report = out / "report.md"
    lines = ["# Slice-direction evaluation", "",
             f"Degradation: {profile} slice profile (FWHM {fwhm:g} thick-slice spacings) + decimation by N; "
             "PSNR/SSIM on the [0, 1] normalised thin slices; intervals: 95 % bootstrap over the slices of the group "
             "(paired to cubic).", "",
             "| case | mod. | N | method | group | slices | PSNR dB | SSIM | ΔPSNR vs cubic [95 % CI] | ΔSSIM vs cubic [95 % CI] |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary:
        if r["group"] == "all":
            continue
        ci_p, ci_s = r["psnr_vs_cubic_ci95"], r["ssim_vs_cubic_ci95"]
        lines.append(f"| {r['case']} | {r['modality']} | {r['factor']} | {r['method']} | {r['group']} | {r['slices']} | "
                     f"{r['psnr']:.2f} | {r['ssim']:.4f} | {r['psnr_vs_cubic']:+.2f} [{ci_p[0]:+.2f}, {ci_p[1]:+.2f}] | "
                     f"{r['ssim_vs_cubic']:+.4f} [{ci_s[0]:+.4f}, {ci_s[1]:+.4f}] |")
    lines += ["", "Figures (reformatted plane containing the slice axis): " +
              ", ".join(f"`figures/{p.name}`" for p in sorted((out / 'figures').glob('*.png')))]
    report.write_text("\n".join(lines) + "\n")
    return report
