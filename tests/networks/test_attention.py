from __future__ import annotations

import pytest
import torch

from medsr.errors import UsageError
from medsr.networks import AttentionResidualGenerator, interpolate_skip

SMALL = {"num_features": 8, "num_groups": 2, "num_blocks": 1, "num_heads": 2, "reduction": 4}

# (constructor arguments, input shape, expected output shape)
TEST_CASES = [
    ({"spatial_dims": 2, "scale_factor": 2}, (2, 1, 8, 8), (2, 1, 16, 16)),
    ({"spatial_dims": 2, "scale_factor": 4, **SMALL}, (1, 1, 6, 5), (1, 1, 24, 20)),
    ({"spatial_dims": 2, "scale_factor": 3, **SMALL}, (1, 1, 5, 7), (1, 1, 15, 21)),
    ({"spatial_dims": 2, "use_transformer": False, "spatial_attention": False, **SMALL}, (1, 1, 8, 8), (1, 1, 16, 16)),
    ({"spatial_dims": 2, "out_channels": 2, "global_skip": False, **SMALL}, (1, 1, 8, 8), (1, 2, 16, 16)),
    ({"spatial_dims": 3, "scale_factor": 2, **SMALL}, (1, 1, 4, 4, 4), (1, 1, 8, 8, 8)),
    ({"spatial_dims": 3, "scale_factor": 4, **SMALL}, (2, 1, 3, 4, 2), (2, 1, 12, 16, 8)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", TEST_CASES)
def test_shape(kwargs, input_shape, expected_shape, device):
    net = AttentionResidualGenerator(**kwargs).to(device).eval()
    with torch.no_grad():
        assert net(torch.rand(input_shape, device=device)).shape == expected_shape


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 1, 8, 8)), (3, (1, 1, 4, 4, 4))])
def test_gradients_flow(spatial_dims, shape, assert_gradients_flow):
    assert_gradients_flow(AttentionResidualGenerator(spatial_dims, **SMALL), torch.rand(shape))


SCRIPT_CASES = [(2, 2, (1, 1, 8, 8)), (2, 4, (1, 1, 6, 6)), (3, 2, (1, 1, 4, 4, 4))]


@pytest.mark.parametrize("spatial_dims, scale, shape", SCRIPT_CASES)
def test_torchscript_matches_eager(spatial_dims, scale, shape, assert_script_matches):
    kwargs = {"num_groups": 1, "num_blocks": 2} if spatial_dims == 2 else SMALL  # every module type, default width
    assert_script_matches(AttentionResidualGenerator(spatial_dims, scale_factor=scale, **kwargs), torch.rand(shape))


@pytest.mark.parametrize("scale", [2, 4])
def test_channels_last_matches(scale, assert_channels_last_matches):
    net = AttentionResidualGenerator(2, scale_factor=scale, num_groups=1, num_blocks=2)
    assert_channels_last_matches(net, torch.rand(2, 1, 8, 8))


def test_default_parameter_count(num_params):
    assert 400_000 <= num_params(AttentionResidualGenerator()) <= 800_000  # 626,638 (x2, 2D)
    assert 400_000 <= num_params(AttentionResidualGenerator(scale_factor=4)) <= 800_000  # 709,774


def test_global_skip_is_interpolation_residual():
    net = AttentionResidualGenerator(**SMALL).eval()
    torch.nn.init.zeros_(net.tail.weight)
    torch.nn.init.zeros_(net.tail.bias)
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x), interpolate_skip(x, 2, 2))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 1},
        {"scale_factor": 6},
        {"num_groups": 0},
        {"num_blocks": -2},
        {"num_features": 30, "num_heads": 4},
        {"reduction": 0},
        {"in_channels": 2, "out_channels": 1},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(UsageError):
        AttentionResidualGenerator(**kwargs)
