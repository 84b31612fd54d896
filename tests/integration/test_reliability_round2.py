"""Reliability, round two (issue 12): one regression test per class of failure an attack found.

- data loss: ``evaluate`` deletes only the ``cases/`` folder it created; datalist inputs in ``-o`` are refused;
- identifiers: nothing written or printed without ``--show-ids`` carries an input's name, a header string or a
  UID; labels outside ``--classes`` are pseudonymised; the private key file maps pseudonyms back;
- write failures: ``errors.csv`` on a full disk, a read-only folder, ``-o`` naming a file, non-UTF-8 names;
- malformed datalists and damaged results folders; ``medsr report`` reads only files inside the folder;
- single-line messages, ``-o`` equal to the input, concurrent runs, ``--continue`` clearing ``errors.csv``,
  long names.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_files import multiframe_dicom
from test_reliability import ENV, IS_ROOT, MEDSR, _permissions_apply, dicom_like, run, write_png

from medsr.batch import output_lock
from medsr.errors import EXIT_INPUT, EXIT_OK, EXIT_OUTPUT, EXIT_PARTIAL
from medsr.privacy import KEY_FILE

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"


def _one_line_error(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("medsr: error")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# --------------------------------------------------------------------------- data loss


def test_evaluate_never_deletes_what_it_did_not_create(tmp_path: Path) -> None:
    study = tmp_path / "study"
    (study / "cases").mkdir(parents=True)
    inp = write_png(study / "cases" / "x.png", 0)
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([{"image": str(inp)}]))
    # a datalist naming an input inside -o: refused, input kept
    _one_line_error(run("evaluate", listing, "-o", study, "--no-progress"), EXIT_OUTPUT)
    assert inp.is_file()
    # an unrelated cases/ folder in -o: refused, kept
    data = tmp_path / "data"
    data.mkdir()
    write_png(data / "a.png", 1)
    write_png(data / "b.png", 2)
    other = tmp_path / "ev"
    (other / "cases").mkdir(parents=True)
    (other / "cases" / "mine.txt").write_text("keep")
    assert "not created by medsr" in _one_line_error(run("evaluate", data, "-o", other, "--no-progress"), EXIT_OUTPUT)
    assert (other / "cases" / "mine.txt").read_text() == "keep"
    # a cases symlink: refused, no traceback, the target untouched
    linked = tmp_path / "ev2"
    linked.mkdir()
    (linked / "cases").symlink_to(study / "cases")
    _one_line_error(run("evaluate", data, "-o", linked, "--no-progress"), EXIT_OUTPUT)
    assert inp.is_file()
    # medsr's own cases/ folder is replaced on the next run
    ev = tmp_path / "ev3"
    for _ in range(2):
        result = run("evaluate", data, "-o", ev, "--no-progress")
        assert result.exit_code == EXIT_OK, result.output
        assert (ev / "cases" / ".medsr-cases").is_file()


# --------------------------------------------------------------------------- identifiers


def test_no_identifiers_from_names_labels_headers_or_uids(tmp_path: Path) -> None:
    data = tmp_path / "data"
    patient = data / "DOE_JOHN_MRN12345"
    patient.mkdir(parents=True)
    write_png(patient / "DOE_JOHN_001.png", 0)
    write_png(patient / "DOE_JOHN_002.png", 1)
    (data / "covid").mkdir()
    write_png(data / "covid" / "DOE_JOHN_003.png", 2)
    # a series folder holding two series (the message quotes a description and UIDs), and a broken file
    series = data / "Normal" / "DOE_JOHN_series"
    series.mkdir(parents=True)
    for k, desc in enumerate(("CT DOE^JOHN MRN12345", "CT DOE^JOHN MRN12345 b")):
        dicom_like(SAMPLE, series / f"DOE_JOHN_{k}.dcm", SeriesDescription=desc, PatientName="DOE^JOHN")
    (data / "covid" / "DOE_JOHN_bad.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "ev"
    result = run("evaluate", data, "-o", out, "--no-progress")
    assert result.exit_code == EXIT_PARTIAL, result.output
    texts = {"stdout": result.stdout, "stderr": result.stderr}
    for p in out.rglob("*"):
        if p.is_file() and p.name != KEY_FILE and p.suffix in (".csv", ".json", ".html"):
            texts[p.name] = p.read_text(errors="replace")
    if shutil.which("pdftotext"):
        texts["pdf"] = subprocess.run(["pdftotext", str(out / "report.pdf"), "-"], capture_output=True, text=True).stdout
    for where, text in texts.items():
        for secret in ("DOE", "JOHN", "MRN12345", "1.2.826", str(data)):
            assert secret not in text, (where, secret)
    summary = json.loads((out / "summary.json").read_text())
    assert {g["class"] for g in summary["groups"]} >= {"Covid", "class-01"}
    # the private key traces every pseudonym, including the failed case and the class, back to its input
    key = {r["pseudonym"]: r for r in csv.DictReader(open(out / KEY_FILE, encoding="utf-8"))}
    failed = [r["path"] for r in csv.DictReader(open(out / "errors.csv"))]
    assert len(failed) == 1 and all(key[p]["input"].startswith(str(data)) for p in failed)
    assert key["class-01"]["detail"] == "DOE_JOHN_MRN12345"
    assert oct((out / KEY_FILE).stat().st_mode & 0o777) == "0o600"
    # a datalist row naming the two-series folder: the reader's message quotes descriptions and UIDs
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([{"image": str(series), "class": "Normal"}, {"image": str(patient / "DOE_JOHN_001.png")}]))
    result = run("evaluate", listing, "-o", tmp_path / "ev_list", "--no-progress")
    assert result.exit_code == EXIT_PARTIAL and "2 DICOM series" in result.stderr, result.output
    reason = (tmp_path / "ev_list" / "errors.csv").read_text()
    for text in (result.output, reason):
        for secret in ("DOE", "JOHN", "MRN12345", "1.2.826", str(data)):
            assert secret not in text, secret
    # --show-ids shows them, and --classes declares the folder names as classes
    shown = run("evaluate", data, "-o", tmp_path / "ev2", "--no-progress", "--classes", "DOE_JOHN_MRN12345,covid")
    groups = json.loads((tmp_path / "ev2" / "summary.json").read_text())["groups"]
    assert shown.exit_code == EXIT_PARTIAL and {g["class"] for g in groups} >= {"DOE_JOHN_MRN12345", "covid"}


# --------------------------------------------------------------------------- malformed datalists and results


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty_list.json", json.dumps([{"image": []}])),
        ("nested.json", json.dumps([{"image": [["a.png"]]}])),
        ("number.json", json.dumps([{"image": 7}])),
        ("class_obj.json", json.dumps([{"image": "a.png", "class": {"x": 1}}])),
        ("deep.json", "[" * 100000 + "]" * 100000),
        ("latin1.csv", "image,class\nb\xe4d.png,x\n".encode("latin-1")),
        ("nul.json", json.dumps([{"image": "a\x00.png"}])),
        ("not_list.json", json.dumps({"image": "a.png"})),
    ],
)
def test_malformed_datalists_give_one_line(tmp_path: Path, name: str, content: str | bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _one_line_error(run("evaluate", path, "-o", tmp_path / "ev", "--no-progress"), EXIT_INPUT)


def test_datalist_with_very_long_and_missing_names_is_evaluated_row_by_row(tmp_path: Path) -> None:
    write_png(tmp_path / "ok.png", 0)
    write_png(tmp_path / "ok2.png", 1)
    rows = [{"image": "ok.png"}, {"image": "ok2.png"}, {"image": "x" * 5000 + ".png"}, {"image": "missing.png"}]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    result = run("evaluate", tmp_path / "list.json", "-o", tmp_path / "ev", "--no-progress")
    assert result.exit_code == EXIT_PARTIAL, result.output
    failed = list(csv.DictReader(open(tmp_path / "ev" / "errors.csv")))
    key = {r["pseudonym"]: r["detail"] for r in csv.DictReader(open(tmp_path / "ev" / KEY_FILE))}
    assert sorted(key[r["path"]] for r in failed) == ["datalist row 3", "datalist row 4"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    (root / "data").mkdir()
    for i in range(3):
        write_png(root / "data" / f"{i}.png", i)
    assert run("evaluate", root / "data", "-o", root / "ev", "--no-progress").exit_code == EXIT_OK
    return root / "ev"


def _damaged(results: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ev"
    shutil.copytree(results, dst, symlinks=True)
    return dst


@pytest.mark.parametrize(
    "damage",
    ["metrics_binary", "metrics_no_columns", "metrics_bad_scale", "summary_list", "summary_groups_text",
     "summary_deep", "metrics_link_outside"],
)
def test_report_on_a_damaged_results_folder(results: Path, tmp_path: Path, damage: str) -> None:
    ev = _damaged(results, tmp_path)
    metrics, summary = ev / "metrics.csv", ev / "summary.json"
    if damage == "metrics_binary":
        metrics.write_bytes(b"\xff\xfe\x00garbage")
    elif damage == "metrics_no_columns":
        metrics.write_text("a,b\n1,2\n")
    elif damage == "metrics_bad_scale":
        metrics.write_text(metrics.read_text().replace(",bicubic,False,2,", ",bicubic,False,two,", 1))
    elif damage == "summary_list":
        summary.write_text("[1, 2]")
    elif damage == "summary_groups_text":
        doc = json.loads(summary.read_text())
        doc["groups"] = [{"modality": "xray", "class": "all", "model": "bicubic", "scale": "x", "psnr": "high"}]
        summary.write_text(json.dumps(doc))
    elif damage == "summary_deep":
        summary.write_text("[" * 100000 + "]" * 100000)
    elif damage == "metrics_link_outside":
        outside = tmp_path / "elsewhere.csv"
        shutil.copy(metrics, outside)
        metrics.unlink()
        metrics.symlink_to(outside)
    _one_line_error(run("report", ev), EXIT_INPUT)


def test_report_embeds_only_files_inside_the_results_folder(results: Path, tmp_path: Path) -> None:
    ev = _damaged(results, tmp_path)
    secret = tmp_path / "secret.png"
    write_png(secret, 99, (64, 64))
    marker = secret.read_bytes()
    import base64

    panel_json = next(ev.glob("cases/*/panel.json"))
    panel = json.loads(panel_json.read_text())
    panel["files"] = {k: str(secret) for k in panel["files"]}
    panel["files"]["hr"] = "../../../secret.png"
    panel_json.write_text(json.dumps(panel))
    (panel_json.parent / "lr.png").unlink()
    (panel_json.parent / "lr.png").symlink_to(secret)
    result = run("report", ev)
    assert result.exit_code == EXIT_OK, result.output
    html = (ev / "report.html").read_text()
    assert base64.b64encode(marker).decode() not in html


# --------------------------------------------------------------------------- write failures


def _batch(folder: Path, n_bad: int = 1) -> Path:
    folder.mkdir(parents=True)
    write_png(folder / "a.png", 0)
    write_png(folder / "b.png", 1)
    for k in range(n_bad):
        (folder / f"bad{k}.png").write_bytes(b"not a png")
    return folder


def _limited(limit_bytes: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return preexec


def test_writes_past_a_file_size_limit_are_one_line_exit_4(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes every write past the limit fail (EFBIG), as a full disk does (ENOSPC); any user can set it."""
    src = _batch(tmp_path / "in", n_bad=3)
    for cmd in ("degrade", "evaluate"):
        out = tmp_path / f"out_{cmd}"
        proc = subprocess.run([str(MEDSR), cmd, str(src), "-o", str(out), "--no-progress"],
                              capture_output=True, text=True, env=ENV, timeout=300, preexec_fn=_limited(64))
        assert proc.returncode == EXIT_OUTPUT, proc.stderr
        assert "Traceback" not in proc.stderr and "cannot write" in proc.stderr, proc.stderr
        assert not list(out.glob(".*tmp*"))  # no partial temporaries left


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 256 KiB tmpfs filled to the last byte (needs the right to mount, e.g. root)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if not IS_ROOT or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                                     capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs CAP_SYS_ADMIN)")
    try:
        with open(mnt / "filler", "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 4096)
            except OSError:
                pass
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_upscale_and_evaluate_into_a_full_disk(tmp_path: Path, full_disk: Path) -> None:
    src = _batch(tmp_path / "in", n_bad=3)
    for cmd in ("upscale", "evaluate"):
        proc = subprocess.run([str(MEDSR), cmd, str(src), "-o", str(full_disk / cmd), "--no-progress"],
                              capture_output=True, text=True, env=ENV, timeout=300)
        assert proc.returncode == EXIT_OUTPUT, proc.stderr
        assert "Traceback" not in proc.stderr and "No space left" in proc.stderr, proc.stderr


def test_errors_csv_in_a_read_only_folder(tmp_path: Path) -> None:
    src = _batch(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    write_png(out / "a_sr2x.png", 5)
    write_png(out / "b_sr2x.png", 6)
    out.chmod(0o555)
    try:
        proc = subprocess.run([*_permissions_apply(), str(MEDSR), "upscale", str(src), "-o", str(out), "--continue",
                               "--no-progress"], capture_output=True, text=True, env=ENV, timeout=120)
    finally:
        out.chmod(0o755)
    assert proc.returncode == EXIT_OUTPUT, proc.stderr
    assert "Traceback" not in proc.stderr and "errors.csv" in proc.stderr


def test_output_naming_an_existing_file(tmp_path: Path) -> None:
    src = _batch(tmp_path / "in")
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    for cmd in (("upscale", src, "-o", target), ("degrade", src, "-o", target), ("evaluate", src, "-o", target)):
        _one_line_error(run(*cmd, "--no-progress"), EXIT_OUTPUT)
    assert target.read_text() == "mine"


def test_non_utf8_and_newline_names_give_single_lines(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_png(src / "a.png", 0)
    bad = os.fsdecode(b"scan\xff.png")
    (src / bad).write_bytes(b"garbage")
    (src / "two\nmedsr: forged line.png").write_bytes(b"garbage")
    proc = subprocess.run([str(MEDSR), "upscale", str(src), "--no-progress"], capture_output=True, env=ENV, timeout=120)
    err = proc.stderr.decode("utf-8")
    assert proc.returncode == EXIT_PARTIAL, err
    assert [ln for ln in err.splitlines() if ln.startswith("medsr: skipped")].__len__() == 2
    assert "forged line" not in "\n".join(ln for ln in err.splitlines() if ln.startswith("medsr: forged"))
    rows = list(csv.reader(open(tmp_path / "in_sr2x" / "errors.csv", encoding="utf-8")))
    assert len(rows) == 3 and any("\\xff" in r[0] for r in rows)


# --------------------------------------------------------------------------- exit codes, locks, --continue, names


def test_output_equal_to_the_input_folder_is_exit_4(tmp_path: Path) -> None:
    src = _batch(tmp_path / "in", n_bad=0)
    for cmd in ("upscale", "degrade"):
        _one_line_error(run(cmd, src, "-o", src, "--no-progress"), EXIT_OUTPUT)
        _one_line_error(run(cmd, src, "-o", tmp_path, "--no-progress"), EXIT_OUTPUT)


def test_concurrent_runs_into_one_folder_are_refused(tmp_path: Path) -> None:
    src = _batch(tmp_path / "in", n_bad=0)
    out = tmp_path / "out"
    with output_lock(out):  # another run holds the folder
        assert "another medsr run" in _one_line_error(run("upscale", src, "-o", out, "--no-progress"), EXIT_OUTPUT)
        _one_line_error(run("evaluate", src, "-o", out, "--no-progress"), EXIT_OUTPUT)
    assert not any(out.iterdir())
    assert run("upscale", src, "-o", out, "--no-progress").exit_code == EXIT_OK


def test_errors_csv_removed_after_a_successful_continue(tmp_path: Path) -> None:
    src = _batch(tmp_path / "in")
    out = tmp_path / "out"
    assert run("upscale", src, "-o", out, "--no-progress").exit_code == EXIT_PARTIAL
    assert (out / "errors.csv").is_file()
    (src / "bad0.png").unlink()
    write_png(src / "bad0.png", 3)
    assert run("upscale", src, "-o", out, "--continue", "--no-progress").exit_code == EXIT_OK
    assert not (out / "errors.csv").exists() and (out / "bad0_sr2x.png").is_file()


def test_long_names_fit_the_temporary_name(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    name = "n" * 240 + ".png"
    write_png(src / name, 0)
    result = run("upscale", src / name, "-o", tmp_path / "out", "--no-progress")
    assert result.exit_code == EXIT_OK, result.output
    assert (tmp_path / "out" / ("n" * 240 + "_sr2x.png")).is_file()
    too_long = "m" * 248 + ".png"  # its output name would exceed 255 bytes
    write_png(src / too_long, 1)
    _one_line_error(run("upscale", src / too_long, "-o", tmp_path / "out", "--no-progress"), EXIT_OUTPUT)


# --------------------------------------------------------------------------- bundles and weights


class _Payload:
    """Pickles to a call of ``print``: what an attacker's ``model.pt`` would do with ``os.system``."""

    def __reduce__(self):
        return (print, ("medsr-test: unpickled code ran",))


@pytest.mark.parametrize("damage", ["json", "json_list", "pickle", "not_state_dict"])
def test_bad_trusted_bundles_give_one_line(tmp_path: Path, damage: str) -> None:
    import torch

    bundle = tmp_path / "b"
    shutil.copytree(ROOT / "bundles" / "edsr_m", bundle, ignore=shutil.ignore_patterns("runs", "eval", "model_x4.pt"))
    config = bundle / "configs" / "inference.json"
    weights = bundle / "models" / "model.pt"
    if damage == "json":
        config.write_text(config.read_text()[:-40])
    elif damage == "json_list":
        config.write_text("[1, 2]")
    elif damage == "pickle":
        torch.save({"model": _Payload()}, weights)
    else:
        torch.save([torch.zeros(1)], weights)
    src = write_png(tmp_path / "a.png", 0)
    result = run("upscale", src, "-m", bundle, "--trust-bundle", "--no-progress", "-q")
    line = _one_line_error(result, 2)
    assert "weights_only=False" not in result.output and "unpickled code ran" not in result.output, line


# --------------------------------------------------------------------------- resources and frame counts


def test_output_size_bomb_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ~65 KB 8192x8192 PNG: reading needs ~0.6 GB, upscaling x2 ~3.8 GB more; refused when that is not available."""
    import tracemalloc

    from PIL import Image

    from medsr.io import _common

    png = tmp_path / "bomb.png"
    Image.new("L", (8192, 8192)).save(png, optimize=True)
    assert png.stat().st_size < 200_000
    monkeypatch.setattr(_common, "available_memory", lambda: 2 << 30)
    tracemalloc.start()
    result = run("upscale", png, "-o", tmp_path / "out.png", "--no-progress")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    line = _one_line_error(result, EXIT_INPUT)
    assert "GiB of memory" in line and "x the pixels out" in line
    assert peak < 64 << 20  # refused before any pixel buffer was allocated
    with _common.expect_output(1):  # reading alone fits
        _common.check_memory(png, 8192 * 8192, 1)


def _frames_file(path: Path, frames: int) -> Path:
    """A 1x1 multi-frame DICOM of ``frames`` frames holding the bytes 0..255 in turn (deflated: tiny on disk)."""
    return multiframe_dicom(path, frames=frames, pixel_data=bytes(range(256)) * (frames // 256) + bytes(frames % 256))


def test_frame_count_work_bound(tmp_path: Path) -> None:
    import time

    from medsr.io import load_image

    bomb = _frames_file(tmp_path / "bomb.dcm", 10**6)
    assert bomb.stat().st_size < 20_000
    start = time.perf_counter()
    line = _one_line_error(run("upscale", bomb, "--no-progress"), EXIT_INPUT)
    assert "NumberOfFrames" in line and time.perf_counter() - start < 10
    many = _frames_file(tmp_path / "many.dcm", 60_000)  # under the bound: decoded without a loop per frame
    start = time.perf_counter()
    img = load_image(many)
    assert time.perf_counter() - start < 5
    expected = (np.frombuffer(bytes(range(256)) * (60_000 // 256) + bytes(60_000 % 256), np.uint8) * 2.0 - 3)
    np.testing.assert_array_equal(img.numpy().ravel(), expected)


# --------------------------------------------------------------------------- DICOM round trips


def test_float_dicom_round_trip(tmp_path: Path) -> None:
    from medsr.inference import load_upscaler, upscale_image
    from medsr.io import load_image, save_image

    ds = pydicom.dcmread(SAMPLE / "ct_small.dcm")
    arr = np.arange(ds.Rows * ds.Columns, dtype=np.float32).reshape(ds.Rows, ds.Columns) / 7.0 - 100
    del ds.PixelData, ds.RescaleSlope, ds.RescaleIntercept
    for kw in ("BitsStored", "HighBit", "PixelRepresentation", "PixelPaddingValue"):
        if kw in ds:
            delattr(ds, kw)
    ds.FloatPixelData, ds.BitsAllocated = arr.tobytes(), 32
    ds.save_as(tmp_path / "float.dcm")
    img = load_image(tmp_path / "float.dcm")
    up = upscale_image(img, load_upscaler("bicubic", 2))
    save_image(up, tmp_path / "up.dcm")
    written = pydicom.dcmread(tmp_path / "up.dcm")
    assert "FloatPixelData" in written and "PixelData" not in written and written.BitsAllocated == 32
    np.testing.assert_array_equal(load_image(tmp_path / "up.dcm").numpy(), up.numpy())


def test_series_with_per_slice_rescale_slope_round_trip(tmp_path: Path) -> None:
    from pydicom.uid import generate_uid

    from medsr.inference import load_upscaler, upscale_image
    from medsr.io import load_image, save_image

    src = tmp_path / "s"
    src.mkdir()
    uid = generate_uid()
    slopes = (0.25, 4.0, 1.0)  # the first slice's slope cannot store the second slice's values
    for k, slope in enumerate(slopes):
        ds = pydicom.dcmread(SAMPLE / "ct_small.dcm")
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.ImagePositionPatient = [0, 0, 2.5 * k]
        ds.RescaleSlope, ds.RescaleIntercept = slope, -1024
        ds.save_as(src / f"{k}.dcm")
    img = load_image(src)
    save_image(img, tmp_path / "same")
    np.testing.assert_array_equal(load_image(tmp_path / "same").numpy(), img.numpy())  # exact: each slice's own slope
    up = upscale_image(img, load_upscaler("bicubic", 2))
    save_image(up, tmp_path / "up")
    back = load_image(tmp_path / "up").numpy()
    for k, slope in enumerate(slopes):  # at most half a stored step off, never clipped
        assert np.abs(back[0, ..., k] - up.numpy()[0, ..., k]).max() <= max(slope, 4.0) / 2 + 1e-3


def test_multiframe_with_mixed_orientations_is_refused(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    from medsr.errors import InputError
    from medsr.io import load_image

    try:
        name = get_testdata_file("eCT_Supplemental.dcm")
    except Exception:
        name = None
    if name is None:
        pytest.skip("pydicom's eCT_Supplemental.dcm is not available")
    ds = pydicom.dcmread(name)
    assert load_image(name).shape[-1] == 2  # as shipped: one orientation, one volume
    plane = pydicom.Dataset()
    plane.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # frame 2 coronal, frame 1 axial
    ds.PerFrameFunctionalGroupsSequence[1].PlaneOrientationSequence = [plane]
    ds.save_as(tmp_path / "mixed.dcm")
    with pytest.raises(InputError, match="frame 2 has another ImageOrientationPatient"):
        load_image(tmp_path / "mixed.dcm")
