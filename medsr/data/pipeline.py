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

from collections.abc import Sequence
from typing import Any

import torch
from monai.transforms import (
    CastToTyped,
    CenterSpatialCropd,
    Compose,
    CopyItemsd,
    DeleteItemsd,
    EnsureTyped,
    LoadImaged,
    RandFlipd,
    RandRotate90d,
    RandWeightedCropd,
    SelectItemsd,
    SpatialPadd,
    SqueezeDimd,
)

from medsr.errors import UsageError
from medsr.io import MedsrReader
from medsr.transforms import (
    DEFAULT_CT_WINDOW,
    AsVolumed,
    BicubicDegradationd,
    EdgeWeightd,
    ModalityNormalized,
    RandModalityDegradationd,
    RandPatchCropd,
    SelectSlicesd,
)

__all__ = [
    "load_transforms",
    "train_transforms",
    "val_transforms",
]


def load_transforms(keys: str = "image", *, ct_window: Sequence[float] = DEFAULT_CT_WINDOW) -> list[Any]:
    """Load -> slab -> normalise to [0, 1] (clipped) -> volume layout. Deterministic (cacheable)."""
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
    ct_window: Sequence[float] = DEFAULT_CT_WINDOW,
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
        edge_weighted: draw patch positions in proportion to the edge strength (:class:`~medsr.transforms.EdgeWeightd`);
            ``False`` draws them uniformly.
        min_std: redraw patches whose standard deviation (on [0, 1]) is below this, e.g. 0.02
            (:class:`~medsr.transforms.RandPatchCropd`); 0 keeps every draw.
    """
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


def val_transforms(scale: int = 2, crop: int = 256, *, ct_window: Sequence[float] = DEFAULT_CT_WINDOW) -> Compose:
    """Validation pipeline: a central ``crop`` x ``crop`` HR slice and its classic bicubic LR (deterministic)."""
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
