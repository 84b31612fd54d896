"""SRCNN: three convolutions on the interpolated low-resolution image."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medsr.errors import UsageError
from medsr.validation import check_kernel_sizes, check_positive_ints, check_sr_args
from medsr.networks.blocks import conv_nd, interpolate_skip

__all__ = ["SRCNN"]


class SRCNN(nn.Module):
    """SRCNN: patch extraction, non-linear mapping and reconstruction on the bicubic-upsampled input.

    Dong et al., 2016, "Image Super-Resolution Using Deep Convolutional Networks",
    IEEE TPAMI 38(2), https://arxiv.org/abs/1501.00092.

    The network interpolates the low-resolution input itself (bicubic in 2D,
    trilinear in 3D) and pads every convolution so the size is kept (the paper
    used unpadded convolutions and a smaller output). With ``residual=True``
    (default) it predicts the residual over the interpolated input, a common
    variant (as in VDSR) that trains much faster and to a better optimum on
    small budgets; ``residual=False`` is the paper's direct prediction.
    All the work happens at high resolution, so SRCNN costs ``scale**d`` times
    what the same layers would cost at low resolution.

    Args:
        spatial_dims: 2 or 3. Defaults to 2.
        in_channels: input channels. Defaults to 1.
        out_channels: output channels (must equal ``in_channels`` when ``residual``). Defaults to 1.
        scale_factor: 2, 3 or 4. Defaults to 2.
        features: channels of the first two layers. Defaults to (64, 32).
        kernel_sizes: odd kernel sizes of the three layers. Defaults to (9, 1, 5) (the paper's 9-1-5).
        residual: add the interpolated input to the output. Defaults to True.

    Example::

        net = SRCNN(spatial_dims=2, scale_factor=2)
        sr = net(torch.rand(1, 1, 64, 64))  # (1, 1, 128, 128)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        scale_factor: int = 2,
        features: Sequence[int] = (64, 32),
        kernel_sizes: Sequence[int] = (9, 1, 5),
        residual: bool = True,
    ) -> None:
        super().__init__()
        check_sr_args(spatial_dims, in_channels, out_channels, scale_factor)
        f1, f2 = check_positive_ints("features", features, 2)
        k1, k2, k3 = check_kernel_sizes("kernel_sizes", kernel_sizes, 3)
        if residual and in_channels != out_channels:
            raise UsageError(
                f"`residual=True` needs `in_channels == out_channels`, got {in_channels} and {out_channels}. "
                "Pass residual=False or equal channel counts."
            )
        self.spatial_dims = spatial_dims
        self.scale_factor = scale_factor
        self.residual = bool(residual)
        self.body = nn.Sequential(
            conv_nd(spatial_dims, in_channels, f1, k1),
            nn.ReLU(inplace=True),
            conv_nd(spatial_dims, f1, f2, k2),
            nn.ReLU(inplace=True),
            conv_nd(spatial_dims, f2, out_channels, k3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = interpolate_skip(x, self.scale_factor, self.spatial_dims)
        out = self.body(up)
        if self.residual:
            out = out + up
        return out
