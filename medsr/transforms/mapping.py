"""The modality mapping to [0, 1] on a plain tensor and its meta dict, without MONAI.

:class:`~medsr.transforms.intensity.ModalityNormalize` and its inverse are the MONAI
transforms (MetaTensor in and out); the rule they apply lives here so that the command
line's interpolation path, which reads and writes plain ``(tensor, meta)`` pairs
(:func:`medsr.io.read_image`), maps intensities the same way without importing MONAI.
The rule itself is documented in :mod:`medsr.transforms.intensity`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from medsr import meta as M
from medsr.errors import UsageError
from medsr.typing import MODALITIES

__all__ = [
    "DEFAULT_CT_WINDOW",
    "DEFAULT_PERCENTILES",
    "modality_from",
    "check_ct_window",
    "check_percentiles",
    "intensity_mapping",
    "normalise_data",
    "denormalise_data",
    "normalise_image",
    "denormalise_image",
    "without_mapping",
    "NORM_KEYS",
]

NORM_KEYS = (M.NORM_METHOD, M.NORM_LOW, M.NORM_HIGH)
"""The meta keys that record the mapping; removed again when an image goes back to physical units."""


def without_mapping(meta: Mapping[Any, Any]) -> dict[Any, Any]:
    """A copy of ``meta`` without :data:`NORM_KEYS`: the meta of the image back in physical units."""
    return {k: v for k, v in meta.items() if k not in NORM_KEYS}

DEFAULT_CT_WINDOW: tuple[float, float] = (-1024.0, 3071.0)
DEFAULT_PERCENTILES: tuple[float, float] = (0.5, 99.5)

_ALIASES = {
    "ct": "ct",
    "mr": "mr",
    "mri": "mr",
    "xray": "xray",
    "x-ray": "xray",
    "cr": "xray",
    "dx": "xray",
    "dr": "xray",
    "rg": "xray",
    "mg": "xray",
}

_TORCH_QUANTILE_MAX = 1_000_000
"""Above this many voxels the percentiles come from numpy (torch.quantile's limit, pytorch#64947; as MONAI)."""


def _scalar(v: object) -> object:
    """A Python scalar from a 0-d / 1-element tensor or array (meta values may be either)."""
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return v.item()
    if isinstance(v, np.ndarray) and v.size == 1:
        return v.item()
    if isinstance(v, (list, tuple)) and len(v) == 1:
        return _scalar(v[0])
    return v


def modality_from(meta: Mapping[Any, Any] | None, modality: str | None = None) -> str:
    """The modality to use: ``modality`` if given, else ``meta["modality"]``; one of ``MODALITIES``.

    DICOM codes are accepted (``CR``, ``DX``, ``DR``, ``RG``, ``MG`` -> ``"xray"``, ``MRI`` -> ``"mr"``).
    """
    source = "argument `modality`"
    if modality is None:
        value = meta.get(M.MODALITY) if meta is not None else None
        source = f"meta[{M.MODALITY!r}]"
        if value is None:
            raise UsageError(
                "the modality is unknown: the image has no "
                f"meta[{M.MODALITY!r}] (a plain tensor/array, or not read by medsr.io). "
                f"Pass modality= one of {MODALITIES}."
            )
    else:
        value = modality
    value = _scalar(value)
    key = str(value).strip().lower()
    if key not in _ALIASES:
        raise UsageError(
            f"{source} must be one of {MODALITIES}, got {value!r}. Pass modality= one of {MODALITIES} explicitly."
        )
    return _ALIASES[key]


def check_ct_window(ct_window: Sequence[float]) -> tuple[float, float]:
    """``ct_window`` as ``(low, high)`` floats, or a UsageError."""
    if len(ct_window) != 2 or not float(ct_window[1]) > float(ct_window[0]):
        raise UsageError(
            f"`ct_window` must be (low, high) in HU with high > low, got {tuple(ct_window)!r}; "
            f"the default is {DEFAULT_CT_WINDOW}."
        )
    return float(ct_window[0]), float(ct_window[1])


def check_percentiles(percentiles: Sequence[float]) -> tuple[float, float]:
    """``percentiles`` as ``(lower, upper)`` floats in [0, 100], or a UsageError."""
    if len(percentiles) != 2 or not 0.0 <= float(percentiles[0]) < float(percentiles[1]) <= 100.0:
        raise UsageError(
            f"`percentiles` must be (lower, upper) with 0 <= lower < upper <= 100, got {tuple(percentiles)!r}; "
            f"the default is {DEFAULT_PERCENTILES}."
        )
    return float(percentiles[0]), float(percentiles[1])


def _percentile_range(data: torch.Tensor, percentiles: tuple[float, float]) -> tuple[float, float]:
    flat = data.reshape(-1).to(torch.float64)
    if flat.numel() == 0:
        raise UsageError("cannot normalise an empty image (0 voxels); check the input's shape.")
    if flat.numel() > _TORCH_QUANTILE_MAX:
        lo, hi = np.percentile(flat.cpu().numpy(), percentiles)
    else:
        lo, hi = torch.quantile(flat, torch.tensor(percentiles, dtype=torch.float64, device=flat.device) / 100.0)
    return float(lo), float(hi)


def intensity_mapping(
    data: torch.Tensor,
    meta: Mapping[Any, Any] | None,
    modality: str | None = None,
    ct_window: tuple[float, float] = DEFAULT_CT_WINDOW,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> tuple[str, float, float, str]:
    """``(method, low, high, modality)`` that maps ``data`` (physical units) to [0, 1]."""
    modality = modality_from(meta, modality)
    if modality == "ct":
        method, (low, high) = "window", ct_window
    elif modality == "mr":
        method, (low, high) = "percentile", _percentile_range(data, percentiles)
    else:
        bits = _scalar(meta.get(M.BITS_STORED)) if meta is not None else None
        method = "percentile"
        if bits is not None:
            try:
                nbits = int(bits)  # type: ignore[call-overload]
            except (TypeError, ValueError):
                nbits = 0
            if 1 <= nbits <= 32:
                top = float(2**nbits - 1)
                if data.numel() and float(data.min()) >= 0.0 and float(data.max()) <= top:
                    method, low, high = "bits", 0.0, top
        if method == "percentile":
            low, high = _percentile_range(data, percentiles)
    if not high > low:  # constant image: keep the inverse exact, avoid 0/0
        high = low + 1.0
    return method, float(low), float(high), modality


def normalise_data(
    data: torch.Tensor, low: float, high: float, *, clip: bool = False, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``(data - low) / (high - low)``, computed in float64 when ``data`` or ``dtype`` is float64."""
    work = torch.float64 if dtype == torch.float64 or data.dtype == torch.float64 else torch.float32
    out = (data.to(work) - low) / (high - low)
    if clip:
        out = out.clamp(0.0, 1.0)
    return out.to(dtype)


def denormalise_data(data: torch.Tensor, low: Any, high: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``data * (high - low) + low`` in float64; ``low``/``high`` may be per-sample values of a batch."""
    work = torch.float64
    lo = torch.as_tensor(low, dtype=work, device=data.device)
    hi = torch.as_tensor(high, dtype=work, device=data.device)
    if lo.numel() > 1 or hi.numel() > 1:  # per-sample values of a batch
        shape = (-1,) + (1,) * (data.ndim - 1)
        lo, hi = lo.reshape(shape), hi.reshape(shape)
    return (data.to(work) * (hi - lo) + lo).to(dtype)


def normalise_image(
    data: torch.Tensor,
    meta: Mapping[Any, Any] | None,
    *,
    modality: str | None = None,
    ct_window: tuple[float, float] = DEFAULT_CT_WINDOW,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    clip: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, dict[Any, Any]]:
    """``data`` mapped to [0, 1] and a copy of ``meta`` that records the mapping (and the modality)."""
    method, low, high, modality = intensity_mapping(data, meta, modality, ct_window, percentiles)
    out_meta = dict(meta or {})
    out_meta.update({M.NORM_METHOD: method, M.NORM_LOW: low, M.NORM_HIGH: high, M.MODALITY: modality})
    return normalise_data(data, low, high, clip=clip, dtype=dtype), out_meta


def denormalise_image(
    data: torch.Tensor, meta: Mapping[Any, Any], dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, dict[Any, Any]]:
    """``data`` back in physical units with the mapping recorded in ``meta``, and ``meta`` without it."""
    if M.NORM_LOW not in meta or M.NORM_HIGH not in meta:
        raise UsageError(
            f"cannot invert the normalisation: no `low`/`high` given and the image has no "
            f"meta[{M.NORM_LOW!r}]/meta[{M.NORM_HIGH!r}] (not produced by ModalityNormalize, or meta "
            "tracking was off). Pass low= and high= (the physical values of 0 and 1)."
        )
    out = denormalise_data(data, meta[M.NORM_LOW], meta[M.NORM_HIGH], dtype)
    return out, without_mapping(meta)
