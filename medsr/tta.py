"""Test-time self-ensemble: average an upscaler over the eight flips/rotations of the input (``--tta``).

Lim et al., 2017, "Enhanced Deep Residual Networks for Single Image Super-Resolution"
(the "geometric self-ensemble" of EDSR+), https://arxiv.org/abs/1707.02921; Timofte,
Rothe, Van Gool, 2016, "Seven ways to improve example-based single image super
resolution", CVPR. Each of the eight elements of the dihedral group of the square
(four 90-degree rotations, each with and without a flip) is applied to the LR input
in-plane, the upscaler runs on it, the inverse transform is applied to its output, and
the eight outputs are averaged. It costs eight forward passes and needs no retraining.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from medsr.inference import INTERPOLATIONS

__all__ = ["DIHEDRAL", "dihedral", "undo_dihedral", "TTAUpscaler", "with_tta"]

DIHEDRAL: tuple[tuple[int, bool], ...] = tuple((k, flip) for k in range(4) for flip in (False, True))
"""The eight in-plane transforms as ``(quarter turns, flip first)``; ``(0, False)`` is the identity."""

_PLANE = (1, 2)  # the in-plane axes of a channel-first (C, X, Y[, Z]) image


def dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Flip the second in-plane axis (when ``flip``), then rotate ``k`` quarter turns in-plane."""
    if flip:
        x = torch.flip(x, (_PLANE[1],))
    return torch.rot90(x, k, _PLANE)


def undo_dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """The inverse of :func:`dihedral` with the same ``(k, flip)``."""
    x = torch.rot90(x, -k, _PLANE)
    if flip:
        x = torch.flip(x, (_PLANE[1],))
    return x


class TTAUpscaler:
    """Wrap an upscaler (``medsr.inference.Upscaler``) so it returns the mean over :data:`DIHEDRAL`.

    The output has the wrapped upscaler's shape, dtype and geometry (every transform is undone
    before averaging); volumes ``(C, X, Y, Z)`` are transformed in-plane only.

    Args:
        upscaler: called on a normalised channel-first tensor, as in :mod:`medsr.inference`.

    Example::

        up = TTAUpscaler(load_upscaler("edsr_m", 2))
        sr = up(lr)  # mean of the 8 transformed passes, named "edsr_m+tta" in reports
    """

    def __init__(self, upscaler: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.upscaler = upscaler
        self.scale = int(getattr(upscaler, "scale", 0))
        self.is_gan = bool(getattr(upscaler, "is_gan", False))
        self.name = f"{getattr(upscaler, 'name', 'network')}+tta"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(x, "as_tensor"):
            x = x.as_tensor()
        x = torch.as_tensor(x)
        total: torch.Tensor | None = None
        for k, flip in DIHEDRAL:
            out = undo_dihedral(torch.as_tensor(self.upscaler(dihedral(x, k, flip).contiguous())).float(), k, flip)
            total = out.clone() if total is None else total.add_(out)
        return total / len(DIHEDRAL)

    def __getattr__(self, name: str) -> Any:  # halo, device, receptive_radius... of the wrapped upscaler
        if name == "upscaler":
            raise AttributeError(name)
        return getattr(self.upscaler, name)


def with_tta(upscaler: Any, enabled: bool = True) -> Any:
    """``TTAUpscaler(upscaler)`` for networks when ``enabled``; interpolation (already symmetric) is returned as is."""

    if not enabled or getattr(upscaler, "name", None) in INTERPOLATIONS:
        return upscaler
    return TTAUpscaler(upscaler)
