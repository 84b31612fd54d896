"""``MedsrReader``: medsr's readers behind MONAI's ``ImageReader`` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import ImageReader
from monai.utils import ensure_tuple

from medsr.errors import InputError
from medsr.typing import PathLike
from medsr.validation import check_io_modality

from ._common import DICOM_SUFFIXES, NIFTI_SUFFIXES, RASTER_SUFFIXES, full_suffix
from .discover import is_dicom_candidate
from .dispatch import read_any

__all__ = ["MedsrReader"]


@dataclass
class _Loaded:
    array: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


class MedsrReader(ImageReader):
    """Read DICOM (file, multi-frame, series folder or file list), NIfTI, PNG, TIFF, JPEG for MONAI.

    ``get_data`` returns the array without channel dimension (``(X, Y[, Z])``, physical
    units) and the meta dict documented in :mod:`medsr.meta` (``original_channel_dim`` is
    ``"no_channel"``), so ``LoadImage(reader=MedsrReader(), image_only=True,
    ensure_channel_first=True)`` gives the same MetaTensor as :func:`medsr.io.load_image`.

    Unlike MONAI's readers, a list of files is one DICOM series, not channels to stack.

    Errors: :class:`~medsr.errors.InputError` propagates unchanged when the reader is
    passed at call time, ``LoadImage(...)(path, reader=MedsrReader())`` (what ``load_image``
    does). When it is given to the constructor, ``LoadImage(reader=MedsrReader())`` or
    ``LoadImaged(keys, reader=MedsrReader())``, MONAI catches the error, tries its own
    readers on the same file, and if they all fail raises ``RuntimeError`` whose message
    contains medsr's message (and if one succeeds, returns that reader's result).

    Args:
        modality: force ``meta["modality"]`` (``"xray"``, ``"ct"``, ``"mr"``, ``"other"``);
            default: from the DICOM header, ``"xray"`` for PNG/TIFF/JPEG, guessed for NIfTI.

    Example::

        from monai.transforms import LoadImaged
        load = LoadImaged("image", reader=MedsrReader(), ensure_channel_first=True)
        img = load({"image": "ct_series/"})["image"]
    """

    def __init__(self, modality: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.modality = check_io_modality(modality)
        self.kwargs = kwargs

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        names = [Path(n) for n in ensure_tuple(filename)]
        if not names:
            return False
        if len(names) == 1 and names[0].is_dir():
            return True
        return all(
            full_suffix(n) in DICOM_SUFFIXES + NIFTI_SUFFIXES or full_suffix(n) in RASTER_SUFFIXES
            or (n.is_file() and is_dicom_candidate(n))
            for n in names
        )

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs: Any) -> _Loaded:
        array, meta = read_any([Path(p) for p in ensure_tuple(data)], self.modality)
        return _Loaded(array, meta)

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        if isinstance(img, (list, tuple)):
            if len(img) != 1:
                raise InputError(f"MedsrReader.get_data expects one image, got {len(img)}.")
            img = img[0]
        return img.array, dict(img.meta)
