"""The slice_smore bundle: layout, MONAI metadata and net checks, shipped weights, task guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from medsr.errors import UsageError
from medsr.inference import load_upscaler
from medsr.slices import load_slice_upscaler

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "slice_smore"
SCHEMA = ROOT / "medsr" / "schemas" / "meta_schema.json"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _bundle_cmd(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=BUNDLE, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_layout_and_task():
    for rel in ["configs/metadata.json", "configs/train.json", "configs/inference.json", "configs/evaluate.json",
                "configs/logging.conf", "docs/README.md", "docs/data_license.txt", "LICENSE"]:
        assert (BUNDLE / rel).is_file(), rel
    assert "training" in json.loads((BUNDLE / "configs" / "train.json").read_text())
    assert "evaluating" in json.loads((BUNDLE / "configs" / "evaluate.json").read_text())
    assert json.loads((BUNDLE / "configs" / "inference.json").read_text())["task"] == "slices"


def test_verify_metadata():
    _bundle_cmd("verify_metadata", "--meta_file", "configs/metadata.json", "--filepath", str(SCHEMA))


def test_verify_net_in_out():
    _bundle_cmd("verify_net_in_out", "network_def", "--meta_file", "configs/metadata.json",
                "--config_file", "configs/inference.json")


@pytest.mark.parametrize("factor", [2, 4])
def test_shipped_weights(factor):
    weights = BUNDLE / "models" / ("model.pt" if factor == 2 else "model_x4.pt")
    assert weights.is_file() and weights.stat().st_size < 1 << 20
    state = torch.load(weights, map_location="cpu", weights_only=True)
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser["bundle_root"] = str(BUNDLE)
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(state)
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert float(last.weight.abs().sum()) > 0  # trained: no longer the identity it starts as
    up = load_slice_upscaler("slice_smore", factor)
    x = torch.rand(1, 16, 15, 6, generator=torch.Generator().manual_seed(0))
    y = up(x, 2)
    assert y.shape == (1, 16, 15, 5 * factor + 1) and torch.isfinite(y).all()


def test_not_an_inplane_model():
    with pytest.raises(UsageError, match="--slices"):
        load_upscaler("slice_smore", 2)
    with pytest.raises(UsageError, match="in-plane"):
        load_slice_upscaler("edsr_m", 2)
