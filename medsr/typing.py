"""Type aliases shared across medsr (re-using MONAI's where they exist)."""

from __future__ import annotations

from typing import Literal

from monai.config import NdarrayOrTensor, PathLike

__all__ = ["Modality", "NdarrayOrTensor", "PathLike", "MODALITIES", "SCALES"]

Modality = Literal["xray", "ct", "mr"]
"""The three modality families medsr knows; DICOM CR/DX/DR/RG/MG map to ``"xray"``."""

MODALITIES: tuple[str, ...] = ("xray", "ct", "mr")
SCALES: tuple[int, ...] = (2, 4)
