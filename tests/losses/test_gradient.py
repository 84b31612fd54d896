from __future__ import annotations

import pytest
import torch

from medsr.errors import UsageError
from medsr.losses import GradientLoss
from medsr.losses.gradient import sobel_kernels


@pytest.mark.parametrize("kind", ["sobel", "diff"])
@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 1, 8, 8)), (3, (1, 2, 5, 6, 7))])
def test_zero_for_identical_and_gradients(kind, spatial_dims, shape):
    loss = GradientLoss(spatial_dims, kind)
    x = torch.rand(shape)
    assert loss(x, x).item() == 0.0
    pred = torch.rand(shape, requires_grad=True)
    value = loss(pred, x)
    assert value.ndim == 0 and value.item() > 0
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["sobel", "diff"])
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_insensitive_to_intensity_offset(kind, spatial_dims):
    x = torch.rand((1, 1) + (6,) * spatial_dims)
    assert GradientLoss(spatial_dims, kind)(x + 0.3, x).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_sobel_ramp_has_unit_gradient(spatial_dims):
    kernels = sobel_kernels(spatial_dims)
    assert kernels.shape == (spatial_dims, 1) + (3,) * spatial_dims
    loss = GradientLoss(spatial_dims)
    ramp = torch.arange(6.0).reshape((1, 1) + (6,) + (1,) * (spatial_dims - 1)).expand((1, 1) + (6,) * spatial_dims)
    grads = loss.gradients(ramp.contiguous())
    torch.testing.assert_close(grads[0], torch.ones_like(grads[0]))
    for g in grads[1:]:
        torch.testing.assert_close(g, torch.zeros_like(g))
    # a ramp vs a flat image: L1 of 1 along the first axis, 0 along the others
    assert loss(ramp, torch.zeros_like(ramp)).item() == pytest.approx(1.0 / spatial_dims)


def test_bad_inputs_and_arguments():
    with pytest.raises(UsageError):
        GradientLoss(1)
    with pytest.raises(UsageError):
        GradientLoss(2, kind="laplace")
    with pytest.raises(UsageError, match="same shape"):
        GradientLoss(2)(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))
    with pytest.raises(UsageError):
        GradientLoss(3)(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
