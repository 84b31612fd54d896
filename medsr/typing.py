"""Type aliases shared across medsr (the same as MONAI's ``monai.config`` ones, defined here so
that modules on the MONAI-free paths can use them)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Literal, Union

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["Modality", "NdarrayOrTensor", "PathLike", "MODALITIES", "SCALES", "is_meta_tensor"]

Modality = Literal["xray", "ct", "mr"]
"""The three modality families medsr knows; DICOM CR/DX/DR/RG/MG map to ``"xray"``."""

NdarrayOrTensor = Union["np.ndarray", "torch.Tensor"]
"""A numpy array or a torch tensor (``monai.config.NdarrayOrTensor``)."""

PathLike = Union[str, os.PathLike]
"""A file system path (``monai.config.PathLike``)."""

MODALITIES: tuple[str, ...] = ("xray", "ct", "mr")
SCALES: tuple[int, ...] = (2, 4)


def is_meta_tensor(x: Any) -> bool:
    """``isinstance(x, monai.data.MetaTensor)`` without importing MONAI (none exists before it is imported)."""
    module = sys.modules.get("monai.data.meta_tensor")
    return module is not None and isinstance(x, module.MetaTensor)
