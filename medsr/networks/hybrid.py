"""SRCNN -> SRGAN hybrid: an SRCNN structure estimate refined by an SRResNet/SRGAN generator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medsr.validation import check_positive_int, check_sr_args
from medsr.networks.blocks import ActSpec
from medsr.networks.srcnn import SRCNN
from medsr.networks.srgan import SRResNet

__all__ = ["SRCNNSRGANHybrid", "SpaceToDepth"]


class SpaceToDepth(nn.Module):
    """Lossless pixel unshuffle: ``(N, C, *s*r) -> (N, C*r**d, *s)``, the inverse of the sub-pixel shuffle.

    2D uses ``nn.PixelUnshuffle``; 3D follows the channel order of MONAI's
    ``pixelshuffle`` (so ``pixelshuffle(SpaceToDepth(3, r)(x), 3, r) == x``) and,
    unlike ``monai.networks.utils.pixelunshuffle``, is TorchScript-able.

    Args:
        spatial_dims: 2 or 3.
        scale_factor: the block size ``r``; every spatial size must be divisible by it.

    Example::

        y = SpaceToDepth(2, 2)(torch.rand(1, 1, 8, 8))  # (1, 4, 4, 4)
    """

    def __init__(self, spatial_dims: int, scale_factor: int) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.scale_factor = scale_factor
        self.unshuffle2d = nn.PixelUnshuffle(scale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spatial_dims == 2:
            return self.unshuffle2d(x)
        r = self.scale_factor
        b, c, d, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4]
        x = x.reshape(b, c, d // r, r, h // r, r, w // r, r).permute(0, 1, 3, 5, 7, 2, 4, 6)
        return x.reshape(b, c * r * r * r, d // r, h // r, w // r)


class SRCNNSRGANHybrid(nn.Module):
    """SRCNN stage for structure, then an SRGAN-generator stage for detail, trained as one generator.

    Combines SRCNN (Dong et al., 2016, https://arxiv.org/abs/1501.00092) and
    SRResNet/SRGAN (Ledig et al., 2017, https://arxiv.org/abs/1609.04802).

    1. **Structure.** An SRCNN (residual over bicubic/trilinear interpolation)
       gives a high-resolution structure estimate ``s``. It is three thin layers
       on 1 channel: ~8k multiply-adds per output pixel.
    2. **Detail.** ``s`` is folded back to low resolution losslessly by
       space-to-depth (``scale**d`` channels per low-resolution pixel),
       concatenated with the input, and an SRResNet (generator of SRGAN) maps
       that to a high-resolution detail residual ``r``. The output is ``s + r``.

    Why this order: the expensive part (the residual blocks, >95% of the
    compute) runs at *low* resolution, i.e. ``scale**d`` times fewer pixels than
    SRCNN-on-bicubic followed by a refinement network at high resolution, while
    the detail stage still sees every pixel of the structure estimate. Both
    stages get gradients from the same loss (the structure estimate can also be
    supervised on its own with :meth:`forward_with_structure`).

    Args:
        spatial_dims: 2 or 3. Defaults to 2.
        in_channels: input channels (must equal ``out_channels``: SRCNN is residual). Defaults to 1.
        out_channels: output channels. Defaults to 1.
        scale_factor: 2, 3 or 4 (x4 as two x2 steps in the detail stage). Defaults to 2.
        srcnn_features: channels of SRCNN's first two layers. Defaults to (64, 32).
        srcnn_kernel_sizes: SRCNN kernel sizes. Defaults to (9, 1, 5).
        gan_features: feature channels of the SRResNet stage. Defaults to 64.
        gan_blocks: residual blocks of the SRResNet stage. Defaults to 8.
        norm: MONAI norm spec of the SRResNet stage, or None (see :class:`SRResNet`). Defaults to None.
        act: activation of the SRResNet stage. Defaults to ``"prelu"``.
        head_kernel_size: first/last kernel size of the SRResNet stage. Defaults to 9.

    Example::

        net = SRCNNSRGANHybrid(spatial_dims=2, scale_factor=2)
        sr = net(torch.rand(1, 1, 64, 64))  # (1, 1, 128, 128)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        scale_factor: int = 2,
        srcnn_features: Sequence[int] = (64, 32),
        srcnn_kernel_sizes: Sequence[int] = (9, 1, 5),
        gan_features: int = 64,
        gan_blocks: int = 8,
        norm: str | tuple | None = None,
        act: ActSpec = "prelu",
        head_kernel_size: int = 9,
    ) -> None:
        super().__init__()
        check_sr_args(spatial_dims, in_channels, out_channels, scale_factor)
        check_positive_int("gan_features", gan_features)
        check_positive_int("gan_blocks", gan_blocks)
        self.structure = SRCNN(
            spatial_dims, in_channels, out_channels, scale_factor, srcnn_features, srcnn_kernel_sizes, residual=True
        )
        self.to_lr = SpaceToDepth(spatial_dims, scale_factor)
        self.detail = SRResNet(
            spatial_dims,
            in_channels + out_channels * scale_factor**spatial_dims,
            out_channels,
            scale_factor,
            num_features=gan_features,
            num_blocks=gan_blocks,
            norm=norm,
            act=act,
            head_kernel_size=head_kernel_size,
            global_skip=False,
        )

    @torch.jit.export
    def forward_with_structure(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(output, structure_estimate)``, both high resolution."""
        s = self.structure(x)
        r = self.detail(torch.cat([x, self.to_lr(s)], dim=1))
        return s + r, s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_structure(x)[0]
