"""scripts/reproduce_paper_table.py: --eval-only on the committed weights prints one JSON line per model x set x scale."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medsr.metrics import psnr
from medsr.transforms.colour import quantize8, rgb_to_y
from medsr.transforms.resample import downsample, upsample

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "reproduce_paper_table.py"


@pytest.fixture(scope="module")
def script():
    if not (ROOT / "benchmarks" / "paper" / "srcnn_x2.pt").is_file():
        pytest.skip("benchmarks/paper weights are missing")
    spec = importlib.util.spec_from_file_location("reproduce_paper_table", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_eval_only_json_lines(script, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    r, c = np.mgrid[0:36, 0:28].astype(np.float64)
    base = np.stack([60 + 3 * r, 180 - 4 * c, 120 + 50 * np.sin(r / 4)], axis=-1)
    rgb = np.clip(np.rint(base + rng.normal(0, 2, base.shape)), 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[..., 1]).save(tmp_path / "grey.png")  # a greyscale file is its own Y
    assert script.main(["--eval-only", "--set5", str(tmp_path), "--threads", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(x["model"], x["scale"]) for x in rows] == [
        (m, s) for s in (2, 4) for m in ("bicubic", "srcnn", "edsr_m")
    ]
    assert all(x["set"] == "Set5" and x["n"] == 2 and 0 < x["ssim_y"] <= 1 for x in rows)
    # the bicubic row is the papers' protocol, recomputed here from its definition
    ys = [rgb_to_y(torch.as_tensor(rgb.transpose(2, 0, 1) / 255.0), round8=True),
          torch.as_tensor(rgb[..., 1][None] / 255.0)]
    ref = np.mean([psnr(quantize8(upsample(downsample(y, 2, axes=(0, 1)), 2, axes=(0, 1))), y, border=2) for y in ys])
    assert rows[0]["psnr_y"] == pytest.approx(ref, abs=0.01)
    assert rows[0]["published_psnr_y"] == 33.66


def test_bad_arguments_exit_cleanly(script, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as err:
        script.main(["--eval-only", "--set5", str(tmp_path / "missing")])
    assert "not a folder" in str(err.value.code)
    with pytest.raises(SystemExit) as err:
        script.main(["--eval-only", "--models", "vdsr", "--set5", str(tmp_path)])
    assert err.value.code == 2


def test_train_then_continue(script, tmp_path: Path) -> None:
    """A few iterations through medsr's trainer write weights and a curve; --continue starts from them."""
    rng = np.random.default_rng(1)
    for name in ("t91", "bsd200", "bsd100"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (136, 136, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    weights = tmp_path / "weights"
    common = ["--train", "--models", "srcnn", "--scales", "2", "--iterations", "2", "--threads", "1",
              "--weights", str(weights), *(f"--{n}={tmp_path / n}" for n in ("t91", "bsd200", "bsd100"))]
    with pytest.raises(SystemExit, match="needs an earlier run"):
        script.main([*common, "--continue"])
    assert script.main(common) == 0
    first = json.loads((weights / "srcnn_x2_training.json").read_text())
    assert first["iterations"] == 2 and first["init"] is None and first["curve"][-1]["iteration"] == 2
    trained = torch.load(weights / "srcnn_x2.pt", weights_only=True)

    assert script.main([*common, "--continue"]) == 0
    second = json.loads((weights / "srcnn_x2_training.json").read_text())
    assert second["init"] == "srcnn_x2" and second["previous_stages"] == [first]
    assert second["curve"][0]["val_psnr_y"] == first["curve"][-1]["val_psnr_y"]  # started where the first ended
    assert any(not torch.equal(v, trained[k]) for k, v in torch.load(weights / "srcnn_x2.pt", weights_only=True).items())
