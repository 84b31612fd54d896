"""The training pipeline end to end: uniform or edge-weighted patches (RandPatchCropd: tests/transforms/test_croppad.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsr.data import train_transforms

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


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
