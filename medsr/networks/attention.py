"""Attention-residual generator: RCAN-style residual groups with channel, spatial and transposed attention."""

from __future__ import annotations

import torch
from torch import nn

from medsr.errors import UsageError
from medsr.validation import (
    check_features_divisible,
    check_nonnegative_float,
    check_positive_int,
    check_sr_args,
)
from medsr.networks.blocks import (
    ChannelAttention,
    SpatialAttention,
    TransformerBlock,
    Upsampler,
    conv_nd,
    interpolate_skip,
)

__all__ = ["AttentionBlock", "AttentionResidualGenerator", "ResidualGroup"]


class AttentionBlock(nn.Module):
    """Residual channel-attention block (RCAB) with optional CBAM spatial attention.

    ``x + res_scale * SA(CA(conv(relu(conv(x)))))``; Zhang et al., 2018,
    https://arxiv.org/abs/1807.02758 and Woo et al., 2018, https://arxiv.org/abs/1807.06521.

    Args:
        spatial_dims: 2 or 3.
        num_features: channels in and out.
        reduction: channel-attention reduction. Defaults to 8.
        spatial_attention: add CBAM spatial attention after the channel attention. Defaults to True.
        res_scale: residual scaling. Defaults to 1.0.

    Example::

        block = AttentionBlock(2, 48)
        y = block(torch.rand(1, 48, 16, 16))  # same shape
    """

    def __init__(
        self,
        spatial_dims: int,
        num_features: int,
        reduction: int = 8,
        spatial_attention: bool = True,
        res_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.res_scale = check_nonnegative_float("res_scale", res_scale)
        self.body = nn.Sequential(
            conv_nd(spatial_dims, num_features, num_features),
            nn.ReLU(inplace=True),
            conv_nd(spatial_dims, num_features, num_features),
            ChannelAttention(spatial_dims, num_features, reduction),
            SpatialAttention(spatial_dims) if spatial_attention else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        if self.res_scale != 1.0:
            res = res * self.res_scale
        return x + res


class ResidualGroup(nn.Module):
    """RCAN residual group ``x + conv(blocks(x))``, optionally followed by a :class:`TransformerBlock`.

    Args:
        spatial_dims: 2 or 3.
        num_features: channels in and out.
        num_blocks: attention blocks in the group.
        reduction: channel-attention reduction. Defaults to 8.
        spatial_attention: CBAM spatial attention in each block. Defaults to True.
        use_transformer: append a transposed-attention transformer block. Defaults to True.
        num_heads: heads of the transformer block. Defaults to 4.
        res_scale: residual scaling of the blocks. Defaults to 1.0.

    Example::

        group = ResidualGroup(2, 48, num_blocks=3)
        y = group(torch.rand(1, 48, 16, 16))  # same shape
    """

    def __init__(
        self,
        spatial_dims: int,
        num_features: int,
        num_blocks: int,
        reduction: int = 8,
        spatial_attention: bool = True,
        use_transformer: bool = True,
        num_heads: int = 4,
        res_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[
                AttentionBlock(spatial_dims, num_features, reduction, spatial_attention, res_scale)
                for _ in range(num_blocks)
            ],
            conv_nd(spatial_dims, num_features, num_features),
        )
        self.context = TransformerBlock(spatial_dims, num_features, num_heads) if use_transformer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.context(x + self.body(x))


class AttentionResidualGenerator(nn.Module):
    """Attention-residual SR generator: RCAN residual groups + spatial attention + transposed-attention context.

    Residual-in-residual groups of residual channel-attention blocks (RCAN, Zhang
    et al., 2018, "Image Super-Resolution Using Very Deep Residual Channel
    Attention Networks", https://arxiv.org/abs/1807.02758), each block with CBAM
    spatial attention (Woo et al., 2018, https://arxiv.org/abs/1807.06521), and
    after each group a lightweight transformer block with transposed (channel)
    self-attention (Restormer, Zamir et al., 2022, https://arxiv.org/abs/2111.09881)
    for global context at a cost linear in the number of pixels (see
    :class:`medsr.networks.blocks.TransformerBlock`). All of it runs at low
    resolution; a sub-pixel upsampler (x4 as two x2 steps) and an output
    convolution follow. About 0.63 M parameters at the defaults (x2, 2D).

    With ``global_skip`` (default) the bicubic (2D) / trilinear (3D) interpolation
    of the input is added to the output (residual learning over interpolation).
    Because the transformer's attention is global, tiled inference should use
    overlapping tiles.

    Args:
        spatial_dims: 2 or 3. Defaults to 2.
        in_channels: input channels. Defaults to 1.
        out_channels: output channels (must equal ``in_channels`` with ``global_skip``). Defaults to 1.
        scale_factor: 2, 3 or 4. Defaults to 2.
        num_features: feature channels (divisible by ``num_heads``). Defaults to 48.
        num_groups: residual groups. Defaults to 3.
        num_blocks: attention blocks per group. Defaults to 3.
        reduction: channel-attention reduction. Defaults to 8.
        spatial_attention: CBAM spatial attention in each block. Defaults to True.
        use_transformer: a transformer block after each group. Defaults to True.
        num_heads: heads of the transformer blocks. Defaults to 4.
        res_scale: residual scaling of the blocks. Defaults to 1.0.
        global_skip: add the interpolated input to the output. Defaults to True.

    Example::

        net = AttentionResidualGenerator(spatial_dims=2, scale_factor=2)
        sr = net(torch.rand(1, 1, 64, 64))  # (1, 1, 128, 128)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        scale_factor: int = 2,
        num_features: int = 48,
        num_groups: int = 3,
        num_blocks: int = 3,
        reduction: int = 8,
        spatial_attention: bool = True,
        use_transformer: bool = True,
        num_heads: int = 4,
        res_scale: float = 1.0,
        global_skip: bool = True,
    ) -> None:
        super().__init__()
        check_sr_args(spatial_dims, in_channels, out_channels, scale_factor)
        check_positive_int("num_features", num_features)
        check_positive_int("num_groups", num_groups)
        check_positive_int("num_blocks", num_blocks)
        check_positive_int("reduction", reduction)
        check_positive_int("num_heads", num_heads)
        check_nonnegative_float("res_scale", res_scale)
        if use_transformer:
            check_features_divisible("num_features", num_features, "num_heads", num_heads)
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
            *[
                ResidualGroup(
                    spatial_dims,
                    num_features,
                    num_blocks,
                    reduction,
                    spatial_attention,
                    use_transformer,
                    num_heads,
                    res_scale,
                )
                for _ in range(num_groups)
            ],
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
