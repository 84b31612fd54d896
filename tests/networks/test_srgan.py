from __future__ import annotations

import pytest
import torch

from medsr.errors import UsageError
from medsr.networks import SRGANDiscriminator, SRGANGenerator, SRResNet

SMALL = {"num_features": 8, "num_blocks": 2}

# (constructor arguments, input shape, expected output shape)
GENERATOR_CASES = [
    ({"spatial_dims": 2, "scale_factor": 2, **SMALL}, (2, 1, 8, 8), (2, 1, 16, 16)),
    ({"spatial_dims": 2, "scale_factor": 4, **SMALL}, (1, 1, 6, 5), (1, 1, 24, 20)),
    ({"spatial_dims": 2, "scale_factor": 3, **SMALL}, (1, 1, 5, 7), (1, 1, 15, 21)),
    ({"spatial_dims": 2, "in_channels": 3, "out_channels": 1, **SMALL}, (1, 3, 8, 8), (1, 1, 16, 16)),
    ({"spatial_dims": 2, "norm": "batch", **SMALL}, (2, 1, 8, 8), (2, 1, 16, 16)),
    ({"spatial_dims": 2, "global_skip": True, **SMALL}, (1, 1, 8, 8), (1, 1, 16, 16)),
    ({"spatial_dims": 3, "scale_factor": 2, **SMALL}, (1, 1, 4, 4, 4), (1, 1, 8, 8, 8)),
    ({"spatial_dims": 3, "scale_factor": 4, "head_kernel_size": 3, **SMALL}, (2, 1, 3, 4, 2), (2, 1, 12, 16, 8)),
]

# (constructor arguments, input shape, expected logits shape)
DISCRIMINATOR_CASES = [
    ({"spatial_dims": 2, "num_features": 8}, (2, 1, 32, 32), (2, 1)),
    ({"spatial_dims": 2, "num_features": 8}, (3, 1, 40, 56), (3, 1)),
    ({"spatial_dims": 2, "num_features": 8, "num_levels": 2, "norm": None}, (2, 1, 16, 16), (2, 1)),
    ({"spatial_dims": 3, "num_features": 4, "num_levels": 3}, (2, 1, 16, 16, 8), (2, 1)),
]


def test_generator_alias():
    assert SRGANGenerator is SRResNet


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", GENERATOR_CASES)
def test_generator_shape(kwargs, input_shape, expected_shape, device):
    net = SRResNet(**kwargs).to(device).eval()
    with torch.no_grad():
        assert net(torch.rand(input_shape, device=device)).shape == expected_shape


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", DISCRIMINATOR_CASES)
def test_discriminator_shape(kwargs, input_shape, expected_shape, device):
    net = SRGANDiscriminator(**kwargs).to(device).eval()
    x = torch.rand(input_shape, device=device)
    with torch.no_grad():
        assert net(x).shape == expected_shape
        feats = net.forward_features(x)
    assert len(feats) == kwargs.get("num_levels", 4)
    size = input_shape[2:]
    for f in feats:
        size = tuple((s + 1) // 2 for s in size)  # stride-2 3x3 convolutions with padding 1
        assert f.shape[2:] == size


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 1, 8, 8)), (3, (1, 1, 4, 4, 4))])
def test_gradients_flow(spatial_dims, shape, assert_gradients_flow):
    assert_gradients_flow(SRResNet(spatial_dims, **SMALL), torch.rand(shape))
    assert_gradients_flow(SRResNet(spatial_dims, norm="batch", **SMALL), torch.rand(shape))
    disc = SRGANDiscriminator(spatial_dims, num_features=4, num_levels=2, hidden_features=8)
    assert_gradients_flow(disc, torch.rand(shape[:2] + (8,) * spatial_dims))


SCRIPT_CASES = [(2, 2, (1, 1, 8, 8)), (2, 4, (1, 1, 6, 6)), (3, 2, (1, 1, 4, 4, 4))]


@pytest.mark.parametrize("spatial_dims, scale, shape", SCRIPT_CASES)
def test_torchscript_matches_eager(spatial_dims, scale, shape, assert_script_matches):
    assert_script_matches(SRResNet(spatial_dims, scale_factor=scale, num_blocks=2), torch.rand(shape))
    assert_script_matches(SRResNet(spatial_dims, scale_factor=scale, norm="batch", **SMALL), torch.rand(shape))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_discriminator_torchscript(assert_script_matches):
    disc = SRGANDiscriminator(2, num_features=8, num_levels=3, hidden_features=16).eval()
    x = torch.rand(2, 1, 16, 16)
    assert_script_matches(disc, x)
    scripted = torch.jit.script(disc)
    for got, expected in zip(scripted.forward_features(x), disc.forward_features(x), strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("scale", [2, 4])
def test_channels_last_matches(scale, assert_channels_last_matches):
    assert_channels_last_matches(SRResNet(2, scale_factor=scale, num_blocks=2), torch.rand(2, 1, 8, 8))
    disc = SRGANDiscriminator(2, num_features=8, num_levels=2, hidden_features=16)
    assert_channels_last_matches(disc, torch.rand(2, 1, 16, 16))


def test_default_parameter_count(num_params):
    assert 1_300_000 <= num_params(SRResNet()) <= 1_600_000  # 1,376,787 (x2, 2D; paper ~1.5 M at x4)
    assert 1_300_000 <= num_params(SRResNet(scale_factor=4)) <= 1_600_000  # 1,524,500
    assert 5_000_000 <= num_params(SRGANDiscriminator()) <= 5_500_000  # 5,212,417 (conv layers as the paper)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (SRResNet, {"spatial_dims": 1}),
        (SRResNet, {"scale_factor": 1}),
        (SRResNet, {"num_features": 0}),
        (SRResNet, {"head_kernel_size": 4}),
        (SRResNet, {"out_channels": 2, "global_skip": True}),
        (SRGANDiscriminator, {"spatial_dims": 5}),
        (SRGANDiscriminator, {"num_levels": 0}),
        (SRGANDiscriminator, {"in_channels": True}),
    ],
)
def test_bad_arguments(cls, kwargs):
    with pytest.raises(UsageError):
        cls(**kwargs)
