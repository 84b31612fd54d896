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
(format code), :mod:`~medsr.io.discover`, :mod:`~medsr.io.dispatch` (which reader reads an input),
:mod:`~medsr.io.reader`, :mod:`~medsr.io.api`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medsr._lazy import lazy_exports

if TYPE_CHECKING:  # what the names below resolve to, for type checkers and IDEs
    from medsr.geometry import zoom_geometry

    from ._common import MAX_PIXELS, SOURCE_INFO, atomic_path, uneven_slices
    from .api import load_image, read_image, save_image, write_image
    from .discover import InputItem, discover_inputs
    from .reader import MedsrReader

# name -> sub-module, imported on first use: `medsr report` needs atomic_path, not torch (api) nor
# MONAI (MedsrReader subclasses its ImageReader) (docs/performance.md, start-up)
_EXPORTS = {
    "load_image": "api",
    "save_image": "api",
    "read_image": "api",
    "write_image": "api",
    "MedsrReader": "reader",
    "discover_inputs": "discover",
    "InputItem": "discover",
    "zoom_geometry": "medsr.geometry",
    "uneven_slices": "_common",
    "atomic_path": "_common",
    "MAX_PIXELS": "_common",
    "SOURCE_INFO": "_common",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
