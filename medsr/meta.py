"""Names of the metadata keys medsr sets on a ``MetaTensor`` and relies on downstream.

``medsr.io`` sets them once when a file is read; transforms, inference and the
writers only read or update them. Nothing downstream re-reads files.

Array layout (MONAI's reader convention, as ``ITKReader``/``PILReader``):
channel first, then spatial axes in index order ``(i, j[, k])`` where ``i`` runs
along image columns (x), ``j`` along rows (y) and ``k`` across slices. A 2D
image is ``(1, X, Y)``, a volume ``(1, X, Y, Z)``. The affine (``img.affine``,
4x4, float64) maps ``(i, j, k)`` voxel indices to RAS world millimetres, as
MONAI's readers do (DICOM's LPS is converted).
"""

from __future__ import annotations

__all__ = [
    "FILENAME",
    "FORMAT",
    "MODALITY",
    "SPACING",
    "SPACING_SOURCE",
    "BITS_STORED",
    "PHOTOMETRIC",
    "RESCALE_SLOPE",
    "RESCALE_INTERCEPT",
    "DICOM_HEADER",
    "DERIVATION",
    "SOURCE_INFO",
    "NORM_METHOD",
    "NORM_LOW",
    "NORM_HIGH",
    "FORMATS",
]

FILENAME = "filename_or_obj"
"""Source path (MONAI's own key)."""

FORMAT = "medsr_format"
"""One of :data:`FORMATS`; the writer uses it to write the input's format back."""

FORMATS = ("dicom", "dicom_series", "dicom_multiframe", "nifti", "png", "tiff", "jpeg")

MODALITY = "modality"
"""``"xray"``, ``"ct"``, ``"mr"`` (or ``"other"`` when unknown)."""

SPACING = "spacing"
"""Per spatial axis spacing in mm, as a tuple of floats, same order as the array axes."""

SPACING_SOURCE = "spacing_source"
"""Where the spacing came from: ``PixelSpacing``, ``ImagerPixelSpacing``, ``NIfTI``, ``none``."""

BITS_STORED = "bits_stored"
"""DICOM BitsStored, or the raster bit depth (8 or 16)."""

PHOTOMETRIC = "photometric_interpretation"
"""DICOM PhotometricInterpretation of the source (pixels are always bright = dense in memory)."""

RESCALE_SLOPE = "rescale_slope"
RESCALE_INTERCEPT = "rescale_intercept"

DICOM_HEADER = "dicom_header"
"""JSON text (pydicom ``Dataset.to_json``) of the source header without pixel data.

For a series it is the first slice's header (after sorting). Kept as a string
so that MONAI's collation of meta dicts works unchanged."""

DERIVATION = "medsr_derivation"
"""Set by inference: e.g. ``"medsr 0.1.0 edsr_m x2"``; written to DerivationDescription."""

SOURCE_INFO = "medsr_source_info"
"""JSON text the writers need about the source: stored dtype, NIfTI qform/sform codes, transfer syntax."""

NORM_METHOD = "norm_method"
"""Intensity mapping to [0, 1]: ``"window"`` (CT), ``"percentile"`` (MR, X-ray), ``"bits"`` (X-ray)."""

NORM_LOW = "norm_low"
NORM_HIGH = "norm_high"
"""Physical values mapped to 0 and 1; the inverse is ``x * (high - low) + low``."""
