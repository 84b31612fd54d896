"""Layout and sampling helpers of the training pipeline: volume layout, edge-weight maps.

Array transforms with their dictionary versions (MONAI's pattern): :class:`AsVolume`
gives 2D images a trailing slice axis so radiographs, CT slabs and MR volumes share one
pipeline; :class:`EdgeWeight` turns an image into patch-sampling weights for
``RandWeightedCropd`` / :class:`~medsr.transforms.RandPatchCropd`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

__all__ = ["AsVolume", "AsVolumed", "EdgeWeight", "EdgeWeightd"]


class AsVolume(Transform):
    """Give a 2D image ``(C, X, Y)`` a trailing slice axis: ``(C, X, Y, 1)``; volumes pass unchanged."""

    def __call__(self, img: Any) -> Any:
        return img.unsqueeze(-1) if img.ndim == 3 else img


class AsVolumed(MapTransform):
    """Dictionary wrapper of :class:`AsVolume`."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = AsVolume()(d[key])
        return d


class EdgeWeight(Transform):
    """Patch-sampling weights from in-plane gradient magnitude (plus a floor), float16, same shape.

    Args:
        floor: fraction of the mean gradient added everywhere, so flat regions are still sampled.
    """

    def __init__(self, floor: float = 0.25) -> None:
        self.floor = floor

    def __call__(self, img: Any) -> torch.Tensor:
        img = torch.as_tensor(img).float()
        gx = torch.zeros_like(img)
        gy = torch.zeros_like(img)
        gx[:, 1:-1] = img[:, 2:] - img[:, :-2]
        gy[:, :, 1:-1] = img[:, :, 2:] - img[:, :, :-2]
        mag = torch.sqrt(gx * gx + gy * gy)
        return (mag + self.floor * mag.mean() + 1e-6).to(torch.float16)


class EdgeWeightd(MapTransform):
    """Dictionary wrapper of :class:`EdgeWeight`: weights of the first key's image stored under ``w_key``.

    Args:
        keys: image key(s) to derive the weights from (the first is used).
        w_key: where to store the weight map.
        floor: fraction of the mean gradient added everywhere, so flat regions are still sampled.
    """

    def __init__(self, keys: KeysCollection, w_key: str = "weight", floor: float = 0.25) -> None:
        super().__init__(keys)
        self.w_key = w_key
        self.weigher = EdgeWeight(floor)

    @property
    def floor(self) -> float:
        return self.weigher.floor

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        d[self.w_key] = self.weigher(d[self.first_key(d)])
        return d
