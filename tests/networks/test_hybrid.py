from __future__ import annotations

import pytest
import torch
from monai.networks.utils import pixelshuffle

from medsr.errors import UsageError
from medsr.networks import SpaceToDepth, SRCNNSRGANHybrid

SMALL = {"srcnn_features": (8, 4), "gan_features": 8, "gan_blocks": 2}

# (constructor arguments, input shape, expected output shape)
TEST_CASES = [
    ({"spatial_dims": 2, "scale_factor": 2}, (2, 1, 8, 8), (2, 1, 16, 16)),
    ({"spatial_dims": 2, "scale_factor": 4, **SMALL}, (1, 1, 6, 5), (1, 1, 24, 20)),
    ({"spatial_dims": 2, "scale_factor": 3, **SMALL}, (1, 1, 5, 7), (1, 1, 15, 21)),
    ({"spatial_dims": 2, "in_channels": 2, "out_channels": 2, **SMALL}, (1, 2, 8, 8), (1, 2, 16, 16)),
    ({"spatial_dims": 3, "scale_factor": 2, **SMALL}, (1, 1, 4, 4, 4), (1, 1, 8, 8, 8)),
    ({"spatial_dims": 3, "scale_factor": 4, "head_kernel_size": 3, **SMALL}, (2, 1, 3, 4, 2), (2, 1, 12, 16, 8)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", TEST_CASES)
def test_shape(kwargs, input_shape, expected_shape, device):
    net = SRCNNSRGANHybrid(**kwargs).to(device).eval()
    with torch.no_grad():
        out, structure = net.forward_with_structure(torch.rand(input_shape, device=device))
    assert out.shape == structure.shape == expected_shape


def test_output_is_structure_plus_detail():
    net = SRCNNSRGANHybrid(**SMALL).eval()
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        out, structure = net.forward_with_structure(x)
        torch.testing.assert_close(structure, net.structure(x))
        torch.nn.init.zeros_(net.detail.tail.weight)
        torch.nn.init.zeros_(net.detail.tail.bias)
        torch.testing.assert_close(net(x), structure)


@pytest.mark.parametrize(
    "spatial_dims, scale, shape", [(2, 2, (2, 3, 8, 6)), (3, 2, (1, 2, 4, 6, 8)), (3, 3, (1, 1, 6, 3, 9))]
)
def test_space_to_depth_inverts_pixelshuffle(spatial_dims, scale, shape):
    x = torch.rand(shape)
    y = SpaceToDepth(spatial_dims, scale)(x)
    assert y.shape == (shape[0], shape[1] * scale**spatial_dims) + tuple(s // scale for s in shape[2:])
    torch.testing.assert_close(pixelshuffle(y, spatial_dims, scale), x, atol=0, rtol=0)


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 1, 8, 8)), (3, (1, 1, 4, 4, 4))])
def test_gradients_flow(spatial_dims, shape, assert_gradients_flow):
    assert_gradients_flow(SRCNNSRGANHybrid(spatial_dims, **SMALL), torch.rand(shape))


SCRIPT_CASES = [(2, 2, (1, 1, 8, 8)), (2, 4, (1, 1, 6, 6)), (3, 2, (1, 1, 4, 4, 4))]


@pytest.mark.parametrize("spatial_dims, scale, shape", SCRIPT_CASES)
def test_torchscript_matches_eager(spatial_dims, scale, shape, assert_script_matches):
    kwargs = {"gan_blocks": 2} if spatial_dims == 2 else SMALL
    assert_script_matches(SRCNNSRGANHybrid(spatial_dims, scale_factor=scale, **kwargs), torch.rand(shape))


@pytest.mark.parametrize("scale", [2, 4])
def test_channels_last_matches(scale, assert_channels_last_matches):
    assert_channels_last_matches(SRCNNSRGANHybrid(2, scale_factor=scale, gan_blocks=2), torch.rand(2, 1, 8, 8))


def test_default_parameter_count(num_params):
    assert 700_000 <= num_params(SRCNNSRGANHybrid()) <= 1_100_000  # 814,796 (x2, 2D)
    assert 700_000 <= num_params(SRCNNSRGANHybrid(scale_factor=4)) <= 1_100_000  # 1,024,717


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 1},
        {"scale_factor": 0},
        {"gan_blocks": 0},
        {"gan_features": 2.5},
        {"srcnn_features": (8,)},
        {"in_channels": 1, "out_channels": 2},  # SRCNN stage is residual
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(UsageError):
        SRCNNSRGANHybrid(**kwargs)
