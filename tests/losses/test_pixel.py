from __future__ import annotations

import math

import pytest
import torch

from medsr.errors import UsageError
from medsr.losses import PixelLoss


@pytest.mark.parametrize("kind", ["l1", "l2", "charbonnier"])
@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (1, 2, 4, 4, 4)])
def test_zero_for_identical_and_gradients(kind, shape):
    loss = PixelLoss(kind)
    x = torch.rand(shape)
    assert loss(x, x).item() == 0.0
    pred = torch.rand(shape, requires_grad=True)
    value = loss(pred, x)
    assert value.ndim == 0 and value.item() > 0
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_values():
    pred, target = torch.tensor([0.0, 0.5]), torch.tensor([1.0, 0.0])
    assert PixelLoss("l1")(pred, target).item() == pytest.approx(0.75)
    assert PixelLoss("l2")(pred, target).item() == pytest.approx((1.0 + 0.25) / 2)
    eps = 1e-3
    expected = (math.sqrt(1 + eps**2) - eps + math.sqrt(0.25 + eps**2) - eps) / 2
    assert PixelLoss("charbonnier", eps=eps)(pred, target).item() == pytest.approx(expected)


@pytest.mark.parametrize("reduction, shape", [("mean", ()), ("sum", ()), ("none", (2, 1, 3, 3))])
def test_reduction(reduction, shape):
    assert PixelLoss("l1", reduction=reduction)(torch.rand(2, 1, 3, 3), torch.rand(2, 1, 3, 3)).shape == shape


@pytest.mark.parametrize("kwargs", [{"kind": "l3"}, {"kind": 1}, {"eps": -1.0}, {"reduction": "max"}])
def test_bad_arguments(kwargs):
    with pytest.raises(UsageError):
        PixelLoss(**kwargs)
