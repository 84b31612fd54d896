"""Tests of medsr.networks.deploy and the blocks' deployment methods: every rewrite is exact."""

from __future__ import annotations

import copy

import pytest
import torch

from medsr.networks.attention import AttentionResidualGenerator
from medsr.networks.blocks import ResidualBlock, Upsampler
from medsr.networks.deploy import (
    FusedConv,
    FusedResidual,
    fold_pixel_shuffles,
    fuse_network,
    onednn_available,
    sub_pixel_conv,
)
from medsr.networks.edsr import EDSR
from medsr.networks.srgan import SRResNet


@pytest.mark.parametrize("r, k", [(2, 3), (3, 3), (4, 3), (2, 5), (2, 1)])
def test_sub_pixel_tail_equals_conv_after_pixel_shuffle(r: int, k: int):
    torch.manual_seed(r * 10 + k)
    conv = torch.nn.Conv2d(6, 2, k, padding=k // 2)
    u = torch.randn(2, 6 * r * r, 9, 7)
    with torch.no_grad():
        hr = conv(torch.nn.functional.pixel_shuffle(u, r))
        lr = torch.nn.functional.pixel_shuffle(sub_pixel_conv(conv, r)(u), r)
    assert lr.shape == hr.shape and (lr - hr).abs().max() <= 1e-5


@pytest.mark.parametrize(
    "net",
    [EDSR(scale_factor=2, num_features=8, num_blocks=1), EDSR(scale_factor=4, num_features=8, num_blocks=1),
     AttentionResidualGenerator(scale_factor=2, num_features=8, num_groups=1, num_blocks=1, reduction=2)],
)
def test_pixel_shuffle_moved_after_the_tail_exactly(net: torch.nn.Module):
    net = net.eval()
    folded = copy.deepcopy(net)
    assert fold_pixel_shuffles(folded) == 1
    assert isinstance(folded.tail[-1], torch.nn.PixelShuffle)
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in folded.modules()) == sum(
        isinstance(m, torch.nn.PixelShuffle) for m in net.modules()
    )
    x = torch.rand(1, 1, 19, 23)
    with torch.no_grad():
        assert (folded(x) - net(x)).abs().max() <= 1e-5
    hybrid_like = SRResNet(scale_factor=2, num_features=8, num_blocks=1)  # PReLU after the shuffle: left alone
    assert fold_pixel_shuffles(hybrid_like) == 0 and type(hybrid_like.tail) is torch.nn.Conv2d


def test_residual_block_folds_batch_norm_and_residual_scale_exactly():
    block = ResidualBlock(2, 6, res_scale=0.3, norm="batch").eval()
    for bn in (block.norm1, block.norm2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.rand(2, 6, 11, 9)
    with torch.no_grad():
        ref = block(x)
        folded = copy.deepcopy(block).fold()
        assert isinstance(folded.norm1, torch.nn.Identity) and isinstance(folded.norm2, torch.nn.Identity)
        assert folded.res_scale == 1.0 and (folded(x) - ref).abs().max() <= 1e-5


def test_residual_block_fuses_only_when_onednn_can_run_it():
    plain = ResidualBlock(2, 4).eval()
    fused = plain.fuse()
    assert isinstance(fused, FusedResidual) and fused.block is plain
    assert isinstance(ResidualBlock(2, 4, res_scale=0.5).fuse(), ResidualBlock)
    assert isinstance(ResidualBlock(3, 4).fuse(), ResidualBlock)  # 3D: no oneDNN post-op path
    assert isinstance(ResidualBlock(2, 4, act="prelu").fuse(), ResidualBlock)
    if onednn_available():
        net = fuse_network(torch.nn.Sequential(copy.deepcopy(plain), torch.nn.Conv2d(4, 4, 3, padding=1)))
        x = torch.rand(1, 4, 9, 7)
        with torch.inference_mode():
            assert isinstance(net[0], FusedResidual) and isinstance(net[1], FusedConv)
            ref = net[1].conv(plain(x))
            assert (net(x) - ref).abs().max() <= 1e-5


def test_upsampler_folds_into_a_plain_tail_only():
    tail = torch.nn.Conv2d(8, 1, 3, padding=1)
    assert Upsampler(2, 8, scale_factor=2, act="prelu").fold_into(tail) is None  # activation after the shuffle
    assert Upsampler(3, 8, scale_factor=2).fold_into(torch.nn.Conv3d(8, 1, 3, padding=1)) is None  # 3D
    assert Upsampler(2, 8, scale_factor=2).fold_into(torch.nn.Conv2d(8, 1, 3, padding=0)) is None  # not "same"
    up = Upsampler(2, 8, scale_factor=2).eval()
    ref_up, x = copy.deepcopy(up), torch.rand(1, 8, 7, 5)
    new_tail = up.fold_into(tail)
    assert isinstance(new_tail[-1], torch.nn.PixelShuffle) and isinstance(up.body[-1], torch.nn.Identity)
    with torch.no_grad():
        assert (new_tail(up(x)) - tail(ref_up(x))).abs().max() <= 1e-5
