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

from typing import TYPE_CHECKING

from medsr._lazy import lazy_exports

if TYPE_CHECKING:  # what the names below resolve to, for type checkers and IDEs
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

# name -> sub-module, imported on first use: `medsr upscale -m bicubic` needs resample and
# intensity's functional core, not the MONAI transforms (docs/performance.md, start-up)
_EXPORTS = {
    "KERNELS": "resample",
    "resize": "resample",
    "downsample": "resample",
    "upsample": "resample",
    "resample_axis": "resample",
    "DEFAULT_CT_WINDOW": "intensity",
    "DEFAULT_PERCENTILES": "intensity",
    "resolve_modality": "intensity",
    "ModalityNormalize": "intensity",
    "ModalityNormalized": "intensity",
    "InvertModalityNormalize": "intensity",
    "InvertModalityNormalized": "intensity",
    "CropToMultiple": "croppad",
    "CropToMultipled": "croppad",
    "CropBorder": "croppad",
    "CropBorderd": "croppad",
    "SelectSlices": "croppad",
    "SelectSlicesd": "croppad",
    "RandPatchCropd": "croppad",
    "AsVolume": "utility",
    "AsVolumed": "utility",
    "EdgeWeight": "utility",
    "EdgeWeightd": "utility",
    "BicubicDegradation": "degradation",
    "BicubicDegradationd": "degradation",
    "XRayDegradation": "degradation",
    "XRayDegradationd": "degradation",
    "RandXRayDegradation": "degradation",
    "RandXRayDegradationd": "degradation",
    "CTDegradation": "degradation",
    "CTDegradationd": "degradation",
    "RandCTDegradation": "degradation",
    "RandCTDegradationd": "degradation",
    "MRDegradation": "degradation",
    "MRDegradationd": "degradation",
    "RandMRDegradation": "degradation",
    "RandMRDegradationd": "degradation",
    "SliceThickness": "degradation",
    "SliceThicknessd": "degradation",
    "RandSliceThickness": "degradation",
    "RandSliceThicknessd": "degradation",
    "RandModalityDegradation": "degradation",
    "RandModalityDegradationd": "degradation",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
