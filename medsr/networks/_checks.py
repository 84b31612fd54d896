"""Argument checks shared by the networks: every failure is a :class:`~medsr.errors.UsageError`.

Each message names the argument, the constraint, the value received and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

from medsr.errors import UsageError

__all__ = [
    "SCALE_FACTORS",
    "check_choice",
    "check_features_divisible",
    "check_kernel_sizes",
    "check_nonnegative_float",
    "check_positive_int",
    "check_positive_ints",
    "check_scale_factor",
    "check_sr_args",
    "check_spatial_dims",
]

SCALE_FACTORS: tuple[int, ...] = (2, 3, 4)
"""Scale factors the networks accept (the product ships 2 and 4, see ``medsr.typing.SCALES``)."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    """Return ``value`` as a float >= 0, else raise :class:`UsageError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise UsageError(f"`{name}` must be a number >= 0, got {value!r}. Pass e.g. 1.0.")
    return float(value)


def check_spatial_dims(value: object) -> int:
    """Return ``value`` if it is 2 or 3, else raise :class:`UsageError`."""
    if not _is_int(value) or value not in (2, 3):
        raise UsageError(f"`spatial_dims` must be 2 or 3, got {value!r}. Pass 2 for images, 3 for volumes.")
    return int(value)  # type: ignore[arg-type]


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices`` (case-insensitive), else raise :class:`UsageError`."""
    if not isinstance(value, str) or value.lower() not in choices:
        raise UsageError(f"`{name}` must be one of {', '.join(map(repr, choices))}, got {value!r}.")
    return value.lower()


def check_features_divisible(name: str, value: int, divisor_name: str, divisor: int) -> None:
    """Raise :class:`UsageError` unless ``value`` is a multiple of ``divisor``."""
    if value % divisor != 0:
        raise UsageError(
            f"`{name}` must be divisible by `{divisor_name}` ({divisor}), got {value}. "
            f"Pick {name} as a multiple of {divisor}."
        )


def check_sr_args(spatial_dims: object, in_channels: object, out_channels: object, scale_factor: object) -> None:
    """Check the four arguments every super-resolution network shares."""
    check_spatial_dims(spatial_dims)
    check_positive_int("in_channels", in_channels)
    check_positive_int("out_channels", out_channels)
    check_scale_factor(scale_factor)


def check_scale_factor(value: object) -> int:
    """Return ``value`` if it is 2, 3 or 4 (an int), else raise :class:`UsageError`."""
    if not _is_int(value) or value not in SCALE_FACTORS:
        raise UsageError(
            f"`scale_factor` must be 2, 3 or 4, got {value!r}. "
            "Pass 2 or 4 (the factors medsr ships); upscale further by running the network again."
        )
    return int(value)  # type: ignore[arg-type]
