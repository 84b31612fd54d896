"""The evaluation protocol on one image: how the LR input is made from the HR image, and how outputs are scored.

HR image -> [0, 1] (the modality's mapping) -> cropped to a multiple of the scale ->
degraded (bicubic, or the modality's simulator seeded per image) -> every method ->
compared with the HR image (DESIGN.md "Evaluation protocol"). :func:`degrade_image`
(``medsr degrade``) makes the LR image the same way and writes it in physical units.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Randomizable

from medsr import __version__
from medsr import meta as mk
from medsr.errors import UsageError
from medsr.geometry import resized_like
from medsr.transforms import (
    BicubicDegradation,
    CropToMultiple,
    InvertModalityNormalize,
    ModalityNormalize,
    RandModalityDegradation,
)
from medsr.transforms.colour import quantize8, rgb_to_y

__all__ = ["Prepared", "case_seed", "degrade", "degrade_image", "prepare", "like_hr", "redegrade", "upscale"]


@dataclass
class Prepared:
    """One case at one scale: normalised HR (cropped), its LR input and the degradation operator."""

    hr: Any  # MetaTensor on [0, 1]
    lr: Any  # torch.Tensor
    op: Any
    round8: bool = False  # outputs rounded to 8 bits before scoring (the papers' Y-channel protocol)


def case_seed(seed: int, key: str, scale: int) -> int:
    """A per-image, per-scale seed that does not change when other images are added."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode()), int(scale)]).generate_state(1)[0])


def degrade(norm: Any, scale: int, degradation: str, seed: int) -> tuple[Any, torch.Tensor, Any]:
    """``(hr, lr, op)``: ``norm`` cropped in-plane to a multiple of ``scale``, its LR tensor and the operator.

    ``degradation``: ``"bicubic"`` (the classic protocol) or ``"modality"`` (the modality's
    simulator, :class:`medsr.transforms.RandModalityDegradation` seeded with ``seed``).
    """
    hr = CropToMultiple([scale, scale] + [1] * (norm.ndim - 3))(norm)  # in-plane only
    if degradation == "bicubic":
        op = BicubicDegradation(scale)
    else:
        op = RandModalityDegradation(scale, p_classic=0.0)
        op.set_random_state(seed)
    lr = op(hr)
    return hr, (lr.as_tensor() if isinstance(lr, MetaTensor) else torch.as_tensor(lr)), op


def _luminance(norm: Any) -> Any:
    """The 8-bit BT.601 luminance Y of a normalised RGB MetaTensor (MATLAB ``rgb2ycbcr``); grey images as they are."""
    if norm.shape[0] != 3:
        return norm
    y = MetaTensor(rgb_to_y(norm.as_tensor(), round8=True).float(), meta=dict(norm.meta))
    y.affine = norm.affine
    y.meta[mk.PHOTOMETRIC] = "MONOCHROME2"
    return y


def prepare(key: str, img: Any, scale: int, degradation: str, seed: int, y_channel: bool = False) -> Prepared:
    """One image of an evaluation at one scale; ``key`` (the case's stable text) seeds its degradation.

    Scored on [0, 1] (``data_range = 1``); RGB images only on their luminance (``y_channel``).
    """
    norm = ModalityNormalize(clip=True)(img)
    if y_channel:
        norm = _luminance(norm)
    elif norm.meta.get(mk.PHOTOMETRIC) == "RGB":
        raise UsageError("colour image: medsr scores RGB images on their luminance; pass --y-channel.")
    hr, lr, op = degrade(norm, scale, degradation, case_seed(seed, key, scale))
    return Prepared(hr, lr.float(), op, round8=y_channel)


def degrade_image(img: Any, scale: int, degradation: str, seed: int) -> Any:
    """``medsr degrade``: normalise, degrade (seeded), map back to physical units, update geometry."""
    hr, lr, _ = degrade(ModalityNormalize()(img), scale, degradation, seed)
    factors = [1.0 / scale, 1.0 / scale] + [1.0] * (lr.ndim - 3)
    out = resized_like(hr, lr, factors, f"medsr {__version__} {degradation} degradation /{scale}")
    return InvertModalityNormalize()(out)


def like_hr(sr: Any, prep: Prepared) -> Any:
    """``sr`` as a MetaTensor with the HR image's meta (same grid: same affine and spacing)."""
    out = MetaTensor(sr, meta=dict(prep.hr.meta))
    out.affine = prep.hr.affine
    return out


def redegrade(prep: Prepared, sr: Any) -> Any:
    """The model output degraded again by the operator that made the LR input (same random draw)."""
    x = like_hr(sr, prep)
    if isinstance(prep.op, Randomizable):
        try:
            y = prep.op(x, randomize=False)
        except TypeError:
            y = prep.op(x)
    else:
        y = prep.op(x)
    return y.as_tensor() if isinstance(y, MetaTensor) else torch.as_tensor(y)


def upscale(upscaler: Any, prep: Prepared) -> Any:
    """``upscaler``'s output for the LR input, checked against the HR shape, clamped to [0, 1] (and rounded to 8 bits)."""
    sr = torch.as_tensor(upscaler(prep.lr)).float()
    if tuple(sr.shape) != tuple(prep.hr.shape):
        raise UsageError(
            f"model {upscaler.name!r} returned shape {tuple(sr.shape)} for an LR input of {tuple(prep.lr.shape)}; "
            f"expected {tuple(prep.hr.shape)}."
        )
    sr = sr.clamp(0.0, 1.0)  # not in place: network outputs may be inference-mode tensors
    if prep.round8:
        sr = quantize8(sr)
    return sr
