from __future__ import annotations

import pytest
import torch

from medsr.errors import UsageError
from medsr.networks import EDSR, interpolate_skip

SMALL = {"num_features": 8, "num_blocks": 2}

# (constructor arguments, input shape, expected output shape)
TEST_CASES = [
    ({"spatial_dims": 2, "scale_factor": 2}, (2, 1, 8, 8), (2, 1, 16, 16)),
    ({"spatial_dims": 2, "scale_factor": 4}, (1, 1, 6, 5), (1, 1, 24, 20)),
    ({"spatial_dims": 2, "scale_factor": 3, **SMALL}, (1, 1, 5, 7), (1, 1, 15, 21)),
    ({"spatial_dims": 2, "in_channels": 3, "out_channels": 3, **SMALL}, (1, 3, 8, 8), (1, 3, 16, 16)),
    ({"spatial_dims": 2, "out_channels": 2, "global_skip": False, **SMALL}, (1, 1, 8, 8), (1, 2, 16, 16)),
    ({"spatial_dims": 3, "scale_factor": 2, **SMALL}, (1, 1, 4, 4, 4), (1, 1, 8, 8, 8)),
    ({"spatial_dims": 3, "scale_factor": 4, **SMALL}, (2, 1, 3, 4, 2), (2, 1, 12, 16, 8)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", TEST_CASES)
def test_shape(kwargs, input_shape, expected_shape, device):
    net = EDSR(**kwargs).to(device).eval()
    with torch.no_grad():
        assert net(torch.rand(input_shape, device=device)).shape == expected_shape


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 1, 8, 8)), (3, (1, 1, 4, 4, 4))])
def test_gradients_flow(spatial_dims, shape, assert_gradients_flow):
    assert_gradients_flow(EDSR(spatial_dims, **SMALL), torch.rand(shape))


SCRIPT_CASES = [(2, 2, (1, 1, 8, 8)), (2, 4, (1, 1, 6, 6)), (3, 2, (1, 1, 4, 4, 4))]


@pytest.mark.parametrize("spatial_dims, scale, shape", SCRIPT_CASES)
def test_torchscript_matches_eager(spatial_dims, scale, shape, assert_script_matches):
    assert_script_matches(EDSR(spatial_dims, scale_factor=scale, res_scale=0.5), torch.rand(shape))


@pytest.mark.parametrize("scale", [2, 4])
def test_channels_last_matches(scale, assert_channels_last_matches):
    assert_channels_last_matches(EDSR(2, scale_factor=scale), torch.rand(2, 1, 8, 8))


def test_default_parameter_count(num_params):
    assert 150_000 <= num_params(EDSR()) <= 250_000  # 194,817 (x2, 2D)
    assert 150_000 <= num_params(EDSR(scale_factor=4)) <= 250_000  # 231,809


def test_global_skip_is_interpolation_residual():
    net = EDSR(**SMALL).eval()
    torch.nn.init.zeros_(net.tail.weight)
    torch.nn.init.zeros_(net.tail.bias)
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x), interpolate_skip(x, 2, 2))


@pytest.mark.parametrize("spatial_dims, shape", [(2, (1, 1, 8, 8)), (3, (1, 1, 4, 4, 4))])
def test_fold_residual_scale_is_exact(spatial_dims, shape):
    net = EDSR(spatial_dims, res_scale=0.1, **SMALL).eval()
    folded = net.fold_residual_scale()
    x = torch.rand(shape)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), atol=1e-6, rtol=0)
    assert all(b.res_scale == 1.0 for b in folded.body if hasattr(b, "res_scale"))
    assert all(b.res_scale == 0.1 for b in net.body if hasattr(b, "res_scale"))  # original untouched


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 1},
        {"scale_factor": 5},
        {"scale_factor": 2.0},
        {"in_channels": 0},
        {"num_blocks": 0},
        {"res_scale": -1.0},
        {"in_channels": 1, "out_channels": 2, "global_skip": True},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(UsageError):
        EDSR(**kwargs)
