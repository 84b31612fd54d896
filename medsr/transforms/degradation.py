"""Low-resolution simulators: make the LR half of an HR/LR training or evaluation pair.

Every degradation works on a channel-first image ``(C, X, Y)`` or volume
``(C, X, Y, Z)`` already normalised to [0, 1] (:class:`~medsr.transforms.ModalityNormalize`),
acts on the in-plane axes (the first two spatial axes, ``spatial_axes=(0, 1)``)
unless noted, and returns spatial size ``input // scale`` along them; the input
must be divisible by ``scale`` (prepare HR images with :class:`CropToMultiple`).
A MetaTensor keeps its meta; its affine and ``spacing`` are updated (spacing
times the factor, same physical extent, half-pixel centres).

Models, each documented with the physics it imitates on its class:

=========================  ==================================================
:class:`BicubicDegradation`  classic SR protocol: MATLAB ``imresize`` bicubic
:class:`XRayDegradation`     detector PSF + pixel aperture + Poisson-Gaussian noise
:class:`CTDegradation`       Gaussian system PSF + sampling + (correlated) noise
:class:`MRDegradation`       k-space truncation (Gibbs) + Rician noise
:class:`SliceThickness`      through-plane partial-volume averaging
=========================  ==================================================

Clipping (a decision, documented here once): X-ray and CT outputs are clamped
to [0, 1] by default (``clip=True``) because that is what the acquisition
does: the X-ray detector's ADC range is exactly the ``BitsStored`` range the
normalisation maps to [0, 1] (saturation above, no negative counts below), and
the default CT window ``[-1024, 3071]`` HU is the 12-bit range scanners store
(values below -1024 HU are stored as -1024). The bicubic protocol also clamps
(MATLAB on ``uint8`` images saturates). MR is not clamped: a magnitude image is
non-negative by construction and has no upper saturation (percentile
normalisation leaves 0.5% of voxels above 1). Slice averaging is a convex
combination and stays in the input's range. Pass ``clip=False`` to keep the
noise distribution untruncated (e.g. to measure it).

Randomness: noise fields are drawn from a ``torch.Generator`` seeded by a
number that ``randomize()`` draws from ``self.R``; the physical parameters of
the ``Rand*`` transforms are drawn from ``self.R`` in ``randomize()`` too. The
operation applied afterwards is a deterministic function of (image, parameters,
seed), so ``set_random_state(seed)`` (or MONAI ``Compose.set_random_state``)
reproduces a pipeline exactly on the same device type. ``Rand*`` transforms with
``prob < 1`` fall back to :class:`BicubicDegradation` (box averaging for
:class:`RandSliceThickness`) when not applied, so the output always has the LR
shape.

Parameters are in *output (LR) pixels* for the point-spread functions, so a value
means the same detector at x2 and x4, and in normalised [0, 1] units for noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data.meta_obj import get_track_meta
from monai.transforms import CenterSpatialCrop, MapTransform, Randomizable, RandomizableTransform, Transform
from monai.utils import MAX_SEED, TransformBackends, convert_to_tensor

from medsr.errors import UsageError
from medsr.transforms.intensity import resolve_modality
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
    "CropToMultiple",
    "CropToMultipled",
    "BicubicDegradation",
    "BicubicDegradationd",
    "XRayDegradation",
    "XRayDegradationd",
    "RandXRayDegradation",
    "RandXRayDegradationd",
    "CTDegradation",
    "CTDegradationd",
    "RandCTDegradation",
    "RandCTDegradationd",
    "MRDegradation",
    "MRDegradationd",
    "RandMRDegradation",
    "RandMRDegradationd",
    "SliceThickness",
    "SliceThicknessd",
    "RandSliceThickness",
    "RandSliceThicknessd",
    "RandModalityDegradation",
    "RandModalityDegradationd",
]

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548
MR_WINDOWS: tuple[str | None, ...] = (None, "tukey", "hamming")
SLICE_PROFILES: tuple[str, ...] = ("box", "gaussian")
InPlane = Sequence[int]


# --------------------------------------------------------------------------- checks


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UsageError(f"`{name}` must be an integer >= {minimum} (medsr uses 2 or 4), got {value!r}.")
    return int(value)


def _check_nonneg(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not v >= 0 or math.isinf(v):
        raise UsageError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    return v


def _check_range(name: str, value: Any, positive: bool = False) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"`{name}` must be a (low, high) pair of numbers, got {value!r}.") from None
    floor_ok = lo > 0 if positive else lo >= 0
    if not (floor_ok and hi >= lo and math.isfinite(hi)):
        bound = "0 < low" if positive else "0 <= low"
        raise UsageError(f"`{name}` must be (low, high) with {bound} <= high < inf, got {tuple(value)!r}.")
    return lo, hi


def _check_prob(prob: Any) -> float:
    p = float(prob)
    if not 0.0 <= p <= 1.0:
        raise UsageError(f"`prob` must be in [0, 1], got {prob!r}.")
    return p


def _check_window(window: Any) -> str | None:
    if window is None:
        return None
    w = str(window).lower()
    if w not in ("tukey", "hamming"):
        raise UsageError(f"`window` must be None, 'tukey' or 'hamming', got {window!r}.")
    return w


def _check_profile(profile: Any) -> str:
    p = str(profile).lower()
    if p not in SLICE_PROFILES:
        raise UsageError(f"`profile` must be one of {SLICE_PROFILES}, got {profile!r}.")
    return p


def _new_seed(r: np.random.RandomState) -> int:
    return int(r.randint(MAX_SEED, dtype=np.int64))


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


# --------------------------------------------------------------------------- kernels


def _gaussian_kernel(sigma: float) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """Gaussian point-spread function sampled at the distances (support +-4 sigma)."""

    def fn(d: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * (d / sigma) ** 2) * (np.abs(d) <= 4.0 * sigma + 0.5)

    return fn, 2.0 * (4.0 * sigma + 0.5)


def _aperture_kernel(sigma: float, aperture: float) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
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
    idx, w = _contributions(n, n, 1.0, _gaussian_kernel(sigma), antialias=False)
    rows = np.repeat(np.arange(n), idx.shape[1])
    keys, inverse = np.unique(rows * n + idx.ravel(), return_inverse=True)
    combined = np.bincount(inverse.ravel(), weights=w.ravel())  # mirrored taps hit one sample twice
    return np.sqrt(np.bincount(keys // n, weights=combined**2, minlength=n))


# --------------------------------------------------------------------------- deterministic operations


def _bicubic_op(x: torch.Tensor, axes: InPlane, scale: int, clip: bool) -> torch.Tensor:
    y = _downsample_with(x, axes, scale, "cubic", antialias=True)
    return y.clamp(0.0, 1.0) if clip else y


def _xray_op(
    x: torch.Tensor,
    axes: InPlane,
    scale: int,
    psf_sigma: float,
    photons: float | None,
    read_noise: float,
    seed: int,
    clip: bool,
) -> torch.Tensor:
    y = _downsample_with(x, axes, scale, _aperture_kernel(psf_sigma * scale, float(scale)))
    g = _generator(seed, y.device)
    if photons is not None and math.isfinite(photons):
        y = torch.poisson(y.clamp_min(0.0) * photons, generator=g) / photons
    if read_noise > 0:
        y = y + read_noise * torch.randn(y.shape, generator=g, device=y.device, dtype=y.dtype)
    return y.clamp(0.0, 1.0) if clip else y


def _ct_op(
    x: torch.Tensor,
    axes: InPlane,
    scale: int,
    psf_fwhm: float,
    noise_sigma: float,
    noise_correlation: float,
    seed: int,
    clip: bool,
) -> torch.Tensor:
    sigma_hr = psf_fwhm * scale / _FWHM_PER_SIGMA
    kernel = _gaussian_kernel(sigma_hr) if sigma_hr > 0 else "linear"
    y = _downsample_with(x, axes, scale, kernel)
    if noise_sigma > 0:
        g = _generator(seed, y.device)
        n = torch.randn(y.shape, generator=g, device=y.device, dtype=y.dtype)
        if noise_correlation > 0:
            for a in axes:
                n = resample_axis(n, a, n.shape[a + 1], _gaussian_kernel(noise_correlation), False, scale=1.0)
                shape = [1] * n.ndim
                shape[a + 1] = -1
                l2 = torch.as_tensor(_blur_l2(n.shape[a + 1], noise_correlation), dtype=n.dtype, device=n.device)
                n = n / l2.view(shape)  # unit variance at every position: sd == noise_sigma
        y = y + noise_sigma * n
    return y.clamp(0.0, 1.0) if clip else y


def _kspace_window(m: int, window: str | None, alpha: float) -> np.ndarray | None:
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


def _kspace_truncate(x: torch.Tensor, axis: int, m: int, window: str | None, alpha: float) -> torch.Tensor:
    """Keep the central ``m`` k-space samples along spatial ``axis``; real, mean-preserving result.

    Taking the real part of the inverse FFT equals the Hermitian-symmetric truncation (the
    unpaired Nyquist sample is averaged with its mirror), so a real image stays real.
    """
    dim = axis + 1
    n = x.shape[dim]
    w = _kspace_window(m, window, alpha)
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


def _mr_op(
    x: torch.Tensor,
    axes: InPlane,
    scale: int,
    noise_sigma: float,
    window: str | None,
    tukey_alpha: float,
    seed: int,
) -> torch.Tensor:
    y = x
    for a in axes:
        if scale > 1:
            y = _kspace_truncate(y, a, y.shape[a + 1] // scale, window, tukey_alpha)
    g = _generator(seed, y.device)
    if noise_sigma > 0:
        re = y + noise_sigma * torch.randn(y.shape, generator=g, device=y.device, dtype=y.dtype)
        im = noise_sigma * torch.randn(y.shape, generator=g, device=y.device, dtype=y.dtype)
        return torch.sqrt(re * re + im * im)
    return y.abs()


def _slice_op(x: torch.Tensor, axis: int, factor: int, profile: str, fwhm: float) -> torch.Tensor:
    n_out = x.shape[axis + 1] // factor
    if profile == "box":
        return resample_axis(x, axis, n_out, "box", antialias=True, scale=1.0 / factor)
    kernel = _gaussian_kernel(fwhm * factor / _FWHM_PER_SIGMA)
    return resample_axis(x, axis, n_out, kernel, antialias=False, scale=1.0 / factor)


def _run(
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


# --------------------------------------------------------------------------- crop


class CropToMultiple(Transform):
    """Centre-crop every spatial axis to the largest multiple of ``multiple`` (prepare HR images).

    Args:
        multiple: one integer for all spatial axes, or one per axis (``1`` leaves an axis as is),
            e.g. ``(4, 4, 1)`` for in-plane x4 on a volume, ``(4, 4, 2)`` to also allow x2 slices.

    Uses MONAI's ``CenterSpatialCrop`` (affine updated, the crop recorded and invertible).
    """

    backend = CenterSpatialCrop.backend

    def __init__(self, multiple: int | Sequence[int]) -> None:
        seq = [multiple] if isinstance(multiple, (int, np.integer)) else list(multiple)
        self.multiple = [_check_int("multiple", m) for m in seq]
        self._scalar = isinstance(multiple, (int, np.integer))

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        n_sp = _spatial_ndim(img)
        mult = self.multiple * n_sp if self._scalar else self.multiple
        if len(mult) != n_sp:
            raise UsageError(
                f"`multiple` has {len(mult)} values but the image has {n_sp} spatial dims "
                f"(shape {tuple(img.shape)}); give one integer or one per spatial axis."
            )
        size = [int(n) - int(n) % m for n, m in zip(img.shape[1:], mult, strict=True)]
        if any(s == 0 for s in size):
            raise UsageError(
                f"spatial shape {tuple(img.shape[1:])} is smaller than `multiple` {tuple(mult)} along some axis; "
                "nothing would be left after cropping. Use a smaller multiple or a larger image."
            )
        return CenterSpatialCrop(size)(img)


class CropToMultipled(MapTransform):
    """Dictionary wrapper of :class:`CropToMultiple`."""

    backend = CropToMultiple.backend

    def __init__(self, keys: KeysCollection, multiple: int | Sequence[int], allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.cropper = CropToMultiple(multiple)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.cropper(d[key])
        return d


# --------------------------------------------------------------------------- bicubic


class BicubicDegradation(Transform):
    """The classic SR protocol: antialiased bicubic downsampling (MATLAB ``imresize``).

    The LR image is the HR image resampled with the Keys (a = -0.5) cubic kernel widened by
    ``scale`` (antialiasing), half-pixel centres, symmetric borders — what DIV2K, Set5/Set14
    and the SRCNN/EDSR papers use. Deterministic, no noise: it measures pure upsampling
    ability and keeps results comparable with the literature.

    References: Timofte, De Smet, Van Gool, "A+: Adjusted anchored neighborhood regression for
    fast super-resolution", ACCV 2014; Lim et al., "Enhanced deep residual networks for single
    image super-resolution", CVPRW 2017. https://arxiv.org/abs/1707.02921

    Args:
        scale: integer downsampling factor (2 or 4).
        clip: clamp to [0, 1] (MATLAB on ``uint8`` images saturates the cubic overshoot). Default True.
        spatial_axes: axes to downsample, default the in-plane axes ``(0, 1)``.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, scale: int, clip: bool = True, spatial_axes: Sequence[int] = (0, 1)) -> None:
        self.scale = _check_int("scale", scale)
        self.clip = bool(clip)
        self.spatial_axes = tuple(spatial_axes)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        return _run(img, self.spatial_axes, self.scale, lambda x, ax: _bicubic_op(x, ax, self.scale, self.clip))


# --------------------------------------------------------------------------- X-ray


class XRayDegradation(Randomizable, Transform):
    """Projection radiography at a coarser detector: PSF, pixel aperture, Poisson-Gaussian noise.

    Physics: X-ray quanta converted in the scintillator spread as light (a Gaussian PSF of
    ``psf_sigma`` LR pixels, e.g. CsI), each detector pixel integrates the light over its area
    (the aperture: binning of ``scale x scale`` HR pixels), then the signal carries quantum
    noise, ``Poisson(photons * x) / photons``, so its variance ``x / photons`` grows with the
    intensity, plus signal-independent electronic read noise of sd ``read_noise`` — the
    Poisson-Gaussian model of raw sensor data (Foi et al. 2008). ``photons`` is the mean number
    of quanta per LR pixel at full scale (x = 1).

    Simplifications: the normalised value is treated as proportional to the detected signal
    (raw / for-processing data); in log-processed presentation images noise also grows with
    brightness, though not linearly. Quantum noise is applied after the PSF (white noise
    power spectrum; the scintillator's noise blur is ignored).

    References: A. Foi, M. Trimeche, V. Katkovnik, K. Egiazarian, "Practical Poissonian-Gaussian
    noise modeling and fitting for single-image raw-data", IEEE TIP 17(10), 2008.
    https://doi.org/10.1109/TIP.2008.2001399 — E. Samei, M. J. Flynn, D. A. Reimann, "A method
    for measuring the presampled MTF of digital radiographic systems using an edge test device",
    Med. Phys. 25(1), 1998.

    Args:
        scale: integer downsampling factor (2 or 4).
        psf_sigma: Gaussian detector PSF sd in LR pixels. Default 0.5.
        photons: quanta per LR pixel at x = 1 (``None``: no quantum noise). Default 5000
            (noise sd 1% of full scale at x = 0.5).
        read_noise: electronic noise sd, [0, 1] units. Default 0.002.
        clip: clamp to [0, 1], the detector's ADC range. Default True.
        spatial_axes: detector axes, default ``(0, 1)``.

    The noise is random: ``randomize()`` draws its seed from ``self.R`` (``set_random_state``).
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        scale: int,
        psf_sigma: float = 0.5,
        photons: float | None = 5000.0,
        read_noise: float = 0.002,
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
    ) -> None:
        self.scale = _check_int("scale", scale)
        self.psf_sigma = _check_nonneg("psf_sigma", psf_sigma)
        if photons is not None and not float(photons) > 0:
            raise UsageError(f"`photons` must be > 0 (or None for no quantum noise), got {photons!r}.")
        self.photons = None if photons is None else float(photons)
        self.read_noise = _check_nonneg("read_noise", read_noise)
        self.clip = bool(clip)
        self.spatial_axes = tuple(spatial_axes)
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        self._seed = _new_seed(self.R)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        seed = self._seed
        return _run(
            img,
            self.spatial_axes,
            self.scale,
            lambda x, ax: _xray_op(x, ax, self.scale, self.psf_sigma, self.photons, self.read_noise, seed, self.clip),
        )


class RandXRayDegradation(RandomizableTransform):
    """:class:`XRayDegradation` with parameters drawn per call (see it for the physics).

    Defaults are mild-to-moderate for flat-panel chest radiography: PSF sd 0.2-0.8 pixel (CsI
    and GOS screens), 1,000-20,000 quanta per pixel at full scale (log-uniform; noise sd 0.5-2%
    of full scale at mid grey), read noise up to 0.4% of full scale.

    Args:
        scale: integer downsampling factor.
        prob: probability of the physical model; otherwise the bicubic protocol (same LR shape).
        psf_sigma_range: uniform range of the PSF sd, LR pixels.
        photons_range: log-uniform range of quanta per pixel at x = 1.
        read_noise_range: uniform range of the read noise sd.
        clip, spatial_axes: as :class:`XRayDegradation`.
    """

    backend = XRayDegradation.backend

    def __init__(
        self,
        scale: int,
        prob: float = 1.0,
        psf_sigma_range: Sequence[float] = (0.2, 0.8),
        photons_range: Sequence[float] = (1000.0, 20000.0),
        read_noise_range: Sequence[float] = (0.0, 0.004),
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
    ) -> None:
        super().__init__(_check_prob(prob))
        self.scale = _check_int("scale", scale)
        self.psf_sigma_range = _check_range("psf_sigma_range", psf_sigma_range)
        self.photons_range = _check_range("photons_range", photons_range, positive=True)
        self.read_noise_range = _check_range("read_noise_range", read_noise_range)
        self.clip = bool(clip)
        self.spatial_axes = tuple(spatial_axes)
        self.params: dict[str, float] = {}
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        lo, hi = np.log(self.photons_range)
        self.params = {
            "psf_sigma": float(self.R.uniform(*self.psf_sigma_range)),
            "photons": float(np.exp(self.R.uniform(lo, hi))),
            "read_noise": float(self.R.uniform(*self.read_noise_range)),
        }
        self._seed = _new_seed(self.R)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return BicubicDegradation(self.scale, spatial_axes=self.spatial_axes)(img)
        p, seed = dict(self.params), self._seed
        return _run(
            img,
            self.spatial_axes,
            self.scale,
            lambda x, ax: _xray_op(x, ax, self.scale, p["psf_sigma"], p["photons"], p["read_noise"], seed, self.clip),
        )


# --------------------------------------------------------------------------- CT


class CTDegradation(Randomizable, Transform):
    """CT at a coarser in-plane resolution and a lower dose.

    Physics: the CT system's in-plane PSF (focal spot, detector aperture, reconstruction kernel)
    is close to a Gaussian of full width at half maximum ``psf_fwhm`` (LR pixels); the
    reconstruction evaluates the blurred object at the LR pixel centres. Lower dose adds
    quantum noise that, after filtered back-projection, is close to Gaussian and
    signal-independent in the image domain (Zeng et al. 2015; Yu et al. 2012) and spatially
    correlated (the ramp filter and apodisation shape its noise power spectrum, Hanson 1979) —
    imitated by white noise blurred with a Gaussian of sd ``noise_correlation`` LR pixels and
    rescaled so that its sd stays ``noise_sigma`` at every pixel.

    ``noise_sigma`` is in normalised units; with the default window (4095 HU wide),
    0.005 is about 20 HU: ``sigma_HU = noise_sigma * (high - low)``.

    References: D. Zeng et al., "A simple low-dose X-ray CT simulation from high-dose scan",
    IEEE TNS 62(5), 2015. https://doi.org/10.1109/TNS.2015.2467219 — L. Yu et al., "Development
    and validation of a practical lower-dose-simulation tool for optimizing CT scan protocols",
    J. Comput. Assist. Tomogr. 36(4), 2012. — K. M. Hanson, "Detectability in computed
    tomographic images", Med. Phys. 6(5), 1979.

    Args:
        scale: integer in-plane downsampling factor.
        psf_fwhm: Gaussian PSF FWHM in LR pixels (0: bare sampling, aliasing). Default 1.1.
        noise_sigma: added noise sd, normalised units. Default 0.005 (~20 HU).
        noise_correlation: sd (LR pixels) of the noise-correlating blur; 0 = white. Default 0.5.
        clip: clamp to [0, 1] (the stored 12-bit range with the default window). Default True.
        spatial_axes: in-plane axes, default ``(0, 1)``.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        scale: int,
        psf_fwhm: float = 1.1,
        noise_sigma: float = 0.005,
        noise_correlation: float = 0.5,
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
    ) -> None:
        self.scale = _check_int("scale", scale)
        self.psf_fwhm = _check_nonneg("psf_fwhm", psf_fwhm)
        self.noise_sigma = _check_nonneg("noise_sigma", noise_sigma)
        self.noise_correlation = _check_nonneg("noise_correlation", noise_correlation)
        self.clip = bool(clip)
        self.spatial_axes = tuple(spatial_axes)
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        self._seed = _new_seed(self.R)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        seed = self._seed
        return _run(
            img,
            self.spatial_axes,
            self.scale,
            lambda x, ax: _ct_op(
                x, ax, self.scale, self.psf_fwhm, self.noise_sigma, self.noise_correlation, seed, self.clip
            ),
        )


class RandCTDegradation(RandomizableTransform):
    """:class:`CTDegradation` with parameters drawn per call (see it for the physics).

    Defaults: PSF FWHM 0.8-1.5 LR pixels (sharp to standard soft-tissue kernels), added noise
    sd 0.001-0.008 (about 4-33 HU with the default window: a routine-to-half-dose increase),
    noise correlation 0-1 pixel.

    Args:
        scale: integer in-plane downsampling factor.
        prob: probability of the physical model; otherwise the bicubic protocol (same LR shape).
        psf_fwhm_range, noise_sigma_range, noise_correlation_range: uniform ranges.
        clip, spatial_axes: as :class:`CTDegradation`.
    """

    backend = CTDegradation.backend

    def __init__(
        self,
        scale: int,
        prob: float = 1.0,
        psf_fwhm_range: Sequence[float] = (0.8, 1.5),
        noise_sigma_range: Sequence[float] = (0.001, 0.008),
        noise_correlation_range: Sequence[float] = (0.0, 1.0),
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
    ) -> None:
        super().__init__(_check_prob(prob))
        self.scale = _check_int("scale", scale)
        self.psf_fwhm_range = _check_range("psf_fwhm_range", psf_fwhm_range)
        self.noise_sigma_range = _check_range("noise_sigma_range", noise_sigma_range)
        self.noise_correlation_range = _check_range("noise_correlation_range", noise_correlation_range)
        self.clip = bool(clip)
        self.spatial_axes = tuple(spatial_axes)
        self.params: dict[str, float] = {}
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.params = {
            "psf_fwhm": float(self.R.uniform(*self.psf_fwhm_range)),
            "noise_sigma": float(self.R.uniform(*self.noise_sigma_range)),
            "noise_correlation": float(self.R.uniform(*self.noise_correlation_range)),
        }
        self._seed = _new_seed(self.R)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return BicubicDegradation(self.scale, spatial_axes=self.spatial_axes)(img)
        p, seed = dict(self.params), self._seed
        return _run(
            img,
            self.spatial_axes,
            self.scale,
            lambda x, ax: _ct_op(
                x, ax, self.scale, p["psf_fwhm"], p["noise_sigma"], p["noise_correlation"], seed, self.clip
            ),
        )


# --------------------------------------------------------------------------- MR


class MRDegradation(Randomizable, Transform):
    """MR at a lower in-plane matrix: k-space truncation, then Rician magnitude noise.

    Physics: an MR image is the inverse Fourier transform of the sampled k-space; a lower
    resolution acquisition samples only the central ``1/scale`` of k-space along each in-plane
    axis. The image is Fourier transformed, the central samples kept (optionally apodised by a
    Tukey or Hamming window; without one the sharp cut-off gives Gibbs ringing, ~9% overshoot
    at sharp edges), and inverse transformed at the smaller size, scaled so the mean intensity
    is kept. Thermal noise is complex Gaussian in k-space and in the complex image; the
    magnitude image then follows a Rician distribution, with a bias ``sigma * sqrt(pi / 2)`` in
    the background (Gudbjartsson & Patz 1995). Thick slices: use :class:`SliceThickness`.

    References: H. Gudbjartsson, S. Patz, "The Rician distribution of noisy MRI data", MRM 34(6),
    1995. https://doi.org/10.1002/mrm.1910340618 — E. Kellner et al., "Gibbs-ringing artifact
    removal based on local subvoxel-shifts", MRM 76(5), 2016. — M. A. Bernstein, K. F. King,
    X. J. Zhou, "Handbook of MRI Pulse Sequences", 2004 (k-space filtering). — A. S. Chaudhari
    et al., "Super-resolution musculoskeletal MRI using deep learning", MRM 80(5), 2018.

    Args:
        scale: integer in-plane factor (fraction of k-space kept per axis is ``1 / scale``).
        noise_sigma: sd of each of the real and imaginary noise components. Default 0.01.
        window: ``None`` (default, Gibbs ringing), ``"tukey"`` or ``"hamming"`` (1 at DC, so the
            mean is kept). Step-edge overshoot, continuous: none ~9%; Tukey(0.5) ~8% (softens
            the image but keeps most ringing, like vendors' mild Fermi filters); Tukey(1.0)
            (= Hann) ~0.6%; Hamming ~0.2% (little ringing, most blur).
        tukey_alpha: tapered fraction of the Tukey window. Default 0.5.
        spatial_axes: in-plane axes, default ``(0, 1)``.

    The output is a magnitude image (>= 0), not clamped above.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        scale: int,
        noise_sigma: float = 0.01,
        window: str | None = None,
        tukey_alpha: float = 0.5,
        spatial_axes: Sequence[int] = (0, 1),
    ) -> None:
        self.scale = _check_int("scale", scale)
        self.noise_sigma = _check_nonneg("noise_sigma", noise_sigma)
        self.window = _check_window(window)
        if not 0.0 <= float(tukey_alpha) <= 1.0:
            raise UsageError(f"`tukey_alpha` must be in [0, 1], got {tukey_alpha!r}.")
        self.tukey_alpha = float(tukey_alpha)
        self.spatial_axes = tuple(spatial_axes)
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        self._seed = _new_seed(self.R)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        seed = self._seed
        return _run(
            img,
            self.spatial_axes,
            self.scale,
            lambda x, ax: _mr_op(x, ax, self.scale, self.noise_sigma, self.window, self.tukey_alpha, seed),
        )


class RandMRDegradation(RandomizableTransform):
    """:class:`MRDegradation` with parameters drawn per call (see it for the physics).

    Defaults: noise sd 0.002-0.02 (SNR about 25-250 for tissue near 0.5), window drawn from
    ``(None, "tukey", "hamming")`` — clinical reconstructions range from unfiltered (ringing)
    to apodised.

    Args:
        scale: integer in-plane factor.
        prob: probability of the physical model; otherwise the bicubic protocol (same LR shape).
        noise_sigma_range: uniform range of the noise sd.
        windows: windows to choose from uniformly (``None`` = no window).
        tukey_alpha, spatial_axes: as :class:`MRDegradation`.
    """

    backend = MRDegradation.backend

    def __init__(
        self,
        scale: int,
        prob: float = 1.0,
        noise_sigma_range: Sequence[float] = (0.002, 0.02),
        windows: Sequence[str | None] = MR_WINDOWS,
        tukey_alpha: float = 0.5,
        spatial_axes: Sequence[int] = (0, 1),
    ) -> None:
        super().__init__(_check_prob(prob))
        self.scale = _check_int("scale", scale)
        self.noise_sigma_range = _check_range("noise_sigma_range", noise_sigma_range)
        self.windows = [_check_window(w) for w in windows]
        if not self.windows:
            raise UsageError("`windows` must list at least one of None, 'tukey', 'hamming'; got an empty list.")
        self.tukey_alpha = MRDegradation(1, tukey_alpha=tukey_alpha).tukey_alpha
        self.spatial_axes = tuple(spatial_axes)
        self.params: dict[str, Any] = {}
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.params = {
            "noise_sigma": float(self.R.uniform(*self.noise_sigma_range)),
            "window": self.windows[int(self.R.randint(len(self.windows)))],
        }
        self._seed = _new_seed(self.R)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return BicubicDegradation(self.scale, spatial_axes=self.spatial_axes)(img)
        p, seed = dict(self.params), self._seed
        return _run(
            img,
            self.spatial_axes,
            self.scale,
            lambda x, ax: _mr_op(x, ax, self.scale, p["noise_sigma"], p["window"], self.tukey_alpha, seed),
        )


# --------------------------------------------------------------------------- slice thickness


class SliceThickness(Transform):
    """Through-plane downsampling: ``factor`` thin slices become one thick slice (partial volume).

    Physics: a CT or MR slice is a weighted average of the object along the slice normal, with
    weights given by the slice sensitivity profile (CT) or the slice-selection profile (MR).
    A thick slice therefore mixes the tissues of ``factor`` thin slices (the partial-volume
    effect), and averages their independent noise (variance divided by about ``factor``).
    ``"box"``: the ideal rectangular profile, the exact mean of each block of ``factor`` slices;
    ``"gaussian"``: a smooth profile of FWHM ``fwhm * factor`` thin slices centred on the thick
    slice (realistic for spiral CT and 2D MR excitation), with tails into neighbouring blocks.

    References: J. Polacin, W. A. Kalender, G. Marchal, "Evaluation of section sensitivity profiles
    and image noise in spiral CT", Radiology 185(1), 1992. — C. Zhao et al., "SMORE: a
    self-supervised anti-aliasing and super-resolution algorithm for MRI using deep learning",
    IEEE TMI 40(3), 2021.

    Args:
        factor: number of thin slices per thick slice (2 or 4); the axis must be divisible by it.
        axis: spatial axis across slices (``-1`` = last, ``Z``). Default -1.
        profile: ``"box"`` (default) or ``"gaussian"``.
        fwhm: Gaussian FWHM in units of the thick slice thickness. Default 1.0.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, factor: int, axis: int = -1, profile: str = "box", fwhm: float = 1.0) -> None:
        self.factor = _check_int("factor", factor)
        self.axis = int(axis)
        self.profile = _check_profile(profile)
        self.fwhm = _check_nonneg("fwhm", fwhm)
        if self.profile == "gaussian" and self.fwhm == 0:
            raise UsageError("`fwhm` must be > 0 for the 'gaussian' profile, got 0; use profile='box' instead.")

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        return _run(
            img,
            (self.axis,),
            self.factor,
            lambda x, ax: _slice_op(x, ax[0], self.factor, self.profile, self.fwhm),
            min_spatial=3,
        )


class RandSliceThickness(RandomizableTransform):
    """:class:`SliceThickness` with a random slice profile per call.

    Args:
        factor: thin slices per thick slice.
        axis: spatial axis across slices. Default -1.
        prob: probability of the random profile; otherwise the ideal ``"box"`` profile.
        profiles: profiles to choose from uniformly. Default ``("box", "gaussian")``.
        fwhm_range: uniform range of the Gaussian FWHM in thick-slice units. Default (0.8, 1.2).
    """

    backend = SliceThickness.backend

    def __init__(
        self,
        factor: int,
        axis: int = -1,
        prob: float = 1.0,
        profiles: Sequence[str] = SLICE_PROFILES,
        fwhm_range: Sequence[float] = (0.8, 1.2),
    ) -> None:
        super().__init__(_check_prob(prob))
        self.factor = _check_int("factor", factor)
        self.axis = int(axis)
        self.profiles = [_check_profile(p) for p in profiles]
        if not self.profiles:
            raise UsageError(f"`profiles` must list at least one of {SLICE_PROFILES}; got an empty list.")
        self.fwhm_range = _check_range("fwhm_range", fwhm_range, positive=True)
        self.params: dict[str, Any] = {"profile": "box", "fwhm": 1.0}

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.params = {
            "profile": self.profiles[int(self.R.randint(len(self.profiles)))],
            "fwhm": float(self.R.uniform(*self.fwhm_range)),
        }

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return SliceThickness(self.factor, self.axis, "box")(img)
        return SliceThickness(self.factor, self.axis, self.params["profile"], self.params["fwhm"])(img)


# --------------------------------------------------------------------------- per-modality choice


class RandModalityDegradation(RandomizableTransform):
    """Per call, either the classic bicubic protocol or the image modality's random degradation.

    With probability ``p_classic`` the LR image is :class:`BicubicDegradation`; otherwise
    :class:`RandXRayDegradation`, :class:`RandCTDegradation` or :class:`RandMRDegradation`
    according to ``modality`` (or ``meta["modality"]``). Training on both keeps a network good
    on the literature's protocol and robust to the acquisition physics. ``set_random_state``
    re-seeds the sub-transforms from this one, so a pipeline is reproducible from one seed.

    Args:
        scale: integer in-plane factor (2 or 4).
        p_classic: probability of the classic protocol. Default 0.5.
        modality: ``"xray"``, ``"ct"``, ``"mr"``; default from the image's meta.
        spatial_axes: in-plane axes, default ``(0, 1)``.
        xray_args, ct_args, mr_args: keyword arguments for the modality transforms
            (e.g. ``{"photons_range": (2000, 10000)}``).

    After a call, ``choice`` is ``"classic"`` or the modality used.

    Example::

        pipeline = Compose([CopyItemsd(keys="hr", names="lr"), RandModalityDegradationd(keys="lr", scale=2)])
        pipeline.set_random_state(seed=0)
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        scale: int,
        p_classic: float = 0.5,
        modality: str | None = None,
        spatial_axes: Sequence[int] = (0, 1),
        xray_args: Mapping[str, Any] | None = None,
        ct_args: Mapping[str, Any] | None = None,
        mr_args: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(prob=1.0)
        self.scale = _check_int("scale", scale)
        if not 0.0 <= float(p_classic) <= 1.0:
            raise UsageError(f"`p_classic` must be in [0, 1], got {p_classic!r}.")
        self.p_classic = float(p_classic)
        self.modality = None if modality is None else resolve_modality(None, modality)
        self.spatial_axes = tuple(spatial_axes)
        common = {"scale": self.scale, "spatial_axes": self.spatial_axes}
        self.classic = BicubicDegradation(**common)
        self.transforms: dict[str, RandomizableTransform] = {
            "xray": RandXRayDegradation(**common, **dict(xray_args or {})),
            "ct": RandCTDegradation(**common, **dict(ct_args or {})),
            "mr": RandMRDegradation(**common, **dict(mr_args or {})),
        }
        self.choice: str | None = None

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandModalityDegradation:
        super().set_random_state(seed, state)
        for name in sorted(self.transforms):
            self.transforms[name].set_random_state(seed=_new_seed(self.R))
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw the branch and its parameters; ``data`` is the resolved modality name."""
        super().randomize(None)
        if data is None:
            raise UsageError("RandModalityDegradation.randomize() needs the modality ('xray', 'ct' or 'mr').")
        classic = self.R.rand() < self.p_classic
        self.choice = "classic" if classic else str(data)
        if not classic:
            self.transforms[str(data)].randomize()

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        modality = resolve_modality(img, self.modality)
        if randomize:
            self.randomize(modality)
        elif self.choice not in ("classic", modality):
            raise UsageError(
                f"randomize=False reuses the last draw ({self.choice!r}), which does not match this image's "
                f"modality {modality!r}; call with randomize=True."
            )
        if self.choice == "classic":
            return self.classic(img)
        return self.transforms[modality](img, randomize=False)


# --------------------------------------------------------------------------- dictionary versions


class _Keyed(MapTransform):
    """Apply ``self.transform`` (with ``randomize=False`` when it is random) to every key."""

    transform: Any

    def _apply(self, d: dict[Hashable, Any], **kwargs: Any) -> dict[Hashable, Any]:
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], **kwargs)
        return d


class BicubicDegradationd(_Keyed):
    """Dictionary wrapper of :class:`BicubicDegradation`."""

    backend = BicubicDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = BicubicDegradation(scale, clip, spatial_axes)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        return self._apply(dict(data))


class SliceThicknessd(_Keyed):
    """Dictionary wrapper of :class:`SliceThickness`."""

    backend = SliceThickness.backend

    def __init__(
        self,
        keys: KeysCollection,
        factor: int,
        axis: int = -1,
        profile: str = "box",
        fwhm: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = SliceThickness(factor, axis, profile, fwhm)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        return self._apply(dict(data))


class _NoiseKeyed(Randomizable, _Keyed):
    """Dictionary wrapper of a fixed-parameter degradation with random noise: one seed per call."""

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> _NoiseKeyed:
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed=_new_seed(self.R))
        return self

    def randomize(self, data: Any = None) -> None:
        self.transform.randomize()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        self.randomize()
        return self._apply(dict(data), randomize=False)


class _RandKeyed(RandomizableTransform, _Keyed):
    """Dictionary wrapper of a ``Rand*`` degradation: one draw per call, the same for every key.

    ``prob`` lives in the wrapped transform (its fallback keeps the LR shape), so this wrapper is
    always "applied".
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        MapTransform.__init__(self, keys, allow_missing_keys)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> _RandKeyed:
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed=_new_seed(self.R))
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.transform.randomize(data)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        self.randomize()
        return self._apply(dict(data), randomize=False)


class XRayDegradationd(_NoiseKeyed):
    """Dictionary wrapper of :class:`XRayDegradation`."""

    backend = XRayDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        psf_sigma: float = 0.5,
        photons: float | None = 5000.0,
        read_noise: float = 0.002,
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.transform = XRayDegradation(scale, psf_sigma, photons, read_noise, clip, spatial_axes)


class CTDegradationd(_NoiseKeyed):
    """Dictionary wrapper of :class:`CTDegradation`."""

    backend = CTDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        psf_fwhm: float = 1.1,
        noise_sigma: float = 0.005,
        noise_correlation: float = 0.5,
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.transform = CTDegradation(scale, psf_fwhm, noise_sigma, noise_correlation, clip, spatial_axes)


class MRDegradationd(_NoiseKeyed):
    """Dictionary wrapper of :class:`MRDegradation`."""

    backend = MRDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        noise_sigma: float = 0.01,
        window: str | None = None,
        tukey_alpha: float = 0.5,
        spatial_axes: Sequence[int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.transform = MRDegradation(scale, noise_sigma, window, tukey_alpha, spatial_axes)


class RandXRayDegradationd(_RandKeyed):
    """Dictionary wrapper of :class:`RandXRayDegradation` (one draw per call for all keys)."""

    backend = RandXRayDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        prob: float = 1.0,
        psf_sigma_range: Sequence[float] = (0.2, 0.8),
        photons_range: Sequence[float] = (1000.0, 20000.0),
        read_noise_range: Sequence[float] = (0.0, 0.004),
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RandXRayDegradation(
            scale, prob, psf_sigma_range, photons_range, read_noise_range, clip, spatial_axes
        )


class RandCTDegradationd(_RandKeyed):
    """Dictionary wrapper of :class:`RandCTDegradation` (one draw per call for all keys)."""

    backend = RandCTDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        prob: float = 1.0,
        psf_fwhm_range: Sequence[float] = (0.8, 1.5),
        noise_sigma_range: Sequence[float] = (0.001, 0.008),
        noise_correlation_range: Sequence[float] = (0.0, 1.0),
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RandCTDegradation(
            scale, prob, psf_fwhm_range, noise_sigma_range, noise_correlation_range, clip, spatial_axes
        )


class RandMRDegradationd(_RandKeyed):
    """Dictionary wrapper of :class:`RandMRDegradation` (one draw per call for all keys)."""

    backend = RandMRDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        prob: float = 1.0,
        noise_sigma_range: Sequence[float] = (0.002, 0.02),
        windows: Sequence[str | None] = MR_WINDOWS,
        tukey_alpha: float = 0.5,
        spatial_axes: Sequence[int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RandMRDegradation(scale, prob, noise_sigma_range, windows, tukey_alpha, spatial_axes)


class RandSliceThicknessd(_RandKeyed):
    """Dictionary wrapper of :class:`RandSliceThickness` (one draw per call for all keys)."""

    backend = RandSliceThickness.backend

    def __init__(
        self,
        keys: KeysCollection,
        factor: int,
        axis: int = -1,
        prob: float = 1.0,
        profiles: Sequence[str] = SLICE_PROFILES,
        fwhm_range: Sequence[float] = (0.8, 1.2),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RandSliceThickness(factor, axis, prob, profiles, fwhm_range)


class RandModalityDegradationd(_RandKeyed):
    """Dictionary wrapper of :class:`RandModalityDegradation`: one draw per call for all keys.

    The modality comes from ``modality`` or from the first key's meta; every key must share it.

    Example::

        Compose([CopyItemsd(keys="hr", names="lr"), RandModalityDegradationd(keys="lr", scale=2)])
    """

    backend = RandModalityDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        p_classic: float = 0.5,
        modality: str | None = None,
        spatial_axes: Sequence[int] = (0, 1),
        xray_args: Mapping[str, Any] | None = None,
        ct_args: Mapping[str, Any] | None = None,
        mr_args: Mapping[str, Any] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RandModalityDegradation(scale, p_classic, modality, spatial_axes, xray_args, ct_args, mr_args)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        first = self.first_key(d)
        if first == ():
            return d
        found = {resolve_modality(d[key], self.transform.modality) for key in self.key_iterator(d)}
        if len(found) > 1:
            raise UsageError(
                f"the keys {list(self.keys)} hold images of different modalities {sorted(found)}; "
                "RandModalityDegradationd draws one degradation per call. Use one transform per modality."
            )
        modality = found.pop()
        RandomizableTransform.randomize(self, None)
        self.transform.randomize(modality)
        return self._apply(d, randomize=False)
