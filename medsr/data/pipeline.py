"""HR -> LR training and validation pipelines (MONAI dictionary transforms).

Every image is loaded with :class:`medsr.io.MedsrReader`, normalised to [0, 1]
with its modality's mapping and held as a volume ``(1, X, Y, Z)`` (2D images get
``Z = 1``), so radiographs, CT slabs and MR volumes share one pipeline. The
deterministic part (load, normalise, edge weights) is cached by MONAI's
``CacheDataset`` in float16; each draw then crops ``num_samples`` 2D patches,
weighted towards edges so flat background and air are not most of what the
network sees, flips/rotates them and makes the LR input on the fly with the
modality's degradation or the classic bicubic protocol.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import (
    CastToTyped,
    CenterSpatialCropd,
    Compose,
    CopyItemsd,
    DeleteItemsd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Randomizable,
    RandFlipd,
    RandRotate90d,
    RandWeightedCropd,
    SelectItemsd,
    SpatialCrop,
    SpatialPadd,
    SqueezeDimd,
)

__all__ = [
    "SelectSlicesd",
    "AsVolumed",
    "EdgeWeightd",
    "RandPatchCropd",
    "load_transforms",
    "train_transforms",
    "val_transforms",
]


class SelectSlicesd(MapTransform):
    """Keep the slab ``data[slices_key] = [start, stop)`` of a volume's last axis (affine updated)."""

    def __init__(self, keys: KeysCollection, slices_key: str = "slices", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.slices_key = slices_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        slab = d.get(self.slices_key)
        if slab is None:
            return d
        for key in self.key_iterator(d):
            img = d[key]
            if img.ndim != 4:
                continue
            start = [0, 0, int(slab[0])]
            end = [img.shape[1], img.shape[2], int(slab[1])]
            d[key] = SpatialCrop(roi_start=start, roi_end=end)(img)
        return d


class AsVolumed(MapTransform):
    """Give a 2D image ``(C, X, Y)`` a trailing slice axis: ``(C, X, Y, 1)``; volumes pass unchanged."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            if d[key].ndim == 3:
                d[key] = d[key].unsqueeze(-1)
        return d


class EdgeWeightd(MapTransform):
    """Patch-sampling weights from in-plane gradient magnitude (plus a floor), for ``RandWeightedCropd``.

    Args:
        keys: image key(s) to derive the weights from (the first is used).
        w_key: where to store the weight map.
        floor: fraction of the mean gradient added everywhere, so flat regions are still sampled.
    """

    def __init__(self, keys: KeysCollection, w_key: str = "weight", floor: float = 0.25) -> None:
        super().__init__(keys)
        self.w_key = w_key
        self.floor = floor

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        key = self.first_key(d)
        img = torch.as_tensor(d[key]).float()
        gx = torch.zeros_like(img)
        gy = torch.zeros_like(img)
        gx[:, 1:-1] = img[:, 2:] - img[:, :-2]
        gy[:, :, 1:-1] = img[:, :, 2:] - img[:, :, :-2]
        mag = torch.sqrt(gx * gx + gy * gy)
        d[self.w_key] = (mag + self.floor * mag.mean() + 1e-6).to(torch.float16)
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
        from medsr.errors import UsageError

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
        import numpy as np

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
            from medsr.errors import UsageError

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


def load_transforms(keys: str = "image", *, ct_window: Sequence[float] = (-1024.0, 3071.0)) -> list[Any]:
    """Load -> slab -> normalise to [0, 1] (clipped) -> volume layout. Deterministic (cacheable)."""
    from medsr.io import MedsrReader
    from medsr.transforms import ModalityNormalized

    return [
        LoadImaged(keys, reader=MedsrReader(), ensure_channel_first=True, image_only=True),
        SelectSlicesd(keys),
        ModalityNormalized(keys, ct_window=tuple(ct_window), clip=True),
        AsVolumed(keys),
    ]


def train_transforms(
    scale: int = 2,
    patch_size: int = 96,
    num_samples: int = 4,
    p_classic: float = 0.5,
    *,
    ct_window: Sequence[float] = (-1024.0, 3071.0),
    edge_weighted: bool = True,
    min_std: float = 0.0,
) -> Compose:
    """Training pipeline: a datalist entry ``{"image": path, ...}`` -> ``num_samples`` dicts with
    ``"hr"`` (1, P, P) and ``"lr"`` (1, P/scale, P/scale) patches.

    Args:
        scale: SR factor (2 or 4); ``patch_size`` must be a multiple of it.
        patch_size: HR patch edge in pixels.
        num_samples: patches drawn per loaded image (amortises loading on CPU).
        p_classic: probability of the classic bicubic protocol instead of the modality's physics degradation.
        ct_window: HU window mapped to [0, 1] for CT.
        edge_weighted: draw patch positions in proportion to the edge strength (:class:`EdgeWeightd`);
            ``False`` draws them uniformly.
        min_std: redraw patches whose standard deviation (on [0, 1]) is below this, e.g. 0.02
            (:class:`RandPatchCropd`); 0 keeps every draw.
    """
    from medsr.errors import UsageError
    from medsr.transforms import RandModalityDegradationd

    if patch_size % scale:
        raise UsageError(f"`patch_size` must be a multiple of `scale` ({scale}), got {patch_size}.")
    roi = (patch_size, patch_size, 1)
    return Compose(
        load_transforms("image", ct_window=ct_window)
        + [
            SpatialPadd("image", spatial_size=roi),
        ]
        + ([EdgeWeightd("image", w_key="weight")] if edge_weighted else [])
        + [
            CastToTyped("image", dtype=torch.float16),
            # --- random part (not cached) ---
        ]
        + (
            # the weight map is cropped too (a view) rather than deep-copied per sample by MONAI
            [RandWeightedCropd(["image", "weight"], w_key="weight", spatial_size=roi, num_samples=num_samples), DeleteItemsd("weight")]
            if edge_weighted and min_std <= 0
            else [RandPatchCropd("image", roi[:2], num_samples, w_key="weight" if edge_weighted else None, min_std=min_std)]
        )
        + [
            CastToTyped("image", dtype=torch.float32),
            SqueezeDimd("image", dim=3, update_meta=False),
            RandFlipd("image", prob=0.5, spatial_axis=0),
            RandFlipd("image", prob=0.5, spatial_axis=1),
            RandRotate90d("image", prob=0.5),
            CopyItemsd("image", times=2, names=["hr", "lr"]),
            DeleteItemsd("image"),
            RandModalityDegradationd("lr", scale=scale, p_classic=p_classic),
            SelectItemsd(["hr", "lr"]),  # datalist fields differ between entries; batches carry only the pair
            EnsureTyped(["hr", "lr"], dtype=torch.float32, track_meta=False),
        ]
    )


def val_transforms(scale: int = 2, crop: int = 256, *, ct_window: Sequence[float] = (-1024.0, 3071.0)) -> Compose:
    """Validation pipeline: a central ``crop`` x ``crop`` HR slice and its classic bicubic LR (deterministic)."""
    from medsr.transforms import BicubicDegradationd

    roi = (crop, crop, 1)
    return Compose(
        load_transforms("image", ct_window=ct_window)
        + [
            CenterSpatialCropd("image", roi_size=(crop, crop, 1)),
            SpatialPadd("image", spatial_size=roi),
            SqueezeDimd("image", dim=3, update_meta=False),
            CopyItemsd("image", times=2, names=["hr", "lr"]),
            DeleteItemsd("image"),
            BicubicDegradationd("lr", scale=scale),
            SelectItemsd(["hr", "lr"]),  # datalist fields differ between entries; batches carry only the pair
            EnsureTyped(["hr", "lr"], dtype=torch.float32, track_meta=False),
        ]
    )
