"""Record what a medsr checkout writes for the sample data, to compare two checkouts exactly.

Runs ``medsr upscale`` (``bicubic`` and ``edsr_m``, x2) and ``medsr degrade`` (x2, seed 0)
with the given checkout's Python over every image in ``sample_data/`` (or the inputs
named), then writes one JSON: per command, its exit code and, per output file, a SHA-256
of its pixels and its header minus what is new on every run (DICOM elements of VR UI, DA,
TM and DT, at every nesting level, and the file meta group length, which counts the UIDs'
bytes; UIDs and dates in text files). Two checkouts wrote the
same outputs when their JSON files are equal; ``--compare`` says where they differ.

Example::

    git -C /work/main stash  # or any checkout of the code "before"
    python scripts/compare_outputs.py --python /path/before/.venv/bin/python -o before.json
    python scripts/compare_outputs.py --python /path/after/.venv/bin/python -o after.json
    python scripts/compare_outputs.py --compare before.json after.json

The hashing runs in this interpreter (pydicom, nibabel and Pillow, as in any medsr
environment); medsr itself runs only in the ``--python`` given, on CPU, with
``MEDSR_NUM_THREADS`` fixed so that the arithmetic is the same in both runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
from PIL import Image

__all__ = ["COMMANDS", "run_commands", "describe_file", "describe_tree", "compare", "main"]

ROOT = Path(__file__).resolve().parents[1]
COMMANDS: dict[str, list[str]] = {
    "upscale-bicubic-x2": ["upscale", "-m", "bicubic", "-s", "2", "-d", "cpu"],
    "upscale-edsr_m-x2": ["upscale", "-m", "edsr_m", "-s", "2", "-d", "cpu"],
    "degrade-x2": ["degrade", "-s", "2", "--seed", "0"],
}
"""Name of each recorded run -> the ``medsr`` arguments before the input and ``-o``."""

_IMAGE_SUFFIXES = (".dcm", ".dicom", ".ima", ".nii", ".nii.gz", ".png", ".tif", ".tiff", ".jpg", ".jpeg")
_NEW_EACH_RUN_VRS = frozenset({"UI", "DA", "TM", "DT"})
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_UID_OR_DATE = re.compile(r"\b\d+(\.\d+){4,}\b|\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\S*")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sample_inputs(folder: Path) -> list[Path]:
    """The images (and DICOM series folders) directly inside ``folder``, sorted by name."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_dir() and any(c.suffix.lower() == ".dcm" for c in p.iterdir()):
            out.append(p)
        elif p.is_file() and p.name.lower().endswith(_IMAGE_SUFFIXES):
            out.append(p)
    return out


def run_commands(python: str, inputs: list[Path], work: Path, commands: dict[str, list[str]]) -> dict[str, int]:
    """Run each command of ``commands`` once over a folder linking ``inputs``; exit code per command."""
    stage = work / "inputs"
    stage.mkdir(parents=True)
    for p in inputs:
        (stage / p.name).symlink_to(p.resolve(), target_is_directory=p.is_dir())
    env = {**os.environ, "MEDSR_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    codes = {}
    for name, args in commands.items():
        cmd = [python, "-m", "medsr", *args, str(stage), "-o", str(work / name), "--no-progress", "-q"]
        codes[name] = subprocess.run(cmd, env=env, cwd=work, check=False).returncode
    return codes


def _dicom_header(ds: pydicom.Dataset) -> dict[str, Any]:
    """DICOM JSON of ``ds`` without pixel data and without the elements that are new on every run."""
    def strip(d: pydicom.Dataset) -> None:
        for tag in list(d.keys()):
            elem = d[tag]
            if tag in _PIXEL_TAGS or elem.VR in _NEW_EACH_RUN_VRS:
                del d[tag]
            elif elem.VR == "SQ":
                for item in elem.value:
                    strip(item)

    strip(ds)
    meta = ds.file_meta if hasattr(ds, "file_meta") else pydicom.Dataset()
    strip(meta)
    meta.pop(0x00020000, None)  # File Meta Information Group Length: counts the bytes of the new UIDs
    return _plain({"file_meta": meta.to_json_dict(), "dataset": ds.to_json_dict()})


def _plain(value: Any) -> Any:
    """``value`` as strict JSON: bytes as text, NaN and infinities as their names (so equal values compare equal)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def describe_file(path: Path) -> dict[str, Any]:
    """Pixel hash and comparable header of one output file (text files: a hash without UIDs and dates)."""
    name = path.name.lower()
    if name.endswith((".dcm", ".dicom", ".ima")):
        ds = pydicom.dcmread(path, force=True)
        pixels = b"".join(ds[t].value for t in sorted(_PIXEL_TAGS) if t in ds)
        return {"pixels_sha256": _sha(pixels), "header": _dicom_header(ds)}
    if name.endswith((".nii", ".nii.gz")):
        img = nib.load(path)
        data = np.ascontiguousarray(img.dataobj.get_unscaled())
        header = {k: np.asarray(img.header[k]).tolist() for k in img.header.keys()}
        return {"pixels_sha256": _sha(data.tobytes()), "dtype": str(data.dtype), "shape": list(data.shape),
                "header": _plain(header),
                "extensions_sha256": _sha(b"".join(e.get_content() for e in img.header.extensions))}
    if name.endswith((".png", ".tif", ".tiff", ".jpg", ".jpeg")):
        with Image.open(path) as im:
            arr = np.asarray(im)
            info = {k: str(v) for k, v in im.info.items()}
            return {"pixels_sha256": _sha(arr.tobytes()), "mode": im.mode, "size": list(im.size),
                    "dtype": str(arr.dtype), "info": info}
    text = path.read_bytes().decode("utf-8", errors="replace")
    return {"text_sha256": _sha(_UID_OR_DATE.sub("<new>", text).encode())}


def describe_tree(folder: Path) -> dict[str, Any]:
    """:func:`describe_file` of every file under ``folder``, by path relative to it."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): describe_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def record(python: str, inputs: list[Path], commands: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Run ``commands`` with ``python`` over ``inputs`` in a temporary folder; the comparable record."""
    commands = COMMANDS if commands is None else commands
    with tempfile.TemporaryDirectory(prefix="medsr_compare_") as tmp:
        work = Path(tmp)
        codes = run_commands(python, inputs, work, commands)
        runs = {name: {"exit_code": codes[name], "files": describe_tree(work / name)} for name in commands}
    return {"inputs": [p.name for p in inputs], "commands": {k: v for k, v in commands.items()}, "runs": runs}


def compare(a: dict[str, Any], b: dict[str, Any], where: str = "") -> list[str]:
    """Paths (``run/file/key...``) where two records differ; empty when they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}/{k}: only in {'second' if k not in a else 'first'}")
            else:
                out.extend(compare(a[k], b[k], f"{where}/{k}"))
        return out
    return [] if a == b else [f"{where}: {str(a)[:80]!r} != {str(b)[:80]!r}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable,
                        help="Python of the medsr checkout to run (default: this one).")
    parser.add_argument("--inputs", nargs="+", type=Path, default=None,
                        help="Images or series folders (default: every image in sample_data/).")
    parser.add_argument("--commands", nargs="+", choices=sorted(COMMANDS), default=None,
                        help="Which runs to record (default: all).")
    parser.add_argument("-o", "--output", type=Path, help="JSON to write (default: stdout).")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="Compare two recorded JSON files instead; exit 1 when they differ.")
    args = parser.parse_args(argv)
    if args.compare:
        diffs = compare(*(json.loads(p.read_text()) for p in args.compare))
        print("\n".join(diffs) if diffs else "identical")
        return 1 if diffs else 0
    inputs = args.inputs or sample_inputs(ROOT / "sample_data")
    commands = {k: COMMANDS[k] for k in args.commands} if args.commands else None
    text = json.dumps(record(args.python, [p.resolve() for p in inputs], commands), indent=1, sort_keys=True,
                      allow_nan=False)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
