from __future__ import annotations

import pytest
import torch

from medsr.errors import UsageError
from medsr.networks import VDSR, interpolate_skip

SMALL = {"num_features": 8, "num_layers": 4}

# (constructor arguments, input shape, expected output shape)
TEST_CASES = [
    ({"spatial_dims": 2, "scale_factor": 2}, (2, 1, 8, 8), (2, 1, 16, 16)),
    ({"spatial_dims": 2, "scale_factor": 4, **SMALL}, (1, 1, 6, 5), (1, 1, 24, 20)),
    ({"spatial_dims": 2, "scale_factor": 3, **SMALL}, (1, 1, 5, 7), (1, 1, 15, 21)),
    ({"spatial_dims": 2, "in_channels": 3, "out_channels": 3, **SMALL}, (1, 3, 8, 8), (1, 3, 16, 16)),
    ({"spatial_dims": 3, "scale_factor": 2, **SMALL}, (1, 1, 4, 4, 4), (1, 1, 8, 8, 8)),
    ({"spatial_dims": 3, "scale_factor": 4, **SMALL}, (2, 1, 3, 4, 2), (2, 1, 12, 16, 8)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", TEST_CASES)
def test_shape(kwargs, input_shape, expected_shape, device):
    net = VDSR(**kwargs).to(device).eval()
    with torch.no_grad():
        assert net(torch.rand(input_shape, device=device)).shape == expected_shape


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 1, 8, 8)), (3, (1, 1, 4, 4, 4))])
def test_gradients_flow(spatial_dims, shape, assert_gradients_flow):
    assert_gradients_flow(VDSR(spatial_dims, **SMALL), torch.rand(shape))


SCRIPT_CASES = [(2, 2, (1, 1, 8, 8)), (2, 4, (1, 1, 6, 6)), (3, 2, (1, 1, 4, 4, 4))]


@pytest.mark.parametrize("spatial_dims, scale, shape", SCRIPT_CASES)
def test_torchscript_matches_eager(spatial_dims, scale, shape, assert_script_matches):
    assert_script_matches(VDSR(spatial_dims, scale_factor=scale, num_layers=6), torch.rand(shape))


@pytest.mark.parametrize("scale", [2, 4])
def test_channels_last_matches(scale, assert_channels_last_matches):
    assert_channels_last_matches(VDSR(2, scale_factor=scale, num_layers=6), torch.rand(1, 1, 8, 8))


def test_default_parameter_count(num_params):
    assert num_params(VDSR()) == (9 * 64 + 64) + 18 * (9 * 64 * 64 + 64) + (9 * 64 + 1)  # 665,921 (the paper's)


def test_residual_is_over_interpolation():
    net = VDSR(**SMALL).eval()
    torch.nn.init.zeros_(net.body[-1].weight)
    torch.nn.init.zeros_(net.body[-1].bias)
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x), interpolate_skip(x, 2, 2))


@pytest.mark.parametrize(
    "kwargs",
    [{"spatial_dims": 1}, {"scale_factor": 1}, {"num_layers": 1}, {"num_features": 0}, {"out_channels": 2}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(UsageError):
        VDSR(**kwargs)
