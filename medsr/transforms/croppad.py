"""Crops: HR images to a multiple of the scale, metric borders, slabs, training patches.

Array transforms with their dictionary versions (MONAI's pattern): :class:`CropToMultiple`
(prepare HR images for an integer downsampling), :class:`CropBorder` (the metric
convention: ``scale`` pixels off every edge), :class:`SelectSlices` (a slab of a volume's
last axis); :class:`RandPatchCropd` draws several 2D patches of all keys at one position
and has no array version (it returns a list of samples, like MONAI's ``RandWeightedCropd``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import CenterSpatialCrop, MapTransform, Randomizable, SpatialCrop, Transform

from medsr.errors import UsageError
from medsr.transforms.resample import _spatial_ndim
from medsr.typing import NdarrayOrTensor
from medsr.validation import check_int_at_least

__all__ = [
    "CropToMultiple",
    "CropToMultipled",
    "CropBorder",
    "CropBorderd",
    "SelectSlices",
    "SelectSlicesd",
    "RandPatchCropd",
]


class CropToMultiple(Transform):
    """Centre-crop every spatial axis to the largest multiple of ``multiple`` (prepare HR images).

    Args:
        multiple: one integer for all spatial axes, or one per axis (``1`` leaves an axis as is),
            e.g. ``(4, 4, 1)`` for in-plane x4 on a volume, ``(4, 4, 2)`` to also allow x2 slices.

    Uses MONAI's ``CenterSpatialCrop`` (affine updated, the crop recorded and invertible).
    """

    backend = CenterSpatialCrop.backend

    def __init__(self, multiple: int | Sequence[int]) -> None:
        seq = [multiple] if isinstance(multiple, (int, np.integer)) else list(multiple)
        self.multiple = [check_int_at_least("multiple", m) for m in seq]
        self._scalar = isinstance(multiple, (int, np.integer))

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        n_sp = _spatial_ndim(img)
        mult = self.multiple * n_sp if self._scalar else self.multiple
        if len(mult) != n_sp:
            raise UsageError(
                f"`multiple` has {len(mult)} values but the image has {n_sp} spatial dims "
                f"(shape {tuple(img.shape)}); give one integer or one per spatial axis."
            )
        size = [int(n) - int(n) % m for n, m in zip(img.shape[1:], mult, strict=True)]
        if any(s == 0 for s in size):
            raise UsageError(
                f"spatial shape {tuple(img.shape[1:])} is smaller than `multiple` {tuple(mult)} along some axis; "
                "nothing would be left after cropping. Use a smaller multiple or a larger image."
            )
        return CenterSpatialCrop(size)(img)


class CropToMultipled(MapTransform):
    """Dictionary wrapper of :class:`CropToMultiple`."""

    backend = CropToMultiple.backend

    def __init__(self, keys: KeysCollection, multiple: int | Sequence[int], allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.cropper = CropToMultiple(multiple)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.cropper(d[key])
        return d


class CropBorder(Transform):
    """Crop ``border`` pixels from every spatial edge (the metric convention: border = scale) and clamp to [0, 1].

    Args:
        border: pixels removed from each side of every spatial axis (0 keeps the size).
        clamp: clamp the result to [0, 1]. Default True.
    """

    def __init__(self, border: int, clamp: bool = True) -> None:
        self.border = int(border)
        self.clamp = clamp

    def __call__(self, img: Any) -> Any:
        b = self.border
        if b:
            img = img[(slice(None),) + (slice(b, -b),) * (img.ndim - 1)]
        return img.clamp(0.0, 1.0) if self.clamp else img


class CropBorderd(MapTransform):
    """Dictionary wrapper of :class:`CropBorder`."""

    def __init__(self, keys: KeysCollection, border: int, clamp: bool = True, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.cropper = CropBorder(border, clamp)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.cropper(d[key])
        return d


class SelectSlices(Transform):
    """Keep the slab ``[start, stop)`` of a volume's last axis (affine updated); 2D images pass unchanged.

    Args:
        slab: ``(start, stop)``; ``None`` keeps every slice. A call may pass its own ``slab``.
    """

    def __init__(self, slab: Sequence[int] | None = None) -> None:
        self.slab = slab

    def __call__(self, img: Any, slab: Sequence[int] | None = None) -> Any:
        slab = self.slab if slab is None else slab
        if slab is None or img.ndim != 4:
            return img
        start = [0, 0, int(slab[0])]
        end = [img.shape[1], img.shape[2], int(slab[1])]
        return SpatialCrop(roi_start=start, roi_end=end)(img)


class SelectSlicesd(MapTransform):
    """Keep the slab ``data[slices_key] = [start, stop)`` of a volume's last axis (affine updated)."""

    def __init__(self, keys: KeysCollection, slices_key: str = "slices", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.slices_key = slices_key
        self.selector = SelectSlices()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        slab = d.get(self.slices_key)
        if slab is None:
            return d
        for key in self.key_iterator(d):
            d[key] = self.selector(d[key], slab)
        return d


class RandPatchCropd(Randomizable, MapTransform):
    """Draw ``num_samples`` 2D patches ``(C, P, P, 1)`` from a volume ``(C, X, Y, Z)``, skipping flat ones.

    Patch positions are uniform over the valid corners (``w_key=None``) or drawn in
    proportion to a weight map (``w_key``, e.g. :class:`EdgeWeightd`'s edge weights,
    read at the patch centre). A patch whose standard deviation is below ``min_std``
    (flat background or air, which teaches nothing) is redrawn, up to ``max_tries``
    times; the last draw is kept so a flat image still gives patches.

    Args:
        keys: image key(s), cropped at the same position.
        roi_size: patch edge ``(P, P)`` in pixels (the volume must be at least that large).
        num_samples: patches per call.
        w_key: weight-map key for weighted positions, ``None`` for uniform ones.
        min_std: reject patches with a standard deviation below this (0 keeps every draw).
        max_tries: draws per patch before the last one is kept.
    """

    def __init__(
        self,
        keys: KeysCollection,
        roi_size: Sequence[int],
        num_samples: int = 1,
        w_key: str | None = None,
        min_std: float = 0.0,
        max_tries: int = 10,
    ) -> None:
        super().__init__(keys)
        if len(roi_size) != 2 or min(int(r) for r in roi_size) < 1:
            raise UsageError(f"`roi_size` must be two positive edges (P, P), got {roi_size!r}.")
        if int(num_samples) < 1 or int(max_tries) < 1 or float(min_std) < 0:
            raise UsageError(
                f"`num_samples` and `max_tries` must be >= 1 and `min_std` >= 0, got {num_samples}, {max_tries}, {min_std}."
            )
        self.roi = (int(roi_size[0]), int(roi_size[1]))
        self.num_samples = int(num_samples)
        self.w_key = w_key
        self.min_std = float(min_std)
        self.max_tries = int(max_tries)

    def _positions(self, shape: Sequence[int], weight: Any) -> Any:
        """A callable drawing one corner ``(x, y, z)``."""
        nx, ny, nz = shape[0] - self.roi[0] + 1, shape[1] - self.roi[1] + 1, shape[2]
        if weight is None:
            return lambda: (self.R.randint(nx), self.R.randint(ny), self.R.randint(nz))
        cx, cy = self.roi[0] // 2, self.roi[1] // 2
        w = torch.as_tensor(weight)[0, cx : cx + nx, cy : cy + ny].double().flatten()
        cdf = np.cumsum(w.numpy())
        total = float(cdf[-1])

        def draw() -> tuple[int, int, int]:
            k = int(np.searchsorted(cdf, self.R.uniform(0.0, total), side="right"))
            x, rest = divmod(min(k, cdf.size - 1), ny * nz)
            return x, rest // nz, rest % nz

        return draw

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        d = dict(data)
        first = d[self.first_key(d)]
        shape = tuple(first.shape[1:])
        if len(shape) != 3 or shape[0] < self.roi[0] or shape[1] < self.roi[1]:
            raise UsageError(f"RandPatchCropd needs a volume (C, X, Y, Z) of at least {self.roi} in-plane, got {tuple(first.shape)}.")
        draw = self._positions(shape, d.get(self.w_key) if self.w_key else None)
        out = []
        for _ in range(self.num_samples):
            for _ in range(self.max_tries):
                x, y, z = draw()
                patch = first[:, x : x + self.roi[0], y : y + self.roi[1], z : z + 1]
                if self.min_std <= 0 or float(patch.float().std()) >= self.min_std:
                    break
            crop = SpatialCrop(roi_start=(x, y, z), roi_end=(x + self.roi[0], y + self.roi[1], z + 1))
            sample = {k: v for k, v in d.items() if k != self.w_key}
            for key in self.key_iterator(d):
                sample[key] = crop(d[key])
            out.append(sample)
        return out
