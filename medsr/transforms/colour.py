"""RGB <-> YCbCr (ITU-R BT.601, "studio swing"), as MATLAB ``rgb2ycbcr`` / ``ycbcr2rgb``.

The super-resolution literature (SRCNN, VDSR, EDSR, RCAN...) upscales and scores colour
images on the luminance ``Y`` of BT.601 YCbCr, computed exactly as MATLAB's
``rgb2ycbcr``: for ``R, G, B`` in [0, 1],

    Y  = ( 16 +  65.481 R + 128.553 G +  24.966 B) / 255
    Cb = (128 -  37.797 R -  74.203 G + 112.000 B) / 255
    Cr = (128 + 112.000 R -  93.786 G -  18.214 B) / 255

so ``Y`` spans [16, 235] / 255 and ``Cb, Cr`` span [16, 240] / 255. MATLAB rounds to
8 bits when its input is ``uint8`` (``round8=True`` here), which is what the papers' code
does before any metric. Arrays are channel-first ``(3, *spatial)``, values in [0, 1]
(numpy arrays or tensors, returned as the same type, float).

References:
    ITU-R Recommendation BT.601-7 (2011), "Studio encoding parameters of digital television".
    MATLAB Image Processing Toolbox, ``rgb2ycbcr``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from medsr.errors import UsageError
from medsr.transforms.resample import upsample
from medsr.typing import NdarrayOrTensor

__all__ = ["RGB_TO_YCBCR", "YCBCR_OFFSET", "rgb_to_ycbcr", "ycbcr_to_rgb", "rgb_to_y", "quantize8", "upscale_rgb"]

RGB_TO_YCBCR = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float64
) / 255.0
"""BT.601 matrix for R, G, B in [0, 1] to Y, Cb, Cr in [0, 1] (MATLAB ``rgb2ycbcr``)."""

YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64) / 255.0
"""Offsets of Y, Cb, Cr on the [0, 1] scale."""

_YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)


def _check_three(x: NdarrayOrTensor, name: str) -> None:
    if x.ndim < 3 or int(x.shape[0]) != 3:
        raise UsageError(
            f"`{name}` must be channel-first with 3 channels (3, *spatial), got shape {tuple(x.shape)}; "
            "move the colour axis first (e.g. np.moveaxis(img, -1, 0))."
        )


def quantize8(x: NdarrayOrTensor) -> NdarrayOrTensor:
    """Round [0, 1] values to the nearest of the 256 levels ``k / 255`` and clip, as MATLAB ``uint8(x * 255)``.

    Halves round up (MATLAB rounds half away from zero; numpy and torch round half to even).
    """
    if isinstance(x, torch.Tensor):
        return torch.floor((x * 255.0).clamp(0.0, 255.0) + 0.5) / 255.0
    return np.floor(np.clip(np.asarray(x, dtype=np.float64) * 255.0, 0.0, 255.0) + 0.5) / 255.0


def _mix(x: NdarrayOrTensor, matrix: np.ndarray, offset: np.ndarray, sign: float) -> NdarrayOrTensor:
    """``matrix @ (x + sign * offset)`` along the channel axis (sign -1: subtract before), or ``+ offset`` after."""
    if isinstance(x, torch.Tensor):
        m = torch.as_tensor(matrix, dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
        o = torch.as_tensor(offset, dtype=m.dtype, device=x.device).reshape((-1,) + (1,) * (x.ndim - 1))
        v = x.to(m.dtype)
        if sign < 0:
            v = v - o
        out = torch.tensordot(m, v, dims=([1], [0]))
        return out + o if sign > 0 else out
    a = np.asarray(x, dtype=np.float64)
    o = offset.reshape((-1,) + (1,) * (a.ndim - 1))
    if sign < 0:
        a = a - o
    out = np.tensordot(matrix, a, axes=([1], [0]))
    return out + o if sign > 0 else out


def rgb_to_ycbcr(rgb: NdarrayOrTensor, round8: bool = False) -> NdarrayOrTensor:
    """``(3, *spatial)`` RGB in [0, 1] -> ``(3, *spatial)`` Y, Cb, Cr in [0, 1] (MATLAB ``rgb2ycbcr``).

    Args:
        rgb: channel-first RGB, values in [0, 1].
        round8: round the result to 8 bits, as MATLAB does for a ``uint8`` image.
    """
    _check_three(rgb, "rgb")
    out = _mix(rgb, RGB_TO_YCBCR, YCBCR_OFFSET, +1.0)
    return quantize8(out) if round8 else out


def ycbcr_to_rgb(ycbcr: NdarrayOrTensor) -> NdarrayOrTensor:
    """``(3, *spatial)`` Y, Cb, Cr in [0, 1] -> RGB in [0, 1] (MATLAB ``ycbcr2rgb``; not clipped)."""
    _check_three(ycbcr, "ycbcr")
    return _mix(ycbcr, _YCBCR_TO_RGB, YCBCR_OFFSET, -1.0)


def upscale_rgb(rgb: torch.Tensor, upscale_y: Callable[[torch.Tensor], torch.Tensor], scale: int) -> torch.Tensor:
    """Upscale ``(3, X, Y)`` RGB in [0, 1] as the SR literature does: ``upscale_y`` on Y, bicubic on Cb/Cr.

    Y is computed without rounding (the input may have more than 8 bits); Cb and Cr are
    upsampled with MATLAB ``imresize`` bicubic; the result is converted back to RGB and
    clipped to [0, 1] (the YCbCr cube is larger than the RGB one).

    Args:
        rgb: channel-first RGB tensor, values in [0, 1].
        upscale_y: maps a ``(1, X, Y)`` Y tensor to ``(1, scale * X, scale * Y)`` (a network
            or interpolation upscaler).
        scale: the in-plane factor of ``upscale_y``.
    """
    ycc = rgb_to_ycbcr(torch.as_tensor(rgb).float())
    y = torch.as_tensor(upscale_y(ycc[:1])).float()
    cbcr = upsample(ycc[1:], scale, axes=(0, 1))
    if tuple(y.shape[1:]) != tuple(cbcr.shape[1:]):
        raise UsageError(
            f"the Y upscaler returned shape {tuple(y.shape)} for a Y input of {tuple(ycc[:1].shape)}; "
            f"expected {(1, *cbcr.shape[1:])} (scale {scale})."
        )
    return ycbcr_to_rgb(torch.cat([y, cbcr.to(y.dtype)])).clamp(0.0, 1.0)


def rgb_to_y(rgb: NdarrayOrTensor, round8: bool = False) -> NdarrayOrTensor:
    """The ``(1, *spatial)`` luminance Y of ``(3, *spatial)`` RGB in [0, 1] (see :func:`rgb_to_ycbcr`)."""
    _check_three(rgb, "rgb")
    y = _mix(rgb, RGB_TO_YCBCR[:1], YCBCR_OFFSET[:1], +1.0)
    return quantize8(y) if round8 else y
