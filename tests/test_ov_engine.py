"""The OpenVINO engine: choice rules always; exactness and the export cache when OpenVINO is installed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from medsr import ov_engine
from medsr.errors import UsageError

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


_OV_CHECKS = r"""
import sys
import torch
from medsr import ov_engine
from medsr.errors import UsageError
from medsr.inference import NetworkUpscaler
from medsr.networks import EDSR
from pathlib import Path

cache = Path(sys.argv[1])
torch.manual_seed(0)
net = EDSR(2, scale_factor=2, num_features=8, num_blocks=2).eval()
x = torch.rand(1, 45, 38)
ov_up = NetworkUpscaler(net, 2, engine="openvino", tile=16)
assert ov_up.engine == "openvino"
want = NetworkUpscaler(net, 2, engine="torch", tile=16)(x)
got = ov_up(x)
assert got.shape == (1, 90, 76), got.shape
assert float((got - want).abs().max()) <= 1e-5, float((got - want).abs().max())
assert len(list((cache / "onnx").glob("EDSR-*.onnx"))) == 1

export = ov_engine._export_onnx
def no_export(*args, **kwargs):
    raise AssertionError("exported again although the cache holds the network")
ov_engine._export_onnx = no_export
again = NetworkUpscaler(net, 2, engine="openvino", tile=16)
assert float((again(x) - want).abs().max()) <= 1e-5
ov_engine._export_onnx = export
with torch.no_grad():  # other weights: another file, not a stale graph
    net.head.weight.add_(0.1)
NetworkUpscaler(net, 2, engine="openvino", tile=16)
assert len(list((cache / "onnx").glob("EDSR-*.onnx"))) == 2
try:
    ov_up.net(torch.rand(1, 1, 8, 8, requires_grad=True))
    raise AssertionError("gradients accepted")
except UsageError as err:
    assert "inference only" in str(err)
print("OK")
"""


@needs_openvino
def test_openvino_engine_equals_torch_tiled_caches_the_export_and_refuses_gradients(tmp_path):
    # in a fresh process: a pytest process that had run OpenVINO segfaulted later while spawning a
    # subprocess (docs/performance.md); the engine is opt-in, its checks stay out of the suite's process
    env = dict(os.environ, MEDSR_CACHE_DIR=str(tmp_path), MEDSR_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _OV_CHECKS, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr[-3000:]
