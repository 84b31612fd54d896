"""The slice-direction evaluation protocol: groups, paired intervals, figures, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medsr.cli import app
from medsr.slice_evaluation import evaluate_volume, run_slice_evaluation, slice_metrics
from medsr.slices import SliceUpscaler, thin_length

runner = CliRunner()


def _smooth_volume(tmp_path: Path, name: str = "thin.nii.gz") -> Path:
    """A smooth MR-like volume with 1 mm slices along the last axis (where cubic beats linear)."""
    x, y, z = np.meshgrid(np.linspace(0, 1, 24), np.linspace(0, 1, 22), np.linspace(0, 1, 25), indexing="ij")
    data = 500 + 300 * np.sin(6 * x + 3 * z) * np.cos(5 * y - 4 * z) + 100 * np.sin(9 * z)
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([0.9, 0.9, 1.0, 1.0])), str(path))
    return path


def test_evaluate_volume_shapes_and_coinciding_groups():
    vol = torch.rand(1, 14, 12, 13, generator=torch.Generator().manual_seed(0))
    axis, ref, thick, outs = evaluate_volume(vol, 4, {"cubic": SliceUpscaler("cubic", 4)})
    assert axis == 2 and ref.shape[-1] == thin_length(thick.shape[-1], 4) == 13 and thick.shape[-1] == 4
    mse, ss = slice_metrics(outs["cubic"], ref, axis)
    assert mse.shape == ss.shape == (13,)
    assert np.all(ss <= 1.0 + 1e-9)


def test_run_slice_evaluation(tmp_path):
    path = _smooth_volume(tmp_path)
    report = run_slice_evaluation(path, tmp_path / "ev", factors=(2, 4), models=("linear", "lanczos"), progress=False)
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())["rows"]
    get = {(r["factor"], r["method"], r["group"]): r for r in summary}
    assert {k[1] for k in get} == {"cubic", "linear", "lanczos"}
    for n in (2, 4):
        assert get[(n, "cubic", "between")]["psnr_vs_cubic"] == 0.0
        assert get[(n, "cubic", "between")]["psnr"] > get[(n, "linear", "between")]["psnr"]  # smooth data
        lo, hi = get[(n, "linear", "between")]["psnr_vs_cubic_ci95"]
        assert lo <= get[(n, "linear", "between")]["psnr_vs_cubic_per_slice_mean"] <= hi and hi < 0
        assert get[(n, "linear", "coinciding")]["slices"] + get[(n, "linear", "between")]["slices"] == get[(n, "linear", "all")]["slices"]
    # interpolating kernels return the thick slice itself at coinciding positions: identical there
    assert get[(2, "linear", "coinciding")]["psnr"] == pytest.approx(get[(2, "cubic", "coinciding")]["psnr"])
    figs = sorted((tmp_path / "ev" / "figures").glob("*.png"))
    assert len(figs) == 2 and "thin.nii.gz" not in report.read_text()  # anonymous case names by default
    assert (tmp_path / "ev" / "per_slice.csv").read_text().count("\n") == 1 + 3 * (25 + 25)


def test_cli_protocol_slices(tmp_path):
    path = _smooth_volume(tmp_path)
    res = runner.invoke(app, ["evaluate", str(path), "--protocol", "slices", "-s", "2", "-m", "linear",
                              "-o", str(tmp_path / "ev"), "--no-progress", "--show-ids"])
    assert res.exit_code == 0, res.output
    assert "thin.nii.gz" in (tmp_path / "ev" / "report.md").read_text()
    res = runner.invoke(app, ["evaluate", str(path), "--protocol", "axial", "-o", str(tmp_path / "e2")])
    assert res.exit_code == 2 and "--protocol" in res.output
