"""MONAI-style array + dictionary transforms: resampling, intensity normalisation, LR simulation.

- :mod:`~medsr.transforms.resample` — MATLAB ``imresize``-exact separable resampling (any axis).
- :mod:`~medsr.transforms.intensity` — modality-aware, exactly invertible mapping to [0, 1].
- :mod:`~medsr.transforms.degradation` — X-ray / CT / MR / slice-thickness LR simulators
  (``functional``, ``array``, ``dictionary`` as MONAI splits a transform family).
- :mod:`~medsr.transforms.croppad` — crops: to a multiple of the scale, metric borders, slabs, patches.
- :mod:`~medsr.transforms.utility` — volume layout and edge-weight maps of the training pipeline.
- :mod:`~medsr.transforms.colour` — RGB <-> YCbCr (ITU-R BT.601), as MATLAB ``rgb2ycbcr``.
"""

from __future__ import annotations

from medsr.transforms.croppad import (
    CropBorder,
    CropBorderd,
    CropToMultiple,
    CropToMultipled,
    RandPatchCropd,
    SelectSlices,
    SelectSlicesd,
)
from medsr.transforms.degradation import (
    BicubicDegradation,
    BicubicDegradationd,
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
from medsr.transforms.utility import AsVolume, AsVolumed, EdgeWeight, EdgeWeightd

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
    "CropBorder",
    "CropBorderd",
    "SelectSlices",
    "SelectSlicesd",
    "RandPatchCropd",
    "AsVolume",
    "AsVolumed",
    "EdgeWeight",
    "EdgeWeightd",
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
