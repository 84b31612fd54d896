"""Super-resolution networks, one per module, all mapping ``(N, C, *s)`` in [0, 1] to ``(N, C', *s * scale)``.

Every network takes MONAI's ``spatial_dims, in_channels, out_channels,
scale_factor`` (2D and 3D, scale 2, 3 or 4), is TorchScript-able
(``torch.jit.script``) and accepts ``torch.channels_last`` inputs in 2D.
Outputs are not clamped to [0, 1]; inference clamps.
"""

from __future__ import annotations

from medsr.networks.attention import AttentionBlock, AttentionResidualGenerator, ResidualGroup
from medsr.networks.blocks import (
    ChannelAttention,
    ChannelLayerNorm,
    GatedFeedForward,
    ResidualBlock,
    SpatialAttention,
    TransformerBlock,
    TransposedAttention,
    Upsampler,
    conv_nd,
    interpolate_skip,
)
from medsr.networks.edsr import EDSR
from medsr.networks.espcn import ESPCN
from medsr.networks.hybrid import SpaceToDepth, SRCNNSRGANHybrid
from medsr.networks.srcnn import SRCNN
from medsr.networks.srgan import SRGANDiscriminator, SRGANGenerator, SRResNet
from medsr.networks.slice_refiner import SliceRefiner
from medsr.networks.vdsr import VDSR

__all__ = [
    "AttentionBlock",
    "AttentionResidualGenerator",
    "ChannelAttention",
    "ChannelLayerNorm",
    "EDSR",
    "ESPCN",
    "GatedFeedForward",
    "ResidualBlock",
    "ResidualGroup",
    "SRCNN",
    "SRCNNSRGANHybrid",
    "SRGANDiscriminator",
    "SRGANGenerator",
    "SRResNet",
    "SliceRefiner",
    "SpaceToDepth",
    "SpatialAttention",
    "TransformerBlock",
    "TransposedAttention",
    "Upsampler",
    "VDSR",
    "conv_nd",
    "interpolate_skip",
]
