from __future__ import annotations

import pytest
import torch
from skimage.metrics import structural_similarity

from medsr.errors import UsageError
from medsr.losses import SSIMLoss


def test_matches_one_minus_skimage_ssim():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 1, 40, 48, generator=g)
    sr = (hr + 0.1 * torch.randn(1, 1, 40, 48, generator=g)).clamp(0, 1)
    ref = structural_similarity(
        hr[0, 0].double().numpy(),
        sr[0, 0].double().numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1,
    )
    # MONAI averages over the valid (unpadded) region, skimage crops (11 - 1) // 2 pixels: the same pixels
    assert SSIMLoss(2)(sr, hr).item() == pytest.approx(1 - ref, abs=1e-3)


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 1, 16, 16)), (3, (1, 1, 12, 12, 12))])
def test_zero_for_identical_and_gradients(spatial_dims, shape):
    loss = SSIMLoss(spatial_dims)
    x = torch.rand(shape)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    pred = torch.rand(shape, requires_grad=True)
    value = loss(pred, x)
    assert value.ndim == 0 and value.item() > 0
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_reduction_none_gives_one_value_per_image():
    x = torch.rand(3, 1, 16, 16)
    assert SSIMLoss(2, reduction="none")(x, x.flip(0)).shape == (3,)


def test_bad_inputs_and_arguments():
    with pytest.raises(UsageError, match="win_size"):
        SSIMLoss(2)(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(UsageError, match="same shape"):
        SSIMLoss(2)(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 17))
    with pytest.raises(UsageError):
        SSIMLoss(4)
    with pytest.raises(UsageError):
        SSIMLoss(2, reduction="max")
