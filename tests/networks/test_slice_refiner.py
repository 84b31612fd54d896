"""SliceRefiner: shapes, identity start, argument checks."""

from __future__ import annotations

import pytest
import torch

from medsr.errors import UsageError
from medsr.networks.slice_refiner import SliceRefiner

CASES = [
    ({}, (2, 1, 24, 9)),
    ({"num_features": 8, "num_layers": 3}, (1, 1, 16, 33)),
    ({"in_channels": 2, "out_channels": 2, "num_layers": 2}, (3, 2, 5, 7)),
]


@pytest.mark.parametrize("kwargs, shape", CASES)
def test_shape_and_identity_start(kwargs, shape):
    net = SliceRefiner(**kwargs).eval()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)  # the last layer starts at zero: the untrained network returns its input
    assert net.receptive_radius == kwargs.get("num_layers", 6)


def test_learns_a_residual():
    torch.manual_seed(0)
    net = SliceRefiner(num_features=8, num_layers=3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.rand(4, 1, 12, 12)
    target = x + 0.1
    first = float((net(x) - target).abs().mean())
    for _ in range(60):
        loss = (net(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.3 * first


@pytest.mark.parametrize("kwargs, match", [
    ({"spatial_dims": 3}, "spatial_dims"),
    ({"in_channels": 1, "out_channels": 2}, "residual"),
    ({"num_layers": 1}, "num_layers"),
    ({"num_features": 0}, "num_features"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(UsageError, match=match):
        SliceRefiner(**kwargs)
