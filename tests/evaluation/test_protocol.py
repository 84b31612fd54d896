"""medsr.evaluation.protocol: ``medsr degrade`` makes the LR image the way an evaluation does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medsr import meta as mk
from medsr.evaluation.protocol import case_seed, degrade_image, prepare
from medsr.io import load_image
from medsr.transforms import InvertModalityNormalize

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


@pytest.mark.parametrize("degradation", ["bicubic", "modality"])
def test_degrade_image_is_the_evaluation_lr_in_physical_units(degradation: str) -> None:
    path = SAMPLE / "ct_small.dcm"  # -896..1167 HU: inside the CT window, so the evaluation's clip changes nothing
    if not path.is_file():
        pytest.skip("sample_data/ is missing")
    ct = load_image(path)
    key, seed, scale = "ct_small.dcm", 3, 2
    prep = prepare(key, ct, scale, degradation, seed)
    lr = degrade_image(ct, scale, degradation, case_seed(seed, key, scale))
    assert tuple(lr.shape) == tuple(prep.lr.shape) == (1, ct.shape[1] // 2, ct.shape[2] // 2)
    expected = InvertModalityNormalize()(MetaTensor(prep.lr.clone(), meta=dict(prep.hr.meta)))
    torch.testing.assert_close(lr.as_tensor(), expected.as_tensor())
    np.testing.assert_allclose(lr.meta[mk.SPACING], np.asarray(ct.meta[mk.SPACING]) * 2, rtol=1e-6)
    assert lr.meta[mk.DERIVATION].endswith(f"{degradation} degradation /2")
