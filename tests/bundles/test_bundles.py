"""The three shipped MONAI bundles: specification checks, shapes, export, training, torchrun, shipped weights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ROOT / "bundles"
SCHEMA = ROOT / "medsr" / "schemas" / "meta_schema.json"
NAMES = ["edsr_m", "srcnn_srgan_hybrid", "attention_residual"]
PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _bundle_cmd(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([PY, "-m", "monai.bundle", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _network(name: str, scale: int) -> torch.nn.Module:
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / name / "configs" / "inference.json"))
    parser["bundle_root"] = str(BUNDLES / name)
    parser["scale"] = scale
    return parser.get_parsed_content("network_def")


@pytest.mark.parametrize("name", NAMES)
def test_layout(name: str) -> None:
    root = BUNDLES / name
    for rel in [
        "configs/metadata.json", "configs/train.json", "configs/inference.json", "configs/evaluate.json",
        "configs/multi_gpu_train.json", "configs/logging.conf", "docs/README.md", "LICENSE",
    ]:
        assert (root / rel).is_file(), rel
    train = json.loads((root / "configs" / "train.json").read_text())
    assert "training" in train, "`monai.bundle run training` needs a top-level `training` key"


@pytest.mark.parametrize("name", NAMES)
def test_verify_metadata(name: str) -> None:
    _bundle_cmd("verify_metadata", "--meta_file", "configs/metadata.json", "--filepath", str(SCHEMA), cwd=BUNDLES / name)


@pytest.mark.parametrize("name", NAMES)
def test_verify_net_in_out(name: str) -> None:
    _bundle_cmd(
        "verify_net_in_out", "network_def", "--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json",
        cwd=BUNDLES / name,
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [2, 4])
def test_output_shape(name: str, scale: int) -> None:
    net = _network(name, scale).eval()
    with torch.inference_mode():
        out = net(torch.rand(2, 1, 24, 20))
    assert out.shape == (2, 1, 24 * scale, 20 * scale)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_weights_load_weights_only(name: str, scale: int) -> None:
    weights = BUNDLES / name / "models" / ("model.pt" if scale == 2 else "model_x4.pt")
    assert weights.is_file(), f"{weights} is not shipped"
    assert weights.stat().st_size < 8 << 20, "weights must stay small"
    state = torch.load(weights, map_location="cpu", weights_only=True)
    _network(name, scale).load_state_dict(state)


@pytest.mark.parametrize("name", NAMES)
def test_ckpt_export_matches_eager(name: str, tmp_path: Path) -> None:
    ts = tmp_path / "model.ts"
    _bundle_cmd(
        "ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", "models/model.pt",
        "--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json", cwd=BUNDLES / name,
    )
    eager = _network(name, 2).eval()
    eager.load_state_dict(torch.load(BUNDLES / name / "models" / "model.pt", weights_only=True))
    scripted = torch.jit.load(str(ts)).eval()
    x = torch.rand(1, 1, 32, 28, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(scripted(x), eager(x), atol=1e-5, rtol=1e-5)


TINY = ["--num_epochs", "1", "--epoch_length", "2", "--batch_size", "4", "--num_samples", "2", "--val_crop", "32",
        "--num_workers", "0", "--num_threads", "1", "--val_per_modality", "2"]


def _copy_bundle(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(BUNDLES / name, dst, ignore=shutil.ignore_patterns("runs", "eval", "*.pt"))
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_run_training_tiny(name: str, tmp_path: Path) -> None:
    root = _copy_bundle(name, tmp_path)
    extra = ["--pretrain_fraction", "0.5"] if name != "edsr_m" else []
    _bundle_cmd(
        "run", "training", "--meta_file", "configs/metadata.json", "--config_file", "configs/train.json",
        "--logging_file", "configs/logging.conf", "--dataset_dir", str(ROOT / "sample_data"), *TINY, *extra, cwd=root,
    )
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    _network(name, 2).load_state_dict(state)
    assert list((root / "runs" / "x2").glob("checkpoint_*.pt"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["edsr_m", "srcnn_srgan_hybrid"])
def test_torchrun_two_cpu_processes(name: str, tmp_path: Path) -> None:
    root = _copy_bundle(name, tmp_path)
    extra = ["--pretrain_fraction", "0.5"] if name != "edsr_m" else []
    cmd = [
        PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "monai.bundle", "run", "training", "--meta_file", "configs/metadata.json",
        "--config_file", "['configs/train.json','configs/multi_gpu_train.json']", "--logging_file", "configs/logging.conf",
        "--dataset_dir", str(ROOT / "sample_data"), *TINY, "--epoch_length", "4", *extra,
    ]
    proc = subprocess.run(cmd, cwd=root, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _network(name, 2).load_state_dict(torch.load(root / "models" / "model.pt", weights_only=True))
