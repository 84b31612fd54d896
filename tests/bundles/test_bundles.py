"""The three shipped MONAI bundles: specification checks, shapes, export, training, torchrun, shipped weights."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ROOT / "bundles"
SCHEMA = ROOT / "medsr" / "schemas" / "meta_schema.json"
NAMES = ["edsr_m", "srcnn_srgan_hybrid", "attention_residual"]
PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None


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


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_run_training_tiny_from_repo_root_leaves_models_untouched(name: str, tmp_path: Path) -> None:
    """The README's training command from the repository root (--bundle_root), tracked with MLflow when installed:
    checkpoints, TensorBoard logs and the exported weights go to the run folder, models/ stays byte-identical."""
    models = BUNDLES / name / "models"
    before = _digests(models)
    run = tmp_path / "run"
    extra = ["--pretrain_fraction", "0.5"] if name != "edsr_m" else []
    tracking = ["--tracking", "mlflow"] if HAS_MLFLOW else []
    rel = f"bundles/{name}"
    _bundle_cmd(
        "run", "training", "--bundle_root", rel, "--meta_file", f"{rel}/configs/metadata.json",
        "--config_file", f"{rel}/configs/train.json", "--logging_file", f"{rel}/configs/logging.conf",
        "--output_dir", str(run), *TINY, *extra, *tracking, cwd=ROOT,
    )
    assert _digests(models) == before, "training changed the shipped weights"
    state = torch.load(run / "model.pt", weights_only=True)  # the run's exported weights
    _network(name, 2).load_state_dict(state)
    assert list(run.glob("checkpoint_*.pt")) and list(run.glob("events.out.tfevents.*"))  # TensorBoard by default
    if HAS_MLFLOW:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run / 'mlruns.db'}")
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert runs and "train_loss" in runs[0].data.metrics


def test_publish_is_the_explicit_logged_step_that_replaces_shipped_weights(tmp_path: Path, caplog) -> None:
    root = _copy_bundle("edsr_m", tmp_path)
    shutil.copy(BUNDLES / "edsr_m" / "models" / "model.pt", root / "models" / "model.pt")
    run = tmp_path / "run"
    run.mkdir()
    new = _network("edsr_m", 2).state_dict()  # fresh weights standing in for a training run's
    torch.save(new, run / "model.pt")

    def publish(bundle_root: Path) -> None:
        wf = ConfigWorkflow(
            config_file=str(bundle_root / "configs" / "train.json"), logging_file=False, workflow_type=None,
            run_id="publish", final_id="none", bundle_root=str(bundle_root), output_dir=str(run),
        )
        wf.initialize()
        wf.run()

    with caplog.at_level("WARNING", logger="medsr.training"):
        publish(root)
    assert "replaced shipped weights" in caplog.text and "sha256" in caplog.text
    got = torch.load(root / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(got[k], v) for k, v in new.items())
    torch.save({"wrong": torch.zeros(1)}, run / "model.pt")  # weights that do not fit the network are refused
    with pytest.raises(RuntimeError) as info:  # MONAI wraps the config's error
        publish(root)
    assert "does not match its network_def" in str(info.value.__cause__)
    assert all(torch.equal(torch.load(root / "models" / "model.pt", weights_only=True)[k], v) for k, v in new.items())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["infer", "train", "eval"])
def test_check_properties(name: str, kind: str, tmp_path: Path) -> None:
    """MONAI's workflow properties (required ones present, optional ones under their standard IDs)."""
    cfg = BUNDLES / name / "configs"
    files = {"infer": ["inference.json"], "train": ["train.json"], "eval": ["train.json", "evaluate.json"]}[kind]
    wf = ConfigWorkflow(
        config_file=[str(cfg / f) for f in files], meta_file=str(cfg / "metadata.json"), logging_file=False,
        workflow_type=kind, bundle_root=str(BUNDLES / name), output_dir=str(tmp_path), val_per_modality=1,
        dataset_dir=str(ROOT / "sample_data"), num_workers=0,
    )
    wf.initialize()
    assert wf.check_properties() == []
    if kind == "train":
        assert isinstance(wf.parser["train#handlers"], list) and wf.train_inferer is not None


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_torchscript_matches_eager(name: str, scale: int) -> None:
    """models/model.ts (x2) and model_x4.ts, exported by bundles/export_torchscript.sh, give the eager output."""
    stem = "model" if scale == 2 else f"model_x{scale}"
    ts = BUNDLES / name / "models" / f"{stem}.ts"
    assert ts.is_file(), f"{ts} is not shipped: run bundles/export_torchscript.sh"
    eager = _network(name, scale).eval()
    eager.load_state_dict(torch.load(BUNDLES / name / "models" / f"{stem}.pt", weights_only=True))
    scripted = torch.jit.load(str(ts)).eval()
    x = torch.rand(1, 1, 30, 26, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(scripted(x), eager(x), atol=1e-5, rtol=1e-5)
