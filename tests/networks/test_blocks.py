from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medsr.errors import UsageError
from medsr.networks.blocks import (
    ChannelAttention,
    ChannelLayerNorm,
    ResidualBlock,
    SpatialAttention,
    TransformerBlock,
    Upsampler,
    interpolate_skip,
)

# (Upsampler arguments, input shape, expected output shape)
UPSAMPLER_CASES = [
    ({"spatial_dims": 2, "in_channels": 4, "scale_factor": 2}, (2, 4, 5, 6), (2, 4, 10, 12)),
    ({"spatial_dims": 2, "in_channels": 4, "out_channels": 1, "scale_factor": 3}, (1, 4, 5, 6), (1, 1, 15, 18)),
    ({"spatial_dims": 2, "in_channels": 4, "scale_factor": 4, "act": "prelu"}, (1, 4, 5, 6), (1, 4, 20, 24)),
    (
        {"spatial_dims": 2, "in_channels": 4, "out_channels": 2, "scale_factor": 4, "factorised": False},
        (1, 4, 3, 3),
        (1, 2, 12, 12),
    ),
    ({"spatial_dims": 3, "in_channels": 4, "scale_factor": 2}, (1, 4, 2, 3, 4), (1, 4, 4, 6, 8)),
    ({"spatial_dims": 3, "in_channels": 4, "out_channels": 1, "scale_factor": 4}, (1, 4, 2, 3, 1), (1, 1, 8, 12, 4)),
    ({"spatial_dims": 3, "in_channels": 2, "scale_factor": 3, "factorised": False}, (1, 2, 2, 2, 2), (1, 2, 6, 6, 6)),
]

# (block, input shape): shape-preserving blocks
SAME_SHAPE_CASES = [
    (lambda d: ResidualBlock(d, 8, res_scale=0.2), 8),
    (lambda d: ResidualBlock(d, 8, act="prelu", norm="batch"), 8),
    (lambda d: ChannelAttention(d, 8, reduction=4), 8),
    (lambda d: SpatialAttention(d), 8),
    (lambda d: ChannelLayerNorm(d, 8), 8),
    (lambda d: TransformerBlock(d, 8, num_heads=2), 8),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", UPSAMPLER_CASES)
def test_upsampler_shape(kwargs, input_shape, expected_shape, assert_script_matches):
    up = Upsampler(**kwargs)
    assert up(torch.rand(input_shape)).shape == expected_shape
    assert_script_matches(up, torch.rand(input_shape))


def test_upsampler_icnr_starts_as_nearest_neighbour():
    # ICNR: every sub-pixel of a low-resolution pixel starts with the same value (no checkerboard)
    up = Upsampler(2, 4, 1, scale_factor=2)
    torch.nn.init.zeros_(up.body[0].bias)
    y = up(torch.rand(1, 4, 5, 5))
    torch.testing.assert_close(y, F.interpolate(y[..., ::2, ::2], scale_factor=2.0, mode="nearest"))


@pytest.mark.parametrize("make, channels", SAME_SHAPE_CASES)
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_blocks_keep_shape_and_script(make, channels, spatial_dims, assert_script_matches, assert_gradients_flow):
    block = make(spatial_dims)
    x = torch.rand((2, channels) + (6,) * spatial_dims)
    assert block.eval()(x).shape == x.shape
    assert_script_matches(block, x)
    assert_gradients_flow(block, x)


@pytest.mark.parametrize("make, channels", SAME_SHAPE_CASES)
def test_blocks_channels_last(make, channels, assert_channels_last_matches):
    assert_channels_last_matches(make(2), torch.rand(2, channels, 6, 7))


def test_channel_layer_norm_equals_layer_norm():
    x = torch.randn(2, 8, 5, 6)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (8,)).permute(0, 3, 1, 2)
    torch.testing.assert_close(ChannelLayerNorm(2, 8)(x), ref, atol=1e-5, rtol=0)


def test_transformer_block_has_global_context():
    block = TransformerBlock(2, 8, num_heads=2).eval()
    x = torch.rand(1, 8, 32, 32)
    x2 = x.clone()
    x2[:, 0, 31, 31] += 1.0  # one channel of a far corner (a constant over channels is removed by the norm)
    with torch.no_grad():
        assert (block(x)[..., 0, 0] - block(x2)[..., 0, 0]).abs().max() > 0


def test_residual_block_fold_is_exact():
    block = ResidualBlock(2, 8, res_scale=0.1).eval()
    x = torch.rand(1, 8, 6, 6)
    with torch.no_grad():
        expected = block(x)
        block.fold_residual_scale()
        torch.testing.assert_close(block(x), expected, atol=1e-6, rtol=0)
    assert block.res_scale == 1.0


@pytest.mark.parametrize("spatial_dims, mode", [(2, "bicubic"), (3, "trilinear")])
def test_interpolate_skip(spatial_dims, mode):
    x = torch.rand((1, 1) + (4,) * spatial_dims)
    y = interpolate_skip(x, 2, spatial_dims)
    assert y.shape == (1, 1) + (8,) * spatial_dims
    torch.testing.assert_close(y, F.interpolate(x, scale_factor=2, mode=mode, align_corners=False))


@pytest.mark.parametrize(
    "make",
    [
        lambda: ResidualBlock(2, 0),
        lambda: ResidualBlock(2, 8, kernel_size=2),
        lambda: ResidualBlock(2, 8, res_scale=-0.1),
        lambda: ChannelAttention(4, 8),
        lambda: SpatialAttention(2, kernel_size=6),
        lambda: Upsampler(2, 8, scale_factor=5),
        lambda: Upsampler(2, 8, scale_factor=2.0),
        lambda: Upsampler(2, 8, out_channels=0),
        lambda: TransformerBlock(2, 10, num_heads=4),
    ],
)
def test_bad_arguments(make):
    with pytest.raises(UsageError):
        make()
