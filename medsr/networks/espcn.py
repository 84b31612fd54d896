"""ESPCN: efficient sub-pixel convolutional network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medsr.validation import check_kernel_sizes, check_positive_ints, check_sr_args
from medsr.networks.blocks import Upsampler, conv_nd

__all__ = ["ESPCN"]


class ESPCN(nn.Module):
    """ESPCN: two tanh convolutions at low resolution and one sub-pixel convolution layer.

    Shi et al., 2016, "Real-Time Single Image and Video Super-Resolution Using an
    Efficient Sub-Pixel Convolutional Neural Network", CVPR,
    https://arxiv.org/abs/1609.05158.

    As in the paper, the last convolution produces ``out_channels * scale**d``
    channels and a single pixel shuffle by ``scale`` follows (x4 is not
    factorised into two x2 steps). 3D uses MONAI's ``SubpixelUpsample``.

    Args:
        spatial_dims: 2 or 3. Defaults to 2.
        in_channels: input channels. Defaults to 1.
        out_channels: output channels. Defaults to 1.
        scale_factor: 2, 3 or 4. Defaults to 2.
        features: channels of the two hidden layers. Defaults to (64, 32).
        kernel_sizes: odd kernel sizes of the three layers. Defaults to (5, 3, 3).

    Example::

        net = ESPCN(spatial_dims=2, scale_factor=3)
        sr = net(torch.rand(1, 1, 32, 32))  # (1, 1, 96, 96)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        scale_factor: int = 2,
        features: Sequence[int] = (64, 32),
        kernel_sizes: Sequence[int] = (5, 3, 3),
    ) -> None:
        super().__init__()
        check_sr_args(spatial_dims, in_channels, out_channels, scale_factor)
        f1, f2 = check_positive_ints("features", features, 2)
        k1, k2, k3 = check_kernel_sizes("kernel_sizes", kernel_sizes, 3)
        self.body = nn.Sequential(
            conv_nd(spatial_dims, in_channels, f1, k1),
            nn.Tanh(),
            conv_nd(spatial_dims, f1, f2, k2),
            nn.Tanh(),
            Upsampler(spatial_dims, f2, out_channels, scale_factor, factorised=False, kernel_size=k3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
