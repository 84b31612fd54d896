"""DICOM: read single-frame, multi-frame and series into physical units; write derived instances.

Reading (see :mod:`medsr.meta` for the array layout):

* the Modality LUT is applied with pydicom's ``apply_modality_lut`` (or the enhanced
  multi-frame Pixel Value Transformation); a VOI LUT never is;
* MONOCHROME1 is inverted in the stored-value domain, ``s' = lo + hi - s`` over the
  BitsStored range, before the Modality LUT, so bright = dense for every modality and
  the writer can undo it exactly;
* in-plane spacing from PixelSpacing (``[row spacing (y), column spacing (x)]``), else
  ImagerPixelSpacing, else 1 mm with source ``"none"`` (a zero spacing counts as absent);
* series: one SeriesInstanceUID, slices sorted by ImagePositionPatient projected on the
  slice normal (cross product of ImageOrientationPatient), uniform spacing checked;
  multi-frame: frames are the third axis, positions from the per-frame functional groups;
* files are refused before any pixel is decoded when they carry no pixel data, colour,
  1-bit or more than :data:`~medsr.io._common.MAX_PIXELS` pixels; a file coded with a
  lossy transfer syntax gets ``LossyImageCompression = "01"`` in its recorded header.

Writing makes a new derived instance that ``dciodvfy`` accepts: new Series/SOP Instance
UIDs, ``ImageType = DERIVED\\SECONDARY\\<kept values>``, DerivationDescription, updated
Rows/Columns, spacing, positions, pixel data in the input's stored representation, written
as Explicit VR Little Endian, with the PS3.3 provenance of :mod:`.provenance`.

Modules: :mod:`.header` (modality, header JSON, geometry read from a header),
:mod:`.decode` (parse, refuse, decode pixels), :mod:`.read` (files, multi-frame, series),
:mod:`.encode` (stored-value conversion), :mod:`.write` (derived instances and series),
:mod:`.provenance` (the derived series' PS3.3 attributes).
"""

from __future__ import annotations

from .decode import MAX_COMPRESSION_RATIO, MAX_FRAMES, read_dicom_header
from .header import LOSSY_TRANSFER_SYNTAXES, XRAY_MODALITIES
from .read import dicom_files_in_folder, read_dicom
from .write import SOURCES_CSV, series_slice_names, write_dicom

__all__ = [
    "XRAY_MODALITIES",
    "LOSSY_TRANSFER_SYNTAXES",
    "MAX_FRAMES",
    "MAX_COMPRESSION_RATIO",
    "read_dicom",
    "read_dicom_header",
    "dicom_files_in_folder",
    "SOURCES_CSV",
    "series_slice_names",
    "write_dicom",
]
