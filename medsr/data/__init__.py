"""Datalists and HR -> LR pipelines for training and evaluation."""

from __future__ import annotations

from medsr.data.datalist import (
    CLASS_NAMES,
    build_datalist,
    detect_modality,
    limit_per_modality,
    load_datalist,
    modality_weights,
    split_datalist,
    split_slices,
    volume_depth,
)
from medsr.data.pipeline import load_transforms, train_transforms, val_transforms

__all__ = [
    "CLASS_NAMES",
    "build_datalist",
    "detect_modality",
    "limit_per_modality",
    "load_datalist",
    "modality_weights",
    "split_datalist",
    "split_slices",
    "volume_depth",
    "load_transforms",
    "train_transforms",
    "val_transforms",
]
