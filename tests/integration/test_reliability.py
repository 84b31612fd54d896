"""Reliability on hospital-archive input: batches with bad files, crash safety, hostile headers, trust, privacy.

What the issue asks medsr to show:

- a folder of 20 good and 5 corrupt files gives 20 outputs, ``errors.csv`` with 5 rows and
  the partial-failure exit code; a rerun with ``--continue`` writes nothing new;
- ``kill -9`` during a write leaves no partial output under the final name;
- huge declared dimensions, NaN/Inf, zero-size, colour, non-image DICOM (SR, RTSTRUCT),
  mixed series, symlink loops and unreadable files each give a clear ``InputError``;
- a bundle outside the shipped ones needs ``--trust-bundle``; checkpoints load with
  ``weights_only=True``; a training run killed with SIGKILL resumes and reaches the same
  validation metrics as an uninterrupted run;
- logs, ``errors.csv`` and reports carry no patient name, ID or birth date.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from medsr.cli import app
from medsr.errors import EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, InputError
from medsr.io import MAX_PIXELS, discover_inputs, load_image

ROOT = Path(__file__).resolve().parents[2]
MEDSR = Path(sys.executable).parent / "medsr"
PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def pydicom_file(name: str) -> Path:
    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    if not path.is_file():
        pytest.skip(f"pydicom test file {name} is not installed")
    return path


def medsr_cmd(*args: str | os.PathLike) -> list[str]:
    exe = [str(MEDSR)] if MEDSR.is_file() else [PY, "-m", "medsr"]
    return exe + [str(a) for a in args]


def run(*args: str | os.PathLike):
    return CliRunner().invoke(app, [str(a) for a in args])


def digest(folder: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------- files for the tests


def write_png(path: Path, seed: int, shape: tuple[int, int] = (40, 48)) -> Path:
    rng = np.random.default_rng(seed)
    img = np.clip(np.cumsum(rng.normal(0, 8, shape), axis=1) + 128, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def write_nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([0.9, 0.9, 2.0, 1.0])), str(path))
    return path


def dicom_like(sample: Path, path: Path, **changes) -> Path:
    """mr_small.dcm in a new series (so it is not grouped with other copies), with ``changes`` applied."""
    ds = pydicom.dcmread(sample / "mr_small.dcm")
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)
    return path


def make_batch(sample: Path, folder: Path) -> tuple[list[str], list[str]]:
    """20 good images (16 PNG, 2 NIfTI, 2 DICOM) and 5 corrupt files; returns (good, bad) names."""
    folder.mkdir(parents=True)
    good = [write_png(folder / f"cxr_{i:02d}.png", i).name for i in range(16)]
    rng = np.random.default_rng(0)
    for i in range(2):
        good.append(write_nifti(folder / f"mr_{i}.nii.gz", rng.normal(100, 10, (24, 20, 3)).astype(np.float32)).name)
    good.append(dicom_like(sample, folder / "mr_a.dcm").name)
    good.append(dicom_like(sample, folder / "mr_b.dcm", PatientName="Other^Patient").name)
    bad = []
    (folder / "notes.dcm").write_text("not a DICOM file\n")
    bad.append("notes.dcm")
    bad.append(dicom_like(sample, folder / "nopixels.dcm", PixelData=None).name)
    png = (folder / "cxr_00.png").read_bytes()
    (folder / "cut.png").write_bytes(png[: len(png) // 2])
    bad.append("cut.png")
    nan = rng.normal(100, 10, (24, 20, 3)).astype(np.float32)
    nan[3, 4, 1] = np.nan
    bad.append(write_nifti(folder / "nan.nii.gz", nan).name)
    (folder / "empty.png").write_bytes(b"")
    bad.append("empty.png")
    return good, bad


# --------------------------------------------------------------------------- batch semantics


def test_batch_20_good_5_corrupt_then_continue(sample: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    good, bad = make_batch(sample, src)
    inputs_before = digest(src)
    proc = subprocess.run(medsr_cmd("upscale", src, "-o", out, "--no-progress"), capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert proc.returncode == EXIT_PARTIAL, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    outputs = sorted(p.name for p in out.iterdir() if p.name != "errors.csv")
    assert len(outputs) == 20 and not any(p.name.startswith(".") for p in out.iterdir())
    with open(out / "errors.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 and sorted(Path(r["path"]).name for r in rows) == sorted(bad)
    assert all(r["reason"] and "\n" not in r["reason"] for r in rows)
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("medsr: skipped")]
    assert len(skipped) == 5  # one line per bad file
    assert "20 written, 0 already done, 5 failed" in proc.stderr
    assert digest(src) == inputs_before  # inputs never written

    outputs_before = digest(out)
    del outputs_before["errors.csv"]
    proc = subprocess.run(medsr_cmd("upscale", src, "-o", out, "--continue", "--no-progress"), capture_output=True,
                          text=True, env=ENV, timeout=300)
    assert proc.returncode == EXIT_PARTIAL, proc.stderr  # the same 5 files still fail
    assert "0 written, 20 already done, 5 failed" in proc.stderr
    after = digest(out)
    del after["errors.csv"]
    assert after == outputs_before  # nothing redone, nothing new


def test_batch_exit_codes_all_ok_and_nothing_processed(sample: Path, tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    ok.mkdir()
    for i in range(2):
        write_png(ok / f"{i}.png", i)
    assert run("upscale", ok, "--no-progress").exit_code == EXIT_OK
    assert not (tmp_path / "ok_sr2x" / "errors.csv").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.dcm").write_text("x")
    (bad / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    result = run("upscale", bad, "--no-progress")
    assert result.exit_code == EXIT_INPUT  # nothing could be processed
    assert len(list(csv.reader(open(tmp_path / "bad_sr2x" / "errors.csv")))) == 3


def test_evaluate_partial_failure_exit_code(sample: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        write_png(src / f"{i}.png", i, shape=(64, 64))
    (src / "bad.dcm").write_text("x")
    result = run("evaluate", src, "-o", tmp_path / "ev", "--no-progress")
    assert result.exit_code == EXIT_PARTIAL, result.stderr
    assert len(list(csv.reader(open(tmp_path / "ev" / "errors.csv")))) == 2


# --------------------------------------------------------------------------- crash safety


def test_kill_9_during_write_leaves_no_partial_output(tmp_path: Path) -> None:
    """SIGKILL while the output is being written: the final name never holds a partial file."""
    rng = np.random.default_rng(0)
    write_nifti(tmp_path / "vol.nii.gz", rng.normal(0, 200, (288, 288, 40)).astype(np.int16))
    out = tmp_path / "out"
    final = out / "vol_sr2x.nii.gz"
    proc = subprocess.Popen(medsr_cmd("upscale", tmp_path / "vol.nii.gz", "-o", final, "--no-progress"),
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = None
    deadline = time.monotonic() + 240
    try:
        while seen is None and proc.poll() is None and time.monotonic() < deadline:
            temps = list(out.glob(".vol_sr2x.*.tmp.nii.gz")) if out.is_dir() else []
            if temps and temps[0].stat().st_size > 0:
                seen = temps[0]
                proc.send_signal(signal.SIGKILL)
            else:
                time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert seen is not None, "the write finished before the test could kill it; make the volume bigger"
    assert proc.returncode == -signal.SIGKILL
    assert not final.exists()  # nothing under the final name
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []  # only the hidden temporary file
    # a rerun completes the job (the stale hidden temporary file is not an input nor in the way)
    result = run("upscale", tmp_path / "vol.nii.gz", "-o", final, "--continue", "--no-progress")
    assert result.exit_code == EXIT_OK, result.stderr
    assert tuple(load_image(final).shape) == (1, 576, 576, 40)


def test_atomic_checkpoint_saver_and_latest_checkpoint_skip_partial_files(tmp_path: Path) -> None:
    from ignite.engine import Engine

    from medsr.training import CheckpointSaver, latest_checkpoint

    net = torch.nn.Linear(3, 2)
    save = {"model": net, "optimizer": torch.optim.SGD(net.parameters(), 0.1)}
    saver = CheckpointSaver(str(tmp_path), save, save_interval=1, n_saved=2)
    assert saver._interval_checkpoint.save_handler._atomic  # temp file + rename (MONAI's own writes in place)
    engine = Engine(lambda e, b: None)
    saver.attach(engine)
    engine.run([0], max_epochs=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]  # no temporary file left
    assert os.stat(tmp_path / names[0]).st_mode & 0o044 == 0o044  # readable by group/others, as MONAI's
    assert set(torch.load(tmp_path / names[1], weights_only=True)) == {"model", "optimizer"}
    # a checkpoint cut short (e.g. by a non-atomic saver when the run was killed) is not resumed from
    (tmp_path / "checkpoint_epoch=3.pt").write_bytes((tmp_path / names[1]).read_bytes()[:500])
    assert latest_checkpoint(tmp_path) == str(tmp_path / names[1])


# --------------------------------------------------------------------------- hostile input


def _refused_fast(path: Path, match: str, max_bytes: int = 64 << 20) -> None:
    """``load_image`` raises InputError quickly, allocating (numpy, Python) less than ``max_bytes``."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(InputError, match=match):
            load_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 10
    assert peak < max_bytes, f"{peak} bytes allocated"


@pytest.mark.parametrize("rows, cols, frames, match", [
    (40000, 40000, None, "exceeds medsr's limit"),  # 1.6e9 pixels: over MAX_PIXELS
    (65535, 65535, 1000, "exceeds medsr's limit"),  # a multi-frame claiming 4e12 pixels
    (30000, 30000, None, "truncated or corrupt"),  # under the limit, but 1.8 GB the file does not hold
])
def test_dicom_huge_declared_size_refused_before_allocation(sample: Path, tmp_path: Path, rows: int, cols: int,
                                                           frames: int | None, match: str) -> None:
    changes = {"Rows": rows, "Columns": cols}
    if frames:
        changes["NumberOfFrames"] = frames
    path = dicom_like(sample, tmp_path / "huge.dcm", **changes)
    assert path.stat().st_size < 20000
    _refused_fast(path, match)


def test_compressed_dicom_huge_declared_size_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("MR_small_RLE.dcm"))
    ds.Rows = ds.Columns = 30000
    ds.NumberOfFrames = 1
    ds.save_as(tmp_path / "rle.dcm")
    _refused_fast(tmp_path / "rle.dcm", "truncated or corrupt")


def test_nifti_and_png_huge_declared_size_refused(tmp_path: Path) -> None:
    write_nifti(tmp_path / "small.nii.gz", np.zeros((8, 8, 2), np.int16))
    raw = bytearray(__import__("gzip").decompress((tmp_path / "small.nii.gz").read_bytes()))
    raw[42:48] = np.array([30000, 30000, 1], "<i2").tobytes()  # dim[1..3]
    (tmp_path / "huge.nii.gz").write_bytes(__import__("gzip").compress(bytes(raw)))
    (tmp_path / "huge.nii").write_bytes(bytes(raw))
    _refused_fast(tmp_path / "huge.nii.gz", "truncated or corrupt")
    _refused_fast(tmp_path / "huge.nii", "truncated or corrupt")
    png = bytearray(write_png(tmp_path / "p.png", 0).read_bytes())
    for w, h, match in ((9000, 9000, "truncated or corrupt"), (100000, 100000, "limit|too large")):
        png[16:24] = w.to_bytes(4, "big") + h.to_bytes(4, "big")
        png[29:33] = (__import__("zlib").crc32(bytes(png[12:29])) & 0xFFFFFFFF).to_bytes(4, "big")
        (tmp_path / "huge.png").write_bytes(bytes(png))
        _refused_fast(tmp_path / "huge.png", match)


def test_nan_and_inf_pixels(sample: Path, tmp_path: Path) -> None:
    data = np.ones((8, 9, 3), np.float32)
    data[1, 2, 0] = np.inf
    write_nifti(tmp_path / "inf.nii", data)
    with pytest.raises(InputError, match="NaN or infinite"):
        load_image(tmp_path / "inf.nii")
    import tifffile

    tifffile.imwrite(tmp_path / "nan.tif", np.array([[1.0, np.nan], [2.0, 3.0]], np.float32))
    with pytest.raises(InputError, match="NaN or infinite"):
        load_image(tmp_path / "nan.tif")
    path = dicom_like(sample, tmp_path / "slope.dcm", RescaleSlope="1e400")
    with pytest.raises(InputError, match="RescaleSlope"):
        load_image(path)


def test_zero_size_images(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="zero-size"):
        load_image(dicom_like(sample, tmp_path / "z.dcm", Rows=0))
    write_nifti(tmp_path / "z.nii", np.zeros((4, 0, 3), np.float32))
    with pytest.raises(InputError, match="zero-size"):
        load_image(tmp_path / "z.nii")
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        load_image(tmp_path / "z.png")
    png = bytearray(write_png(tmp_path / "w.png", 0).read_bytes())
    png[16:20] = (0).to_bytes(4, "big")  # IHDR width 0
    png[29:33] = (__import__("zlib").crc32(bytes(png[12:29])) & 0xFFFFFFFF).to_bytes(4, "big")
    (tmp_path / "w.png").write_bytes(bytes(png))
    with pytest.raises(InputError, match="PNG|zero-size"):
        load_image(tmp_path / "w.png")


@pytest.mark.parametrize("name, match", [
    ("SC_rgb_small_odd.dcm", "colour DICOM"),
    ("examples_palette.dcm", "colour DICOM"),
    ("test-SR.dcm", "not an image"),
    ("rtstruct.dcm", "not an image"),
])
def test_colour_and_non_image_dicom(tmp_path: Path, name: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        load_image(pydicom_file(name))


def test_colour_and_non_image_dicom_through_cli(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("SC_rgb_small_odd.dcm", "rtstruct.dcm", "test-SR.dcm", "CT_small.dcm"):
        shutil.copy(pydicom_file(name), folder / name)
    result = run("upscale", folder, "--no-progress")
    assert result.exit_code == EXIT_PARTIAL and "Traceback" not in result.stderr
    assert (tmp_path / "mixed_sr2x" / "CT_small_sr2x.dcm").is_file()
    reasons = {r["path"]: r["reason"] for r in csv.DictReader(open(tmp_path / "mixed_sr2x" / "errors.csv"))}
    assert len(reasons) == 3 and all("not an image" in r or "colour" in r for r in reasons.values())


def _two_series_folder(sample: Path, folder: Path) -> None:
    """The 8-slice CT series plus 3 slices re-labelled as a second series, in one folder."""
    folder.mkdir()
    series = sorted((sample / "ct_series_lung_dx_a0001").glob("*.dcm"))
    for p in series:
        shutil.copy(p, folder / p.name)
    uid = generate_uid()
    for p in series[:3]:
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesDescription = "second"
        ds.save_as(folder / f"b_{p.name}")


def test_mixed_series_in_one_folder(sample: Path, tmp_path: Path) -> None:
    folder = tmp_path / "study"
    _two_series_folder(sample, folder)
    with pytest.raises(InputError, match="holds 2 DICOM series"):
        load_image(folder)
    items = discover_inputs(folder)
    assert sorted(len(i.files) for i in items) == [3, 8] and {i.kind for i in items} == {"series"}
    result = run("upscale", folder, "-o", tmp_path / "out", "--no-progress")
    assert result.exit_code == EXIT_OK, result.stderr
    outs = sorted((tmp_path / "out").iterdir())
    assert len(outs) == 2 and all(p.name.startswith("study_") and p.name.endswith("_sr2x") for p in outs)
    assert sorted(load_image(p).shape[-1] for p in outs) == [3, 8]  # one output per series, none overwritten


def test_symlink_loops_do_not_hang(sample: Path, tmp_path: Path) -> None:
    folder = tmp_path / "loops"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(sample / "mr_small.dcm", folder / "sub" / "mr.dcm")
    os.symlink(folder, folder / "sub" / "back")  # a folder loop
    os.symlink(folder / "a.dcm", folder / "b.dcm")  # a file loop: a -> b -> a
    os.symlink(folder / "b.dcm", folder / "a.dcm")
    start = time.monotonic()
    items = discover_inputs(folder)
    assert [i.path.name for i in items] == ["mr.dcm"] and time.monotonic() - start < 5
    result = run("upscale", folder, "-o", tmp_path / "out", "--no-progress")
    assert result.exit_code == EXIT_OK, result.stderr
    assert (tmp_path / "out" / "sub" / "mr_sr2x.dcm").is_file()
    with pytest.raises(InputError, match="looping symbolic link"):
        load_image(folder / "a.dcm")


def test_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        load_image(fifo)  # opening a FIFO for reading would block forever


def _permissions_apply() -> list[str]:
    """A command prefix under which file permissions stop reads, even for root (CI runs as root).

    Root reads anything through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH; ``setpriv``
    (util-linux) drops both from the bounding set of the child process.
    """
    if not IS_ROOT:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions do not stop reads")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def test_unreadable_file(sample: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(sample / "mr_small.dcm", folder / "ok.dcm")
    locked = write_png(folder / "locked.png", 1)
    locked.chmod(0)
    prefix = _permissions_apply()
    try:
        if not IS_ROOT:
            with pytest.raises(InputError, match="permission denied"):
                load_image(locked)
        proc = subprocess.run([*prefix, str(MEDSR), "upscale", str(folder), "--no-progress"], capture_output=True,
                              text=True, env=ENV, timeout=120)
        assert proc.returncode == EXIT_PARTIAL, proc.stderr
        assert "permission denied" in proc.stderr and "Traceback" not in proc.stderr
        assert (tmp_path / "in_sr2x" / "ok_sr2x.dcm").is_file()
    finally:
        locked.chmod(0o644)


# --------------------------------------------------------------------------- trust and checkpoints


def test_bundle_outside_the_shipped_ones_needs_trust(sample: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "my_bundle"
    shutil.copytree(ROOT / "bundles" / "edsr_m", bundle, ignore=shutil.ignore_patterns("runs", "eval", "model_x4.pt"))
    if not (bundle / "models" / "model.pt").is_file():
        pytest.skip("edsr_m/models/model.pt is not shipped in this checkout")
    src = tmp_path / "mr.dcm"
    shutil.copy(sample / "mr_small.dcm", src)
    result = run("upscale", src, "-m", bundle, "--no-progress")
    assert result.exit_code == EXIT_USAGE and "--trust-bundle" in result.stderr and "Traceback" not in result.stderr
    assert str(bundle) in result.stderr
    assert not (tmp_path / "mr_sr2x.dcm").exists()
    result = run("upscale", src, "-m", bundle, "--trust-bundle", "--no-progress")
    assert result.exit_code == EXIT_OK, result.stderr
    assert str(bundle / "configs" / "inference.json") in result.stderr  # says which config it executes
    result = run("upscale", src, "-m", bundle, "--trust-bundle", "-q", "--overwrite")
    assert result.exit_code == EXIT_OK and str(bundle / "configs" / "inference.json") in result.stderr  # even quiet


def test_shipped_and_bundle_weights_are_weights_only() -> None:
    found = list((ROOT / "bundles").glob("*/models/*.pt"))
    if not found:
        pytest.skip("no bundle weights in this checkout")
    for path in found:
        torch.load(path, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------- kill and resume training


def _epoch_draws(resume_from: int, epochs: int = 3) -> dict[int, list[float]]:
    """What a tiny loader (weighted sampler + MONAI random transform) yields per epoch, starting after ``resume_from``."""
    from ignite.engine import Engine, Events
    from monai.data import DataLoader, Dataset
    from monai.transforms import RandGaussianNoised

    from medsr.training import DeterministicEpochs

    data = [{"x": torch.full((1, 2), float(i))} for i in range(6)]
    ds = Dataset(data, transform=RandGaussianNoised("x", prob=1.0))
    sampler = torch.utils.data.WeightedRandomSampler([1.0] * 6, num_samples=4, replacement=True)
    loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=0)
    draws: dict[int, list[float]] = {}
    engine = Engine(lambda e, b: draws.setdefault(e.state.epoch, []).extend(b["x"].flatten().tolist()))
    DeterministicEpochs(seed=7).attach(engine)
    torch.rand(5)  # a resumed process has consumed its random generators differently
    if resume_from:
        engine.load_state_dict({"epoch": resume_from, "max_epochs": epochs, "epoch_length": len(loader)})
    engine.run(loader, max_epochs=epochs)
    return draws


def test_deterministic_epochs_replays_an_epoch_after_resuming() -> None:
    straight, resumed = _epoch_draws(0), _epoch_draws(1)
    assert sorted(resumed) == [2, 3]
    assert resumed[2] == straight[2] and resumed[3] == straight[3]
    assert straight[2] != straight[3]



_TRAIN_ARGS = ["--num_epochs", "3", "--epoch_length", "2", "--batch_size", "4", "--num_samples", "2", "--val_crop", "64",
               "--num_workers", "0", "--num_threads", "1", "--val_per_modality", "2", "--patch_size", "32"]
# test-only additions to the bundle's `run`: every validation's metrics in full precision, and (for the run
# to be killed) a pause in each iteration from epoch 2 on, so the kill lands mid-epoch after checkpoint 1
_LOG_METRICS = ("$@validate#evaluator.add_event_handler(Events.COMPLETED, lambda e: open(@output_dir + "
                "'/val_metrics.jsonl', 'a').write(json.dumps({'epoch': @train#trainer.state.epoch, **e.state.metrics}) + chr(10)))")
_SLOW = "$@train#trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: e.state.epoch >= 2 and time.sleep(2))"


def _training_cmd(root: Path, sample: Path, slow: bool = False) -> list[str]:
    imports = json.loads((root / "configs" / "train.json").read_text())["imports"]
    run_steps = [_LOG_METRICS, *([_SLOW] if slow else []), "$@train#trainer.run()"]  # train#handlers: attached by the trainer
    extra = root / f"test_extra{'_slow' if slow else ''}.json"
    extra.write_text(json.dumps({"imports": imports + ["$import json", "$import time", "$from ignite.engine import Events"],
                                 "run": run_steps}))
    return [PY, "-m", "monai.bundle", "run", "training", "--meta_file", "configs/metadata.json",
            "--config_file", f"['configs/train.json','{extra.name}']", "--logging_file", "configs/logging.conf",
            "--dataset_dir", str(sample), *_TRAIN_ARGS]


def _bundle_copy(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copytree(ROOT / "bundles" / "edsr_m", dst, ignore=shutil.ignore_patterns("runs", "eval", "*.pt"))
    return dst


def test_training_killed_with_sigkill_resumes_to_the_same_validation_psnr(sample: Path, tmp_path: Path) -> None:
    straight = _bundle_copy(tmp_path, "straight")
    proc = subprocess.run(_training_cmd(straight, sample), cwd=straight, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    killed = _bundle_copy(tmp_path, "killed")
    ckpt1 = killed / "runs" / "x2" / "checkpoint_epoch=1.pt"
    proc = subprocess.Popen(_training_cmd(killed, sample, slow=True), cwd=killed, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not ckpt1.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ckpt1.exists(), "the run ended or timed out before its first checkpoint"
        time.sleep(0.5)  # into epoch 2
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "runs" / "x2" / "checkpoint_epoch=2.pt").exists()  # killed during epoch 2
    # the same command again: CheckpointLoader resumes from checkpoint_epoch=1.pt
    proc = subprocess.run(_training_cmd(killed, sample), cwd=killed, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    def metrics(root: Path) -> dict[int, dict[str, float]]:
        lines = (root / "runs" / "x2" / "val_metrics.jsonl").read_text().splitlines()
        return {m["epoch"]: m for m in map(json.loads, lines)}

    a, b = metrics(straight), metrics(killed)
    assert sorted(a) == sorted(b) == [1, 2, 3]
    for epoch in (2, 3):
        assert abs(a[epoch]["val_psnr"] - b[epoch]["val_psnr"]) <= 1e-6, (epoch, a[epoch], b[epoch])
        assert abs(a[epoch]["val_ssim"] - b[epoch]["val_ssim"]) <= 1e-6
    final_a = torch.load(straight / "runs" / "x2" / "checkpoint_epoch=3.pt", weights_only=True)  # weights_only
    final_b = torch.load(killed / "runs" / "x2" / "checkpoint_epoch=3.pt", weights_only=True)
    assert all(torch.equal(final_a["model"][k], final_b["model"][k]) for k in final_a["model"])
    assert final_b["trainer"]["iteration"] == 3 * 2
    torch.load(killed / "runs" / "x2" / "model_best.pt", weights_only=True)


# --------------------------------------------------------------------------- privacy

_IDENTIFIERS = {"PatientName": "Doe^Jane", "PatientID": "PID-4711-XYZ", "PatientBirthDate": "19470203"}


def test_no_patient_identifiers_in_logs_errors_and_reports(sample: Path, tmp_path: Path) -> None:
    src = tmp_path / "study"
    src.mkdir()
    for i, name in enumerate(("ct_small.dcm", "mr_small.dcm")):
        ds = pydicom.dcmread(sample / name)
        for key, value in _IDENTIFIERS.items():
            setattr(ds, key, value)
        ds.save_as(src / f"img{i}.dcm")
    bad = dicom_like(sample, src / "broken.dcm", PixelData=None, **_IDENTIFIERS)
    assert bad.is_file()
    ev = tmp_path / "ev"
    result = run("evaluate", src, "-o", ev, "--no-progress")
    assert result.exit_code == EXIT_PARTIAL, result.stderr
    up = run("upscale", src, "-o", tmp_path / "up", "--no-progress", "-v")
    assert up.exit_code == EXIT_PARTIAL, up.stderr
    texts = [result.stdout, result.stderr, up.stdout, up.stderr]
    texts += [p.read_text(errors="replace") for p in ev.rglob("*") if p.is_file() and p.suffix in (".csv", ".json", ".html")]
    texts.append((tmp_path / "up" / "errors.csv").read_text())
    pdf = ev / "report.pdf"
    if pdf.is_file() and shutil.which("pdftotext"):
        texts.append(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, timeout=60).stdout)
    for text in texts:
        text = re.sub(r"data:[a-z/+]+;base64,[A-Za-z0-9+/=]+", "", text)  # embedded images are not text
        for value in (*_IDENTIFIERS.values(), "Doe^", "^Jane", "Jane Doe", "4711", "1947"):
            assert value not in text, f"{value!r} leaked"


def test_reader_warnings_do_not_quote_header_values(sample: Path, tmp_path: Path) -> None:
    """pydicom's validation warnings quote invalid values (a birth date, a name): medsr keeps them quiet."""
    import logging
    import warnings

    from pydicom import config

    ds = pydicom.dcmread(sample / "mr_small.dcm")
    old = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        ds.PatientBirthDate = "03.02.1947"  # not a valid DA
        ds.PatientName = "Doe^Jane" + "y" * 70  # a component longer than PN allows
        ds.save_as(tmp_path / "phi.dcm")
    finally:
        config.settings.writing_validation_mode = old
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("pydicom").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            img = load_image(tmp_path / "phi.dcm")
            from medsr.io import save_image

            save_image(img, tmp_path / "out.dcm")
    finally:
        logging.getLogger("pydicom").removeHandler(handler)
    said = [str(w.message) for w in caught] + [r.getMessage() for r in records]
    assert not [m for m in said if "1947" in m or "Doe" in m], said
    assert config.settings.reading_validation_mode == config.WARN  # pydicom's setting is restored afterwards
