"""Patch sampling of the training pipeline: uniform or edge-weighted positions, flat patches redrawn."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.data import MetaTensor

from medsr.data import train_transforms
from medsr.transforms import RandPatchCropd
from medsr.errors import UsageError

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


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


@pytest.mark.parametrize("edge_weighted", [False, True])
def test_train_transforms_uniform_or_weighted_with_min_std(edge_weighted: bool) -> None:
    if not SAMPLE.is_dir():
        pytest.skip("sample_data/ is missing (run sample_data/make_sample_data.py)")
    entry = {"image": str(SAMPLE / "ct_series_lung_dx_a0001"), "modality": "ct", "slices": [0, 4]}
    tf = train_transforms(2, patch_size=32, num_samples=6, p_classic=1.0, edge_weighted=edge_weighted, min_std=0.02)
    tf.set_random_state(0)
    samples = tf(entry)
    assert len(samples) == 6
    for s in samples:
        assert set(s) == {"hr", "lr"} and s["hr"].shape == (1, 32, 32) and s["lr"].shape == (1, 16, 16)
    assert sum(float(s["hr"].std()) >= 0.02 for s in samples) >= 5  # a slice with enough content: flat ones redrawn
