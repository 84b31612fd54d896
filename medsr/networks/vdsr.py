"""VDSR: a very deep residual network on the interpolated low-resolution image."""

from __future__ import annotations

import torch
from torch import nn

from medsr.errors import UsageError
from medsr.validation import check_positive_int, check_sr_args
from medsr.networks.blocks import conv_nd, interpolate_skip

__all__ = ["VDSR"]


class VDSR(nn.Module):
    """VDSR: ``num_layers`` 3x3 convolutions predicting the residual over bicubic interpolation.

    Kim et al., 2016, "Accurate Image Super-Resolution Using Very Deep
    Convolutional Networks", CVPR, https://arxiv.org/abs/1511.04587.

    The network interpolates the input itself (bicubic in 2D, trilinear in 3D),
    then applies conv-ReLU layers and a last convolution, and adds the
    interpolated input (global residual learning). A baseline: every layer runs
    at high resolution, so it is ``scale**d`` times slower than a network of the
    same depth and width working at low resolution (EDSR, SRResNet).

    Args:
        spatial_dims: 2 or 3. Defaults to 2.
        in_channels: input channels. Defaults to 1.
        out_channels: output channels (must equal ``in_channels``: VDSR is residual). Defaults to 1.
        scale_factor: 2, 3 or 4. Defaults to 2.
        num_features: channels of the hidden layers. Defaults to 64.
        num_layers: convolution layers in total (>= 2). Defaults to 20.

    Example::

        net = VDSR(spatial_dims=2, scale_factor=2, num_layers=10)
        sr = net(torch.rand(1, 1, 32, 32))  # (1, 1, 64, 64)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        scale_factor: int = 2,
        num_features: int = 64,
        num_layers: int = 20,
    ) -> None:
        super().__init__()
        check_sr_args(spatial_dims, in_channels, out_channels, scale_factor)
        check_positive_int("num_features", num_features)
        if check_positive_int("num_layers", num_layers) < 2:
            raise UsageError(f"`num_layers` must be >= 2, got {num_layers}. Pass e.g. 20 (the paper).")
        if in_channels != out_channels:
            raise UsageError(
                f"VDSR is residual: `in_channels` must equal `out_channels`, got {in_channels} and {out_channels}. "
                "Pass equal channel counts."
            )
        self.spatial_dims = spatial_dims
        self.scale_factor = scale_factor
        layers: list[nn.Module] = [conv_nd(spatial_dims, in_channels, num_features), nn.ReLU(inplace=True)]
        for _ in range(num_layers - 2):
            layers += [conv_nd(spatial_dims, num_features, num_features), nn.ReLU(inplace=True)]
        layers.append(conv_nd(spatial_dims, num_features, out_channels))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = interpolate_skip(x, self.scale_factor, self.spatial_dims)
        return up + self.body(up)
