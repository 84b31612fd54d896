"""SliceRefiner: a residual network that restores detail along the slice axis of a reformatted plane."""

from __future__ import annotations

import torch
from torch import nn

from medsr.errors import UsageError
from medsr.validation import check_positive_int
from medsr.networks.blocks import conv_nd

__all__ = ["SliceRefiner"]


class SliceRefiner(nn.Module):
    """Residual correction of a plane already interpolated (cubic) along its last axis, the slice axis.

    In the spirit of SMORE (Zhao et al., 2021, "SMORE: A Self-Supervised
    Anti-Aliasing and Super-Resolution Algorithm for MRI Using Deep Learning",
    IEEE TMI 40(3), https://doi.org/10.1109/TMI.2020.3037187) and of VDSR (Kim et
    al., 2016, https://arxiv.org/abs/1511.04587): a sagittal or coronal plane of a
    thick-slice volume, interpolated to the thin-slice grid along the slice axis,
    goes through ``num_layers`` 3x3 convolutions whose output is added to it. The
    network keeps the size of its input (the upsampling itself is the cubic
    interpolation in :mod:`medsr.slices`), so one network serves any number of
    slices; one set of weights is trained per slice factor. Its receptive-field
    radius is ``num_layers`` pixels, which is the halo :mod:`medsr.slices` gives
    each slab of output slices (so slab-wise results equal the whole-plane result).

    Args:
        spatial_dims: 2 (planes). Defaults to 2.
        in_channels: input channels. Defaults to 1.
        out_channels: output channels (must equal ``in_channels``: the network is residual). Defaults to 1.
        num_features: channels of the hidden layers. Defaults to 24.
        num_layers: convolution layers in total (>= 2). Defaults to 6.

    Example::

        net = SliceRefiner(num_features=24, num_layers=6)
        out = net(torch.rand(2, 1, 64, 37))  # (2, 1, 64, 37): same size, residual-corrected
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        num_features: int = 24,
        num_layers: int = 6,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise UsageError(f"`spatial_dims` must be 2 (SliceRefiner works on planes), got {spatial_dims}.")
        check_positive_int("in_channels", in_channels)
        check_positive_int("num_features", num_features)
        if in_channels != out_channels:
            raise UsageError(
                f"SliceRefiner is residual: `in_channels` must equal `out_channels`, got {in_channels} and "
                f"{out_channels}. Pass equal channel counts."
            )
        if check_positive_int("num_layers", num_layers) < 2:
            raise UsageError(f"`num_layers` must be >= 2, got {num_layers}. Pass e.g. 6.")
        self.spatial_dims = spatial_dims
        self.num_layers = num_layers
        layers: list[nn.Module] = [conv_nd(2, in_channels, num_features), nn.ReLU(inplace=True)]
        for _ in range(num_layers - 2):
            layers += [conv_nd(2, num_features, num_features), nn.ReLU(inplace=True)]
        last = conv_nd(2, num_features, out_channels)
        nn.init.zeros_(last.weight)  # starts as the identity: exactly the cubic interpolation it refines
        if last.bias is not None:
            nn.init.zeros_(last.bias)
        layers.append(last)
        self.body = nn.Sequential(*layers)

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output pixel depends on, per side (one per 3x3 layer)."""
        return self.num_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
