"""Tests of medsr.inference.upscalers: option validation, precision, interpolation baselines."""

from __future__ import annotations

import pytest
import torch

from medsr.errors import UsageError
from medsr.inference import InterpolationUpscaler, NetworkUpscaler, load_upscaler
from medsr.networks.edsr import EDSR


def _untiled(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(x[None])[0]

def test_precision_and_option_validation():
    net = EDSR(scale_factor=2, num_features=4, num_blocks=1)
    with pytest.raises(UsageError, match="precision"):
        NetworkUpscaler(net, 2, precision="fp8")
    with pytest.raises(UsageError, match="fp16 needs a CUDA"):
        NetworkUpscaler(net, 2, precision="fp16")
    with pytest.raises(UsageError, match="scale"):
        NetworkUpscaler(net, 3)
    with pytest.raises(UsageError, match="tile"):
        NetworkUpscaler(net, 2, tile=-1)
    with pytest.raises(UsageError, match="batch_size"):
        NetworkUpscaler(net, 2, batch_size=0)
    with pytest.raises(UsageError, match="device"):
        NetworkUpscaler(net, 2, device="tpu")
    with pytest.raises(UsageError, match="precision"):
        load_upscaler("bicubic", 2, precision="half")


def test_bf16_runs_close_to_fp32():
    net = EDSR(scale_factor=2, num_features=8, num_blocks=2)
    x = torch.rand(1, 40, 33)
    y = NetworkUpscaler(net, 2, precision="bf16", tile=16, halo=12)(x)
    assert y.dtype == torch.float32 and (y - _untiled(net, x)).abs().max() < 0.05


@pytest.mark.parametrize("kind", ["bicubic", "lanczos"])
@pytest.mark.parametrize("scale", [2, 4])
def test_interpolation_upscaler_shapes(kind, scale):
    up = InterpolationUpscaler(kind, scale)
    assert up(torch.rand(1, 10, 7)).shape == (1, 10 * scale, 7 * scale)
    assert up(torch.rand(1, 10, 7, 3)).shape == (1, 10 * scale, 7 * scale, 3)  # in-plane only


def test_bicubic_keeps_a_constant_image_constant():
    y = InterpolationUpscaler("bicubic", 2)(torch.full((1, 12, 9), 0.37))
    assert torch.allclose(y, torch.full_like(y, 0.37), atol=1e-6)


def test_interpolation_rejects_unknown_kind_and_scale():
    with pytest.raises(UsageError, match="kind"):
        InterpolationUpscaler("nearest", 2)
    with pytest.raises(UsageError, match="scale"):
        InterpolationUpscaler("bicubic", 3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_interpolation_never_falls_back_to_cpu_silently():
    with pytest.raises(UsageError, match="`device` cuda:0 was asked for"):
        load_upscaler("bicubic", 2, device="cuda:0")
