"""medsr.transforms.croppad: crop borders, slabs, and training patches (uniform, weighted, flat ones redrawn)."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from medsr.errors import UsageError
from medsr.transforms import CropBorder, CropBorderd, RandPatchCropd, SelectSlices, SelectSlicesd


def test_crop_border_and_clamp() -> None:
    x = torch.full((1, 10, 12), 1.5)
    assert tuple(CropBorder(2)(x).shape) == (1, 6, 8) and float(CropBorder(2)(x).max()) == 1.0
    assert float(CropBorder(0, clamp=False)(x).max()) == 1.5
    d = CropBorderd(["pred"], border=2)({"pred": x, "other": 3})
    torch.testing.assert_close(d["pred"], CropBorder(2)(x))
    assert d["other"] == 3


def test_select_slices_keeps_a_slab_and_moves_the_origin() -> None:
    vol = MetaTensor(torch.arange(8.0).view(1, 1, 1, 8).expand(1, 2, 2, 8).clone())
    slab = SelectSlices((2, 5))(vol)
    assert tuple(slab.shape) == (1, 2, 2, 3) and float(slab[0, 0, 0, 0]) == 2.0
    assert float(slab.affine[2, 3]) == 2.0
    assert SelectSlices()(vol) is vol and SelectSlices((0, 1))(torch.zeros(1, 4, 4)).shape == (1, 4, 4)
    d = SelectSlicesd("image")({"image": vol, "slices": [2, 5]})
    torch.testing.assert_close(d["image"], slab)
    assert SelectSlicesd("image")({"image": vol})["image"] is vol


def _half_flat(z: int = 2) -> MetaTensor:
    """Left half zeros (flat), right half noise: a patch's std tells which half it came from."""
    img = torch.zeros(1, 120, 80, z)
    img[:, 60:] = torch.rand(1, 60, 80, z, generator=torch.Generator().manual_seed(0))
    return MetaTensor(img, meta={"modality": "ct"})


def test_min_std_redraws_flat_patches() -> None:
    crop = RandPatchCropd("image", (24, 24), num_samples=40, min_std=0.05)
    crop.set_random_state(0)
    out = crop({"image": _half_flat()})
    assert len(out) == 40
    assert all(s["image"].shape == (1, 24, 24, 1) for s in out)
    assert min(float(s["image"].std()) for s in out) >= 0.05
    plain = RandPatchCropd("image", (24, 24), num_samples=40)
    plain.set_random_state(0)
    assert min(float(s["image"].std()) for s in plain({"image": _half_flat()})) < 0.05  # without it, flat ones come


def test_weighted_positions_follow_the_weight_map_and_meta_is_kept() -> None:
    weight = torch.zeros(1, 120, 80, 2)
    weight[0, 100, 30, 1] = 1.0  # all the mass on one centre
    crop = RandPatchCropd(["image"], (24, 24), num_samples=3, w_key="weight")
    crop.set_random_state(1)
    img = _half_flat()
    for s in crop({"image": img, "weight": weight, "other": 5}):
        torch.testing.assert_close(s["image"].as_tensor(), img[:, 88:112, 18:42, 1:2].as_tensor())
        assert "weight" not in s and s["other"] == 5 and s["image"].meta["modality"] == "ct"


def test_reproducible_and_bad_arguments() -> None:
    a, b = RandPatchCropd("image", (16, 16), 4), RandPatchCropd("image", (16, 16), 4)
    a.set_random_state(3)
    b.set_random_state(3)
    for x, y in zip(a({"image": _half_flat()}), b({"image": _half_flat()})):
        torch.testing.assert_close(x["image"], y["image"])
    with pytest.raises(UsageError, match="roi_size"):
        RandPatchCropd("image", (16,), 1)
    with pytest.raises(UsageError, match="min_std"):
        RandPatchCropd("image", (16, 16), 1, min_std=-1)
    with pytest.raises(UsageError, match="at least"):
        RandPatchCropd("image", (200, 16), 1)({"image": _half_flat()})
