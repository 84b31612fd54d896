"""Image-quality metrics for super-resolution, under one documented convention.

The convention (DESIGN.md "Metrics", docs/metrics.md):

* images are compared on the [0, 1] normalised scale of
  :class:`medsr.transforms.ModalityNormalize`, so ``data_range = 1``;
* a border of ``scale`` pixels is cropped from both in-plane axes (the first two
  spatial axes) before anything is computed (:func:`crop_border`);
* SSIM follows Wang et al. 2004: an 11x11 Gaussian window with sigma 1.5
  (scipy's ``gaussian_filter`` truncated at 3.5 sigma), K1 = 0.01, K2 = 0.03,
  population (not sample) covariances, and the mean of the SSIM map with the
  5-pixel rim where the window does not fit left out -- exactly what
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)`` returns;
* a 3D volume ``(C, X, Y, Z)`` is scored over the whole volume: PSNR, MAE and
  NRMSE from one error over every voxel, SSIM as the mean of the 2D in-plane
  SSIM maps of all slices (equal to the mean of the per-slice SSIMs, since every
  slice has the same size). medsr upscales in-plane, and slices are often much
  thicker than pixels are wide (5 mm CT), so a 3D window would mix anatomy
  5 cm apart; the 2D window keeps 3D numbers comparable with 2D ones and works
  for volumes with fewer than 11 slices.

Every function works on channel-first ``(C, X, Y)`` / ``(C, X, Y, Z)`` tensors or
arrays (``torch.Tensor``, ``MetaTensor``, ``numpy.ndarray``) and keeps memory
bounded: inputs are read in slabs along the first spatial axis and only
slab-sized float64 temporaries exist at any time (a 4096 x 4096 float32
radiograph needs about 36 MiB on top of its two inputs, where scikit-image's
SSIM alone peaks near 0.9 GiB).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from scipy import ndimage

from medsr.errors import UsageError
from medsr.transforms.intensity import DEFAULT_CT_WINDOW
from medsr.typing import NdarrayOrTensor

__all__ = [
    "METRICS",
    "SSIM_SIGMA",
    "SSIM_TRUNCATE",
    "SSIM_K1",
    "SSIM_K2",
    "crop_border",
    "psnr",
    "ssim",
    "mae",
    "nrmse",
    "sharpness",
    "compute_metrics",
    "body_mask",
    "body_psnr",
]

METRICS: tuple[str, ...] = ("psnr", "ssim", "mae", "nrmse", "sharpness")
"""Names :func:`compute_metrics` returns, in report order."""

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
"""scipy/scikit-image truncation: radius ``int(3.5 * 1.5 + 0.5) = 5``, an 11x11 window."""
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_SSIM_PAD = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)

_SLAB_ELEMENTS = 1 << 19
"""Elements per slab (float64 temporaries of 4 MiB each; SSIM keeps about eight alive)."""


def _as_array(x: NdarrayOrTensor, name: str) -> np.ndarray:
    """A numpy view (no copy for CPU float32 tensors) of a channel-first image."""
    if hasattr(x, "detach"):
        t = x.detach()
        if hasattr(t, "as_tensor"):
            t = t.as_tensor()
        x = t.cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim not in (3, 4):
        raise UsageError(
            f"`{name}` must be channel-first (C, X, Y) or (C, X, Y, Z), got shape {tuple(arr.shape)}; "
            "add a channel axis with x[None]."
        )
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise UsageError(f"`{name}` must hold real numbers, got dtype {arr.dtype}.")
    return arr


def _pair(pred: NdarrayOrTensor, target: NdarrayOrTensor, border: int) -> tuple[np.ndarray, np.ndarray]:
    p = _as_array(pred, "pred")
    t = _as_array(target, "target")
    if p.shape != t.shape:
        raise UsageError(f"`pred` and `target` must have the same shape, got {p.shape} and {t.shape}.")
    return crop_border(p, border), crop_border(t, border)


def crop_border(x: np.ndarray, border: int) -> np.ndarray:
    """Drop ``border`` pixels at both ends of the two in-plane axes (a view, no copy).

    Args:
        x: channel-first ``(C, X, Y[, Z])`` array.
        border: pixels to drop per side; the convention uses the scale factor.
    """
    border = int(border)
    if border < 0:
        raise UsageError(f"`border` must be >= 0, got {border}.")
    if border == 0:
        return x
    if min(x.shape[1], x.shape[2]) <= 2 * border:
        raise UsageError(
            f"image of in-plane size {x.shape[1]}x{x.shape[2]} is too small for a border of {border} pixels."
        )
    return x[:, border:-border, border:-border]


def _slabs(n: int, per_row: int, halo: int = 0) -> Iterator[tuple[int, int]]:
    """Row ranges ``[a, b)`` of about ``_SLAB_ELEMENTS`` elements along an axis of length ``n``."""
    rows = max(1, _SLAB_ELEMENTS // max(1, per_row) - 2 * halo)
    for a in range(0, n, rows):
        yield a, min(n, a + rows)


def _error_sums(p: np.ndarray, t: np.ndarray) -> tuple[float, float, float, int]:
    """Sum of squared error, of absolute error, and of squared target, and the count."""
    sse = sae = stt = 0.0
    per_row = p.shape[0] * int(np.prod(p.shape[2:]))
    for a, b in _slabs(p.shape[1], per_row):
        ps = p[:, a:b].astype(np.float64)
        ts = t[:, a:b].astype(np.float64)
        stt += float(np.dot(ts.ravel(), ts.ravel()))
        ps -= ts
        sse += float(np.dot(ps.ravel(), ps.ravel()))
        sae += float(np.abs(ps, out=ps).sum())
    return sse, sae, stt, p.size


def psnr(pred: NdarrayOrTensor, target: NdarrayOrTensor, *, data_range: float = 1.0, border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``; ``inf`` for identical images."""
    p, t = _pair(pred, target, border)
    sse, _, _, n = _error_sums(p, t)
    mse = sse / n
    return math.inf if mse == 0 else 10.0 * math.log10(float(data_range) ** 2 / mse)


def mae(pred: NdarrayOrTensor, target: NdarrayOrTensor, *, border: int = 0) -> float:
    """Mean absolute error (in the units of the inputs: fractions of the [0, 1] range)."""
    p, t = _pair(pred, target, border)
    _, sae, _, n = _error_sums(p, t)
    return sae / n


def nrmse(pred: NdarrayOrTensor, target: NdarrayOrTensor, *, border: int = 0) -> float:
    """Root-mean-square error divided by the root-mean-square of ``target``.

    scikit-image's ``normalized_root_mse(target, pred)`` with its default
    ``normalization="euclidean"``: a relative error, 0 is perfect.
    """
    p, t = _pair(pred, target, border)
    sse, _, stt, _ = _error_sums(p, t)
    return math.nan if stt == 0 else math.sqrt(sse / stt)


def _ssim_sum(p: np.ndarray, t: np.ndarray, data_range: float) -> tuple[float, int]:
    """Sum and count of the SSIM map over the valid region, one channel ``(X, Y[, Z])``."""
    pad = _SSIM_PAD
    nx, ny = p.shape[0], p.shape[1]
    if nx < 2 * pad + 1 or ny < 2 * pad + 1:
        raise UsageError(
            f"SSIM needs at least {2 * pad + 1}x{2 * pad + 1} pixels in-plane after the border crop, got {nx}x{ny}."
        )
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    sigma = (SSIM_SIGMA, SSIM_SIGMA) + (0.0,) * (p.ndim - 2)  # in-plane only: 2D window per slice
    total, count = 0.0, 0
    per_row = int(np.prod(p.shape[1:]))
    # Output rows [pad, nx - pad) in slabs; each slab reads `pad` extra rows on both
    # sides, so the filtered values equal those of the whole image.
    for a, b in _slabs(nx - 2 * pad, per_row, halo=pad):
        lo, hi = a, b + 2 * pad
        x = p[lo:hi].astype(np.float64)
        y = t[lo:hi].astype(np.float64)

        def filt(v: np.ndarray) -> np.ndarray:
            return ndimage.gaussian_filter(v, sigma, mode="reflect", truncate=SSIM_TRUNCATE)

        ux, uy = filt(x), filt(y)
        vxy = filt(x * y)
        vxy -= ux * uy
        x *= x
        vx = filt(x)
        del x
        y *= y
        vx += filt(y)  # vx now holds E[x^2] + E[y^2]
        del y
        uxy = ux * uy
        ux *= ux
        uy *= uy
        ux += uy  # ux^2 + uy^2
        del uy
        vx -= ux  # var(x) + var(y)
        # (2 ux uy + c1)(2 vxy + c2) / ((ux^2 + uy^2 + c1)(vx + vy + c2)), in place
        uxy *= 2
        uxy += c1
        vxy *= 2
        vxy += c2
        uxy *= vxy
        ux += c1
        vx += c2
        ux *= vx
        uxy /= ux
        s = uxy[pad : pad + (b - a), pad : ny - pad]
        total += float(s.sum())
        count += s.size
    return total, count


def ssim(pred: NdarrayOrTensor, target: NdarrayOrTensor, *, data_range: float = 1.0, border: int = 0) -> float:
    """Structural similarity (Wang et al. 2004) under medsr's convention (module docstring).

    2D images give scikit-image's Gaussian-window SSIM; volumes the mean of the
    in-plane SSIM maps over all slices; several channels the mean over channels.
    """
    p, t = _pair(pred, target, border)
    total, count = 0.0, 0
    for c in range(p.shape[0]):
        s, n = _ssim_sum(p[c], t[c], float(data_range))
        total += s
        count += n
    return total / count


def _gradient_magnitude_sum(x: np.ndarray) -> float:
    """Sum of the in-plane Sobel gradient magnitude of one channel ``(X, Y[, Z])``, border rows excluded."""
    nx = x.shape[0]
    total = 0.0
    per_row = int(np.prod(x.shape[1:]))
    for a, b in _slabs(nx - 2, per_row, halo=1):
        v = x[a : b + 2].astype(np.float64)
        gx = ndimage.sobel(v, axis=0)
        gy = ndimage.sobel(v, axis=1)
        g = np.hypot(gx, gy, out=gx)[1:-1, 1:-1]
        total += float(g.sum())
    return total


def sharpness(pred: NdarrayOrTensor, target: NdarrayOrTensor, *, border: int = 0) -> float:
    """Edge strength of ``pred`` relative to ``target``: mean in-plane gradient magnitude ratio.

    ``sum |grad pred| / sum |grad target|`` with 3x3 Sobel gradients in-plane
    (slice by slice for volumes). 1 means as sharp as the reference; interpolation
    gives less than 1 (blur); more than 1 means over-sharpening, ringing or added
    texture (noise, or detail a GAN invented).
    """
    p, t = _pair(pred, target, border)
    if min(p.shape[1], p.shape[2]) < 3:
        raise UsageError(f"sharpness needs at least 3x3 pixels in-plane, got {p.shape[1]}x{p.shape[2]}.")
    num = sum(_gradient_magnitude_sum(p[c]) for c in range(p.shape[0]))
    den = sum(_gradient_magnitude_sum(t[c]) for c in range(t.shape[0]))
    return math.nan if den == 0 else num / den


def compute_metrics(pred: NdarrayOrTensor, target: NdarrayOrTensor, *, scale: int) -> dict[str, float]:
    """All of :data:`METRICS` under the convention: ``data_range = 1``, a border of ``scale`` cropped.

    Args:
        pred: upscaled image on the [0, 1] scale, channel-first.
        target: high-resolution reference, same shape.
        scale: the upscaling factor; also the border width dropped.
    """
    p, t = _pair(pred, target, scale)
    sse, sae, stt, n = _error_sums(p, t)
    mse = sse / n
    return {
        "psnr": math.inf if mse == 0 else -10.0 * math.log10(mse),
        "ssim": ssim(p, t),
        "mae": sae / n,
        "nrmse": math.nan if stt == 0 else math.sqrt(sse / stt),
        "sharpness": sharpness(p, t),
    }


BODY_CT_HU = -500.0
"""CT body threshold (HU): soft tissue and bone are above it, air and the reconstruction circle's outside below."""


def body_mask(target: NdarrayOrTensor, modality: str, *, ct_window: tuple[float, float] = DEFAULT_CT_WINDOW) -> np.ndarray:
    """The patient's body in a normalised ``(C, X, Y[, Z])`` image: a boolean array of its shape.

    Background (air around the patient, outside the CT reconstruction circle, outside
    the MR head) inflates PSNR because every method gets it nearly right; scoring the body
    alone says how well the anatomy is upscaled. Per slice: CT above :data:`BODY_CT_HU`,
    MR above a tenth of the image's 99th percentile, then holes filled (lungs, ventricles)
    and specks below 0.5% of the slice removed. X-ray: the whole image (a radiograph is
    all anatomy or collimator edge).

    Args:
        target: the HR reference on the [0, 1] scale.
        modality: ``"ct"``, ``"mr"`` or ``"xray"``.
        ct_window: the HU window that was mapped to [0, 1] (medsr's default).
    """
    t = _as_array(target, "target")
    if modality == "xray":
        return np.ones(t.shape, dtype=bool)
    if modality == "ct":
        level = (BODY_CT_HU - ct_window[0]) / (ct_window[1] - ct_window[0])
    elif modality == "mr":
        level = 0.1 * float(np.percentile(t, 99))
    else:
        raise UsageError(f"`modality` must be ct, mr or xray, got {modality!r}.")
    mask = t > level
    planes = mask.reshape(mask.shape[:3] + (-1,))
    for c in range(planes.shape[0]):
        for z in range(planes.shape[3]):
            m = ndimage.binary_fill_holes(ndimage.binary_opening(planes[c, :, :, z], iterations=2))
            labels, n = ndimage.label(m)
            if n:
                sizes = np.bincount(labels.ravel())
                sizes[0] = 0
                m = sizes[labels] >= max(1, 0.005 * m.size)
            planes[c, :, :, z] = m
    return planes.reshape(t.shape)


def body_psnr(pred: NdarrayOrTensor, target: NdarrayOrTensor, mask: np.ndarray, *, border: int = 0) -> float:
    """PSNR (data range 1) over the pixels of ``mask`` only (see :func:`body_mask`); NaN for an empty mask."""
    p, t = _pair(pred, target, border)
    m = crop_border(np.asarray(mask, dtype=bool), border)
    if m.shape != p.shape:
        raise UsageError(f"`mask` must have the images' shape {p.shape} after cropping, got {m.shape}.")
    n = int(m.sum())
    if n == 0:
        return math.nan
    mse = float(np.mean((p[m].astype(np.float64) - t[m].astype(np.float64)) ** 2))
    return math.inf if mse == 0 else -10.0 * math.log10(mse)
