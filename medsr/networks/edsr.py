"""EDSR-M: a minimal enhanced deep residual network for super-resolution."""

from __future__ import annotations

import copy

import torch
from torch import nn

from medsr.errors import UsageError
from medsr.validation import check_nonnegative_float, check_positive_int, check_sr_args
from medsr.networks.blocks import ResidualBlock, Upsampler, conv_nd, interpolate_skip

__all__ = ["EDSR"]


class EDSR(nn.Module):
    """EDSR-M: residual blocks without batch normalisation at low resolution, sub-pixel upsampling.

    Lim et al., 2017, "Enhanced Deep Residual Networks for Single Image
    Super-Resolution", CVPRW, https://arxiv.org/abs/1707.02921.

    A small EDSR: head convolution, ``num_blocks`` conv-ReLU-conv residual blocks
    (no BN) with residual scaling, a body convolution with a long skip, a
    sub-pixel upsampler (x4 as two x2 steps) and an output convolution; about
    0.19 M parameters at the defaults (x2, 2D). ``res_scale`` defaults to 1.0, as
    in the paper's baseline model: the 0.1 scaling stabilises the 256-channel
    EDSR, whereas a network this small trains stably without it, and faster.
    The RGB mean shift of the paper is dropped (inputs are in [0, 1]).

    With ``global_skip`` (default) the bicubic (2D) / trilinear (3D) interpolation
    of the input is added to the output, so the network only learns the residual
    over interpolation; at initialisation it is already as good as bicubic, and
    it converges much faster on small training budgets.

    Args:
        spatial_dims: 2 or 3. Defaults to 2.
        in_channels: input channels. Defaults to 1.
        out_channels: output channels (must equal ``in_channels`` with ``global_skip``). Defaults to 1.
        scale_factor: 2, 3 or 4. Defaults to 2.
        num_features: feature channels. Defaults to 32.
        num_blocks: residual blocks. Defaults to 8.
        res_scale: residual scaling of the blocks. Defaults to 1.0.
        global_skip: add the interpolated input to the output. Defaults to True.

    Example::

        net = EDSR(spatial_dims=2, scale_factor=4)
        sr = net(torch.rand(1, 1, 64, 64))  # (1, 1, 256, 256)
        fast = net.fold_residual_scale()  # same outputs, no residual multiplication
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        scale_factor: int = 2,
        num_features: int = 32,
        num_blocks: int = 8,
        res_scale: float = 1.0,
        global_skip: bool = True,
    ) -> None:
        super().__init__()
        check_sr_args(spatial_dims, in_channels, out_channels, scale_factor)
        check_positive_int("num_features", num_features)
        check_positive_int("num_blocks", num_blocks)
        check_nonnegative_float("res_scale", res_scale)
        if global_skip and in_channels != out_channels:
            raise UsageError(
                f"`global_skip=True` needs `in_channels == out_channels`, got {in_channels} and {out_channels}. "
                "Pass global_skip=False or equal channel counts."
            )
        self.spatial_dims = spatial_dims
        self.scale_factor = scale_factor
        self.global_skip = bool(global_skip)
        self.head = conv_nd(spatial_dims, in_channels, num_features)
        self.body = nn.Sequential(
            *[ResidualBlock(spatial_dims, num_features, 3, res_scale, "relu") for _ in range(num_blocks)],
            conv_nd(spatial_dims, num_features, num_features),
        )
        self.upsample = Upsampler(spatial_dims, num_features, num_features, scale_factor)
        self.tail = conv_nd(spatial_dims, num_features, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        out = self.tail(self.upsample(feat + self.body(feat)))
        if self.global_skip:
            out = out + interpolate_skip(x, self.scale_factor, self.spatial_dims)
        return out

    def fold_residual_scale(self) -> EDSR:
        """Return a copy with ``res_scale`` folded into each block's second convolution.

        Exact up to float rounding (``s * (W * h + b) == (s W) * h + s b``); the copy
        has ``res_scale = 1`` and skips the multiplication. This model is unchanged.
        """
        folded = copy.deepcopy(self)
        for module in folded.modules():
            if isinstance(module, ResidualBlock):
                module.fold_residual_scale()
        return folded
