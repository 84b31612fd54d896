"""Image I/O: read DICOM / NIfTI / PNG / TIFF / JPEG into a ``MetaTensor`` and write it back.

``load_image`` returns a channel-first float32 :class:`monai.data.MetaTensor` in physical
units (HU for CT after the Modality LUT; stored values for raster images), laid out as
documented in :mod:`medsr.meta` (MONAI reader convention: ``(1, X, Y[, Z])``, RAS affine).
Its meta holds MONAI's ``affine``, ``original_affine``, ``spatial_shape``, ``space``,
``filename_or_obj`` and the medsr keys: ``medsr_format``, ``modality``, ``spacing``,
``spacing_source``, ``bits_stored``, ``photometric_interpretation``, ``rescale_slope``,
``rescale_intercept``, ``dicom_header`` (JSON text, ``""`` for non-DICOM), plus
:data:`SOURCE_INFO` (``"medsr_source_info"``, JSON text: stored dtype, NIfTI xform codes,
transfer syntax). Every value is a str/number/tuple/array, so ``list_data_collate`` works.

``save_image`` writes an (upscaled) image back in its input's format; ``read_image`` and
``write_image`` do the same on a plain ``(tensor, meta)`` pair without importing MONAI (the
command line's interpolation path, docs/performance.md); ``discover_inputs``
lists the images under a folder; ``MedsrReader`` plugs the readers into MONAI's
``LoadImage``; ``zoom_geometry`` (from :mod:`medsr.geometry`) and ``atomic_path`` are the geometry and file helpers
the writers use.

Modules: :mod:`~medsr.io.dicom`, :mod:`~medsr.io.nifti`, :mod:`~medsr.io.raster`
(format code), :mod:`~medsr.io.discover`, :mod:`~medsr.io.reader`, :mod:`~medsr.io.api`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medsr._lazy import lazy_exports
from medsr.geometry import zoom_geometry

from ._common import MAX_PIXELS, SOURCE_INFO, atomic_path, uneven_slices
from .api import load_image, read_image, save_image, write_image
from .discover import InputItem, discover_inputs

if TYPE_CHECKING:
    from .reader import MedsrReader

__all__ = [
    "load_image",
    "save_image",
    "read_image",
    "write_image",
    "MedsrReader",
    "discover_inputs",
    "InputItem",
    "zoom_geometry",
    "uneven_slices",
    "atomic_path",
    "MAX_PIXELS",
    "SOURCE_INFO",
]

# MedsrReader subclasses MONAI's ImageReader: imported when first used, so that reading and
# writing through read_image / write_image need no MONAI
__getattr__, __dir__ = lazy_exports(__name__, {"MedsrReader": "reader"}, globals())
