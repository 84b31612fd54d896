"""Fuzzing helpers: seed files, hypothesis strategies of mutations, and the reader's contract.

A *case* is a seed file (a real DICOM / NIfTI / PNG / TIFF / JPEG) plus a list of
mutations (bit flips, byte overwrites, truncation, chunk deletion/duplication, DICOM
tag value changes through pydicom, NIfTI header field changes, PNG chunk changes with
or without a valid CRC). :func:`check_case` writes the mutated bytes to a file with the
seed's extension, calls :func:`medsr.io.load_image` under a time bound, and returns
``"image"`` (a valid image) or ``"input_error"`` (medsr's ``InputError``). Any other
exception, an invalid image or a hang is a finding and raises :class:`FuzzFailure`.

Used by ``tests/fuzz/test_fuzz_readers.py`` (CI) and ``tests/fuzz/run_long.py`` (long
campaigns); see docs/reliability.md.
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import signal
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "ROOT",
    "CASE_TIMEOUT_S",
    "Seed",
    "seeds",
    "seed_by_name",
    "FuzzFailure",
    "CaseTimeout",
    "time_limit",
    "apply_mutations",
    "byte_mutations",
    "dicom_tag_mutations",
    "nifti_header_mutations",
    "png_chunk_mutations",
    "check_case",
    "check_roundtrip",
    "series_seeds",
    "check_series_case",
    "COUNTS",
]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
CASE_TIMEOUT_S = float(os.environ.get("MEDSR_FUZZ_CASE_TIMEOUT", "5"))
"""Time bound of one case (seconds); a case that runs longer is a hang."""

_CASE_IDS = itertools.count()
STRICT = os.environ.get("MEDSR_FUZZ_STRICT", "1") != "0"
"""Count an ``UnexpectedReadError`` (the readers' last-resort net) as a finding: every failure
mode should have its own check and message."""

COUNTS: dict[str, int] = {}
"""Outcome counters of this process (``image``, ``input_error``, per seed kind), for the session summary."""


# --------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Seed:
    """A real file to mutate: its name, suffix (decides the reader) and bytes."""

    name: str
    suffix: str
    data: bytes

    @property
    def kind(self) -> str:
        return {".dcm": "dicom", ".nii": "nifti", ".nii.gz": "nifti", ".png": "png"}.get(self.suffix, self.suffix[1:])

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        return f"Seed({self.name!r})"


_PYDICOM_FILES = [
    # greyscale images in many encodings
    "CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm", "JPEG-lossy.dcm", "JPGExtended.dcm",
    "image_dfl.dcm", "liver_1frame.dcm", "rtdose_1frame.dcm", "no_meta.dcm", "ExplVR_BigEnd.dcm",
    "MR_truncated.dcm",
    # things medsr refuses: colour, palette, structured report, RT structure set
    "SC_rgb_small_odd.dcm", "examples_palette.dcm", "test-SR.dcm", "rtstruct.dcm",
]


def _pydicom_file(name: str) -> Path | None:
    import pydicom

    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    return path if path.is_file() else None


def _raster_seeds() -> list[Seed]:
    """TIFF and JPEG versions of a crop of the sample chest X-ray PNG (small, so cases stay fast)."""
    import numpy as np
    import tifffile
    from PIL import Image

    png = SAMPLE / "cxr_hannover_006f3a8a.png"
    if not png.is_file():
        return []
    with Image.open(png) as im:
        grey = np.asarray(im.convert("L"))[:96, :80]
    out = []
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    out.append(Seed("crop.png", ".png", buf.getvalue()))
    buf = io.BytesIO()
    Image.fromarray((grey.astype(np.uint16) * 257)).save(buf, format="PNG")
    out.append(Seed("crop16.png", ".png", buf.getvalue()))
    buf = io.BytesIO()
    tifffile.imwrite(buf, grey.astype(np.uint16) * 257, photometric="minisblack")
    out.append(Seed("crop16.tif", ".tif", buf.getvalue()))
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="JPEG", quality=90)
    out.append(Seed("crop.jpg", ".jpg", buf.getvalue()))
    return out


@lru_cache(maxsize=1)
def seeds() -> dict[str, list[Seed]]:
    """Seed files by family: ``dicom``, ``nifti``, ``png``, ``other`` (TIFF, JPEG).

    Real files only: sample_data/ (CT, MR, CT series slice, chest X-ray PNG, MR NIfTI)
    and pydicom's packaged test files. The 7 MB chest CR is left out (each case would
    copy it); the series slice is cropped by nothing, it is 0.5 MB.
    """
    fam: dict[str, list[Seed]] = {"dicom": [], "nifti": [], "png": [], "other": []}
    for rel in ("ct_small.dcm", "mr_small.dcm", "ct_series_lung_dx_a0001/1-29.dcm"):
        p = SAMPLE / rel
        if p.is_file():
            fam["dicom"].append(Seed(rel, ".dcm", p.read_bytes()))
    for name in _PYDICOM_FILES:
        p = _pydicom_file(name)
        if p is not None:
            fam["dicom"].append(Seed(name, ".dcm", p.read_bytes()))
    nii = SAMPLE / "mr_anatomical.nii"
    if nii.is_file():
        raw = nii.read_bytes()
        fam["nifti"].append(Seed("mr_anatomical.nii", ".nii", raw))
        fam["nifti"].append(Seed("mr_anatomical.nii.gz", ".nii.gz", gzip.compress(raw, mtime=0)))
    png = SAMPLE / "cxr_hannover_006f3a8a.png"
    if png.is_file():
        fam["png"].append(Seed(png.name, ".png", png.read_bytes()))
    for s in _raster_seeds():
        fam["png" if s.suffix == ".png" else "other"].append(s)
    return fam


def seed_by_name(name: str) -> Seed:
    """The seed called ``name`` (see :func:`seeds`)."""
    for family in seeds().values():
        for s in family:
            if s.name == name:
                return s
    raise KeyError(f"no fuzz seed named {name!r}; known: {[s.name for f in seeds().values() for s in f]}")


# --------------------------------------------------------------------------- mutations
#
# A mutation is a tuple ("op", args...) so hypothesis can print and shrink it; positions
# are fractions of the length so one strategy fits every seed.

INTERESTING_INTS = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 255, 256, 4095, 4096, 32767, 32768,
                    65535, 65536, 100000, 2**31 - 1, 2**31, 2**32 - 1, -1, -2, -32768]
INTERESTING_TEXT = ["", " ", "0", "1", "-1", "1e400", "-1e400", "nan", "inf", "abc", "1\\2", "0\\0", "1\\0\\0\\0\\1\\0",
                    "0\\0\\0\\0\\0\\0", "MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL", "1.2.840.10008.1.2",
                    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99", "1.2.840.10008.5.1.4.1.1.88.11",
                    "\x00\xff", "9" * 40]

fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def byte_mutations() -> st.SearchStrategy[list[tuple]]:
    """Format-blind mutations: bit flips, byte overwrites, truncation, chunk delete/duplicate."""
    op = st.one_of(
        st.tuples(st.just("flip"), fractions, st.integers(0, 7)),
        st.tuples(st.just("set"), fractions, st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("fill"), fractions, st.sampled_from([0x00, 0xFF, 0x7F, 0x80]), st.integers(1, 64)),
        st.tuples(st.just("truncate"), fractions),
        st.tuples(st.just("delete"), fractions, st.integers(1, 512)),
        st.tuples(st.just("duplicate"), fractions, st.integers(1, 512)),
    )
    return st.lists(op, min_size=1, max_size=6)


_DICOM_TAGS = [
    "Rows", "Columns", "NumberOfFrames", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "RescaleSlope", "RescaleIntercept",
    "PixelSpacing", "ImagerPixelSpacing", "SliceThickness", "ImagePositionPatient", "ImageOrientationPatient",
    "Modality", "SOPClassUID", "SeriesInstanceUID", "TransferSyntaxUID", "WindowCenter", "WindowWidth",
    "PixelData", "ModalityLUTSequence", "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence",
    "PatientName", "SpacingBetweenSlices",
]


def dicom_tag_mutations() -> st.SearchStrategy[list[tuple]]:
    """Tag value changes through pydicom: delete a tag, or set it to an int, a text or raw bytes."""
    value = st.one_of(
        st.tuples(st.just("int"), st.sampled_from(INTERESTING_INTS) | st.integers(-(2**31), 2**32)),
        st.tuples(st.just("text"), st.sampled_from(INTERESTING_TEXT) | st.text(max_size=20)),
        st.tuples(st.just("bytes"), st.binary(max_size=24)),
        st.tuples(st.just("delete")),
    )
    op = st.tuples(st.just("dicom_tag"), st.sampled_from(_DICOM_TAGS), value)
    return st.lists(op, min_size=1, max_size=4)


# NIfTI-1 header fields: (offset, struct format) little endian
_NIFTI_FIELDS = {
    "sizeof_hdr": (0, "<i"), "dim0": (40, "<h"), "dim1": (42, "<h"), "dim2": (44, "<h"), "dim3": (46, "<h"),
    "dim4": (48, "<h"), "datatype": (70, "<h"), "bitpix": (72, "<h"), "pixdim0": (76, "<f"), "pixdim1": (80, "<f"),
    "pixdim2": (84, "<f"), "pixdim3": (88, "<f"), "vox_offset": (108, "<f"), "scl_slope": (112, "<f"),
    "scl_inter": (116, "<f"), "qform_code": (252, "<h"), "sform_code": (254, "<h"), "quatern_b": (256, "<f"),
    "qoffset_x": (268, "<f"), "srow_x0": (280, "<f"), "srow_y1": (300, "<f"), "srow_z3": (324, "<f"),
}
_NIFTI_FLOATS = [0.0, -1.0, 1e-30, 1e30, 3.4e38, float("nan"), float("inf"), -float("inf"), 352.0, 1e9]
_NIFTI_INTS = [0, 1, -1, 2, 3, 4, 7, 8, 16, 32, 64, 128, 256, 512, 768, 1536, 2304, 32767, -32768, 348, 540]


def nifti_header_mutations() -> st.SearchStrategy[list[tuple]]:
    """Header field changes of a NIfTI-1 file (dims, datatype, bitpix, pixdim, vox_offset, scaling, xforms)."""
    op = st.tuples(
        st.just("nifti_field"),
        st.sampled_from(sorted(_NIFTI_FIELDS)),
        st.sampled_from(_NIFTI_INTS) | st.integers(-(2**15), 2**15 - 1),
        st.sampled_from(_NIFTI_FLOATS) | st.floats(width=32),
    )
    return st.lists(op, min_size=1, max_size=4)


def png_chunk_mutations() -> st.SearchStrategy[list[tuple]]:
    """PNG chunk changes: IHDR fields (valid CRC), IDAT byte corruption (valid CRC), chunk drop/dup, bad CRC."""
    ihdr = st.tuples(
        st.just("png_ihdr"),
        st.sampled_from(["width", "height", "depth", "colour", "interlace"]),
        st.sampled_from([0, 1, 2, 3, 4, 6, 8, 16, 255, 65535, 100000, 2**31 - 1, 2**32 - 1]),
    )
    idat = st.tuples(st.just("png_idat"), fractions, st.binary(min_size=1, max_size=8))
    chunk = st.tuples(st.just("png_chunk"), st.sampled_from(["drop", "dup", "crc"]), st.integers(0, 20))
    return st.lists(st.one_of(ihdr, idat, chunk), min_size=1, max_size=4)


def _pos(frac: float, n: int) -> int:
    return min(int(frac * n), max(n - 1, 0))


def _byte_op(data: bytearray, op: tuple) -> bytearray:
    kind = op[0]
    n = len(data)
    if n == 0:
        return data
    if kind == "flip":
        data[_pos(op[1], n)] ^= 1 << op[2]
    elif kind == "set":
        i = _pos(op[1], n)
        data[i : i + len(op[2])] = op[2]
    elif kind == "fill":
        i = _pos(op[1], n)
        data[i : i + op[3]] = bytes([op[2]]) * len(data[i : i + op[3]])
    elif kind == "truncate":
        del data[_pos(op[1], n) :]
    elif kind == "delete":
        i = _pos(op[1], n)
        del data[i : i + op[2]]
    elif kind == "duplicate":
        i = _pos(op[1], n)
        data[i:i] = data[i : i + op[2]]
    return data


def _dicom_op(data: bytes, op: tuple) -> bytes:
    import pydicom
    from pydicom import config
    from pydicom.dataelem import DataElement
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    _, keyword, value = op
    numeric = ("US", "SS", "UL", "SL", "US or SS", "US or OW")
    limits = {"SS": (-32768, 32767), "UL": (0, 2**32 - 1), "SL": (-(2**31), 2**31 - 1)}
    old_mode = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        with config.disable_value_validation():
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            tag = tag_for_keyword(keyword)
            target = ds.file_meta if keyword == "TransferSyntaxUID" and hasattr(ds, "file_meta") else ds
            vr = dictionary_VR(tag)
            if value[0] == "delete":
                if tag in target:
                    del target[tag]
            elif value[0] == "bytes" or vr in ("OB", "OW", "OB or OW", "SQ", "UN", "OF", "OD"):
                raw = value[1] if value[0] == "bytes" else str(value[1]).encode("latin-1", "replace")
                target[tag] = DataElement(tag, "OB" if vr in ("OB", "OB or OW", "SQ", "UN") else "UN", raw)
            elif vr in numeric and value[0] == "int":
                lo, hi = limits.get(vr, (0, 65535))
                target[tag] = DataElement(tag, vr if vr in limits else "US", min(max(int(value[1]), lo), hi))
            elif vr in numeric:  # text where a binary number belongs: raw bytes of the wrong length
                target[tag] = DataElement(tag, "UN", str(value[1]).encode("latin-1", "replace"))
            else:
                target[tag] = DataElement(tag, vr, str(value[1]))
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=False)
        return out.getvalue()
    except Exception:
        return data  # pydicom cannot express this change: the case runs on the unchanged bytes
    finally:
        config.settings.writing_validation_mode = old_mode


def _nifti_op(data: bytes, op: tuple, gz: bool) -> bytes:
    _, field, ival, fval = op
    raw = bytearray(gzip.decompress(data) if gz else data) if _gunzips(data, gz) else bytearray(data)
    if len(raw) < 348:
        return data
    off, fmt = _NIFTI_FIELDS[field]
    if fmt == "<f":
        struct.pack_into(fmt, raw, off, fval)
    else:
        struct.pack_into(fmt, raw, off, max(min(ival, 2**31 - 1 if fmt == "<i" else 32767), -(2**31) if fmt == "<i" else -32768))
    return gzip.compress(bytes(raw), mtime=0) if gz else bytes(raw)


def _gunzips(data: bytes, gz: bool) -> bool:
    if not gz:
        return True
    try:
        gzip.decompress(data)
        return True
    except Exception:
        return False


def _png_chunks(data: bytes) -> list[list[Any]] | None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    chunks, i = [], 8
    while i + 12 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        ctype = data[i + 4 : i + 8]
        body = data[i + 8 : i + 8 + length]
        crc = data[i + 8 + length : i + 12 + length]
        chunks.append([ctype, bytearray(body), crc])
        i += 12 + length
    return chunks


def _png_join(chunks: list[list[Any]], fix_crc: bool = True) -> bytes:
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    for ctype, body, crc in chunks:
        out += struct.pack(">I", len(body)) + ctype + body
        out += struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF) if fix_crc or crc is None else crc
    return bytes(out)


def _png_op(data: bytes, op: tuple) -> bytes:
    chunks = _png_chunks(data)
    if not chunks:
        return data
    kind = op[0]
    if kind == "png_ihdr":
        ihdr = next((c for c in chunks if c[0] == b"IHDR" and len(c[1]) >= 13), None)
        if ihdr is None:
            return data
        field, v = op[1], op[2]
        if field in ("width", "height"):
            struct.pack_into(">I", ihdr[1], 0 if field == "width" else 4, v & 0xFFFFFFFF)
        else:
            ihdr[1][{"depth": 8, "colour": 9, "interlace": 12}[field]] = v & 0xFF
        return _png_join(chunks)
    if kind == "png_idat":
        idats = [c for c in chunks if c[0] == b"IDAT" and len(c[1])]
        if not idats:
            return data
        body = idats[0][1]
        i = _pos(op[1], len(body))
        body[i : i + len(op[2])] = op[2]
        return _png_join(chunks)
    action, k = op[1], op[2] % len(chunks)
    if action == "drop":
        del chunks[k]
        return _png_join(chunks)
    if action == "dup":
        chunks.insert(k, [chunks[k][0], bytearray(chunks[k][1]), None])
        return _png_join(chunks)
    chunks[k][2] = b"\0\0\0\0"  # a wrong CRC
    return _png_join(chunks, fix_crc=False)


def apply_mutations(seed: Seed, ops: list[tuple]) -> bytes:
    """The seed's bytes with ``ops`` applied in order."""
    data = bytes(seed.data)
    for op in ops:
        if op[0] == "dicom_tag":
            data = _dicom_op(data, op)
        elif op[0] == "nifti_field":
            data = _nifti_op(data, op, seed.suffix == ".nii.gz")
        elif op[0].startswith("png_"):
            data = _png_op(data, op)
        else:
            data = bytes(_byte_op(bytearray(data), op))
    return data


# --------------------------------------------------------------------------- the contract


class FuzzFailure(AssertionError):
    """A case broke the reader's contract (another exception, an invalid image, a hang)."""


class CaseTimeout(BaseException):
    """Raised by the SIGALRM handler inside a case that runs past its time bound (BaseException: no
    ``except Exception`` in the reader can swallow it)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the body with :class:`CaseTimeout` after ``seconds`` (SIGALRM; main thread only).

    Restores an outer timer (e.g. pytest-timeout's) afterwards.
    """
    def handler(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"case ran past its {seconds:g} s bound")

    start = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, handler)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.monotonic() - start), 0.001), old_interval)


def _check_image(img: Any) -> str | None:
    """Why ``img`` is not a valid medsr image, or None."""
    import numpy as np
    import torch
    from monai.data import MetaTensor

    from medsr import meta as mk

    if not isinstance(img, MetaTensor):
        return f"returned {type(img).__name__}, not a MetaTensor"
    if img.dtype != torch.float32:
        return f"dtype {img.dtype}"
    rgb = img.meta.get(mk.PHOTOMETRIC) == "RGB" and img.ndim == 3 and img.shape[0] == 3  # colour rasters
    if img.ndim not in (3, 4) or (img.shape[0] != 1 and not rgb) or min(img.shape[1:]) < 1:
        return f"shape {tuple(img.shape)}"
    if not bool(torch.isfinite(img.as_tensor()).all()):
        return "non-finite pixel values"
    aff = np.asarray(img.affine)
    if aff.shape != (4, 4) or not np.isfinite(aff).all():
        return f"affine {aff.tolist()}"
    for key in (mk.FORMAT, mk.MODALITY, mk.SPACING):
        if key not in img.meta:
            return f"meta lacks {key!r}"
    return None


def _contract(label: str, call: Callable[[], Any], timeout: float) -> str:
    """Run ``call`` under the time bound; ``"image"`` / ``"input_error"`` or :class:`FuzzFailure`."""
    from medsr.errors import InputError
    from medsr.io._common import UnexpectedReadError

    start = time.monotonic()
    try:
        with time_limit(timeout):
            img = call()
    except InputError as err:
        if isinstance(err, UnexpectedReadError) and STRICT:
            cause = err.__cause__
            raise FuzzFailure(f"{label}: only the last-resort net caught {type(cause).__name__}: {err}") from cause
        msg = str(err)
        if not msg or "\n" in msg.strip():
            raise FuzzFailure(f"{label}: InputError message is not one line: {msg!r}") from err
        outcome = "input_error"
    except CaseTimeout as err:
        raise FuzzFailure(f"{label}: hang ({err})") from None
    except Exception as err:
        raise FuzzFailure(f"{label}: uncaught {type(err).__name__}: {err}") from err
    else:
        why = _check_image(img)
        if why:
            raise FuzzFailure(f"{label}: invalid image: {why}")
        outcome = "image"
    elapsed = time.monotonic() - start
    if elapsed > timeout:  # stuck in C code where SIGALRM could not interrupt
        raise FuzzFailure(f"{label}: took {elapsed:.1f} s (bound {timeout:g} s)")
    return outcome


def _count(kind: str, outcome: str) -> None:
    COUNTS[outcome] = COUNTS.get(outcome, 0) + 1
    COUNTS[f"{kind}:{outcome}"] = COUNTS.get(f"{kind}:{outcome}", 0) + 1


def check_case(seed: Seed, ops: list[tuple], tmpdir: Path, timeout: float = CASE_TIMEOUT_S) -> str:
    """Mutate one file and read it; return ``"image"`` or ``"input_error"``, raise :class:`FuzzFailure` otherwise."""
    from medsr.io import load_image

    path = tmpdir / f"case{next(_CASE_IDS)}{seed.suffix}"  # a new name each case: no stale deferred reads
    path.write_bytes(apply_mutations(seed, ops))
    try:
        outcome = _contract(f"{seed!r} {ops}", lambda: load_image(path), timeout)
    finally:
        path.unlink(missing_ok=True)
    _count(seed.kind, outcome)
    return outcome


def check_roundtrip(seed: Seed, ops: list[tuple], tmpdir: Path, timeout: float = CASE_TIMEOUT_S) -> str:
    """Read a mutated file and, when it reads, write it back (``save_image``): the writer either
    succeeds (and its output reads again) or raises one of medsr's errors (``OutputError``)."""
    from medsr.errors import MedsrError
    from medsr.io import load_image, save_image

    path = tmpdir / f"case{next(_CASE_IDS)}{seed.suffix}"
    out = tmpdir / f"out{next(_CASE_IDS)}{seed.suffix}"
    path.write_bytes(apply_mutations(seed, ops))
    label = f"{seed!r} {ops} (write back)"
    try:
        loaded: list[Any] = []
        outcome = _contract(label, lambda: loaded.append(load_image(path)) or loaded[0], timeout)
        if outcome == "image":
            try:
                with time_limit(timeout):
                    save_image(loaded[0], out)
            except MedsrError as err:
                if not str(err) or "\n" in str(err).strip():
                    raise FuzzFailure(f"{label}: error message is not one line: {err!r}") from err
                outcome = "output_error"
            except CaseTimeout as err:
                raise FuzzFailure(f"{label}: hang ({err})") from None
            except Exception as err:
                raise FuzzFailure(f"{label}: uncaught {type(err).__name__}: {err}") from err
            else:
                if _contract(f"{label} (reading the output)", lambda: load_image(out), timeout) != "image":
                    raise FuzzFailure(f"{label}: the written output does not read back")
                outcome = "written"
    finally:
        path.unlink(missing_ok=True)
        if out.is_dir():
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        else:
            out.unlink(missing_ok=True)
    _count(f"{seed.kind}-roundtrip", outcome)
    return outcome


def series_seeds() -> list[Seed]:
    """Three consecutive slices of the sample CT series (a series read is a different code path)."""
    folder = SAMPLE / "ct_series_lung_dx_a0001"
    files = sorted(folder.glob("*.dcm"))[:3] if folder.is_dir() else []
    return [Seed(f"series/{p.name}", ".dcm", p.read_bytes()) for p in files]


def check_series_case(index: int, ops: list[tuple], tmpdir: Path, timeout: float = CASE_TIMEOUT_S) -> str:
    """Write the series seeds to a folder with slice ``index`` mutated, read the folder as one series."""
    import shutil

    from medsr.io import load_image

    slices = series_seeds()
    folder = tmpdir / f"series{next(_CASE_IDS)}"
    folder.mkdir()
    try:
        for i, s in enumerate(slices):
            (folder / f"{i}.dcm").write_bytes(apply_mutations(s, ops) if i == index % len(slices) else s.data)
        outcome = _contract(f"series slice {index % len(slices)} {ops}", lambda: load_image(folder), timeout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _count("series", outcome)
    return outcome
