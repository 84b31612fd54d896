"""Every command of each bundle README's "MONAI Bundle Commands" section runs, as written, from both folders.

The commands run in a copy of the repository layout (tmp/bundles/<name> and a small tmp/sample_data, the
bundles' default data), so publish and export never touch the real models/. Training commands get
tiny-run overrides appended (1 epoch of 2 iterations), evaluation a small validation crop; nothing else
is changed. To keep the suite's time, from the repository root the two training commands run for
edsr_m only (the other bundles' root training runs in test_bundles.py's
test_run_training_tiny_from_repo_root_leaves_models_untouched); their publish step then publishes a copy
of the shipped weights placed in the run folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["edsr_m", "srcnn_srgan_hybrid", "attention_residual"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
TINY_TRAIN = ["--num_epochs", "1", "--epoch_length", "2", "--batch_size", "4", "--num_samples", "2", "--val_crop", "32",
              "--num_workers", "0", "--num_threads", "1", "--val_per_modality", "1"]
TINY_EVAL = ["--val_crop", "32", "--val_per_modality", "1", "--num_threads", "1"]
SAMPLES = ["ct_small.dcm", "mr_small.dcm", "cxr_hannover_006f3a8a.png"]


def readme_commands(name: str) -> dict[str, list[str]]:
    """``{"bundle": [...], "root": [...]}``: the shell lines of the two code blocks of the section."""
    text = (ROOT / "bundles" / name / "docs" / "README.md").read_text()
    section = text.split("## MONAI Bundle Commands", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2, "expected one block for the bundle folder and one for the repository root"
    lines = [[ln for ln in b.splitlines() if ln.strip() and not ln.lstrip().startswith("#")] for b in blocks]
    return {"bundle": lines[0], "root": lines[1]}


def _argv(line: str) -> list[str]:
    argv = shlex.split(line)
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    if argv[0] == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", *argv[1:]]
    raise AssertionError(f"unexpected command {argv[0]!r} in the README")


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_sections_exist_with_every_kind_of_command() -> None:
    for name in NAMES:
        text = (ROOT / "bundles" / name / "docs" / "README.md").read_text()
        assert "## License" in text
        for where, lines in readme_commands(name).items():
            joined = "\n".join(lines)
            for needle in ["run training", "torchrun", "evaluate.json", "inference.json", "run publish", "ckpt_export"]:
                assert needle in joined, (name, where, needle)
            if where == "root":
                assert all("--bundle_root bundles/" + name in ln for ln in lines), name


# Every bundle's commands run from its own folder; the repository-root form differs only by
# `--bundle_root bundles/NAME` (checked for every bundle above), so it runs for one bundle (suite time).
@pytest.mark.slow
@pytest.mark.parametrize(("name", "where"), [(n, "bundle") for n in NAMES] + [("edsr_m", "root")])
def test_readme_commands_run_as_written(name: str, where: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    bundle = repo / "bundles" / name
    shutil.copytree(ROOT / "bundles" / name, bundle, ignore=shutil.ignore_patterns("runs", "eval", "__pycache__"))
    (repo / "sample_data").mkdir(parents=True)
    for f in SAMPLES:
        shutil.copy(ROOT / "sample_data" / f, repo / "sample_data" / f)
    shutil.copytree(ROOT / "sample_data" / "ct_series_lung_dx_a0001", repo / "sample_data" / "ct_series")
    cwd = bundle if where == "bundle" else repo
    shipped = _digest(bundle / "models")
    for line in readme_commands(name)[where]:
        argv = _argv(line)
        if "training" in argv:
            argv += TINY_TRAIN
        elif any("evaluate.json" in a for a in argv):
            argv += TINY_EVAL
        proc = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        if "publish" not in argv and "ckpt_export" not in argv:
            assert _digest(bundle / "models") == shipped, f"{line} changed models/"
    runs = bundle / "runs"
    assert (runs / "x2" / "model.pt").is_file() and list((runs / "x2" / "eval").glob("*.csv"))
    assert list((runs / "x2").glob("checkpoint_*.pt")) and list((runs / "x2").glob("events.out.tfevents.*"))
    assert len(list((runs / "upscaled").rglob("*.dcm"))) == 2 + 8 and list((runs / "upscaled").glob("*.png"))
    published = torch.load(bundle / "models" / "model.pt", weights_only=True)
    trained = torch.load(runs / "x2" / "model.pt", weights_only=True)
    assert all(torch.equal(published[k], v) for k, v in trained.items())  # publish put the run's weights in models/
    scripted = torch.jit.load(str(bundle / "models" / "model.ts"))  # and the export is of the published weights
    x = torch.rand(1, 1, 16, 16)
    net_out = scripted(x)
    assert net_out.shape == (1, 1, 32, 32)
