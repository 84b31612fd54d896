"""Tests of medsr.inference.prepare: the measured receptive field, and the fast copy equals the network."""

from __future__ import annotations

import pytest
import torch

from medsr.inference import prepare_network, receptive_radius
from medsr.networks.attention import AttentionResidualGenerator
from medsr.networks.deploy import FusedConv
from medsr.networks.edsr import EDSR
from medsr.networks.srgan import SRResNet


def test_receptive_radius_of_edsr():
    net = EDSR(scale_factor=2, num_features=4, num_blocks=2)
    # head + 2 blocks x 2 convs + body conv + upsampler conv = 7 LR 3x3 convs, tail adds < 1 LR pixel
    assert 7 <= receptive_radius(net, 2) <= 9


def test_probe_is_measured_once_per_architecture_and_cached(monkeypatch, tmp_path):
    from medsr.inference import prepare

    monkeypatch.setenv("MEDSR_CACHE_DIR", str(tmp_path))
    net = EDSR(scale_factor=2, num_features=4, num_blocks=2)
    first = prepare.cached_probe(net, 2, 1)
    assert first == prepare.probe_network(net, 2, 1) and len(list((tmp_path / "probes").glob("*.json"))) == 1

    def no_probe(*args, **kwargs):
        raise AssertionError("probed again")

    monkeypatch.setattr(prepare, "probe_network", no_probe)
    trained = EDSR(scale_factor=2, num_features=4, num_blocks=2)  # other weights, same architecture
    assert prepare.cached_probe(trained, 2, 1) == first
    with pytest.raises(AssertionError, match="probed again"):  # another architecture is measured
        prepare.cached_probe(EDSR(scale_factor=2, num_features=4, num_blocks=3), 2, 1)
    with pytest.raises(AssertionError, match="probed again"):  # so is one the cache cannot vouch for
        next((tmp_path / "probes").glob("*.json")).write_text("{not json")
        prepare.cached_probe(net, 2, 1)


def test_prepare_network_folds_batch_norm_and_residual_scale_exactly():
    net = SRResNet(scale_factor=2, num_features=8, num_blocks=2, norm="batch").eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    fast = prepare_network(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x = torch.rand(2, 1, 20, 17)
    with torch.no_grad():
        assert (fast(x) - net(x)).abs().max() <= 1e-5
    edsr = EDSR(scale_factor=2, num_features=8, num_blocks=2, res_scale=0.1).eval()
    fast = prepare_network(edsr)
    assert all(b.res_scale == 1.0 for b in fast.body if hasattr(b, "res_scale"))
    with torch.no_grad():
        assert (fast(x) - edsr(x)).abs().max() <= 1e-5
    assert edsr.body[0].res_scale == 0.1  # the original is untouched


@pytest.mark.parametrize("make", [
    lambda: EDSR(scale_factor=2, num_features=8, num_blocks=2),
    lambda: SRResNet(scale_factor=4, num_features=8, num_blocks=2),
    lambda: AttentionResidualGenerator(scale_factor=2, num_features=8, num_groups=1, num_blocks=1, num_heads=2),
])
def test_onednn_fusion_is_exact_and_falls_back(make):
    net = make().eval()
    fast = prepare_network(net, fuse=True)
    if torch.backends.mkldnn.is_available():
        assert any(isinstance(m, FusedConv) for m in fast.modules())
    x = torch.rand(2, 1, 21, 17)
    with torch.inference_mode():
        assert (fast(x) - net(x)).abs().max() <= 1e-5
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.inference_mode():  # falls back to the plain modules
        assert (fast(x).float() - net(x)).abs().max() < 0.1
    import copy

    assert copy.deepcopy(fast) is not None  # prepacked weights are not copied, they are rebuilt
