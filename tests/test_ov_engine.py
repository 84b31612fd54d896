"""The OpenVINO engine: choice rules always; exactness and the export cache when OpenVINO is installed."""

from __future__ import annotations

import pytest
import torch

from medsr import ov_engine
from medsr.errors import UsageError
from medsr.inference import NetworkUpscaler
from medsr.networks import EDSR

needs_openvino = pytest.mark.skipif(not ov_engine.available(), reason='OpenVINO not installed: pip install "medsr[openvino]"')
CPU = torch.device("cpu")


def test_resolve_engine_rules(monkeypatch):
    with pytest.raises(UsageError, match="`engine` must be one of"):
        ov_engine.resolve_engine("tensorrt", CPU, "fp32", 2)
    assert ov_engine.resolve_engine("torch", CPU, "fp32", 2) == "torch"
    # auto never picks OpenVINO where it does not apply
    assert ov_engine.resolve_engine("auto", CPU, "bf16", 2) == "torch"
    assert ov_engine.resolve_engine("auto", CPU, "fp32", 3) == "torch"
    assert ov_engine.resolve_engine("auto", torch.device("cuda"), "fp32", 2) == "torch"
    with pytest.raises(UsageError, match="use --engine torch"):
        ov_engine.resolve_engine("openvino", CPU, "bf16", 2)
    monkeypatch.setattr(ov_engine, "available", lambda: False)
    assert ov_engine.resolve_engine("auto", CPU, "fp32", 2) == "torch"
    with pytest.raises(UsageError, match=r"medsr\[openvino\]"):
        ov_engine.resolve_engine("openvino", CPU, "fp32", 2)


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDSR_CACHE_DIR", str(tmp_path / "c"))
    assert ov_engine.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MEDSR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert ov_engine.cache_dir() == tmp_path / "x" / "medsr"


@needs_openvino
def test_openvino_engine_equals_torch_tiled_and_caches_the_export(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDSR_CACHE_DIR", str(tmp_path))
    torch.manual_seed(0)
    net = EDSR(2, scale_factor=2, num_features=8, num_blocks=2).eval()
    x = torch.rand(1, 45, 38)
    ov_up = NetworkUpscaler(net, 2, engine="openvino", tile=16)
    assert ov_up.engine == "openvino"
    want = NetworkUpscaler(net, 2, engine="torch", tile=16)(x)
    got = ov_up(x)
    assert got.shape == (1, 90, 76)
    assert float((got - want).abs().max()) <= 1e-5
    exported = list((tmp_path / "onnx").glob("EDSR-*.onnx"))
    assert len(exported) == 1

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the network")

    monkeypatch.setattr(ov_engine, "_export_onnx", no_export)
    again = NetworkUpscaler(net, 2, engine="openvino", tile=16)
    assert float((again(x) - want).abs().max()) <= 1e-5
    # other weights: another file, not a stale graph
    with torch.no_grad():
        net.head.weight.add_(0.1)
    monkeypatch.undo()
    monkeypatch.setenv("MEDSR_CACHE_DIR", str(tmp_path))
    NetworkUpscaler(net, 2, engine="openvino", tile=16)
    assert len(list((tmp_path / "onnx").glob("EDSR-*.onnx"))) == 2


@needs_openvino
def test_openvino_engine_refuses_gradients(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDSR_CACHE_DIR", str(tmp_path))
    ov_net = ov_engine.OpenVINONetwork(EDSR(2, scale_factor=2, num_features=8, num_blocks=1), 1)
    with pytest.raises(UsageError, match="inference only"):
        ov_net(torch.rand(1, 1, 8, 8, requires_grad=True))
