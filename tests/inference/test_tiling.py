"""Tests of medsr.inference.tiling: windows cover every pixel once, halo-cropped tiles equal the untiled network,
blending is seamless, the memory plan splits evenly, progress counts windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medsr.errors import UsageError
from medsr.inference import NetworkUpscaler, tile_windows, tiled_upscale
from medsr.inference.tiling import axis_tiles
from medsr.networks.attention import AttentionResidualGenerator
from medsr.networks.edsr import EDSR


def _untiled(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(x[None])[0]


@pytest.mark.parametrize("size,tile,halo", [(1, 4, 2), (7, 3, 0), (100, 32, 24), (70, 32, 24), (64, 64, 8), (65, 16, 40)])
def test_tile_windows_cover_every_index_once(size, tile, halo):
    wins = tile_windows(size, tile, halo)
    seen = np.zeros(size, int)
    widths = {b - a for a, b, _, _ in wins}
    for a, b, k0, k1 in wins:
        assert 0 <= a <= k0 < k1 <= b <= size
        assert k0 - a >= min(halo, k0) and b - k1 >= min(halo, size - k1)  # full halo unless at the border
        seen[k0:k1] += 1
    assert (seen == 1).all()
    assert widths == {min(size, tile + 2 * halo)}  # equal windows: they batch


def test_tile_windows_rejects_bad_arguments():
    with pytest.raises(UsageError, match="tile > 0"):
        tile_windows(10, 0, 2)


@pytest.mark.parametrize("size,tile,overlap", [(100, 32, 8), (70, 32, 16), (33, 32, 8), (200, 40, 10), (1000, 250, 62)])
def test_blend_ramps_sum_to_one(size, tile, overlap):
    total = torch.zeros(size * 2)
    tiles = axis_tiles(size, tile, 4, overlap, 2)
    for (a, b, k0, k1), w in tiles:
        assert k1 - k0 == tile and b - a == min(size, tile + 8) and a <= k0 and k1 <= b
        total[k0 * 2 : k1 * 2] += 1.0 if w is None else w
    starts = [k0 for (_, _, k0, _), _ in tiles]
    assert starts[0] == 0 and tiles[-1][0][3] == size
    assert all(overlap <= tile - (b - a) for a, b in zip(starts, starts[1:]))
    if all(2 * (b - a) >= tile for a, b in zip(starts, starts[1:])):  # at most two parts meet anywhere
        assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    assert (total > 0.5).all()  # and NetworkUpscaler normalises by the total anyway


def test_tiled_equals_untiled_2d():
    net = EDSR(scale_factor=2, num_features=8, num_blocks=2)
    up = NetworkUpscaler(net, 2, tile=32, halo=None)
    assert up.exact and not up.blend and up.halo >= up.receptive_radius
    x = torch.rand(1, 100, 70)
    y = up(x)
    assert y.shape == (1, 200, 140)
    assert (y - _untiled(net, x)).abs().max() <= 1e-5


@pytest.mark.parametrize("halo", [24, 2])
def test_tiled_equals_untiled_x4_whatever_halo_the_bundle_declares(halo):
    net = EDSR(scale_factor=4, num_features=8, num_blocks=2)
    up = NetworkUpscaler(net, 4, tile=16, halo=halo, batch_size=3)
    assert up.halo == up.receptive_radius  # a local network's halo is its measured receptive field
    x = torch.rand(1, 50, 37)
    assert (up(x) - _untiled(net, x)).abs().max() <= 1e-5


def test_volume_with_2d_net_goes_slice_by_slice():
    net = EDSR(scale_factor=2, num_features=8, num_blocks=2)
    up = NetworkUpscaler(net, 2, tile=16, halo=12)
    v = torch.rand(1, 40, 30, 3)
    y = up(v)
    assert y.shape == (1, 80, 60, 3)
    ref = torch.stack([_untiled(net, v[..., k]) for k in range(3)], -1)
    assert (y - ref).abs().max() <= 1e-5


def test_3d_network_tiles_in_3d():
    net = EDSR(spatial_dims=3, scale_factor=2, num_features=4, num_blocks=1)
    up = NetworkUpscaler(net, 2, spatial_dims=3, tile=8)
    x = torch.rand(1, 20, 14, 11)
    assert (up(x) - _untiled(net, x)).abs().max() <= 1e-5


def test_blending_a_local_network_is_exact_too():
    net = EDSR(scale_factor=2, num_features=8, num_blocks=2)
    up = NetworkUpscaler(net, 2, tile=24, halo=12, blend=True)
    x = torch.rand(1, 90, 61)
    assert (up(x) - _untiled(net, x)).abs().max() <= 1e-5


def test_global_network_is_detected_and_blended():
    net = AttentionResidualGenerator(scale_factor=2, num_features=8, num_groups=1, num_blocks=1, num_heads=2)
    up = NetworkUpscaler(net, 2, tile=24, halo=8)
    assert not up.exact and up.blend
    x = torch.rand(1, 64, 48)
    y = up(x)
    ref = _untiled(net, x)
    assert y.shape == ref.shape
    assert (y - ref).abs().max() < 0.05  # approximate: attention statistics differ per tile
    whole = NetworkUpscaler(net, 2, halo=8)  # fits the memory budget: runs whole, exact
    assert (whole(x) - ref).abs().max() <= 1e-5


def test_memory_plan_splits_evenly_and_fills_batches():
    net = EDSR(scale_factor=2, num_features=8, num_blocks=1)
    up = NetworkUpscaler(net, 2, halo=8, memory_budget=40_000 * 1536)
    max_px = up.memory_budget / up.bytes_per_px
    tiles, batch = up.plan((1000, 600))
    assert tiles != (1000, 600)
    for t, size in zip(tiles, (1000, 600)):
        parts = -(-size // t)
        assert t <= size and parts * t - size < parts  # equal parts, the last one barely shorter
    windows = [min(size, t + 16) for t, size in zip(tiles, (1000, 600))]
    assert windows[0] * windows[1] * batch <= max_px  # windows x batch fit the budget
    # less halo recomputation than the square tiles of the same budget
    square = max(16, int(max_px**0.5) - 16)
    square_tiles = [-(-size // -(-size // square)) for size in (1000, 600)]
    work = math.prod(-(-n // t) * min(n, t + 16) for n, t in zip((1000, 600), tiles))
    assert work <= math.prod(-(-n // t) * min(n, t + 16) for n, t in zip((1000, 600), square_tiles))
    small, small_batch = up.plan((40, 30))
    assert small == (40, 30) and small_batch > 1  # small images run whole, several slices per pass


def test_progress_counts_slices_and_tiles():
    """``NetworkUpscaler.progress`` hears (windows done, windows in all) after each forward pass."""
    net = EDSR(scale_factor=2, num_features=8, num_blocks=1)
    up = NetworkUpscaler(net, 2, tile=16, batch_size=2)
    calls: list[tuple[int, int]] = []
    up.progress = lambda done, total: calls.append((done, total))
    up(torch.rand(1, 40, 40, 3))  # 3 slices x 3 x 3 tiles
    totals = {t for _, t in calls}
    assert totals == {27} and [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1] == (27, 27)
    assert len(calls) == 14  # one call per forward pass of 2 windows


@pytest.mark.parametrize("overlap", [0.0, 0.25])
@pytest.mark.parametrize("channels_out", [1, 3])
def test_tiled_upscale_takes_any_predictor_and_is_exact_within_its_halo(overlap, channels_out):
    """A plain function with a receptive-field radius of 1, tiled with halo 1, equals it untiled (blended or not)."""

    def predictor(x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)  # zero padding, like a convolution
        return torch.nn.functional.interpolate(y, scale_factor=2, mode="nearest").repeat(1, channels_out, 1, 1)

    x = torch.rand(2, 1, 37, 29)
    calls: list[tuple[int, int]] = []
    out = tiled_upscale(x, predictor, 2, (10, 8), halo=1, sw_batch_size=3, overlap=overlap,
                        progress=lambda done, total: calls.append((done, total)))
    assert out.shape == (2, channels_out, 74, 58) and out.device.type == "cpu"
    assert (out - predictor(x)).abs().max() <= 1e-6
    assert calls[-1][0] == calls[-1][1] == len(axis_tiles(37, 10, 1, round(overlap * 10), 2)) * len(
        axis_tiles(29, 8, 1, round(overlap * 8), 2)) * 2
