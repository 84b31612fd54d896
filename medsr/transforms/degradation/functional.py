"""Functional core of the LR simulators: kernels, point-spread functions, noise and k-space.

Plain functions on channel-first float tensors ``(C, *spatial)``; the transforms in
:mod:`~medsr.transforms.degradation.array` check their arguments, convert the input and
restore its type and geometry around them (:func:`run_on_axes`). Every function here is
deterministic: noise is drawn from a ``torch.Generator`` seeded by an explicit ``seed``.
Point-spread-function parameters are in *output (LR) pixels*, noise in [0, 1] units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data.meta_obj import get_track_meta
from monai.utils import MAX_SEED, convert_to_tensor

from medsr.errors import UsageError
from medsr.transforms.resample import (
    _as_float_tensor,
    _contributions,
    _norm_axes,
    _rewrap,
    _spatial_ndim,
    resample_axis,
)
from medsr.typing import NdarrayOrTensor

__all__ = [
    "FWHM_PER_SIGMA",
    "MR_WINDOWS",
    "SLICE_PROFILES",
    "new_seed",
    "gaussian_kernel",
    "aperture_kernel",
    "bicubic_lr",
    "xray_lr",
    "ct_lr",
    "kspace_window",
    "kspace_truncate",
    "mr_lr",
    "thick_slices",
    "run_on_axes",
]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548
MR_WINDOWS: tuple[str | None, ...] = (None, "tukey", "hamming")
SLICE_PROFILES: tuple[str, ...] = ("box", "gaussian")
InPlane = Sequence[int]


def new_seed(r: np.random.RandomState) -> int:
    """A noise seed drawn from a transform's ``self.R``."""
    return int(r.randint(MAX_SEED, dtype=np.int64))


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


# --------------------------------------------------------------------------- kernels


def gaussian_kernel(sigma: float) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """Gaussian point-spread function sampled at the distances (support +-4 sigma)."""

    def fn(d: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * (d / sigma) ** 2) * (np.abs(d) <= 4.0 * sigma + 0.5)

    return fn, 2.0 * (4.0 * sigma + 0.5)


def aperture_kernel(sigma: float, aperture: float) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """A Gaussian PSF (``sigma``) integrated over a pixel aperture of width ``aperture`` (input samples).

    ``w(d) = Phi((d + a/2) / sigma) - Phi((d - a/2) / sigma)``: the light a detector pixel centred
    at distance ``d`` collects from a point source; ``sigma = 0`` gives the bare aperture (binning).
    """
    half = aperture / 2.0
    if sigma <= 0:

        def box(d: np.ndarray) -> np.ndarray:
            return (np.abs(d) < half).astype(np.float64)

        return box, aperture + 1.0
    from scipy.special import ndtr

    def fn(d: np.ndarray) -> np.ndarray:
        return ndtr((d + half) / sigma) - ndtr((d - half) / sigma)

    return fn, aperture + 8.0 * sigma + 1.0


def _downsample_with(x: torch.Tensor, axes: InPlane, scale: int, kernel: Any, antialias: bool = False) -> torch.Tensor:
    for a in axes:
        x = resample_axis(x, a, x.shape[a + 1] // scale, kernel, antialias=antialias, scale=1.0 / scale)
    return x


def _blur_l2(n: int, sigma: float) -> np.ndarray:
    """Per-position L2 norm of the (border-mirrored, normalised) Gaussian blur weights of length ``n``."""
    idx, w = _contributions(n, n, 1.0, gaussian_kernel(sigma), antialias=False)
    rows = np.repeat(np.arange(n), idx.shape[1])
    keys, inverse = np.unique(rows * n + idx.ravel(), return_inverse=True)
    combined = np.bincount(inverse.ravel(), weights=w.ravel())  # mirrored taps hit one sample twice
    return np.sqrt(np.bincount(keys // n, weights=combined**2, minlength=n))


# --------------------------------------------------------------------------- deterministic operations


def bicubic_lr(x: torch.Tensor, axes: InPlane, scale: int, clip: bool) -> torch.Tensor:
    """Antialiased Keys-cubic downsampling by ``scale`` along ``axes`` (MATLAB ``imresize``)."""
    y = _downsample_with(x, axes, scale, "cubic", antialias=True)
    return y.clamp(0.0, 1.0) if clip else y


def xray_lr(
    x: torch.Tensor,
    axes: InPlane,
    scale: int,
    psf_sigma: float,
    photons: float | None,
    read_noise: float,
    seed: int,
    clip: bool,
) -> torch.Tensor:
    """Detector PSF and pixel aperture, then Poisson (``photons``) and Gaussian read noise from ``seed``."""
    y = _downsample_with(x, axes, scale, aperture_kernel(psf_sigma * scale, float(scale)))
    g = _generator(seed, y.device)
    if photons is not None and math.isfinite(photons):
        y = torch.poisson(y.clamp_min(0.0) * photons, generator=g) / photons
    if read_noise > 0:
        y = y + read_noise * torch.randn(y.shape, generator=g, device=y.device, dtype=y.dtype)
    return y.clamp(0.0, 1.0) if clip else y


def ct_lr(
    x: torch.Tensor,
    axes: InPlane,
    scale: int,
    psf_fwhm: float,
    noise_sigma: float,
    noise_correlation: float,
    seed: int,
    clip: bool,
) -> torch.Tensor:
    """Gaussian system PSF and sampling, then correlated Gaussian noise of sd ``noise_sigma`` from ``seed``."""
    sigma_hr = psf_fwhm * scale / FWHM_PER_SIGMA
    kernel = gaussian_kernel(sigma_hr) if sigma_hr > 0 else "linear"
    y = _downsample_with(x, axes, scale, kernel)
    if noise_sigma > 0:
        g = _generator(seed, y.device)
        n = torch.randn(y.shape, generator=g, device=y.device, dtype=y.dtype)
        if noise_correlation > 0:
            for a in axes:
                n = resample_axis(n, a, n.shape[a + 1], gaussian_kernel(noise_correlation), False, scale=1.0)
                shape = [1] * n.ndim
                shape[a + 1] = -1
                l2 = torch.as_tensor(_blur_l2(n.shape[a + 1], noise_correlation), dtype=n.dtype, device=n.device)
                n = n / l2.view(shape)  # unit variance at every position: sd == noise_sigma
        y = y + noise_sigma * n
    return y.clamp(0.0, 1.0) if clip else y


def kspace_window(m: int, window: str | None, alpha: float) -> np.ndarray | None:
    """Window over ``m`` kept k-space samples (fftshift order), 1 at DC so the mean is kept."""
    if window is None:
        return None
    k = np.arange(m) - m // 2
    r = np.abs(k) / (m / 2.0)
    if window == "hamming":
        return 0.54 + 0.46 * np.cos(np.pi * r)
    if alpha <= 0:
        return np.ones(m)
    w = np.ones(m)
    taper = r > 1.0 - alpha
    w[taper] = 0.5 * (1.0 + np.cos(np.pi * (r[taper] - (1.0 - alpha)) / alpha))
    return w


def kspace_truncate(x: torch.Tensor, axis: int, m: int, window: str | None, alpha: float) -> torch.Tensor:
    """Keep the central ``m`` k-space samples along spatial ``axis``; real, mean-preserving result.

    Taking the real part of the inverse FFT equals the Hermitian-symmetric truncation (the
    unpaired Nyquist sample is averaged with its mirror), so a real image stays real.
    """
    dim = axis + 1
    n = x.shape[dim]
    w = kspace_window(m, window, alpha)
    out_shape = list(x.shape)
    out_shape[dim] = m
    out = x.new_empty(out_shape)
    others = [d for d in range(x.ndim) if d != dim]
    cdim = max(others, key=lambda d: x.shape[d])
    step = max(1, (1 << 21) // max(1, x.numel() // x.shape[cdim]))
    shape = [1] * x.ndim
    shape[dim] = -1
    wt = None
    if w is not None:
        wt = torch.as_tensor(w, dtype=x.dtype, device=x.device).view(shape)
    # Half-pixel phase ramp: the plain truncation samples the HR grid at 0, s, 2s...; a
    # low-resolution voxel covers s HR voxels, so its centre is at s*j + (s - 1) / 2 (the
    # grid bicubic/area downsampling and medsr.io.zoom_geometry use). Without it, MR pairs
    # would be shifted against the HR target by (s - 1) / 2 HR pixels.
    k = torch.arange(m, device=x.device, dtype=torch.float64) - m // 2
    delta = (n / m - 1.0) / 2.0
    ramp = torch.exp(2j * torch.pi * k * delta / n).to(
        torch.complex64 if x.dtype != torch.float64 else torch.complex128
    )
    ramp = ramp.view(shape)
    for start in range(0, x.shape[cdim], step):
        c = min(step, x.shape[cdim] - start)
        xs = x.narrow(cdim, start, c)
        f = torch.fft.fftshift(torch.fft.fft(xs, dim=dim), dim=dim)
        f = f.narrow(dim, n // 2 - m // 2, m) * ramp
        if wt is not None:
            f = f * wt
        ys = torch.fft.ifft(torch.fft.ifftshift(f, dim=dim), dim=dim).real * (m / n)
        out.narrow(cdim, start, c).copy_(ys)
    return out


def mr_lr(
    x: torch.Tensor,
    axes: InPlane,
    scale: int,
    noise_sigma: float,
    window: str | None,
    tukey_alpha: float,
    seed: int,
) -> torch.Tensor:
    """Central ``1 / scale`` of k-space along ``axes`` (optionally windowed), then Rician noise from ``seed``."""
    y = x
    for a in axes:
        if scale > 1:
            y = kspace_truncate(y, a, y.shape[a + 1] // scale, window, tukey_alpha)
    g = _generator(seed, y.device)
    if noise_sigma > 0:
        re = y + noise_sigma * torch.randn(y.shape, generator=g, device=y.device, dtype=y.dtype)
        im = noise_sigma * torch.randn(y.shape, generator=g, device=y.device, dtype=y.dtype)
        return torch.sqrt(re * re + im * im)
    return y.abs()


def thick_slices(x: torch.Tensor, axis: int, factor: int, profile: str, fwhm: float) -> torch.Tensor:
    """Average ``factor`` slices along ``axis`` into one, with a box or Gaussian slice profile."""
    n_out = x.shape[axis + 1] // factor
    if profile == "box":
        return resample_axis(x, axis, n_out, "box", antialias=True, scale=1.0 / factor)
    kernel = gaussian_kernel(fwhm * factor / FWHM_PER_SIGMA)
    return resample_axis(x, axis, n_out, kernel, antialias=False, scale=1.0 / factor)


def run_on_axes(
    img: NdarrayOrTensor,
    spatial_axes: Sequence[int],
    factor: int,
    op: Callable[[torch.Tensor, list[int]], torch.Tensor],
    min_spatial: int = 1,
) -> NdarrayOrTensor:
    """Convert, check divisibility along ``spatial_axes``, apply ``op`` and restore type + geometry."""
    img_t = convert_to_tensor(img, track_meta=get_track_meta())
    n_sp = _spatial_ndim(img_t)
    if n_sp < min_spatial:
        raise UsageError(
            f"this transform needs a volume with {min_spatial} spatial dims (C, X, Y, Z), got shape "
            f"{tuple(img_t.shape)}."
        )
    axes = _norm_axes(spatial_axes, n_sp, "spatial_axes")
    sizes = [int(img_t.shape[a + 1]) for a in axes]
    bad = [s for s in sizes if s % factor or s == 0]
    if bad:
        raise UsageError(
            f"spatial sizes {sizes} along spatial axes {axes} must be non-zero multiples of the scale "
            f"factor {factor}; got {bad} (shape {tuple(img_t.shape)}). Crop the HR image first with "
            f"CropToMultiple({factor})."
        )
    in_spatial = tuple(int(s) for s in img_t.shape[1:])
    out = op(_as_float_tensor(img_t), axes)
    return _rewrap(out, img_t, in_spatial)
