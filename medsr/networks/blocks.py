"""Building blocks shared by medsr's super-resolution networks (2D and 3D).

Everything here is convolutional, TorchScript-able and works with
``torch.channels_last`` inputs in 2D. The long-range context block is a
*transposed* (channel) self-attention in the style of Restormer rather than a
windowed spatial attention; see :class:`TransformerBlock` for why.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import SubpixelUpsample
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from monai.networks.utils import icnr_init
from torch import nn

from medsr.validation import (
    check_features_divisible,
    check_kernel_sizes,
    check_nonnegative_float,
    check_positive_int,
    check_scale_factor,
    check_spatial_dims,
)
from medsr.networks.deploy import FusedConv, FusedResidual, fold_bn, fusable_conv, onednn_act, sub_pixel_conv

__all__ = [
    "ChannelAttention",
    "ChannelLayerNorm",
    "GatedFeedForward",
    "ResidualBlock",
    "SpatialAttention",
    "TransformerBlock",
    "TransposedAttention",
    "Upsampler",
    "conv_nd",
    "interpolate_skip",
]

ActSpec = str | tuple | None
"""A MONAI activation spec (``"relu"``, ``("leakyrelu", {"negative_slope": 0.2})``) or None for none."""


def conv_nd(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    bias: bool = True,
    groups: int = 1,
) -> nn.Module:
    """A plain 2D/3D convolution with "same" padding (``kernel_size // 2``) for odd kernels.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size. Defaults to 3.
        stride: stride. Defaults to 1.
        bias: whether the convolution has a bias. Defaults to True.
        groups: convolution groups (``in_channels`` for depthwise). Defaults to 1.

    Example::

        conv = conv_nd(2, 1, 16)  # nn.Conv2d(1, 16, 3, padding=1)
    """
    conv_type = Conv[Conv.CONV, spatial_dims]
    return conv_type(
        in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias, groups=groups
    )


def _act(act: ActSpec) -> nn.Module:
    return nn.Identity() if act is None else get_act_layer(act)


def interpolate_skip(x: torch.Tensor, scale_factor: int, spatial_dims: int) -> torch.Tensor:
    """Upsample ``x`` by ``scale_factor``: bicubic in 2D, trilinear in 3D (``align_corners=False``).

    This is the interpolation that SRCNN/VDSR work on and that the ``global_skip``
    of EDSR and the attention generator adds to their output, so that the networks
    learn the residual over interpolation. Values are not clamped (bicubic can
    overshoot [0, 1] slightly near edges).

    Args:
        x: ``(N, C, *spatial)`` tensor.
        scale_factor: integer upscaling factor.
        spatial_dims: 2 (bicubic) or 3 (trilinear).

    Example::

        y = interpolate_skip(torch.rand(1, 1, 8, 8), 2, 2)  # (1, 1, 16, 16)
    """
    mode = "bicubic" if spatial_dims == 2 else "trilinear"
    return F.interpolate(x, scale_factor=float(scale_factor), mode=mode, align_corners=False)


class ResidualBlock(nn.Module):
    """Residual block ``x + res_scale * conv(act(conv(x)))`` without batch normalisation by default.

    The EDSR block (Lim et al., 2017, https://arxiv.org/abs/1707.02921); with
    ``norm="batch"`` and ``act="prelu"`` it is the SRResNet block (Ledig et al., 2017).
    When ``norm`` is None the residual scaling can be folded into the second
    convolution exactly with :meth:`fold_residual_scale`. For deployment, :meth:`fold`
    and :meth:`fuse` rewrite the block exactly (applied by :mod:`medsr.networks.deploy`).

    Args:
        spatial_dims: 2 or 3.
        num_features: channels in and out.
        kernel_size: odd kernel size of both convolutions. Defaults to 3.
        res_scale: multiplier of the residual branch. Defaults to 1.0.
        act: MONAI activation spec between the convolutions. Defaults to ``"relu"``.
        norm: MONAI norm spec after each convolution, or None. Defaults to None.

    Example::

        block = ResidualBlock(2, 32, res_scale=0.1)
        y = block(torch.rand(1, 32, 16, 16))  # same shape
    """

    def __init__(
        self,
        spatial_dims: int,
        num_features: int,
        kernel_size: int = 3,
        res_scale: float = 1.0,
        act: ActSpec = "relu",
        norm: str | tuple | None = None,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive_int("num_features", num_features)
        (kernel_size,) = check_kernel_sizes("kernel_size", (kernel_size,))
        self.res_scale = check_nonnegative_float("res_scale", res_scale)
        use_bias = norm is None
        self.conv1 = conv_nd(spatial_dims, num_features, num_features, kernel_size, bias=use_bias)
        self.norm1 = nn.Identity() if norm is None else get_norm_layer(norm, spatial_dims, num_features)
        self.act = _act(act)
        self.conv2 = conv_nd(spatial_dims, num_features, num_features, kernel_size, bias=use_bias)
        self.norm2 = nn.Identity() if norm is None else get_norm_layer(norm, spatial_dims, num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))
        if self.res_scale != 1.0:
            res = res * self.res_scale
        return x + res

    @torch.no_grad()
    def fold_residual_scale(self) -> None:
        """Multiply the second convolution by ``res_scale`` and set ``res_scale = 1`` (in place, exact).

        ``s * (W * h + b) == (s W) * h + s b``: the output is unchanged up to float
        rounding and the extra multiplication disappears from inference.
        """
        if not isinstance(self.norm2, nn.Identity):
            raise NotImplementedError("fold_residual_scale needs norm=None (a norm layer follows the convolution).")
        self.conv2.weight.mul_(self.res_scale)
        if self.conv2.bias is not None:
            self.conv2.bias.mul_(self.res_scale)
        self.res_scale = 1.0

    def fold(self) -> ResidualBlock:
        """Fold each eval-mode batch norm into the convolution before it, then ``res_scale`` into the second
        convolution when no norm follows it (in place, exact up to float rounding); returns ``self``.

        For inference only: the folded batch norms no longer update their statistics.
        """
        if fold_bn(self.conv1, self.norm1):
            self.norm1 = nn.Identity()
        if fold_bn(self.conv2, self.norm2):
            self.norm2 = nn.Identity()
        if self.res_scale != 1.0 and isinstance(self.norm2, nn.Identity):
            self.fold_residual_scale()
        return self

    def fuse(self) -> nn.Module:
        """This block as two oneDNN calls (:class:`~medsr.networks.deploy.FusedResidual`: the activation and the
        residual addition as post-ops) when it is folded, 2D, float32 on CPU with a ReLU / LeakyReLU; else ``self``."""
        if (
            type(self) is ResidualBlock  # a subclass may change forward
            and fusable_conv(self.conv1)
            and fusable_conv(self.conv2)
            and isinstance(self.norm1, nn.Identity)
            and isinstance(self.norm2, nn.Identity)
            and self.res_scale == 1.0
            and onednn_act(self.act) is not None
        ):
            return FusedResidual(self, FusedConv(self.conv1, self.act), FusedConv(self.conv2))
        return self


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention of RCAN: ``x * sigmoid(W2 relu(W1 mean(x)))``.

    Zhang et al., 2018, "Image Super-Resolution Using Very Deep Residual Channel
    Attention Networks", https://arxiv.org/abs/1807.02758.

    Args:
        spatial_dims: 2 or 3.
        num_features: channels in and out.
        reduction: channel reduction of the bottleneck (at least 1 hidden channel). Defaults to 16.

    Example::

        ca = ChannelAttention(2, 64)
        y = ca(torch.rand(1, 64, 16, 16))  # same shape
    """

    def __init__(self, spatial_dims: int, num_features: int, reduction: int = 16) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive_int("num_features", num_features)
        check_positive_int("reduction", reduction)
        hidden = max(1, num_features // reduction)
        self.dims = list(range(2, 2 + spatial_dims))
        self.squeeze = conv_nd(spatial_dims, num_features, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.excite = conv_nd(spatial_dims, hidden, num_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.mean(x, dim=self.dims, keepdim=True)
        w = torch.sigmoid(self.excite(self.act(self.squeeze(w))))
        return x * w


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``x * sigmoid(conv([mean_c(x), max_c(x)]))``.

    Woo et al., 2018, "CBAM: Convolutional Block Attention Module",
    https://arxiv.org/abs/1807.06521. The convolution sees only 2 channels, so its
    7x7 kernel costs ~100 multiply-adds per pixel (negligible next to a 3x3 layer).

    Args:
        spatial_dims: 2 or 3.
        kernel_size: odd kernel size of the attention convolution. Defaults to 7.

    Example::

        sa = SpatialAttention(2)
        y = sa(torch.rand(1, 64, 16, 16))  # same shape
    """

    def __init__(self, spatial_dims: int, kernel_size: int = 7) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        (kernel_size,) = check_kernel_sizes("kernel_size", (kernel_size,))
        self.conv = conv_nd(spatial_dims, 2, 1, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([torch.mean(x, dim=1, keepdim=True), torch.amax(x, dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class Upsampler(nn.Module):
    """Sub-pixel upsampler: convolution to ``C * s**d`` channels, then pixel shuffle (x2, x3, x4).

    Shi et al., 2016, "Real-Time Single Image and Video Super-Resolution Using an
    Efficient Sub-Pixel Convolutional Neural Network", https://arxiv.org/abs/1609.05158.
    x4 is two x2 steps (as in EDSR/SRResNet) unless ``factorised=False``. 2D uses
    ``nn.PixelShuffle``; 3D uses MONAI's ``SubpixelUpsample`` (without its pad-pool,
    which shifts the image by ``(s - 1) / 2`` pixels). Both are ICNR-initialised
    (Aitken et al., 2017) so training starts free of checkerboard artefacts. For deployment,
    :meth:`fold_into` moves the last pixel shuffle after the convolution that follows it.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels; None keeps ``in_channels``. Defaults to None.
        scale_factor: 2, 3 or 4. Defaults to 2.
        act: MONAI activation spec after each pixel shuffle (SRResNet: ``"prelu"``), or None. Defaults to None.
        factorised: do x4 as two x2 steps. Defaults to True.
        kernel_size: odd kernel size of the convolution before each shuffle. Defaults to 3.

    Example::

        up = Upsampler(2, 32, scale_factor=4)
        y = up(torch.rand(1, 32, 8, 8))  # (1, 32, 32, 32)
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int | None = None,
        scale_factor: int = 2,
        act: ActSpec = None,
        factorised: bool = True,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive_int("in_channels", in_channels)
        out_channels = in_channels if out_channels is None else check_positive_int("out_channels", out_channels)
        check_scale_factor(scale_factor)
        (kernel_size,) = check_kernel_sizes("kernel_size", (kernel_size,))
        steps: Sequence[int] = (2, 2) if (scale_factor == 4 and factorised) else (scale_factor,)
        layers: list[nn.Module] = []
        for i, step in enumerate(steps):
            step_out = out_channels if i == len(steps) - 1 else in_channels
            if spatial_dims == 2:
                conv = conv_nd(2, in_channels, step_out * step**2, kernel_size)
                icnr_init(conv, step)
                layers += [conv, nn.PixelShuffle(step)]
            else:
                conv = conv_nd(3, in_channels, step_out * step**3, kernel_size)
                icnr_init(conv, step)
                layers.append(SubpixelUpsample(3, in_channels, step_out, step, conv_block=conv, apply_pad_pool=False))
            if act is not None:
                layers.append(get_act_layer(act))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def fold_into(self, tail: nn.Module) -> nn.Module | None:
        """Move this upsampler's last pixel shuffle after ``tail``, the convolution its output goes to (in place).

        Returns ``tail``'s replacement, ``nn.Sequential(LR convolution, PixelShuffle(r))``
        (:func:`~medsr.networks.deploy.sub_pixel_conv`; exact up to float rounding), or None (nothing
        changed) unless this is 2D without an activation after the shuffle and ``tail`` a plain odd-kernel
        "same" ``nn.Conv2d``. EDSR-M x2's 128-channel shuffle (a 512 MB copy on a 1024 x 1024 input,
        ~15 % of the run time) becomes a 4-channel one, and the tail runs at LR in oneDNN's fast path.
        """
        last = self.body[-1]
        if type(tail) is not nn.Conv2d or not isinstance(last, nn.PixelShuffle):
            return None
        k = tail.kernel_size[0]
        if (tail.kernel_size != (k, k) or k % 2 == 0 or tail.stride != (1, 1) or tail.dilation != (1, 1)
                or tail.groups != 1 or tail.padding != (k // 2, k // 2) or tail.padding_mode != "zeros"):
            return None
        r = last.upscale_factor
        self.body[-1] = nn.Identity()
        return nn.Sequential(sub_pixel_conv(tail, r), nn.PixelShuffle(r))


class ChannelLayerNorm(nn.Module):
    """Layer normalisation over the channel axis of a ``(N, C, *spatial)`` tensor (per pixel).

    Equivalent to ``nn.LayerNorm(C)`` applied channel-last, without permuting.

    Args:
        spatial_dims: 2 or 3.
        num_features: channels.
        eps: added to the variance. Defaults to 1e-5.

    Example::

        norm = ChannelLayerNorm(2, 48)
        y = norm(torch.rand(1, 48, 8, 8))
    """

    def __init__(self, spatial_dims: int, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        shape = (1, num_features) + (1,) * spatial_dims
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = torch.mean(x, dim=1, keepdim=True)
        var = torch.mean((x - mu) ** 2, dim=1, keepdim=True)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class TransposedAttention(nn.Module):
    """Multi-head *transposed* self-attention (MDTA): attention between channels, not pixels.

    Zamir et al., 2022, "Restormer: Efficient Transformer for High-Resolution Image
    Restoration", https://arxiv.org/abs/2111.09881. Queries, keys and values come
    from a 1x1 then a depthwise 3x3 convolution; per head, the ``(C/h) x (C/h)``
    attention map is built from L2-normalised queries and keys over *all* pixels,
    so its cost is linear in the number of pixels and its context is global.

    Args:
        spatial_dims: 2 or 3.
        num_features: channels (divisible by ``num_heads``).
        num_heads: attention heads. Defaults to 4.
        bias: biases in the convolutions. Defaults to False.

    Example::

        attn = TransposedAttention(2, 48, num_heads=4)
        y = attn(torch.rand(1, 48, 16, 16))  # same shape
    """

    def __init__(self, spatial_dims: int, num_features: int, num_heads: int = 4, bias: bool = False) -> None:
        super().__init__()
        check_positive_int("num_heads", num_heads)
        check_features_divisible("num_features", num_features, "num_heads", num_heads)
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = conv_nd(spatial_dims, num_features, 3 * num_features, 1, bias=bias)
        self.qkv_dw = conv_nd(spatial_dims, 3 * num_features, 3 * num_features, 3, bias=bias, groups=3 * num_features)
        self.proj = conv_nd(spatial_dims, num_features, num_features, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1]
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        q = F.normalize(q.reshape(b, self.num_heads, c // self.num_heads, -1), dim=-1)
        k = F.normalize(k.reshape(b, self.num_heads, c // self.num_heads, -1), dim=-1)
        v = v.reshape(b, self.num_heads, c // self.num_heads, -1)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.temperature, dim=-1)
        out = (attn @ v).reshape(x.shape)
        return self.proj(out)


class GatedFeedForward(nn.Module):
    """Gated depthwise-convolution feed-forward network (GDFN) of Restormer.

    ``proj_out(gelu(a) * b)`` with ``a, b = dwconv3(proj_in(x))`` split in two.

    Args:
        spatial_dims: 2 or 3.
        num_features: channels in and out.
        expansion: hidden channels = ``round(num_features * expansion)``. Defaults to 2.0.
        bias: biases in the convolutions. Defaults to False.

    Example::

        ffn = GatedFeedForward(2, 48)
        y = ffn(torch.rand(1, 48, 16, 16))  # same shape
    """

    def __init__(self, spatial_dims: int, num_features: int, expansion: float = 2.0, bias: bool = False) -> None:
        super().__init__()
        hidden = max(1, round(num_features * check_nonnegative_float("expansion", expansion)))
        self.proj_in = conv_nd(spatial_dims, num_features, 2 * hidden, 1, bias=bias)
        self.dw = conv_nd(spatial_dims, 2 * hidden, 2 * hidden, 3, bias=bias, groups=2 * hidden)
        self.proj_out = conv_nd(spatial_dims, hidden, num_features, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dw(self.proj_in(x)).chunk(2, dim=1)
        return self.proj_out(F.gelu(a) * b)


class TransformerBlock(nn.Module):
    """Lightweight transformer block for long-range context: ``x + MDTA(LN(x))``, then ``x + GDFN(LN(x))``.

    Zamir et al., 2022, "Restormer", https://arxiv.org/abs/2111.09881.

    Why transposed (channel) attention and not windowed spatial attention (SwinIR):
    its cost is O(pixels * C^2 / heads), linear in the image size, with a global
    receptive field; it needs no padding to a multiple of the window, no
    window partition/shift reshapes (which are shape-dependent, awkward in
    TorchScript and 3D) and no per-window ``(w^2 x w^2)`` matrices, which on CPU
    turn into many small, memory-bound matmuls. Everything else is 1x1 and
    depthwise 3x3 convolutions. Caveat: the attention map is computed from the
    whole input, so tiled inference gives (slightly) tile-dependent results; use
    overlapping tiles with blending, as for any network with global context.

    Args:
        spatial_dims: 2 or 3.
        num_features: channels (divisible by ``num_heads``).
        num_heads: attention heads. Defaults to 4.
        expansion: hidden width of the feed-forward network, relative. Defaults to 2.0.
        bias: biases in the convolutions. Defaults to False.

    Example::

        block = TransformerBlock(2, 48, num_heads=4)
        y = block(torch.rand(1, 48, 32, 32))  # same shape
    """

    def __init__(
        self, spatial_dims: int, num_features: int, num_heads: int = 4, expansion: float = 2.0, bias: bool = False
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive_int("num_features", num_features)
        self.norm1 = ChannelLayerNorm(spatial_dims, num_features)
        self.attn = TransposedAttention(spatial_dims, num_features, num_heads, bias)
        self.norm2 = ChannelLayerNorm(spatial_dims, num_features)
        self.ffn = GatedFeedForward(spatial_dims, num_features, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))
