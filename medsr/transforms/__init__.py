"""MONAI-style array + dictionary transforms: resampling, intensity normalisation, LR simulation.

- :mod:`~medsr.transforms.resample` — MATLAB ``imresize``-exact separable resampling (any axis).
- :mod:`~medsr.transforms.intensity` — modality-aware, exactly invertible mapping to [0, 1].
- :mod:`~medsr.transforms.degradation` — X-ray / CT / MR / slice-thickness LR simulators.
"""

from __future__ import annotations

from medsr.transforms.degradation import (
    BicubicDegradation,
    BicubicDegradationd,
    CropToMultiple,
    CropToMultipled,
    CTDegradation,
    CTDegradationd,
    MRDegradation,
    MRDegradationd,
    RandCTDegradation,
    RandCTDegradationd,
    RandModalityDegradation,
    RandModalityDegradationd,
    RandMRDegradation,
    RandMRDegradationd,
    RandSliceThickness,
    RandSliceThicknessd,
    RandXRayDegradation,
    RandXRayDegradationd,
    SliceThickness,
    SliceThicknessd,
    XRayDegradation,
    XRayDegradationd,
)
from medsr.transforms.intensity import (
    DEFAULT_CT_WINDOW,
    DEFAULT_PERCENTILES,
    InvertModalityNormalize,
    InvertModalityNormalized,
    ModalityNormalize,
    ModalityNormalized,
    resolve_modality,
)
from medsr.transforms.resample import KERNELS, downsample, resample_axis, resize, upsample

__all__ = [
    "KERNELS",
    "resize",
    "downsample",
    "upsample",
    "resample_axis",
    "DEFAULT_CT_WINDOW",
    "DEFAULT_PERCENTILES",
    "resolve_modality",
    "ModalityNormalize",
    "ModalityNormalized",
    "InvertModalityNormalize",
    "InvertModalityNormalized",
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
