"""Low-resolution simulators: make the LR half of an HR/LR training or evaluation pair.

Every degradation works on a channel-first image ``(C, X, Y)`` or volume
``(C, X, Y, Z)`` already normalised to [0, 1] (:class:`~medsr.transforms.ModalityNormalize`),
acts on the in-plane axes (the first two spatial axes, ``spatial_axes=(0, 1)``)
unless noted, and returns spatial size ``input // scale`` along them; the input
must be divisible by ``scale`` (prepare HR images with
:class:`~medsr.transforms.CropToMultiple`).
A MetaTensor keeps its meta; its affine is updated by :func:`medsr.geometry.zoom_geometry`
(same physical extent, half-pixel centres) and ``spacing`` is read from it.

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

Randomness: the deterministic transforms are functions of (image, parameters,
``seed``), their noise fields drawn from a ``torch.Generator`` seeded by ``seed``.
Each ``Rand*`` transform draws the physical parameters and the noise seed from
``self.R`` in ``randomize()`` and applies its deterministic twin with them (the
MONAI / TorchIO split), so ``set_random_state(seed)`` (or MONAI
``Compose.set_random_state``) reproduces a pipeline exactly on the same device type. ``Rand*`` transforms with
``prob < 1`` fall back to :class:`BicubicDegradation` (box averaging for
:class:`RandSliceThickness`) when not applied, so the output always has the LR
shape.

Parameters are in *output (LR) pixels* for the point-spread functions, so a value
means the same detector at x2 and x4, and in normalised [0, 1] units for noise.

Modules (MONAI's split of a transform family): :mod:`.functional` (kernels, PSFs, noise,
k-space on tensors), :mod:`.array` (in-plane array transforms), :mod:`.dictionary`
(their dictionary versions), :mod:`.thickness` (through-plane, both kinds) and
:mod:`.modality` (the per-modality choice, both kinds).
"""

from __future__ import annotations

from medsr.transforms.degradation.array import (
    BicubicDegradation,
    CTDegradation,
    MRDegradation,
    RandCTDegradation,
    RandMRDegradation,
    RandXRayDegradation,
    XRayDegradation,
)
from medsr.transforms.degradation.dictionary import (
    BicubicDegradationd,
    CTDegradationd,
    MRDegradationd,
    RandCTDegradationd,
    RandMRDegradationd,
    RandXRayDegradationd,
    XRayDegradationd,
)
from medsr.transforms.degradation.functional import MR_WINDOWS, SLICE_PROFILES
from medsr.transforms.degradation.modality import RandModalityDegradation, RandModalityDegradationd
from medsr.transforms.degradation.thickness import (
    RandSliceThickness,
    RandSliceThicknessd,
    SliceThickness,
    SliceThicknessd,
)

__all__ = [
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
    "MR_WINDOWS",
    "SLICE_PROFILES",
]
