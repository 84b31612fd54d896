"""SRResNet / SRGAN generator and the SRGAN discriminator."""

from __future__ import annotations

import torch
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from torch import nn

from medsr.errors import UsageError
from medsr.validation import (
    check_kernel_sizes,
    check_positive_int,
    check_spatial_dims,
    check_sr_args,
)
from medsr.networks.blocks import ActSpec, ResidualBlock, Upsampler, conv_nd, interpolate_skip

__all__ = ["SRGANDiscriminator", "SRGANGenerator", "SRResNet"]


class SRResNet(nn.Module):
    """SRResNet, the SRGAN generator: residual blocks at low resolution, then sub-pixel upsampling.

    Ledig et al., 2017, "Photo-Realistic Single Image Super-Resolution Using a
    Generative Adversarial Network", CVPR, https://arxiv.org/abs/1609.04802.

    Layout as in the paper: a ``head_kernel_size`` convolution + PReLU, ``num_blocks``
    residual blocks (conv-[BN]-PReLU-conv-[BN]), a conv-[BN] and a long skip from
    the head, x2 sub-pixel steps each followed by PReLU (x3 in one step), and a
    ``head_kernel_size`` output convolution. The 9x9 head and tail touch only the
    image channels, so they cost a few percent of the body.

    Batch normalisation is off by default (``norm=None``): EDSR (Lim et al., 2017)
    showed that BN in SR generators costs accuracy and memory, and on medical
    images the batch statistics of small, intensity-heterogeneous batches (CT
    windows, MR contrasts) differ between training and inference. Pass
    ``norm="batch"`` for the paper's network.

    ``SRGANGenerator`` is the same class (SRGAN is SRResNet trained with an
    adversarial and a content loss, see :mod:`medsr.losses`).

    Args:
        spatial_dims: 2 or 3. Defaults to 2.
        in_channels: input channels. Defaults to 1.
        out_channels: output channels. Defaults to 1.
        scale_factor: 2, 3 or 4 (x4 as two x2 steps). Defaults to 2.
        num_features: feature channels. Defaults to 64.
        num_blocks: residual blocks. Defaults to 16.
        norm: MONAI norm spec in the residual blocks and after the body, or None. Defaults to None.
        act: MONAI activation spec. Defaults to ``"prelu"``.
        head_kernel_size: odd kernel size of the first and last convolutions. Defaults to 9.
        global_skip: add the bicubic/trilinear interpolation of the input to the output
            (needs ``in_channels == out_channels``). Defaults to False (the paper).

    Example::

        net = SRResNet(spatial_dims=2, scale_factor=4, num_blocks=8)
        sr = net(torch.rand(1, 1, 32, 32))  # (1, 1, 128, 128)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        scale_factor: int = 2,
        num_features: int = 64,
        num_blocks: int = 16,
        norm: str | tuple | None = None,
        act: ActSpec = "prelu",
        head_kernel_size: int = 9,
        global_skip: bool = False,
    ) -> None:
        super().__init__()
        check_sr_args(spatial_dims, in_channels, out_channels, scale_factor)
        check_positive_int("num_features", num_features)
        check_positive_int("num_blocks", num_blocks)
        (head_kernel_size,) = check_kernel_sizes("head_kernel_size", (head_kernel_size,))
        if global_skip and in_channels != out_channels:
            raise UsageError(
                f"`global_skip=True` needs `in_channels == out_channels`, got {in_channels} and {out_channels}. "
                "Pass global_skip=False or equal channel counts."
            )
        self.spatial_dims = spatial_dims
        self.scale_factor = scale_factor
        self.global_skip = bool(global_skip)
        self.head = nn.Sequential(
            conv_nd(spatial_dims, in_channels, num_features, head_kernel_size), get_act_layer(act)
        )
        self.body = nn.Sequential(
            *[ResidualBlock(spatial_dims, num_features, 3, 1.0, act, norm) for _ in range(num_blocks)],
            conv_nd(spatial_dims, num_features, num_features, 3, bias=norm is None),
            nn.Identity() if norm is None else get_norm_layer(norm, spatial_dims, num_features),
        )
        self.upsample = Upsampler(spatial_dims, num_features, num_features, scale_factor, act=act)
        self.tail = conv_nd(spatial_dims, num_features, out_channels, head_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        out = self.tail(self.upsample(feat + self.body(feat)))
        if self.global_skip:
            out = out + interpolate_skip(x, self.scale_factor, self.spatial_dims)
        return out


SRGANGenerator = SRResNet
"""The SRGAN generator is SRResNet (same architecture, trained adversarially)."""


class SRGANDiscriminator(nn.Module):
    """SRGAN's VGG-style discriminator, made patch-size agnostic by global average pooling.

    Ledig et al., 2017, "Photo-Realistic Single Image Super-Resolution Using a
    Generative Adversarial Network", CVPR, https://arxiv.org/abs/1609.04802.

    ``num_levels`` levels, each a stride-1 and a stride-2 3x3 convolution (the first
    level has no norm on its first convolution, as in the paper), channels
    doubling per level from ``num_features`` up to ``max_features``. The feature
    map is averaged over space and two 1x1 "dense" layers give one logit per
    image, so any patch size >= ``2**num_levels`` works (the paper's flatten +
    dense layers fixed it to 96x96). :meth:`forward_features` returns the output of
    every level for a feature-matching loss
    (:class:`medsr.losses.PerceptualLoss` with ``feature_extractor``).

    Args:
        spatial_dims: 2 or 3. Defaults to 2.
        in_channels: input channels. Defaults to 1.
        num_features: channels of the first level. Defaults to 64.
        num_levels: stride-2 levels. Defaults to 4 (the paper: 64-128-256-512).
        max_features: cap on the channels. Defaults to 512.
        hidden_features: width of the dense layer. Defaults to 1024.
        norm: MONAI norm spec, or None (e.g. with spectral normalisation added by the user). Defaults to ``"batch"``.
        negative_slope: LeakyReLU slope. Defaults to 0.2.

    Example::

        disc = SRGANDiscriminator(spatial_dims=2, num_features=32)
        logits = disc(torch.rand(4, 1, 64, 64))  # (4, 1)
        feats = disc.forward_features(torch.rand(4, 1, 64, 64))  # 4 feature maps
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        num_features: int = 64,
        num_levels: int = 4,
        max_features: int = 512,
        hidden_features: int = 1024,
        norm: str | tuple | None = "batch",
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive_int("in_channels", in_channels)
        check_positive_int("num_features", num_features)
        check_positive_int("num_levels", num_levels)
        check_positive_int("max_features", max_features)
        check_positive_int("hidden_features", hidden_features)
        self.spatial_dims = spatial_dims
        self.dims = list(range(2, 2 + spatial_dims))
        act = ("leakyrelu", {"negative_slope": float(negative_slope), "inplace": True})

        def block(cin: int, cout: int, stride: int, use_norm: bool) -> list[nn.Module]:
            with_norm = use_norm and norm is not None
            layers: list[nn.Module] = [conv_nd(spatial_dims, cin, cout, 3, stride=stride, bias=not with_norm)]
            if with_norm:
                layers.append(get_norm_layer(norm, spatial_dims, cout))
            layers.append(get_act_layer(act))
            return layers

        levels: list[nn.Module] = []
        cin = in_channels
        for i in range(num_levels):
            cout = min(num_features * 2**i, max_features)
            levels.append(nn.Sequential(*block(cin, cout, 1, i > 0), *block(cout, cout, 2, True)))
            cin = cout
        self.levels = nn.ModuleList(levels)
        self.classifier = nn.Sequential(
            conv_nd(spatial_dims, cin, hidden_features, 1),
            get_act_layer(act),
            conv_nd(spatial_dims, hidden_features, 1, 1),
        )

    @torch.jit.export
    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the output of every level (after its activation), shallow to deep."""
        feats: list[torch.Tensor] = []
        for level in self.levels:
            x = level(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return one real-vs-fake logit per image, shape ``(N, 1)``."""
        for level in self.levels:
            x = level(x)
        x = torch.mean(x, dim=self.dims, keepdim=True)
        return self.classifier(x).flatten(1)
