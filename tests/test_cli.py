"""The ``medsr`` command line: help/version fast path, upscale and degrade on real files, bad inputs, resuming.

Driven through typer's ``CliRunner`` (stderr separate) with the exit codes of
:mod:`medsr.errors` asserted; a few run the installed console script in a subprocess.
Bad inputs must give one ``medsr: error:`` line on stderr, no traceback, the documented
exit code and no output file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from cli_imports import imported_by
from typer.testing import CliRunner

from medsr import __version__
from medsr.cli import _expand_scale_lists, app
from medsr.cli import run as console_script
from medsr.errors import EXIT_INPUT, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE
from medsr.io import load_image

MEDSR = Path(sys.executable).parent / "medsr"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | os.PathLike):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(result, code: int) -> str:
    """The command failed with ``code``, one ``medsr: error:`` line on stderr and no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("medsr: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# --------------------------------------------------------------------------- version, help


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"medsr {__version__}"


def test_help_lists_commands_and_exit_codes() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("upscale", "degrade", "evaluate", "report"):
        assert command in result.stdout
    result = run("upscale", "--help")
    assert result.exit_code == 0
    for flag in ("--output", "--scale", "--model", "--continue", "--overwrite", "--trust-bundle"):
        assert flag in result.stdout
    assert "Exit codes" in result.stdout and "errors.csv" in result.stdout


@pytest.mark.skipif(not MEDSR.is_file(), reason="the medsr console script is not installed in this environment")
def test_console_script_version_and_help_are_fast_and_import_no_torch() -> None:
    proc = subprocess.run([str(MEDSR), "--version"], capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"medsr {__version__}"
    code = (
        "import sys\nfrom medsr.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit as e:\n    code = e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', code)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.stdout.strip().endswith("NO-TORCH 0"), proc.stdout + proc.stderr


@pytest.mark.parametrize("model, lean", [("edsr_m", True), ("bundle_copy", False)])
def test_upscale_imports_no_ignite_for_shipped_bundles(sample: Path, tmp_path: Path, model: str, lean: bool) -> None:
    """A shipped bundle's in-plane path skips MONAI's optional imports (start-up); a third-party bundle keeps them."""
    if model == "bundle_copy":
        model = str(shutil.copytree(ROOT / "bundles" / "edsr_m", tmp_path / "bundle_copy"))
    args = ["upscale", sample / "mr_small.dcm", "-o", tmp_path / "out", "-m", model, "--trust-bundle", "-q", "--no-progress"]
    assert imported_by(args, ["ignite"]) == ([] if lean else ["ignite"], 0)


@pytest.mark.parametrize("model", ["bicubic", "lanczos"])
def test_interpolation_imports_no_monai_and_writes_what_the_metatensor_api_writes(sample: Path, tmp_path: Path, model: str) -> None:
    """``upscale -m bicubic|lanczos`` runs on plain (tensor, meta) pairs (start-up, issue 15): no MONAI is
    imported, and every format comes out as ``save_image(upscale_image(load_image(...)))`` writes it."""
    from medsr.inference import InterpolationUpscaler, upscale_image
    from medsr.io import read_image, save_image

    from PIL import Image

    names = ["mr_small.dcm", "mr_anatomical.nii", "cxr_hannover_006f3a8a.png", "colour.jpg"]
    folder = tmp_path / "in"
    folder.mkdir()
    for name in names[:3]:
        shutil.copy(sample / name, folder / name)
    rgb = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)  # RGB: Y by the model, CbCr bicubic
    Image.fromarray(rgb).save(folder / "colour.jpg", quality=95)
    args = ["upscale", folder, "-o", tmp_path / "cli", "-m", model, "-q", "--no-progress"]
    assert imported_by(args, ["monai"]) == ([], 0)
    for name in names:
        stem, ext = name.split(".", 1)
        out = tmp_path / "cli" / f"{stem}_sr2x.{ext}"
        ref = save_image(upscale_image(load_image(folder / name), InterpolationUpscaler(model, 2)), tmp_path / "ref" / out.name)
        (got, got_meta), (want, want_meta) = read_image(out), read_image(ref)
        assert torch.equal(got, want), name
        assert torch.equal(got_meta["affine"], want_meta["affine"]) and got_meta["spacing"] == want_meta["spacing"], name


# --------------------------------------------------------------------------- upscale: formats and names


@pytest.mark.parametrize(
    "name, out_name, fmt",
    [
        ("mr_small.dcm", "mr_small_sr2x.dcm", "dicom"),
        ("mr_anatomical.nii", "mr_anatomical_sr2x.nii", "nifti"),
        ("cxr_hannover_006f3a8a.png", "cxr_hannover_006f3a8a_sr2x.png", "png"),
    ],
)
def test_upscale_file_bicubic(sample: Path, tmp_path: Path, name: str, out_name: str, fmt: str) -> None:
    src = tmp_path / name
    shutil.copy(sample / name, src)
    result = run("upscale", src, "-m", "bicubic", "-s", "2", "--no-progress")
    assert result.exit_code == EXIT_OK, result.stderr
    out = tmp_path / out_name
    assert out.is_file()
    img, up = load_image(src), load_image(out)
    assert up.meta["medsr_format"] == fmt
    assert up.shape[1] == 2 * img.shape[1] and up.shape[2] == 2 * img.shape[2]
    assert up.shape[3:] == img.shape[3:]  # in-plane only


def test_upscale_series_into_output_folder(sample: Path, tmp_path: Path) -> None:
    series = sample / "ct_series_lung_dx_a0001"
    result = run("upscale", series, "-o", tmp_path / "out", "-s", "2", "--no-progress")
    assert result.exit_code == EXIT_OK, result.stderr
    out = tmp_path / "out" / "ct_series_lung_dx_a0001_sr2x"
    assert out.is_dir() and len(list(out.glob("*.dcm"))) == len(list(series.glob("*.dcm")))
    up = load_image(out)
    assert up.meta["medsr_format"] == "dicom_series" and tuple(up.shape) == (1, 1024, 1024, 8)


def test_upscale_output_file_name_and_scale_4(sample: Path, tmp_path: Path) -> None:
    result = run("upscale", sample / "mr_small.dcm", "-o", tmp_path / "x4.dcm", "-s", "4", "--no-progress")
    assert result.exit_code == EXIT_OK, result.stderr
    assert tuple(load_image(tmp_path / "x4.dcm").shape) == (1, 256, 256)
    assert files_in(tmp_path) == {"x4.dcm"}  # nothing else (no temporary file) is left


# --------------------------------------------------------------------------- upscale: bad input, usage, output


def _no_pixel_dicom(sample: Path, path: Path) -> Path:
    ds = pydicom.dcmread(sample / "mr_small.dcm")
    del ds.PixelData
    ds.save_as(path)
    return path


def _bad_inputs(sample: Path, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "notes.dcm"
    text.write_text("this is a text file named like a DICOM\n")
    png = (sample / "cxr_hannover_006f3a8a.png").read_bytes()
    truncated = folder / "cut.png"
    truncated.write_bytes(png[: len(png) // 3])
    return {"text": text, "no_pixels": _no_pixel_dicom(sample, folder / "nopix.dcm"), "truncated": truncated}


@pytest.mark.parametrize("kind, message", [
    ("text", "not a DICOM file"),
    ("no_pixels", "no pixel data"),
    ("truncated", "truncated or corrupt"),
])
def test_upscale_bad_input_one_line_exit_3_no_output(sample: Path, tmp_path: Path, kind: str, message: str) -> None:
    src = _bad_inputs(sample, tmp_path / "in")[kind]
    before = files_in(tmp_path)
    line = assert_one_line_error(run("upscale", src, "--no-progress"), EXIT_INPUT)
    assert message in line and src.name in line
    assert files_in(tmp_path) == before


def test_upscale_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    line = assert_one_line_error(run("upscale", tmp_path / "empty", "--no-progress"), EXIT_INPUT)
    assert "contains no images" in line


def test_upscale_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    result = run("upscale", tmp_path / "nope.dcm")
    assert result.exit_code == EXIT_USAGE and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["-m", "no_such_model"], "unknown model"),
    (["-s", "3"], "`--scale` must be 2 or 4, got 3"),
])
def test_upscale_usage_errors(sample: Path, tmp_path: Path, args: list[str], message: str) -> None:
    src = tmp_path / "mr.dcm"
    shutil.copy(sample / "mr_small.dcm", src)
    line = assert_one_line_error(run("upscale", src, *args, "--no-progress"), EXIT_USAGE)
    assert message in line
    assert files_in(tmp_path) == {"mr.dcm"}


def test_upscale_existing_output_continue_overwrite(sample: Path, tmp_path: Path) -> None:
    src = tmp_path / "mr.dcm"
    shutil.copy(sample / "mr_small.dcm", src)
    out = tmp_path / "mr_sr2x.dcm"
    assert run("upscale", src, "--no-progress").exit_code == EXIT_OK
    stamp = out.stat().st_mtime_ns
    line = assert_one_line_error(run("upscale", src, "--no-progress"), EXIT_OUTPUT)
    assert "--overwrite" in line and "--continue" in line
    result = run("upscale", src, "--continue", "--no-progress")
    assert result.exit_code == EXIT_OK and "0 written, 1 already done" in result.stderr
    assert out.stat().st_mtime_ns == stamp  # not redone
    result = run("upscale", src, "--overwrite", "--no-progress")
    assert result.exit_code == EXIT_OK and "1 written" in result.stderr
    assert files_in(tmp_path) == {"mr.dcm", "mr_sr2x.dcm"}


def test_upscale_output_equal_to_input_is_refused(sample: Path, tmp_path: Path) -> None:
    src = tmp_path / "mr.dcm"
    shutil.copy(sample / "mr_small.dcm", src)
    data = src.read_bytes()
    for extra in ([], ["--overwrite"]):
        line = assert_one_line_error(run("upscale", src, "-o", src, *extra, "--no-progress"), EXIT_OUTPUT)
        assert "is an input" in line
    assert src.read_bytes() == data


@pytest.mark.skipif(not MEDSR.is_file(), reason="the medsr console script is not installed in this environment")
def test_console_script_bad_input_and_ok(sample: Path, tmp_path: Path) -> None:
    """The real process: exit codes, one stderr line, no traceback."""
    bad = _bad_inputs(sample, tmp_path / "in")["text"]
    proc = subprocess.run([str(MEDSR), "upscale", str(bad), "--no-progress"], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert proc.returncode == EXIT_INPUT
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [line for line in proc.stderr.splitlines()
                                                                            if line.startswith("medsr: error:")]
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([str(MEDSR), "upscale", str(sample / "mr_small.dcm"), "-o", str(tmp_path / "o.dcm"),
                           "--no-progress", "-q"], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == EXIT_OK and proc.stderr.strip() == "" and (tmp_path / "o.dcm").is_file()


def _tiny_rgb(path: Path, rows: int = 16, cols: int = 12) -> np.ndarray:
    """A smooth ``rows`` x ``cols`` colour image (rows x cols x 3, uint8) saved as PNG."""
    from PIL import Image

    r, c = np.mgrid[0:rows, 0:cols].astype(np.float64)
    rgb = np.stack([40 + 10 * r, 200 - 12 * c, 90 + 60 * np.sin(r / 3 + c / 4)], axis=-1)
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


@pytest.mark.parametrize("model", ["bicubic", "edsr_m"])
def test_upscale_rgb_round_trip(tmp_path: Path, model: str) -> None:
    """An RGB PNG comes back RGB at twice the size: Y from the model, Cb/Cr bicubic, colours kept."""
    from PIL import Image

    from medsr.inference import load_upscaler
    from medsr.transforms.colour import upscale_rgb

    rgb = _tiny_rgb(tmp_path / "photo.png")
    result = run("upscale", tmp_path / "photo.png", "-m", model, "-s", "2", "--no-progress")
    assert result.exit_code == EXIT_OK, result.stderr
    out = Image.open(tmp_path / "photo_sr2x.png")
    assert out.mode == "RGB" and out.size == (24, 32)
    got = np.asarray(out).astype(np.float64)
    x = torch.as_tensor(rgb.transpose(2, 1, 0) / 255.0, dtype=torch.float32)  # (3, X, Y)
    ref = upscale_rgb(x, load_upscaler(model, 2), 2).numpy().transpose(2, 1, 0) * 255
    assert np.abs(got - ref).max() <= 1.0  # rounding to 8 bits only
    assert np.abs(got.mean(axis=(0, 1)) - rgb.mean(axis=(0, 1))).max() < 2.0  # no colour shift


def test_evaluate_y_channel_scores_rgb_like_the_papers(tmp_path: Path) -> None:
    from medsr.metrics import psnr
    from medsr.transforms.colour import quantize8, rgb_to_y
    from medsr.transforms.resample import downsample, upsample

    data = tmp_path / "set"
    data.mkdir()
    rgb = _tiny_rgb(data / "photo.png", 24, 20)
    result = run("evaluate", data, "-o", tmp_path / "ev", "-s", "2", "--y-channel", "--no-progress", "-q")
    assert result.exit_code == EXIT_OK, result.stderr
    import csv

    rows = list(csv.DictReader((tmp_path / "ev" / "metrics.csv").open()))
    y = rgb_to_y(torch.as_tensor(rgb.transpose(2, 1, 0) / 255.0), round8=True).float()
    sr = quantize8(upsample(downsample(y, 2, axes=(0, 1)), 2, axes=(0, 1)).clamp(0, 1))
    assert float(rows[0]["psnr"]) == pytest.approx(psnr(sr, y, border=2), abs=1e-3)
    # without --y-channel a colour image is refused with its reason, not scored on RGB
    result = run("evaluate", data, "-o", tmp_path / "ev2", "-s", "2", "--no-progress", "-q")
    assert result.exit_code != EXIT_OK and "--y-channel" in result.stdout + result.stderr


def test_evaluate_scale_list_as_in_the_docs(sample: Path, tmp_path: Path) -> None:
    """``medsr evaluate ... -s 2 4`` (the issue's and the Makefile's spelling) means ``-s 2 -s 4``."""
    assert _expand_scale_lists(["evaluate", "d", "-s", "2", "4", "-m", "x"]) == ["evaluate", "d", "-s", "2", "-s", "4", "-m", "x"]
    assert _expand_scale_lists(["evaluate", "-s", "2", "4", "d"]) == ["evaluate", "-s", "2", "-s", "4", "d"]
    assert _expand_scale_lists(["upscale", "-s", "2", "4"]) == ["upscale", "-s", "2", "4"]  # upscale takes one scale
    try:
        console_script(["evaluate", str(sample / "ct_small.dcm"), "-o", str(tmp_path / "ev"), "-s", "2", "4", "--no-progress", "-q"])
    except SystemExit as exit_:
        assert exit_.code in (None, EXIT_OK)
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert {g["scale"] for g in summary["groups"]} == {2, 4}


# --------------------------------------------------------------------------- degrade


def test_degrade_halves_and_is_seeded(sample: Path, tmp_path: Path) -> None:
    src = sample / "ct_small.dcm"
    outs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        out = tmp_path / f"{name}.dcm"
        result = run("degrade", src, "-o", out, "-s", "2", "--seed", str(seed), "--degradation", "modality", "--no-progress")
        assert result.exit_code == EXIT_OK, result.stderr
        outs[name] = load_image(out)
    img = load_image(src)
    assert tuple(outs["a"].shape) == (1, img.shape[1] // 2, img.shape[2] // 2)
    assert torch.equal(outs["a"].as_tensor(), outs["b"].as_tensor())  # same seed, same output
    assert not torch.equal(outs["a"].as_tensor(), outs["c"].as_tensor())  # the noise depends on the seed
    np.testing.assert_allclose(outs["a"].meta["spacing"], np.asarray(img.meta["spacing"]) * 2, rtol=1e-6)


def test_degrade_default_name_and_bad_option(sample: Path, tmp_path: Path) -> None:
    src = tmp_path / "mr.nii"
    shutil.copy(sample / "mr_anatomical.nii", src)
    assert run("degrade", src, "--no-progress").exit_code == EXIT_OK
    assert (tmp_path / "mr_lr2x.nii").is_file()
    line = assert_one_line_error(run("degrade", src, "--modality", "pet", "--no-progress"), EXIT_USAGE)
    assert "--modality" in line


# --------------------------------------------------------------------------- devices, progress, uneven series


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("model", ["bicubic", "edsr_m"])
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_upscale_gpu_asked_for_but_absent_is_usage_error(sample: Path, tmp_path: Path, model: str, device: str) -> None:
    src = tmp_path / "mr.dcm"
    shutil.copy(sample / "mr_small.dcm", src)
    line = assert_one_line_error(run("upscale", src, "-m", model, "-d", device, "--no-progress"), EXIT_USAGE)
    assert f"`device` {device} was asked for" in line and "-d auto" in line
    assert files_in(tmp_path) == {"mr.dcm"}  # never ran silently on the CPU


def test_upscale_device_auto_default_and_bad_name(sample: Path, tmp_path: Path) -> None:
    src = tmp_path / "mr.dcm"
    shutil.copy(sample / "mr_small.dcm", src)
    line = assert_one_line_error(run("upscale", src, "-d", "tpu", "--no-progress"), EXIT_USAGE)
    assert "`device` must be one of auto, cpu, cuda, cuda:<index>, mps, got 'tpu'" in line
    result = run("upscale", src, "--no-progress", "-v")  # no -d: auto
    assert result.exit_code == EXIT_OK, result.stderr


def test_upscale_progress_on_stderr_counts_slices(sample: Path, tmp_path: Path) -> None:
    """Progress goes to stderr (stdout stays empty) and counts the 8 slices of the series, with time remaining."""
    env = {**ENV, "COLUMNS": "160"}
    proc = subprocess.run(
        [str(MEDSR), "upscale", str(sample / "ct_series_lung_dx_a0001"), "-o", str(tmp_path / "out"), "-m", "edsr_m"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stdout == ""
    assert "8/8 slices" in proc.stderr and "100%" in proc.stderr and "remaining" in proc.stderr


def test_upscale_uneven_series_in_plane_with_warning(sample: Path, tmp_path: Path) -> None:
    """A subset of a series (one slice missing): upscaled in-plane, each slice at its own position, with a warning."""
    files = sorted((sample / "ct_series_lung_dx_a0001").glob("*.dcm"))
    series = tmp_path / "subset"
    series.mkdir()
    for f in files[:3] + files[4:5]:
        shutil.copy(f, series / f.name)
    result = run("upscale", series, "-o", tmp_path / "out", "-s", "2", "--no-progress")
    assert result.exit_code == EXIT_OK, result.stderr
    assert "warning" in result.stderr and "unevenly spaced" in result.stderr
    assert f"10 mm between {files[4].name} at -284 mm and {files[2].name} at -274 mm" in result.stderr
    out = tmp_path / "out" / "subset_sr2x"
    for f in files[:3] + files[4:5]:
        src = pydicom.dcmread(str(f), stop_before_pixels=True)
        ds = pydicom.dcmread(str(out / f.name), stop_before_pixels=True)  # the input's name is kept
        assert [float(v) for v in ds.ImagePositionPatient[2:]] == pytest.approx([float(src.ImagePositionPatient[2])])
        assert (ds.Rows, ds.Columns) == (2 * src.Rows, 2 * src.Columns)
