"""DICOM files built for tests: small hostile or edge-case objects that no sample file is.

Imported by bare name (``from dicom_files import multiframe_dicom``): tests/ is on ``sys.path``
because tests/conftest.py lives there (pytest's default "prepend" import mode).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

__all__ = ["multiframe_dicom"]


def multiframe_dicom(path: Path, *, frames: int, pixel_data: bytes, rows: int = 1, cols: int = 1,
                     deflate: bool = True, rescale: tuple[float, float] = (2, -3)) -> Path:
    """Write an 8-bit MONOCHROME2 secondary-capture multi-frame DICOM declaring ``frames`` frames.

    ``pixel_data`` is stored as it is (it need not match the declared size: a frame bomb
    declares far more than it holds); ``deflate`` codes the file in Deflated Explicit VR Little
    Endian, so zeros cost almost nothing on disk. ``rescale`` is (RescaleSlope, RescaleIntercept).
    """
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian if deflate else ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality, ds.PhotometricInterpretation = "OT", "MONOCHROME2"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 8, 8, 7, 0
    ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.PixelData = pixel_data
    ds.save_as(path, enforce_file_format=True)
    return Path(path)
