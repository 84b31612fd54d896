"""Hostile inputs for whole commands (issue 12): output-size bombs, frame bombs, datalists, results folders, names.

Each ``check_*`` builds one case, runs the medsr call under a time bound and returns its
outcome (``"ok"``, ``"input_error"``, ``"output_error"``, ``"usage_error"``); anything else is
a :class:`medsr_fuzz.FuzzFailure`: another exception, a hang, a message over several lines,
an input changed, a file outside the output removed, a file outside the results folder embedded.
Peak memory is bounded by ``run_long.py`` (the campaign fails when the process passed 2 GB RSS).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from dicom_files import multiframe_dicom
from hypothesis import strategies as st
from medsr_fuzz import CASE_TIMEOUT_S, COUNTS, FuzzFailure, CaseTimeout, time_limit

__all__ = [
    "size_bombs",
    "check_size_bomb",
    "frame_bombs",
    "check_frame_bomb",
    "datalists",
    "check_datalist",
    "results_damage",
    "check_results",
    "hostile_names",
    "check_names",
    "FUZZ_BUDGET",
]

FUZZ_BUDGET = 3 << 29
"""Memory the readers are told is available during size-bomb cases (1.5 GiB), so both outcomes occur."""


def _count(kind: str, outcome: str) -> None:
    COUNTS[outcome] = COUNTS.get(outcome, 0) + 1
    COUNTS[f"{kind}:{outcome}"] = COUNTS.get(f"{kind}:{outcome}", 0) + 1


def _guard(label: str, call: Callable[[], Any], timeout: float = CASE_TIMEOUT_S) -> tuple[str, Any]:
    """``call()`` under the time bound: ``("ok", value)`` or ``("<kind>_error", err)``; anything else fails."""
    from medsr.errors import InputError, OutputError, UsageError

    try:
        with time_limit(timeout):
            value = call()
    except (InputError, OutputError, UsageError) as err:
        msg = str(err)
        if not msg.strip() or "\n" in msg or "\r" in msg:
            raise FuzzFailure(f"{label}: message is not one line: {msg!r}") from err
        kind = "input_error" if isinstance(err, InputError) else "output_error" if isinstance(err, OutputError) else "usage_error"
        return kind, err
    except CaseTimeout as err:
        raise FuzzFailure(f"{label}: hang ({err})") from None
    except Exception as err:
        raise FuzzFailure(f"{label}: uncaught {type(err).__name__}: {err}") from err
    return "ok", value


def _digest(folder: Path) -> dict[str, str]:
    out = {}
    for root, _dirs, files in os.walk(folder):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                out[os.fsdecode(p)] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


# --------------------------------------------------------------------------- output-size bombs


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@lru_cache(maxsize=16)
def _png_bomb(w: int, h: int) -> bytes:
    """A greyscale PNG of w x h zero pixels, a few KB to a few hundred KB."""
    comp = zlib.compressobj(9)
    row = b"\0" * (w + 1)  # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


@lru_cache(maxsize=8)
def _nifti_bomb(n: int, z: int) -> bytes:
    """A gzipped uint8 NIfTI of n x n x z zeros."""
    import gzip

    import nibabel as nib
    import numpy as np

    hdr = nib.Nifti1Header()
    hdr.set_data_shape((n, n, z))
    hdr.set_data_dtype(np.uint8)
    hdr.set_qform(np.eye(4), 1)
    hdr.set_sform(np.eye(4), 1)
    head = hdr.binaryblock + b"\0" * (352 - len(hdr.binaryblock))
    buf = gzip.compress(head + b"\0" * (n * n * z), compresslevel=6)
    return buf


def size_bombs() -> st.SearchStrategy[tuple]:
    """``("png", w, h, scale)`` or ``("nifti", n, z, scale)``: small files that declare large images."""
    side = st.sampled_from([512, 2048, 4096, 6144, 8192])
    png = st.tuples(st.just("png"), side, side, st.sampled_from([2, 4]))
    nifti = st.tuples(st.just("nifti"), st.sampled_from([128, 256, 384]), st.sampled_from([16, 64, 256]), st.sampled_from([2, 4]))
    return st.one_of(png, nifti)


def check_size_bomb(case: tuple, tmpdir: Path) -> str:
    """Read the bomb as ``medsr upscale`` would (output factor scale^2) against :data:`FUZZ_BUDGET`:
    a valid image or a one-line refusal; decoding a refused image never starts."""
    from medsr.io import _common, load_image

    kind, a, b, scale = case
    path = tmpdir / ("bomb.png" if kind == "png" else "bomb.nii.gz")
    path.write_bytes(_png_bomb(a, b) if kind == "png" else _nifti_bomb(a, b))
    saved = _common.available_memory
    _common.available_memory = lambda: FUZZ_BUDGET
    try:
        with _common.expect_output(scale * scale):
            outcome, value = _guard(f"size bomb {case}", lambda: load_image(path))
    finally:
        _common.available_memory = saved
        path.unlink(missing_ok=True)
    pixels = a * b if kind == "png" else a * a * b
    need = pixels * (1 + 8) + pixels * scale * scale * 12
    if outcome == "ok" and need > FUZZ_BUDGET:
        raise FuzzFailure(f"size bomb {case}: needs {need} bytes over the {FUZZ_BUDGET} budget but was decoded")
    if outcome != "ok" and need <= FUZZ_BUDGET:
        raise FuzzFailure(f"size bomb {case}: refused although it fits ({value})")
    del value
    _count("size_bomb", outcome)
    return outcome


# --------------------------------------------------------------------------- compressed frame bombs


def frame_bombs() -> st.SearchStrategy[tuple]:
    """``(rows, cols, declared frames, stored frames, deflated)``."""
    frames = st.one_of(st.integers(1, 300), st.sampled_from([2**16, 2**16 + 1, 10**5, 10**6, 2**30, 2**31 - 1]))
    return st.tuples(st.integers(1, 4), st.integers(1, 4), frames, st.one_of(st.just(-1), st.integers(0, 2**17)),
                     st.booleans())


def check_frame_bomb(case: tuple, tmpdir: Path) -> str:
    """A small (deflated) multi-frame DICOM declaring many frames: an image or a one-line refusal, in time."""
    from medsr.io import load_image

    rows, cols, frames, stored, deflate = case
    stored = frames if stored < 0 else stored
    n = min(stored, 2**17) * rows * cols
    path = multiframe_dicom(tmpdir / "frames.dcm", frames=frames, pixel_data=bytes(n + n % 2), rows=rows, cols=cols,
                            deflate=deflate, rescale=(3, -7))
    try:
        outcome, _ = _guard(f"frame bomb {case}", lambda: load_image(path))
    finally:
        path.unlink(missing_ok=True)
    _count("frame_bomb", outcome)
    return outcome


# --------------------------------------------------------------------------- hostile datalists


_NAME_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                       _NAME_TEXT, st.sampled_from(["a.png", "../a.png", "/etc/hostname", "x" * 4000, "", ".", "cases"]))
_JSON = st.recursive(_JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["image", "class", "label", "modality", "data",
                                                                   "testing", "x"]), inner, max_size=4)), max_leaves=12)


def datalists() -> st.SearchStrategy[tuple]:
    """``("json", value)``, ``("raw.json"|"raw.csv", bytes)`` or ``("csv", rows)``."""
    rows = st.lists(st.lists(st.one_of(_NAME_TEXT, st.sampled_from(["image", "a.png", "class", "modality"])),
                             max_size=4), max_size=5)
    return st.one_of(
        st.tuples(st.just("json"), _JSON),
        st.tuples(st.just("json"), st.lists(st.fixed_dictionaries({"image": _JSON}, optional={"class": _JSON}),
                                            max_size=4)),
        st.tuples(st.just("json"), st.lists(st.fixed_dictionaries(
            {"image": st.sampled_from(["a.png", "missing.png", "x" * 300, "../dl/a.png", "."])},
            optional={"class": _NAME_TEXT, "modality": st.sampled_from(["ct", "auto", "pet", ""])}), min_size=1, max_size=3)),
        st.tuples(st.sampled_from(["raw.json", "raw.csv"]), st.binary(max_size=200)),
        st.tuples(st.just("csv"), rows),
        st.tuples(st.just("deep.json"), st.integers(1, 200_000)),
    )


def check_datalist(case: tuple, tmpdir: Path) -> str:
    """Cases of a hostile datalist: a list of cases or a one-line refusal; the files it names are untouched."""
    import csv
    import io

    from medsr.evaluation.cases import collect_cases, inputs_inside

    kind, value = case
    folder = tmpdir / "dl"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "a.png").write_bytes(_png_bomb(8, 8))
    if kind == "json":
        path, data = folder / "list.json", json.dumps(value).encode()
    elif kind == "deep.json":
        path, data = folder / "list.json", b"[" * value + b"]" * value
    elif kind == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerows(value)
        path, data = folder / "list.csv", buf.getvalue().encode("utf-8", "surrogatepass")
    else:
        path, data = folder / ("list.json" if kind == "raw.json" else "list.csv"), value
    path.write_bytes(data)
    before = _digest(folder)
    outcome, cases = _guard(f"datalist {case!r:.300}", lambda: collect_cases(path))
    if outcome == "ok":
        _guard(f"datalist {case!r:.300} inside", lambda: inputs_inside(cases, tmpdir / "out"))
    if _digest(folder) != before:
        raise FuzzFailure(f"datalist {case!r:.300}: an input changed")
    _count("datalist", outcome)
    return outcome


# --------------------------------------------------------------------------- hostile results folders


@lru_cache(maxsize=1)
def _results(tmpdir: str) -> Path:
    """A real evaluation folder (3 PNGs, bicubic, no report) to damage."""
    import numpy as np
    from PIL import Image

    from medsr.evaluation import run_evaluation

    root = Path(tmpdir) / "results_seed"
    data = root / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 40), dtype=np.uint8)).save(data / f"{i}.png")
    run_evaluation(data, root / "ev", progress=False, report=False, n_resamples=50)
    return root / "ev"


def results_damage() -> st.SearchStrategy[list[tuple]]:
    """Damage to a results folder: bytes of its files, JSON values replaced, panel files renamed or linked out."""
    target = st.sampled_from(["metrics.csv", "summary.json", "panel.json"])
    return st.lists(st.one_of(
        st.tuples(st.just("bytes"), target, st.floats(0, 1), st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("truncate"), target, st.floats(0, 1)),
        st.tuples(st.just("json"), st.sampled_from(["summary.json", "panel.json"]),
                  st.lists(st.sampled_from(["groups", "settings", "cases", "files", "hr", "psnr", "diff", "0", "mean",
                                            "window", "scale", "models", "sources", "diff_max"]), min_size=1, max_size=3),
                  _JSON),
        st.tuples(st.just("file"), st.sampled_from(["hr", "lr", "bicubic", "overview", "diff_bicubic"]),
                  st.sampled_from(["SECRET", "../../../secret.png", "/", "..", "", "sub/x.png"])),
        st.tuples(st.just("link"), st.sampled_from(["hr.png", "lr.png", "panel.json", "metrics.csv", "cases"])),
    ), min_size=1, max_size=4)


def _set_path(doc: Any, keys: list[str], value: Any) -> Any:
    if not keys:
        return value
    k = keys[0]
    if isinstance(doc, dict):
        doc[k] = _set_path(doc.get(k), keys[1:], value)
        return doc
    if isinstance(doc, list) and doc:
        i = int(k) if k.isdigit() else 0
        doc[i % len(doc)] = _set_path(doc[i % len(doc)], keys[1:], value)
        return doc
    return value


def _damage(op: tuple, ev: Path, files: dict[str, Path], panel: Path, secret: Path) -> None:
    """Apply one :func:`results_damage` op to the results folder ``ev``."""
    if op[0] in ("bytes", "truncate"):
        f = files[op[1]]
        data = bytearray(f.read_bytes()) if f.is_file() else bytearray()
        pos = int(op[2] * len(data))
        f.unlink(missing_ok=True)
        f.write_bytes(bytes(data[:pos] + (op[3] if op[0] == "bytes" else b"") + data[pos + (len(op[3]) if op[0] == "bytes" else len(data)):]))
    elif op[0] == "json":
        f = files[op[1]]
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            return
        f.unlink(missing_ok=True)
        f.write_text(json.dumps(_set_path(doc, list(op[2]), op[3])), encoding="utf-8")
    elif op[0] == "file":
        try:
            doc = json.loads(panel.read_text(encoding="utf-8"))
            doc["files"][op[1]] = str(secret) if op[2] == "SECRET" else op[2]
        except (ValueError, OSError, TypeError, KeyError):
            return
        panel.unlink(missing_ok=True)
        panel.write_text(json.dumps(doc), encoding="utf-8")
    else:
        f = {"hr.png": panel.parent / "hr.png", "lr.png": panel.parent / "lr.png", "panel.json": panel,
             "metrics.csv": ev / "metrics.csv", "cases": ev / "cases"}[op[1]]
        if f.is_dir() and not f.is_symlink():
            shutil.rmtree(f)
        else:
            f.unlink(missing_ok=True)
        f.symlink_to(secret)


def check_results(ops: list[tuple], tmpdir: Path) -> str:
    """``medsr report``'s reading and drawing on a damaged folder: a report or a one-line refusal, and no byte of
    a file outside the folder in it."""
    import base64

    from medsr.report.build import render_html, report_context
    from medsr.report.results import load_results

    seed = _results(str(tmpdir))
    work = tmpdir / "rc"
    shutil.rmtree(work, ignore_errors=True)
    ev = work / "ev"
    shutil.copytree(seed, ev, symlinks=True)
    secret = work / "secret.png"
    secret.write_bytes(_png_bomb(8, 9) + b"MEDSR-SECRET")
    panel = next(ev.glob("cases/*/panel.json"))
    files = {"metrics.csv": ev / "metrics.csv", "summary.json": ev / "summary.json", "panel.json": panel}
    for op in ops:
        try:
            _damage(op, ev, files, panel, secret)
        except OSError:  # an earlier op replaced a folder on the way by a link to a file: this op cannot apply
            continue

    def report() -> str:
        rows, summary, panels = load_results(ev)
        if not rows:
            return ""
        from medsr.errors import InputError

        try:
            return render_html(report_context(rows, summary, panels))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as err:
            raise InputError("damaged results folder") from err  # what build_report turns them into

    outcome, html = _guard(f"results {ops!r:.400}", report, timeout=max(CASE_TIMEOUT_S, 20))
    if outcome == "ok" and (base64.b64encode(secret.read_bytes()).decode()[:40] in html or "MEDSR-SECRET" in html):
        raise FuzzFailure(f"results {ops!r:.400}: a file outside the results folder was embedded")
    _count("results", outcome)
    return outcome


# --------------------------------------------------------------------------- hostile file names


def hostile_names() -> st.SearchStrategy[bytes]:
    """File names as bytes: control characters, newlines, bytes that are not UTF-8, long names, odd suffixes."""
    piece = st.one_of(st.binary(min_size=1, max_size=12), st.sampled_from(
        [b"\n", b"\r", b"\x1b[31m", b"\xff\xfe", b"medsr: error: x", b"DOE^JOHN", b" ", b"..", b"'", b'"', b"%s",
         b"\xe2\x80\xa8", b"x" * 120]))
    suffix = st.sampled_from([b".png", b".PNG", b".dcm", b".nii.gz", b"", b".png.tmp"])
    return st.tuples(st.lists(piece, min_size=1, max_size=4), suffix).map(
        lambda t: (b"".join(t[0]).replace(b"/", b"_").replace(b"\0", b"_").lstrip(b".") or b"n")[: 250 - len(t[1])] + t[1])


def check_names(name: bytes, good: bool, tmpdir: Path) -> str:
    """``medsr upscale`` on a folder holding a file with a hostile name (an image or garbage) and a good image:
    every message one line, errors.csv one row per failure, inputs unchanged, nothing outside -o touched."""
    import csv

    from medsr.inference import load_upscaler, upscale_path

    work = tmpdir / "names"
    shutil.rmtree(work, ignore_errors=True)
    src, out, beside = work / "in", work / "out", work / "beside"
    src.mkdir(parents=True)
    beside.mkdir()
    (beside / "keep.txt").write_text("keep")
    png = _png_bomb(8, 12)
    (src / "good.png").write_bytes(png)
    try:
        with open(os.path.join(os.fsencode(src), name), "wb") as fh:
            fh.write(png if good else b"garbage" + name)
    except OSError:  # a name the file system refuses: nothing to test
        _count("names", "skipped")
        return "skipped"
    before, around = _digest(src), _digest(beside)
    lines: list[str] = []
    outcome, result = _guard(
        f"name {name!r}",
        lambda: upscale_path(src, out, load_upscaler("bicubic", 2), progress=False, workers=0, log=lines.append),
        timeout=max(CASE_TIMEOUT_S, 20),
    )
    failed = result.failed if outcome == "ok" else []
    for line in lines + [f"{p}: {r}" for p, r in failed]:
        if "\n" in line or "\r" in line:
            raise FuzzFailure(f"name {name!r}: message over several lines: {line!r}")
    if _digest(src) != before or _digest(beside) != around:
        raise FuzzFailure(f"name {name!r}: an input or a file outside -o changed")
    if outcome == "ok" and result.failed:
        with open(result.errors_csv, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if len(rows) != len(result.failed) + 1 or any(len(r) != 2 for r in rows):
            raise FuzzFailure(f"name {name!r}: errors.csv has {len(rows)} rows for {len(result.failed)} failures")
    _count("names", outcome)
    return outcome
