"""Argument checks shared across medsr: every failure is one :class:`~medsr.errors.UsageError` line.

Each message names the argument, the constraint, the value received and, where one
exists, the fix. Choices are looked up as MONAI's ``look_up_option`` does (an unknown
name is answered with the valid ones, never a bare ``KeyError``); the closed sets of
names are ``StrEnum``s, so ``Modality.CT == "ct"`` and configs keep plain strings.

Example::

    >>> look_up_option("kind", "L1", ("l1", "l2"))
    'l1'
    >>> Modality("ct") is Modality.CT
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

import numpy as np

from medsr.errors import UsageError
from medsr.typing import MODALITIES, SCALES

__all__ = [
    "Modality",
    "Degradation",
    "Precision",
    "Interpolation",
    "IO_MODALITIES",
    "SCALE_FACTORS",
    "look_up_option",
    "check_modality",
    "check_io_modality",
    "check_scale",
    "check_scales",
    "check_precision",
    "check_interpolation",
    "check_degradation",
    "check_modality_or_auto",
    "check_choice",
    "check_positive_int",
    "check_positive_ints",
    "check_int_at_least",
    "check_kernel_sizes",
    "check_nonnegative_float",
    "check_finite_nonnegative",
    "check_range",
    "check_probability",
    "check_spatial_dims",
    "check_features_divisible",
    "check_scale_factor",
    "check_sr_args",
]


class Modality(StrEnum):
    """The three modality families medsr knows (DICOM CR/DX/DR/RG/MG map to ``xray``)."""

    XRAY = "xray"
    CT = "ct"
    MR = "mr"


class Degradation(StrEnum):
    """How an evaluation makes the LR input: the classic bicubic protocol or the modality's physics."""

    BICUBIC = "bicubic"
    MODALITY = "modality"


class Precision(StrEnum):
    """Network arithmetic: fp32 (default), bf16 autocast (CPU), fp16 autocast (CUDA)."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class Interpolation(StrEnum):
    """Interpolation upscalers (the user-facing names; ``medsr.transforms.KERNELS`` holds the kernels)."""

    BICUBIC = "bicubic"
    LANCZOS = "lanczos"


IO_MODALITIES: tuple[str, ...] = (*MODALITIES, "other")
"""Modalities a reader may be told (``other``: no modality-specific handling)."""

SCALE_FACTORS: tuple[int, ...] = (2, 3, 4)
"""Scale factors the networks accept (the product ships 2 and 4, see ``medsr.typing.SCALES``)."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def look_up_option(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` lower-cased if it is one of ``choices`` (case-insensitive), else raise.

    The message lists the valid names: ``` `kind` must be one of 'l1', 'l2', got 'l3'. ```
    """
    options = tuple(str(c) for c in choices)
    if not isinstance(value, str) or value.lower() not in options:
        raise UsageError(f"`{name}` must be one of {', '.join(map(repr, options))}, got {value!r}.")
    return value.lower()


check_choice = look_up_option
"""The networks' and losses' name for :func:`look_up_option` (argument order ``name, value, choices``)."""


def check_modality(modality: Any, name: str = "modality") -> str | None:
    """``modality`` if it is ``None`` or one of ``xray``, ``ct``, ``mr`` (exact), else raise."""
    if modality is not None and modality not in MODALITIES:
        raise UsageError(f"`{name}` must be one of {MODALITIES} or None, got {modality!r}.")
    return modality


def check_io_modality(modality: str | None) -> str | None:
    """Validate the ``modality`` override of the readers (``other`` allowed)."""
    if modality is not None and modality not in IO_MODALITIES:
        raise UsageError(f"`modality` must be one of {', '.join(IO_MODALITIES)} or None, got {modality!r}.")
    return modality


def check_scale(scale: Any, name: str = "scale") -> int:
    """``scale`` if it is one of the shipped factors (2, 4), else raise."""
    if scale not in SCALES:
        raise UsageError(f"`{name}` must be one of {', '.join(map(str, SCALES))}, got {scale}.")
    return int(scale)


def check_scales(scales: Sequence[int]) -> tuple[int, ...]:
    """The distinct scales of ``scales`` in order, each one of the shipped factors, else raise."""
    out = tuple(dict.fromkeys(int(s) for s in scales))
    if not out or any(s not in SCALES for s in out):
        raise UsageError(f"`scales` must be taken from {SCALES}, got {tuple(out)}.")
    return out


def check_precision(precision: Any) -> str:
    """``precision`` if it is a :class:`Precision` name (exact), else raise."""
    if precision not in tuple(Precision):
        raise UsageError(f"`precision` must be fp32, bf16 or fp16, got {precision!r}.")
    return str(precision)


def check_interpolation(kind: Any) -> str:
    """``kind`` if it is an :class:`Interpolation` name (exact), else raise."""
    if kind not in tuple(Interpolation):
        raise UsageError(f"`kind` must be one of {sorted(str(k) for k in Interpolation)}, got {kind!r}.")
    return str(kind)


def check_degradation(degradation: Any) -> str:
    """``degradation`` if it is a :class:`Degradation` name (exact), else raise."""
    if degradation not in tuple(Degradation):
        raise UsageError(f"`degradation` must be one of {', '.join(Degradation)}, got {degradation!r}.")
    return str(degradation)


def check_modality_or_auto(value: Any, where: str) -> str | None:
    """``None`` for ``None``/``""``/``"auto"``, else the lower-cased modality; ``where`` starts the message."""
    if value in (None, "", "auto"):
        return None
    text = str(value).strip().lower()
    if text not in MODALITIES:
        raise UsageError(f"{where}: modality must be auto, {', '.join(MODALITIES)}; got {value!r}.")
    return text


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int >= 1, else raise :class:`UsageError`."""
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise UsageError(f"`{name}` must be a positive integer, got {value!r}. Pass an int >= 1.")
    return int(value)  # type: ignore[arg-type]


def check_positive_ints(name: str, values: object, length: int | None = None) -> tuple[int, ...]:
    """Return ``values`` as a tuple of ints >= 1 (optionally of a given length), else raise."""
    if not isinstance(values, Sequence) or isinstance(values, str) or not all(_is_int(v) and v >= 1 for v in values):
        raise UsageError(f"`{name}` must be a sequence of positive integers, got {values!r}. Pass e.g. (64, 32).")
    if length is not None and len(values) != length:
        raise UsageError(f"`{name}` must have {length} entries, got {len(values)} ({values!r}). Pass {length} ints.")
    return tuple(int(v) for v in values)


def check_int_at_least(name: str, value: Any, minimum: int = 1) -> int:
    """An integer (numpy integers too) ``>= minimum``, for the transforms' factors and multiples."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UsageError(f"`{name}` must be an integer >= {minimum} (medsr uses 2 or 4), got {value!r}.")
    return int(value)


def check_kernel_sizes(name: str, values: object, length: int | None = None) -> tuple[int, ...]:
    """Return odd, positive kernel sizes (odd so that ``padding = k // 2`` keeps the size), else raise."""
    sizes = check_positive_ints(name, values, length)
    if any(k % 2 == 0 for k in sizes):
        raise UsageError(
            f"`{name}` must hold odd kernel sizes (so that the padding keeps the image size), got {values!r}. "
            "Use odd sizes such as (9, 1, 5)."
        )
    return sizes


def check_nonnegative_float(name: str, value: object) -> float:
    """Return ``value`` as a float >= 0 (an int or float, not a string), else raise :class:`UsageError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise UsageError(f"`{name}` must be a number >= 0, got {value!r}. Pass e.g. 1.0.")
    return float(value)


def check_finite_nonnegative(name: str, value: Any) -> float:
    """Anything ``float()`` accepts that is finite and >= 0 (the transforms' physical parameters)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not v >= 0 or math.isinf(v):
        raise UsageError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    return v


def check_range(name: str, value: Any, positive: bool = False) -> tuple[float, float]:
    """A ``(low, high)`` pair with ``0 <= low <= high < inf`` (``0 < low`` when ``positive``)."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"`{name}` must be a (low, high) pair of numbers, got {value!r}.") from None
    floor_ok = lo > 0 if positive else lo >= 0
    if not (floor_ok and hi >= lo and math.isfinite(hi)):
        bound = "0 < low" if positive else "0 <= low"
        raise UsageError(f"`{name}` must be (low, high) with {bound} <= high < inf, got {tuple(value)!r}.")
    return lo, hi


def check_probability(value: Any, name: str = "prob") -> float:
    """A probability in [0, 1]."""
    p = float(value)
    if not 0.0 <= p <= 1.0:
        raise UsageError(f"`{name}` must be in [0, 1], got {value!r}.")
    return p


def check_spatial_dims(value: object) -> int:
    """Return ``value`` if it is 2 or 3, else raise :class:`UsageError`."""
    if not _is_int(value) or value not in (2, 3):
        raise UsageError(f"`spatial_dims` must be 2 or 3, got {value!r}. Pass 2 for images, 3 for volumes.")
    return int(value)  # type: ignore[arg-type]


def check_features_divisible(name: str, value: int, divisor_name: str, divisor: int) -> None:
    """Raise :class:`UsageError` unless ``value`` is a multiple of ``divisor``."""
    if value % divisor != 0:
        raise UsageError(
            f"`{name}` must be divisible by `{divisor_name}` ({divisor}), got {value}. "
            f"Pick {name} as a multiple of {divisor}."
        )


def check_scale_factor(value: object) -> int:
    """Return ``value`` if it is 2, 3 or 4 (an int), else raise :class:`UsageError`."""
    if not _is_int(value) or value not in SCALE_FACTORS:
        raise UsageError(
            f"`scale_factor` must be 2, 3 or 4, got {value!r}. "
            "Pass 2 or 4 (the factors medsr ships); upscale further by running the network again."
        )
    return int(value)  # type: ignore[arg-type]


def check_sr_args(spatial_dims: object, in_channels: object, out_channels: object, scale_factor: object) -> None:
    """Check the four arguments every super-resolution network shares."""
    check_spatial_dims(spatial_dims)
    check_positive_int("in_channels", in_channels)
    check_positive_int("out_channels", out_channels)
    check_scale_factor(scale_factor)
