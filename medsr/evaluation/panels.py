"""The PNG case panels of an evaluation report: overview, zoomed crops, difference maps, GAN departure maps.

Display only: panels are drawn in physical units (HU for CT) through the exact inverse of
the [0, 1] mapping, in the file's own display window or a modality preset
(:mod:`medsr.report.windows`); the metrics use the [0, 1] images.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image
from scipy import ndimage

from medsr import meta as mk
from medsr.evaluation.protocol import Prepared
from medsr.report.windows import display_window
from medsr.transforms import InvertModalityNormalize

__all__ = ["GAN_HIGH", "GAN_LOW", "PANEL_PX", "ZOOM_SIDE", "file_stem", "render_panels"]

ZOOM_SIDE = 160
"""Edge, in HR pixels, of the zoomed region shown in the case panels."""

PANEL_PX = 320
"""Approximate edge in pixels of a saved zoom panel (enlarged by an integer factor, nearest neighbour)."""

GAN_LOW, GAN_HIGH = 0.02, 0.10
"""GAN departure map: no colour below 2% of the display range, full red at 10%."""


def file_stem(name: str) -> str:
    """``name`` (a model label) as a safe file-name stem."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


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


def render_panels(
    case_id: str,
    label: str,
    prep: Prepared,
    outputs: dict[str, Any],
    gan_refs: dict[str, str],
    folder: Path,
    scale: int,
    display: str = "auto",
) -> dict[str, Any]:
    """Write the PNG panels of one case at one scale; returns what ``panel.json`` records.

    ``display``: the display window (:data:`medsr.report.windows.DISPLAY_WINDOWS`).
    """
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
    low, high = meta.get(mk.NORM_LOW), meta.get(mk.NORM_HIGH)
    if low is not None and high is not None:
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
        fname = f"{file_stem(name)}.png"
        _png(folder / fname, _enlarge(_gray(_to_display(a, flip), w_lo, w_hi), k))
        files[name] = fname

    # absolute difference to HR, one colour scale per case
    diffs = {name: np.abs(arrays[name] - arrays["hr"]) * diff_factor for name in outputs}
    top = _nice_ceiling(max(float(np.percentile(d, 99.5)) for d in diffs.values()) if diffs else 1.0)
    cmap = colormaps["inferno"]
    for name, d in diffs.items():
        rgb = (cmap(np.clip(_to_display(d, flip) / top, 0, 1))[..., :3] * 255 + 0.5).astype(np.uint8)
        fname = f"diff_{file_stem(name)}.png"
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
        fname = f"gan_{file_stem(name)}.png"
        _png(folder / fname, _enlarge((over_d + 0.5).astype(np.uint8), k))
        files[f"gan_{name}"] = fname
        gan[name] = {"reference": ref, "fraction_flagged": float((dep > GAN_LOW).mean())}

    np.savez_compressed(folder / "crops.npz", **{file_stem(n): a.astype(np.float32) for n, a in norm_crops.items()})
    return {
        "case": case_id,
        "scale": scale,
        "modality": modality,
        "class": label,
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
