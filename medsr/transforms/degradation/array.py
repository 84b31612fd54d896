"""In-plane LR simulators (array transforms): one deterministic transform per model and its ``Rand*`` twin.

The deterministic transforms (:class:`BicubicDegradation`, :class:`XRayDegradation`,
:class:`CTDegradation`, :class:`MRDegradation`) are functions of
(image, parameters, ``seed``); each ``Rand*`` transform draws the parameters and the noise
seed from ``self.R`` in ``randomize()`` and applies the deterministic one with them (the
MONAI / TorchIO split). The physics and the clipping decision are documented in
:mod:`medsr.transforms.degradation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from monai.transforms import RandomizableTransform, Transform
from monai.utils import TransformBackends

from medsr.errors import UsageError
from medsr.transforms.degradation.functional import (
    MR_WINDOWS,
    bicubic_lr,
    ct_lr,
    mr_lr,
    new_seed,
    run_on_axes,
    xray_lr,
)
from medsr.typing import NdarrayOrTensor
from medsr.validation import (
    check_finite_nonnegative,
    check_int_at_least,
    check_probability,
    check_range,
)

__all__ = [
    "BicubicDegradation",
    "XRayDegradation",
    "RandXRayDegradation",
    "CTDegradation",
    "RandCTDegradation",
    "MRDegradation",
    "RandMRDegradation",
]


def _check_window(window: Any) -> str | None:
    if window is None:
        return None
    w = str(window).lower()
    if w not in ("tukey", "hamming"):
        raise UsageError(f"`window` must be None, 'tukey' or 'hamming', got {window!r}.")
    return w


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
        self.scale = check_int_at_least("scale", scale)
        self.clip = bool(clip)
        self.spatial_axes = tuple(spatial_axes)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        return run_on_axes(img, self.spatial_axes, self.scale, lambda x, ax: bicubic_lr(x, ax, self.scale, self.clip))


# --------------------------------------------------------------------------- X-ray


class _RandInPlane(RandomizableTransform):
    """The shared part of the ``Rand*`` in-plane models.

    ``randomize()`` draws "applied or not" (``prob``), the parameters (:meth:`_draw`) and the
    noise seed, in that order, from ``self.R``; a call applies the deterministic twin
    (:meth:`_deterministic`) with them, or :class:`BicubicDegradation` when not applied.
    """

    def __init__(self, scale: int, prob: float, spatial_axes: Sequence[int]) -> None:
        super().__init__(check_probability(prob))
        self.scale = check_int_at_least("scale", scale)
        self.spatial_axes = tuple(spatial_axes)
        self.params: dict[str, Any] = {}
        self._seed = 0

    def _draw(self) -> dict[str, Any]:
        """The parameters of the deterministic transform, drawn from ``self.R``."""
        raise NotImplementedError

    def _deterministic(self) -> Transform:
        """The deterministic transform with ``self.params`` and ``self._seed``."""
        raise NotImplementedError

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.params = self._draw()
        self._seed = new_seed(self.R)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return BicubicDegradation(self.scale, spatial_axes=self.spatial_axes)(img)
        return self._deterministic()(img)


class XRayDegradation(Transform):
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
        seed: noise seed; the output is a deterministic function of (image, parameters, seed).
            Default 0. :class:`RandXRayDegradation` draws it (and the parameters) per call.
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
        seed: int = 0,
    ) -> None:
        self.scale = check_int_at_least("scale", scale)
        self.psf_sigma = check_finite_nonnegative("psf_sigma", psf_sigma)
        if photons is not None and not float(photons) > 0:
            raise UsageError(f"`photons` must be > 0 (or None for no quantum noise), got {photons!r}.")
        self.photons = None if photons is None else float(photons)
        self.read_noise = check_finite_nonnegative("read_noise", read_noise)
        self.clip = bool(clip)
        self.spatial_axes = tuple(spatial_axes)
        self.seed = int(seed)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        seed = self.seed
        return run_on_axes(
            img,
            self.spatial_axes,
            self.scale,
            lambda x, ax: xray_lr(x, ax, self.scale, self.psf_sigma, self.photons, self.read_noise, seed, self.clip),
        )


class RandXRayDegradation(_RandInPlane):
    """:class:`XRayDegradation` with parameters and noise seed drawn per call (see it for the physics).

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
        super().__init__(scale, prob, spatial_axes)
        self.psf_sigma_range = check_range("psf_sigma_range", psf_sigma_range)
        self.photons_range = check_range("photons_range", photons_range, positive=True)
        self.read_noise_range = check_range("read_noise_range", read_noise_range)
        self.clip = bool(clip)

    def _draw(self) -> dict[str, Any]:
        lo, hi = np.log(self.photons_range)
        return {
            "psf_sigma": float(self.R.uniform(*self.psf_sigma_range)),
            "photons": float(np.exp(self.R.uniform(lo, hi))),
            "read_noise": float(self.R.uniform(*self.read_noise_range)),
        }

    def _deterministic(self) -> Transform:
        return XRayDegradation(
            self.scale, **self.params, clip=self.clip, spatial_axes=self.spatial_axes, seed=self._seed
        )


# --------------------------------------------------------------------------- CT


class CTDegradation(Transform):
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
        seed: noise seed (the output is deterministic given it). Default 0; :class:`RandCTDegradation` draws it.
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
        seed: int = 0,
    ) -> None:
        self.scale = check_int_at_least("scale", scale)
        self.psf_fwhm = check_finite_nonnegative("psf_fwhm", psf_fwhm)
        self.noise_sigma = check_finite_nonnegative("noise_sigma", noise_sigma)
        self.noise_correlation = check_finite_nonnegative("noise_correlation", noise_correlation)
        self.clip = bool(clip)
        self.spatial_axes = tuple(spatial_axes)
        self.seed = int(seed)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        seed = self.seed
        return run_on_axes(
            img,
            self.spatial_axes,
            self.scale,
            lambda x, ax: ct_lr(
                x, ax, self.scale, self.psf_fwhm, self.noise_sigma, self.noise_correlation, seed, self.clip
            ),
        )


class RandCTDegradation(_RandInPlane):
    """:class:`CTDegradation` with parameters and noise seed drawn per call (see it for the physics).

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
        super().__init__(scale, prob, spatial_axes)
        self.psf_fwhm_range = check_range("psf_fwhm_range", psf_fwhm_range)
        self.noise_sigma_range = check_range("noise_sigma_range", noise_sigma_range)
        self.noise_correlation_range = check_range("noise_correlation_range", noise_correlation_range)
        self.clip = bool(clip)

    def _draw(self) -> dict[str, Any]:
        return {
            "psf_fwhm": float(self.R.uniform(*self.psf_fwhm_range)),
            "noise_sigma": float(self.R.uniform(*self.noise_sigma_range)),
            "noise_correlation": float(self.R.uniform(*self.noise_correlation_range)),
        }

    def _deterministic(self) -> Transform:
        return CTDegradation(
            self.scale, **self.params, clip=self.clip, spatial_axes=self.spatial_axes, seed=self._seed
        )


# --------------------------------------------------------------------------- MR


class MRDegradation(Transform):
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
        seed: noise seed (the output is deterministic given it). Default 0; :class:`RandMRDegradation` draws it.

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
        seed: int = 0,
    ) -> None:
        self.scale = check_int_at_least("scale", scale)
        self.noise_sigma = check_finite_nonnegative("noise_sigma", noise_sigma)
        self.window = _check_window(window)
        if not 0.0 <= float(tukey_alpha) <= 1.0:
            raise UsageError(f"`tukey_alpha` must be in [0, 1], got {tukey_alpha!r}.")
        self.tukey_alpha = float(tukey_alpha)
        self.spatial_axes = tuple(spatial_axes)
        self.seed = int(seed)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        seed = self.seed
        return run_on_axes(
            img,
            self.spatial_axes,
            self.scale,
            lambda x, ax: mr_lr(x, ax, self.scale, self.noise_sigma, self.window, self.tukey_alpha, seed),
        )


class RandMRDegradation(_RandInPlane):
    """:class:`MRDegradation` with parameters and noise seed drawn per call (see it for the physics).

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
        super().__init__(scale, prob, spatial_axes)
        self.noise_sigma_range = check_range("noise_sigma_range", noise_sigma_range)
        self.windows = [_check_window(w) for w in windows]
        if not self.windows:
            raise UsageError("`windows` must list at least one of None, 'tukey', 'hamming'; got an empty list.")
        self.tukey_alpha = MRDegradation(1, tukey_alpha=tukey_alpha).tukey_alpha

    def _draw(self) -> dict[str, Any]:
        return {
            "noise_sigma": float(self.R.uniform(*self.noise_sigma_range)),
            "window": self.windows[int(self.R.randint(len(self.windows)))],
        }

    def _deterministic(self) -> Transform:
        return MRDegradation(
            self.scale, **self.params, tukey_alpha=self.tukey_alpha, spatial_axes=self.spatial_axes, seed=self._seed
        )
