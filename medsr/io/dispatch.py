"""``read_any``: which reader reads an input (file, folder, list of files), without MONAI."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsr.errors import InputError, MedsrError

from ._common import DICOM_SUFFIXES, NIFTI_SUFFIXES, RASTER_SUFFIXES, UnexpectedReadError, full_suffix
from .dicom import read_dicom
from .discover import is_dicom_candidate
from .nifti import read_nifti
from .raster import read_raster

__all__ = ["read_any"]


def read_any(paths: Sequence[Path], modality: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Dispatch on the input: a folder or several files -> DICOM series; else by extension/content.

    Every failure is an :class:`~medsr.errors.InputError` (UsageError for a bad ``modality``):
    the format readers check what they know can go wrong, and an unexpected exception from a
    decoding library becomes an ``UnexpectedReadError`` naming the input, never a traceback.
    """
    try:
        return _read_any(paths, modality)
    except (MedsrError, KeyboardInterrupt):
        raise
    except MemoryError as e:
        where = paths[0] if len(paths) else "input"
        raise UnexpectedReadError(f"{where}: not enough memory to read this image; the file may be corrupt.") from e
    except RecursionError as e:
        where = paths[0] if len(paths) else "input"
        raise UnexpectedReadError(f"{where}: structure nested too deeply; the file is corrupt.") from e
    except Exception as e:
        where = paths[0] if len(paths) else "input"
        text = str(e).strip().splitlines()
        why = f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__
        raise UnexpectedReadError(f"{where}: cannot read this file ({why}); it is probably corrupt.") from e


def _read_any(paths: Sequence[Path], modality: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no input given; pass a file, a folder holding one DICOM series, or a list of DICOM files.")
    for p in paths:
        if not p.exists():
            if p.is_symlink():
                raise InputError(f"{p}: a broken or looping symbolic link; point it at an image file.")
            raise InputError(f"{p}: no such file or folder; check the path.")
    if len(paths) > 1:
        for p in paths:
            if p.is_dir() or full_suffix(p) in NIFTI_SUFFIXES or full_suffix(p) in RASTER_SUFFIXES:
                raise InputError(
                    f"{p}: a list of inputs must be the DICOM files of one series; pass other files one at a time."
                )
        return read_dicom(paths, modality)
    p = paths[0]
    if p.is_dir():
        return read_dicom([p], modality)
    if not p.is_file():
        raise InputError(f"{p}: not a regular file (a device, pipe or socket); pass an image file.")
    try:
        with open(p, "rb"):
            pass
    except PermissionError as e:
        raise InputError(f"{p}: permission denied; make the file readable.") from e
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file (0 bytes); the copy is incomplete, re-copy or re-export it.")
    suffix = full_suffix(p)
    if suffix in NIFTI_SUFFIXES:
        return read_nifti(p, modality)
    if suffix in RASTER_SUFFIXES:
        return read_raster(p, RASTER_SUFFIXES[suffix], modality)
    if suffix in DICOM_SUFFIXES or suffix == "" or is_dicom_candidate(p):
        return read_dicom([p], modality)
    raise InputError(
        f"{p}: unsupported file type {suffix!r}; medsr reads DICOM, NIfTI (.nii, .nii.gz), PNG, TIFF and JPEG."
    )
