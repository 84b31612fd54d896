from __future__ import annotations

import pytest
import torch

from medsr.errors import UsageError
from medsr.networks import ESPCN

# (constructor arguments, input shape, expected output shape)
TEST_CASES = [
    ({"spatial_dims": 2, "scale_factor": 2}, (2, 1, 8, 8), (2, 1, 16, 16)),
    ({"spatial_dims": 2, "scale_factor": 4}, (1, 1, 6, 5), (1, 1, 24, 20)),
    ({"spatial_dims": 2, "scale_factor": 3}, (1, 1, 5, 7), (1, 1, 15, 21)),
    ({"spatial_dims": 2, "in_channels": 3, "out_channels": 2}, (1, 3, 8, 8), (1, 2, 16, 16)),
    ({"spatial_dims": 3, "scale_factor": 2, "features": (8, 4)}, (1, 1, 4, 4, 4), (1, 1, 8, 8, 8)),
    ({"spatial_dims": 3, "scale_factor": 4, "features": (8, 4)}, (2, 1, 3, 4, 2), (2, 1, 12, 16, 8)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", TEST_CASES)
def test_shape(kwargs, input_shape, expected_shape, device):
    net = ESPCN(**kwargs).to(device).eval()
    with torch.no_grad():
        assert net(torch.rand(input_shape, device=device)).shape == expected_shape


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 1, 8, 8)), (3, (1, 1, 4, 4, 4))])
def test_gradients_flow(spatial_dims, shape, assert_gradients_flow):
    assert_gradients_flow(ESPCN(spatial_dims, features=(8, 4)), torch.rand(shape))


SCRIPT_CASES = [(2, 2, (1, 1, 8, 8)), (2, 4, (1, 1, 6, 6)), (3, 2, (1, 1, 4, 4, 4))]


@pytest.mark.parametrize("spatial_dims, scale, shape", SCRIPT_CASES)
def test_torchscript_matches_eager(spatial_dims, scale, shape, assert_script_matches):
    assert_script_matches(ESPCN(spatial_dims, scale_factor=scale), torch.rand(shape))


@pytest.mark.parametrize("scale", [2, 4])
def test_channels_last_matches(scale, assert_channels_last_matches):
    assert_channels_last_matches(ESPCN(2, scale_factor=scale), torch.rand(2, 1, 8, 8))


def test_default_parameter_count(num_params):
    # conv5 1->64, conv3 64->32, conv3 32->1*2**2 (a single x2 shuffle, as in the paper)
    assert num_params(ESPCN()) == (25 * 64 + 64) + (9 * 64 * 32 + 32) + (9 * 32 * 4 + 4)  # 21,284


@pytest.mark.parametrize(
    "kwargs",
    [{"spatial_dims": 1}, {"scale_factor": 5}, {"features": (64, 32, 16)}, {"kernel_sizes": (4, 3, 3)}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(UsageError):
        ESPCN(**kwargs)
