"""Training pairs, the training loop and per-scan adaptation of the slice network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medsr.errors import UsageError
from medsr.networks.slice_refiner import SliceRefiner
from medsr.slice_training import adapt_to_scan, sample_batch, train_slice_refiner
from medsr.slices import SliceUpscaler, degrade_slices, interpolate_slices, upscale_slices_image


def _volumes():
    g = torch.Generator().manual_seed(0)
    ct = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 72, 70, 24, generator=g), 3, 1, 1)[0, 0]
    mr = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 66, 68, 30, generator=g), 3, 1, 1)[0, 0]
    return [(ct, 2, "ct"), (mr, 0, "mr")]


@pytest.mark.parametrize("factor", [2, 4])
def test_sample_batch_pairs(factor):
    rng = np.random.default_rng(0)
    x, y = sample_batch(_volumes(), factor, rng, blocks=3, planes=2, patch=32, thick=5)
    assert x.shape == y.shape and x.shape[:3] == (6, 1, 32)
    assert x.shape[-1] == (5 - 1) * factor + 1
    # coinciding positions of a box-free pair differ from the target only by the profile blur
    assert float((x - y).abs().mean()) > 0
    # the pair is reproducible from the seed
    x2, _ = sample_batch(_volumes(), factor, np.random.default_rng(0), blocks=3, planes=2, patch=32, thick=5)
    torch.testing.assert_close(x, x2)


def test_pairs_use_the_inference_operators():
    hr = torch.rand(1, 3, 32, 17, generator=torch.Generator().manual_seed(1))
    up = interpolate_slices(degrade_slices(hr, 2, 4), 2, 4)
    assert up.shape == hr.shape


def test_train_saves_weights_only_state(tmp_path):
    out = tmp_path / "w.pt"
    res = train_slice_refiner(_volumes(), 2, out, seconds=60, max_iters=3, num_features=4, num_layers=3,
                              log=lambda m: None)
    assert res["iterations"] == 3 and out.is_file()
    net = SliceRefiner(num_features=4, num_layers=3)
    net.load_state_dict(torch.load(out, weights_only=True))


def test_adapt_to_scan_keeps_the_loaded_network():
    torch.manual_seed(0)
    net = SliceRefiner(num_features=4, num_layers=3)
    slicer = SliceUpscaler("slice_smore", 2, network=net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    hu = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 70, 66, 6) * 1500 - 1000, 3, 1, 1)[0]
    img = MetaTensor(hu, affine=torch.diag(torch.tensor([0.7, 0.7, 5.0, 1.0])).double())
    img.meta.update({"modality": "ct", "spacing": (0.7, 0.7, 5.0), "medsr_format": "nifti"})
    out = upscale_slices_image(img, slicer, adapt_seconds=1.0)
    assert out.shape == (1, 70, 66, 11) and "adapted to this scan" in out.meta["medsr_derivation"]
    for k, v in slicer.network.state_dict().items():
        torch.testing.assert_close(v, before[k])  # the shipped weights in memory are untouched
    with pytest.raises(UsageError, match="learned model"):
        adapt_to_scan(SliceUpscaler("cubic", 2), img, 2, 1.0)
