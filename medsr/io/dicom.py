"""DICOM: read single-frame, multi-frame and series into physical units; write derived instances.

Reading (see ``medsr.meta`` for the array layout):

* the Modality LUT is applied with pydicom's ``apply_modality_lut`` (or the enhanced
  multi-frame Pixel Value Transformation); a VOI LUT never is;
* MONOCHROME1 is inverted in the stored-value domain, ``s' = lo + hi - s`` over the
  BitsStored range, before the Modality LUT, so bright = dense for every modality and
  the writer can undo it exactly;
* in-plane spacing from PixelSpacing (``[row spacing (y), column spacing (x)]``), else
  ImagerPixelSpacing, else 1 mm with source ``"none"`` (a zero spacing counts as absent);
* series: one SeriesInstanceUID, slices sorted by ImagePositionPatient projected on the
  slice normal (cross product of ImageOrientationPatient), uniform spacing checked;
  multi-frame: frames are the third axis, positions from the per-frame functional groups;
* files are refused before any pixel is decoded when they carry no pixel data, colour,
  1-bit or more than :data:`~medsr.io._common.MAX_PIXELS` pixels; a file coded with a
  lossy transfer syntax gets ``LossyImageCompression = "01"`` in its recorded header.

Writing makes a new derived instance that ``dciodvfy`` accepts: new Series/SOP Instance
UIDs, ``ImageType = DERIVED\\SECONDARY\\<kept values>``, DerivationDescription, updated
Rows/Columns, spacing, positions, pixel data in the input's stored representation, written
as Explicit VR Little Endian. It also drops what no longer describes the new pixels
(group lengths, overlays, curves, icon image, smallest/largest pixel values, derivation
codes of the source) and repairs what the validator rejects in common inputs (zero pixel
spacing, SOP references without a SOP Class UID, a missing Frame of Reference UID).
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

import medsr
from medsr import meta as mk
from medsr.errors import InputError, OutputError

from ._common import DICOM_SUFFIXES, MAX_PIXELS, SOURCE_INFO, as_affine4, build_meta, check_memory, quiet_pydicom
from .discover import is_dicom_candidate
from .provenance import derive_series, reference_sources

try:  # pydicom >= 3
    from pydicom.pixels import apply_modality_lut
except ImportError:  # pragma: no cover - pydicom 2.x
    from pydicom.pixel_data_handlers.util import apply_modality_lut

try:  # pydicom >= 2.x
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID
except ImportError:  # pragma: no cover
    PYDICOM_IMPLEMENTATION_UID = UID("1.2.826.0.1.3680043.8.498.1")

__all__ = [
    "XRAY_MODALITIES",
    "LOSSY_TRANSFER_SYNTAXES",
    "read_dicom",
    "read_dicom_header",
    "dicom_files_in_folder",
    "SOURCES_CSV",
    "series_slice_names",
    "write_dicom",
]

XRAY_MODALITIES = frozenset({"CR", "DX", "DR", "RG", "MG", "RF", "PX", "XA", "IO"})
"""DICOM Modality values read as ``"xray"`` (projection radiography)."""

LOSSY_TRANSFER_SYNTAXES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",  # JPEG extended
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",  # JPEG 2000 (may be irreversible)
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",  # HTJ2K (may be irreversible)
}
"""Transfer syntaxes that may be lossy, with the LossyImageCompressionMethod to record."""

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})  # Pixel, Float, Double Float Pixel Data
_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DROP_KEYWORDS = (
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "IconImageSequence",
    "DerivationCodeSequence",
    "SourceImageSequence",
    "PixelDataProviderURL",
    "PlanarConfiguration",
)


def _shown(value: Any, limit: int = 64) -> str:
    """A header value as printable one-line text for a message (control characters escaped, cut to ``limit``)."""
    text = str(value)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = _shown(text[0], 200) if text else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


# --------------------------------------------------------------------------- reading


def _looks_like_dicom(ds: Dataset) -> bool:
    try:
        return any(t in ds for t in (0x00080016, 0x00280010, 0x7FE00010, 0x0020000D))
    except Exception:
        return False


def _convert_elements(ds: Dataset, depth: int = 0) -> None:
    """Convert every (lazily parsed) header element now, sequences included, pixel data excepted.

    pydicom converts raw element values on first access; doing it here makes a corrupt
    value (wrong length for its VR, unknown VR...) fail while parsing, with the file named,
    instead of somewhere later in the reader.
    """
    if depth > 32:
        raise ValueError("sequences nested more than 32 deep")
    for tag in list(ds.keys()):
        if tag in _PIXEL_TAGS:
            continue
        elem = ds[tag]
        if elem.VR == "SQ" and elem.value is not None:
            for item in elem.value:
                _convert_elements(item, depth + 1)
        elif tag.is_private is False and dictionary_has_tag(tag) and dictionary_VR(tag) == "SQ":
            raise ValueError(f"{elem.keyword or tag} is stored as {elem.VR}, not as a sequence")


def _dcmread(path: Path, *, stop_before_pixels: bool) -> Dataset:
    """Parse ``path``; pixel data is deferred (not loaded) unless ``stop_before_pixels``."""
    kwargs: dict[str, Any] = {"stop_before_pixels": True} if stop_before_pixels else {"defer_size": "512 KB"}
    if path.is_dir():
        raise InputError(
            f"{path}: is a folder where a DICOM file was expected; pass the folder itself to read a series."
        )
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: not a regular file (a device, pipe or socket); pass an image file.")
    try:
        try:
            ds = pydicom.dcmread(str(path), **kwargs)
        except InvalidDicomError:
            try:
                ds = pydicom.dcmread(str(path), force=True, **kwargs)
            except (OSError, MemoryError):
                raise
            except Exception:
                ds = None
            if ds is None or not _looks_like_dicom(ds):
                raise InputError(
                    f"{path}: not a DICOM file (no 'DICM' marker and no readable DICOM header); "
                    "check the file, or give it the extension of its real format."
                ) from None
        _convert_elements(ds)
        return ds
    except InputError:
        raise
    except FileNotFoundError as e:
        raise InputError(f"{path}: file not found; check the path.") from e
    except PermissionError as e:
        raise InputError(f"{path}: permission denied; make the file readable.") from e
    except MemoryError as e:
        raise InputError(f"{path}: the DICOM header declares elements too large to read; the file is corrupt.") from e
    except Exception as e:
        raise InputError(
            f"{path}: cannot parse the DICOM header ({_why(e)}); the file is truncated or corrupt, "
            "re-copy or re-export it."
        ) from e


@quiet_pydicom()
def read_dicom_header(path: Path) -> Dataset:
    """Header only (no pixel data), raising :class:`InputError` for non-DICOM or broken files."""
    return _dcmread(Path(path), stop_before_pixels=True)


def _nframes(ds: Dataset) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError, OverflowError):
        return 1


def _header_int(ds: Dataset, keyword: str, default: int, path: Path) -> int:
    """An integer header value (``default`` when absent or empty); InputError when it is not an integer."""
    value = ds.get(keyword, default)
    if value is None or value == "":
        return default
    try:
        if isinstance(value, (bytes, bytearray, list, tuple)) or isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{path}: {keyword} is {_shown(value, 40)!r}, not an integer; the header is corrupt.") from None


def _photometric(ds: Dataset) -> str:
    return str(ds.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip().upper()


def _is_encapsulated(ds: Dataset) -> bool:
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    try:
        return bool(ts) and UID(str(ts)).is_encapsulated
    except Exception:
        return False


def _pixel_data_length(ds: Dataset) -> int | None:
    """Bytes of the (possibly deferred) pixel data element, without reading it; None when unknown."""
    for tag in _PIXEL_TAGS:
        if tag not in ds:
            continue
        try:
            elem = ds.get_item(tag, keep_deferred=True)
        except TypeError:  # pragma: no cover - pydicom 2.x
            elem = ds.get_item(tag)
        value = getattr(elem, "value", None)
        if isinstance(value, (bytes, bytearray)):
            return len(value)
        length = getattr(elem, "length", None)
        return int(length) if value is None and length is not None and length != 0xFFFFFFFF else None
    return None


MAX_FRAMES = 1 << 16
"""Most frames medsr reads from one multi-frame file (enhanced CT/MR hold a few thousand); bounds
the per-frame work a small file can ask for."""

MAX_COMPRESSION_RATIO = 10000
"""A compressed DICOM whose declared pixels need more than this many times its compressed pixel data
(plus 256 MiB, room for blank images that compress extremely well) is refused as corrupt before decoding."""


def _check_image_header(ds: Dataset, path: Path) -> None:
    """Refuse what medsr cannot read, before any pixel is decoded (and before any pixel buffer is allocated)."""
    if not any(t in ds for t in _PIXEL_TAGS):
        sop = ds.get("SOPClassUID")
        name = _shown(UID(str(sop)).name) if sop else ""
        if not name or "Image Storage" in name:
            raise InputError(
                f"{path}: no pixel data in a file whose SOP class is {name or 'unreadable'}; "
                "the file is truncated or corrupt, re-copy or re-export it."
            )
        raise InputError(
            f"{path}: no pixel data (SOP class {name}); this DICOM object is not an image, pass image files only."
        )
    rows, cols = _header_int(ds, "Rows", 0, path), _header_int(ds, "Columns", 0, path)
    frames = _header_int(ds, "NumberOfFrames", 1, path) if "NumberOfFrames" in ds else 1
    if rows <= 0 or cols <= 0 or frames <= 0:
        raise InputError(
            f"{path}: zero-size image (Rows={rows}, Columns={cols}, NumberOfFrames={frames}); the file is corrupt."
        )
    spp = _header_int(ds, "SamplesPerPixel", 1, path) or 1
    pi = _photometric(ds)
    if spp != 1 or pi not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(
            f"{path}: colour DICOM (SamplesPerPixel={spp}, PhotometricInterpretation={_shown(pi, 20)}); "
            "medsr reads greyscale images only, convert it to greyscale first."
        )
    if rows * cols * frames > MAX_PIXELS:
        raise InputError(
            f"{path}: declared size {cols}x{rows}x{frames} = {rows * cols * frames} pixels exceeds medsr's limit of "
            f"{MAX_PIXELS} pixels; crop or split the image first."
        )
    if frames > MAX_FRAMES:
        raise InputError(
            f"{path}: NumberOfFrames={frames} exceeds medsr's limit of {MAX_FRAMES} frames; split the file first."
        )
    bits = _header_int(ds, "BitsAllocated", 0, path)
    float_pixels = 0x7FE00010 not in ds
    if bits not in (8, 16, 32, 64) or (bits == 64 and not float_pixels):
        raise InputError(
            f"{path}: BitsAllocated={bits} is not supported (8, 16 or 32); 1-bit objects such as "
            "segmentations are not images to upscale."
        )
    needed = rows * cols * frames * bits // 8
    length = _pixel_data_length(ds)
    if length is not None and not _is_encapsulated(ds) and length < needed:
        raise InputError(
            f"{path}: the pixel data holds {length} bytes but {cols}x{rows}x{frames} pixels of {bits} bits need "
            f"{needed}; the file is truncated or corrupt (its header is wrong)."
        )
    if length is not None and _is_encapsulated(ds) and (
        needed > MAX_COMPRESSION_RATIO * length + (256 << 20) or frames > max(length // 8, 1)
    ):
        raise InputError(
            f"{path}: {length} bytes of compressed pixel data cannot hold the declared {cols}x{rows}x{frames} "
            "pixels; the file is truncated or corrupt (its header is wrong)."
        )
    check_memory(path, rows * cols * frames, max(1, bits // 8))
    if "PerFrameFunctionalGroupsSequence" in ds and len(ds.PerFrameFunctionalGroupsSequence) != frames:
        raise InputError(
            f"{path}: NumberOfFrames is {frames} but the file describes {len(ds.PerFrameFunctionalGroupsSequence)} "
            "frames (PerFrameFunctionalGroupsSequence); the header is corrupt."
        )
    if not float_pixels:
        stored = _header_int(ds, "BitsStored", bits, path) or bits
        if not 1 <= stored <= bits:
            raise InputError(f"{path}: BitsStored={stored} with BitsAllocated={bits}; the header is corrupt.")
        if _header_int(ds, "PixelRepresentation", 0, path) not in (0, 1):
            raise InputError(f"{path}: PixelRepresentation must be 0 or 1; the header is corrupt.")
        _check_rescale(ds, path)


def _valid_pair(value: Any) -> tuple[float, float] | None:
    try:
        vals = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(vals) != 2 or not all(np.isfinite(v) and v > 0 for v in vals):
        return None
    return vals[0], vals[1]


def _valid_float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def _fg_item(ds: Dataset, keyword: str, frame: int | None = 0) -> Dataset | None:
    """First item of functional group ``keyword`` for ``frame`` (per-frame first, then shared)."""
    if frame is not None and "PerFrameFunctionalGroupsSequence" in ds:
        pf = ds.PerFrameFunctionalGroupsSequence
        if frame < len(pf) and keyword in pf[frame] and len(pf[frame][keyword].value):
            return pf[frame][keyword].value[0]
    if "SharedFunctionalGroupsSequence" in ds and len(ds.SharedFunctionalGroupsSequence):
        shared = ds.SharedFunctionalGroupsSequence[0]
        if keyword in shared and len(shared[keyword].value):
            return shared[keyword].value[0]
    return None


def _orientation(ds: Dataset) -> tuple[np.ndarray, np.ndarray] | None:
    """(row direction, column direction) unit vectors in LPS, or None when absent/invalid."""
    iop = ds.get("ImageOrientationPatient")
    if iop is None:
        item = _fg_item(ds, "PlaneOrientationSequence")
        iop = item.get("ImageOrientationPatient") if item is not None else None
    try:
        v = np.array([float(x) for x in iop], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if v.shape != (6,) or not np.isfinite(v).all():
        return None
    r, c = v[:3], v[3:]
    nr, nc = np.linalg.norm(r), np.linalg.norm(c)
    if nr < 0.5 or nc < 0.5 or abs(np.dot(r / nr, c / nc)) > 0.01:
        return None
    return r / nr, c / nc


def _position(ds: Dataset, frame: int | None = None) -> np.ndarray | None:
    if frame is not None:
        item = _fg_item(ds, "PlanePositionSequence", frame)
        value = item.get("ImagePositionPatient") if item is not None else None
    else:
        value = ds.get("ImagePositionPatient")
    try:
        p = np.array([float(x) for x in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return p if p.shape == (3,) and np.isfinite(p).all() else None


def _pixel_spacing(ds: Dataset) -> tuple[tuple[float, float], str]:
    """((row spacing y, column spacing x), source) following DESIGN.md."""
    ps = _valid_pair(ds.get("PixelSpacing"))
    if ps is None:
        item = _fg_item(ds, "PixelMeasuresSequence")
        ps = _valid_pair(item.get("PixelSpacing")) if item is not None else None
    if ps is not None:
        return ps, "PixelSpacing"
    ips = _valid_pair(ds.get("ImagerPixelSpacing"))
    if ips is not None:
        return ips, "ImagerPixelSpacing"
    return (1.0, 1.0), "none"


def _slice_thickness(ds: Dataset) -> float:
    item = _fg_item(ds, "PixelMeasuresSequence")
    for src in (ds, item):
        if src is None:
            continue
        for kw in ("SpacingBetweenSlices", "SliceThickness"):
            v = _valid_float(src.get(kw))
            if v is not None:
                return v
    return 1.0


def _stored_range(ds: Dataset) -> tuple[int, int]:
    bits = int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 16) or 16)
    bits = min(max(bits, 1), 64)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _rescale(ds: Dataset, frame: int) -> tuple[float, float] | None:
    """(slope, intercept) of an enhanced multi-frame Pixel Value Transformation, if any."""
    if "RescaleSlope" in ds or "RescaleIntercept" in ds or "ModalityLUTSequence" in ds:
        return None
    item = _fg_item(ds, "PixelValueTransformationSequence", frame)
    if item is None:
        return None
    slope = _number(item.get("RescaleSlope"), 1.0)
    intercept = _number(item.get("RescaleIntercept"), 0.0)
    return (slope if slope is not None else 1.0), (intercept if intercept is not None else 0.0)


def _number(value: Any, default: float) -> float | None:
    """``value`` as a finite float (``default`` when absent or empty), None when it is not one."""
    if value is None or value == "":
        return default
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if np.isfinite(v) else None


def _check_rescale(ds: Dataset, path: Path) -> None:
    """RescaleSlope/Intercept (top level, shared and per frame) must be finite numbers, the slope non-zero."""
    sources: list[tuple[str, Any]] = [("", ds), ("shared functional groups: ", _fg_item(ds, "PixelValueTransformationSequence", None))]
    for f, group in enumerate(ds.get("PerFrameFunctionalGroupsSequence") or []):
        items = group.get("PixelValueTransformationSequence") or []
        sources.append((f"frame {f + 1}: ", items[0] if len(items) else None))
    for where, item in sources:
        if item is None:
            continue
        for kw, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
            value = item.get(kw)
            number = _number(value, default)
            if number is None or (kw == "RescaleSlope" and number == 0):
                raise InputError(
                    f"{path}: {where}{kw} is {_shown(value, 40)!r}, not a usable number; the header is corrupt."
                )


_STORED_CHUNK = 1 << 20
"""Pixels mapped between stored and physical values at a time (bounds float64 temporaries to ~8 MB each)."""


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    """Physical values, shape (frames, rows, cols), float32: MONOCHROME1 inverted, Modality LUT applied.

    A few rows at a time (float64 arithmetic on ~8 MB blocks), and the file's pixel data is
    released afterwards, so a radiograph, a series or a long multi-frame costs little more
    than its float32 result.
    """
    rows, cols, frames = int(ds.Rows), int(ds.Columns), _nframes(ds)
    try:
        arr = np.asarray(ds.pixel_array)
    except Exception as e:
        ts = ds.file_meta.get("TransferSyntaxUID", "unknown") if hasattr(ds, "file_meta") else "unknown"
        raise InputError(
            f"{path}: cannot decode the pixel data (transfer syntax {_shown(UID(str(ts)).name)}; {_why(e)}); "
            "the file is truncated or corrupt, or a decoder is missing (pip install pylibjpeg "
            "pylibjpeg-openjpeg pylibjpeg-libjpeg)."
        ) from e
    finally:
        _release_pixels(ds)
    if arr.size != rows * cols * frames:
        raise InputError(
            f"{path}: decoded {arr.size} pixels where Rows x Columns x Frames = {rows * cols * frames}; "
            "the file is corrupt."
        )
    # rows of all frames as one (frames * rows, cols) array, converted in blocks of ~1 M pixels
    # whatever the frame size: a file of many tiny frames costs no Python loop per frame
    arr = arr.reshape(frames * rows, cols)
    is_float = arr.dtype.kind == "f"
    monochrome1 = _photometric(ds) == "MONOCHROME1"
    lo, hi = _stored_range(ds)
    rescale_rows = None  # per-row (slope, intercept) of an enhanced file's per-frame Pixel Value Transformation
    if not is_float and _rescale(ds, 0) is not None:
        if "PerFrameFunctionalGroupsSequence" in ds:
            per_frame = np.array([_rescale(ds, f) or (1.0, 0.0) for f in range(frames)], dtype=np.float64)
        else:
            per_frame = np.array([_rescale(ds, 0)], dtype=np.float64)
        rescale_rows = per_frame
    out = np.empty(arr.shape, dtype=np.float32)
    step = max(1, _STORED_CHUNK // max(1, cols))  # float64 temporaries of a few rows, not of a whole radiograph
    for a in range(0, frames * rows, step):
        frame = arr[a : a + step]
        if monochrome1:
            frame = -frame.astype(np.float64) if is_float else (lo + hi) - frame.astype(np.int64)
        if is_float:
            values = np.asarray(frame, dtype=np.float64)
        elif rescale_rows is not None:
            which = np.minimum(np.arange(a, a + frame.shape[0]) // rows, len(rescale_rows) - 1)
            values = frame * rescale_rows[which, :1] + rescale_rows[which, 1:]
        else:
            try:
                values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
            except Exception as e:
                raise InputError(
                    f"{path}: cannot apply the Modality LUT ({_why(e)}); the header is corrupt."
                ) from e
        if not np.isfinite(values).all():
            raise InputError(
                f"{path}: the pixel data contains NaN or infinite values; fix or mask them before upscaling."
            )
        if values.size and float(np.abs(values).max()) > _FLOAT32_MAX:
            raise InputError(
                f"{path}: pixel values reach {float(np.abs(values).max()):.3g} after the Modality LUT "
                "(RescaleSlope/Intercept), beyond 32-bit float range; the header is corrupt."
            )
        out[a : a + step] = values
    return out.reshape(frames, rows, cols)


def _release_pixels(ds: Dataset) -> None:
    """Drop the (deferred or loaded) pixel data and pydicom's decoded cache from ``ds``."""
    for tag in _PIXEL_TAGS:
        if tag in ds:
            del ds[tag]
    if getattr(ds, "_pixel_array", None) is not None:
        ds._pixel_array = None


def _modality(ds: Dataset) -> str:
    value = str(ds.get("Modality", "") or "").strip().upper()
    if value == "CT":
        return "ct"
    if value == "MR":
        return "mr"
    if value in XRAY_MODALITIES:
        return "xray"
    return "other"


def _header_json(ds: Dataset) -> str:
    """JSON text of ``ds`` without pixel data; a lossy transfer syntax is recorded as LossyImageCompression."""
    hdr = Dataset()
    for tag in ds.keys():
        if tag in _PIXEL_TAGS:
            continue
        hdr.add(ds[tag])
    ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    if ts in LOSSY_TRANSFER_SYNTAXES and str(hdr.get("LossyImageCompression", "")) != "01":
        hdr.LossyImageCompression = "01"
        if "LossyImageCompressionMethod" not in hdr:
            hdr.LossyImageCompressionMethod = LOSSY_TRANSFER_SYNTAXES[ts]
    return hdr.to_json(suppress_invalid_tags=True)


def _check_uniform(d: np.ndarray, where: str, what: str = "slices", names: Sequence[str] | None = None,
                   allow_uneven: bool = False) -> str | None:
    """``d``: positions along the normal in acquisition/sorted order; refuse duplicates, reversals and gaps.

    With ``allow_uneven`` (a series: in-plane work needs no regular grid) uneven spacing is not
    refused; the description of the gaps (:func:`_spacing_gaps`) is returned instead.
    """
    diffs = np.diff(d)
    if diffs.size == 0:
        return None
    med = float(np.median(np.abs(diffs)))
    if med < 1e-4 or np.any(np.abs(diffs) < 1e-4):
        raise InputError(
            f"{where}: several {what} share one position (several echoes, phases or stacks in one series?); "
            "split them into one series per stack first."
        )
    if not (np.all(diffs > 0) or np.all(diffs < 0)):
        raise InputError(f"{where}: the {what} are not ordered along the slice normal; medsr reads one stack only.")
    tol = max(0.01, 0.02 * med)
    if float(np.max(np.abs(np.abs(diffs) - med))) <= tol:
        return None
    gaps = _spacing_gaps(d, names)
    if allow_uneven:
        return gaps
    raise InputError(
        f"{where}: {what} spacing is not uniform ({gaps}); medsr needs evenly spaced {what} here, "
        "fix the series or resample it to NIfTI first."
    )


def _spacing_gaps(d: np.ndarray, names: Sequence[str] | None = None, limit: int = 3) -> str:
    """Where the spacing of sorted positions ``d`` departs from its median, naming the slices around each gap."""
    diffs = np.abs(np.diff(d))
    med = float(np.median(diffs))
    tol = max(0.01, 0.02 * med)
    odd = [k for k in range(diffs.size) if abs(diffs[k] - med) > tol]
    label = (lambda k: f"{names[k]} at {d[k]:.4g} mm") if names is not None else (lambda k: f"slice {k + 1} at {d[k]:.4g} mm")
    parts = [f"{diffs[k]:.4g} mm between {label(k)} and {label(k + 1)}" for k in odd[:limit]]
    more = f" and {len(odd) - limit} more" if len(odd) > limit else ""
    return f"{med:.4g} mm between most slices but {'; '.join(parts)}{more}"


def _affine_lps(ds: Dataset, kvec: np.ndarray | None, origin: np.ndarray | None) -> np.ndarray:
    (dy, dx), _ = _pixel_spacing(ds)
    orient = _orientation(ds)
    r, c = orient if orient is not None else (np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    normal = np.cross(r, c)
    a = np.eye(4)
    a[:3, 0] = r * dx
    a[:3, 1] = c * dy
    a[:3, 2] = kvec if kvec is not None else normal * _slice_thickness(ds)
    if origin is not None:
        a[:3, 3] = origin
    return a


def _float_bits(ds: Dataset) -> int:
    """32 or 64 for Float / Double Float Pixel Data, 0 for integer pixels (read before the pixels are released)."""
    return 64 if 0x7FE00009 in ds else 32 if 0x7FE00008 in ds else 0


def _meta(ds: Dataset, path: Path, fmt: str, affine_lps: np.ndarray, shape: tuple[int, ...], n_files: int,
          modality: str | None, float_bits: int = 0, slice_rescale: list[tuple[float, float]] | None = None,
          extra_info: dict[str, Any] | None = None) -> dict[str, Any]:
    slope, intercept = (1.0, 0.0)
    rescale = _rescale(ds, 0)
    if rescale is not None:
        slope, intercept = rescale
    elif "ModalityLUTSequence" not in ds:
        slope = _number(ds.get("RescaleSlope"), 1.0) or 1.0
        intercept = _number(ds.get("RescaleIntercept"), 0.0) or 0.0
    _, source = _pixel_spacing(ds)
    ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    return build_meta(
        filename=path,
        fmt=fmt,
        modality=modality or _modality(ds),
        affine=_LPS_RAS @ affine_lps,
        shape=shape,
        spacing_source=source,
        bits_stored=int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 0) or 0),
        photometric=_photometric(ds),
        slope=slope,
        intercept=intercept,
        header_json=_header_json(ds),
        source_info={"transfer_syntax": ts, "n_files": n_files, "sop_class": str(ds.get("SOPClassUID", "")),
                     "float_bits": float_bits, **({"slice_rescale": slice_rescale} if slice_rescale else {}),
                     **(extra_info or {})},
    )


def _frame_orientation(ds: Dataset, frame: int) -> np.ndarray | None:
    item = _fg_item(ds, "PlaneOrientationSequence", frame)
    iop = item.get("ImageOrientationPatient") if item is not None else ds.get("ImageOrientationPatient")
    try:
        v = np.asarray([float(x) for x in iop], dtype=np.float64) if iop is not None else None
    except (TypeError, ValueError):
        return None
    return v if v is not None and v.shape == (6,) and np.isfinite(v).all() else None


def _check_frame_orientations(ds: Dataset, path: Path, frames: int) -> None:
    """The frames of a multi-frame file must share one orientation to be one volume (as slices of a series must)."""
    first = _frame_orientation(ds, 0)
    for f in range(1, frames):
        o = _frame_orientation(ds, f)
        if (o is None) != (first is None) or (o is not None and not np.allclose(o, first, atol=1e-3)):
            raise InputError(
                f"{path}: frame {f + 1} has another ImageOrientationPatient than frame 1 (a localiser or a "
                "multi-planar file); its frames are not one volume, split the file by orientation first."
            )


def _read_single(path: Path, modality: str | None) -> tuple[np.ndarray, dict[str, Any]]:
    ds = _dcmread(path, stop_before_pixels=False)
    _check_image_header(ds, path)
    frames = _nframes(ds)
    multiframe = "NumberOfFrames" in ds or "PerFrameFunctionalGroupsSequence" in ds
    kvec, origin = None, _position(ds)
    if multiframe and frames > 1 and "PerFrameFunctionalGroupsSequence" in ds:
        _check_frame_orientations(ds, path, frames)
    if multiframe:
        positions = [_position(ds, f) for f in range(frames)] if "PerFrameFunctionalGroupsSequence" in ds else []
        if positions and all(p is not None for p in positions):
            origin = positions[0]
            if frames > 1:
                orient = _orientation(ds)
                normal = np.cross(*orient) if orient is not None else np.array([0, 0, 1.0])
                _check_uniform(np.array([p @ normal for p in positions]), str(path), "frames")
                kvec = (positions[-1] - positions[0]) / (frames - 1)
    float_bits = _float_bits(ds)
    pixels = _decode(ds, path)  # (frames, rows, cols)
    if frames == 1:
        array = pixels[0].T
    else:
        array = np.transpose(pixels, (2, 1, 0))
    fmt = "dicom_multiframe" if multiframe else "dicom"
    meta = _meta(ds, path, fmt, _affine_lps(ds, kvec, origin), array.shape, 1, modality, float_bits)
    return np.ascontiguousarray(array, dtype=np.float32), meta


def _series_label(uid: str, files: list[Path], ds: Dataset) -> str:
    """A series named without header strings or UIDs (they can carry identifiers): the short hash
    of its SeriesInstanceUID that also names its output (medsr.batch.plan_outputs)."""
    return f"series {hashlib.sha1(uid.encode()).hexdigest()[:8]} ({len(files)} files)"


def _read_series(paths: Sequence[Path], modality: str | None, where: str) -> tuple[np.ndarray, dict[str, Any]]:
    datasets = [(p, _dcmread(p, stop_before_pixels=False)) for p in paths]
    by_uid: dict[str, list[tuple[Path, Dataset]]] = {}
    for p, ds in datasets:
        if str(ds.get("SOPClassUID", "")) == _MEDIA_STORAGE_DIRECTORY:
            continue
        by_uid.setdefault(str(ds.get("SeriesInstanceUID", "") or "<no SeriesInstanceUID>"), []).append((p, ds))
    if len(by_uid) > 1:
        labels = "; ".join(_series_label(u, [p for p, _ in v], v[0][1]) for u, v in sorted(by_uid.items()))
        raise InputError(
            f"{where}: holds {len(by_uid)} DICOM series ({labels}); pass one series at a time "
            "(medsr.io.discover_inputs splits a folder into series)."
        )
    items = next(iter(by_uid.values()), [])
    if not items:
        raise InputError(f"{where}: contains no DICOM images; pass an image file or a folder holding one series.")
    if len(items) == 1:
        return _read_single(items[0][0], modality)
    first_path, first = items[0]
    for p, ds in items:
        _check_image_header(ds, p)
        if _nframes(ds) != 1 or "PerFrameFunctionalGroupsSequence" in ds:
            raise InputError(f"{p}: a multi-frame file inside a series; pass multi-frame files on their own.")
        if _orientation(ds) is None or _position(ds) is None:
            raise InputError(
                f"{p}: no valid ImagePositionPatient/ImageOrientationPatient, so the {len(items)} slices of "
                f"{where} cannot be ordered; pass the files one at a time."
            )
    ref_orient = _orientation(first)
    ref_spacing, _ = _pixel_spacing(first)
    for p, ds in items[1:]:
        problems = []
        for kw in ("Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation"):
            if ds.get(kw) != first.get(kw):
                problems.append(f"{kw} {ds.get(kw)} vs {first.get(kw)}")
        if _photometric(ds) != _photometric(first):
            problems.append(f"PhotometricInterpretation {_photometric(ds)} vs {_photometric(first)}")
        orient = _orientation(ds)
        if orient is None or not (np.allclose(orient[0], ref_orient[0], atol=1e-3)
                                  and np.allclose(orient[1], ref_orient[1], atol=1e-3)):
            problems.append("ImageOrientationPatient differs")
        if not np.allclose(_pixel_spacing(ds)[0], ref_spacing, rtol=1e-3):
            problems.append(f"PixelSpacing {_pixel_spacing(ds)[0]} vs {ref_spacing}")
        if problems:
            raise InputError(
                f"{p}: does not match the first slice {first_path.name} of its series ({'; '.join(problems)}); "
                "a series must be one stack of identical slices, pass the files separately."
            )
    normal = np.cross(*ref_orient)
    positions = np.array([_position(ds) for _, ds in items])
    order = np.argsort(positions @ normal, kind="stable")
    items = [items[i] for i in order]
    positions = positions[order]
    along = positions @ normal
    uneven = _check_uniform(along, where, names=[p.name for p, _ in items], allow_uneven=True)
    rows, cols, n = int(first.Rows), int(first.Columns), len(items)
    if rows * cols * n > MAX_PIXELS:
        raise InputError(
            f"{where}: {n} slices of {cols}x{rows} = {rows * cols * n} pixels exceed medsr's limit of "
            f"{MAX_PIXELS} pixels; split the series first."
        )
    check_memory(where, rows * cols * n, 4)
    volume = np.empty((cols, rows, n), dtype=np.float32)
    float_bits = _float_bits(items[0][1])
    for k, (p, ds) in enumerate(items):
        volume[:, :, k] = _decode(ds, p)[0].T
    kvec = (positions[-1] - positions[0]) / (n - 1)
    first_path, first = items[0]
    rescales = [(_number(ds.get("RescaleSlope"), 1.0) or 1.0, _number(ds.get("RescaleIntercept"), 0.0) or 0.0)
                 for _, ds in items]
    varies = "ModalityLUTSequence" not in first and len(set(rescales)) > 1  # each slice's own, to write it back
    slices = [
        {"file": p.name, "sop_class": str(ds.get("SOPClassUID", "") or ""),
         "sop_instance": str(ds.get("SOPInstanceUID", "") or ""), "position": [float(v) for v in pos]}
        for (p, ds), pos in zip(items, positions)
    ]
    meta = _meta(first, first_path, "dicom_series", _affine_lps(first, kvec, positions[0]), volume.shape, n, modality,
                 float_bits, rescales if varies else None, extra_info={"slices": slices, "uneven": uneven})
    return volume, meta


def dicom_files_in_folder(folder: Path) -> list[Path]:
    """DICOM candidates directly inside ``folder`` (see :func:`medsr.io.discover.is_dicom_candidate`).

    Hidden files and DICOMDIR are skipped.
    """
    out = []
    for p in sorted(Path(folder).iterdir()):
        if p.name.startswith(".") or p.name.upper() == "DICOMDIR" or not p.is_file():
            continue
        if is_dicom_candidate(p):
            out.append(p)
    return out


@quiet_pydicom()
def read_dicom(paths: Sequence[Path], modality: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Read one DICOM file, a folder holding one series, or a list of files of one series.

    Returns:
        (array, meta): float32 array ``(X, Y)`` or ``(X, Y, Z)`` and the meta dict.
    """
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        files = dicom_files_in_folder(folder)
        if not files:
            raise InputError(
                f"{folder}: contains no DICOM files (.dcm/.dicom/.ima or files with the 'DICM' marker); "
                "pass an image file, or a folder holding one DICOM series."
            )
        return _read_series(files, modality, str(folder))
    if len(paths) == 1:
        return _read_single(paths[0], modality)
    if not paths:
        raise InputError("no input files given; pass a file, a folder or a list of DICOM files.")
    return _read_series(paths, modality, f"the {len(paths)} files starting with {paths[0]}")


# --------------------------------------------------------------------------- writing


def _ds_value(x: float) -> str:
    """A decimal string (DS) of at most 16 characters."""
    x = float(x)
    if abs(x) < 1e-9:
        return "0"
    for prec in range(10, 0, -1):
        s = f"{x:.{prec}g}"
        if len(s) <= 16:
            return s
    return f"{x:.6e}"


class _Encoding:
    """The input's stored representation and its inverse Modality LUT."""

    def __init__(self, hdr: Dataset, target: Path, float_bits: int = 0):
        self.target = target
        self.float_bits = int(float_bits or 0)
        self.monochrome1 = _photometric(hdr) == "MONOCHROME1"
        if self.float_bits:  # Float / Double Float Pixel Data: physical values stored as they are
            self.bits_allocated = self.float_bits
            self.dtype = np.dtype(f"<f{self.float_bits // 8}")
            self.lut = None
            return
        self.bits_allocated = int(hdr.get("BitsAllocated", 16) or 16)
        if self.bits_allocated not in (8, 16, 32):
            raise OutputError(f"{target}: cannot write BitsAllocated={self.bits_allocated}; write NIfTI instead.")
        self.signed = int(hdr.get("PixelRepresentation", 0) or 0) == 1
        self.lo, self.hi = _stored_range(hdr)
        self.dtype = np.dtype(f"<{'i' if self.signed else 'u'}{self.bits_allocated // 8}")
        self.monochrome1 = _photometric(hdr) == "MONOCHROME1"
        self.lut: tuple[int, np.ndarray] | None = None
        if "ModalityLUTSequence" in hdr and len(hdr.ModalityLUTSequence):
            item = hdr.ModalityLUTSequence[0]
            n_entries, first, nbits = (int(v) for v in item.LUTDescriptor)
            data = item.LUTData
            if isinstance(data, bytes):
                data = np.frombuffer(data, dtype="<u2" if nbits > 8 else "u1")
            lut = np.asarray(data, dtype=np.float64).ravel()
            if lut.size < 2 or np.any(np.diff(lut) < 0):
                raise OutputError(
                    f"{target}: the input's Modality LUT is not monotonic and cannot be inverted; write NIfTI instead."
                )
            self.lut = (first, lut)
        self.slope = float(hdr.get("RescaleSlope", 1) or 1)
        self.intercept = float(hdr.get("RescaleIntercept", 0) or 0)
        if not np.isfinite(self.slope) or self.slope == 0 or not np.isfinite(self.intercept):
            raise OutputError(
                f"{target}: the input's RescaleSlope/Intercept ({self.slope}, {self.intercept}) cannot be inverted; "
                "write NIfTI instead."
            )

    def to_stored(self, values: np.ndarray, rescale: tuple[float, float] | None = None) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            raise OutputError(f"{self.target}: the image contains NaN or infinite values; nothing was written.")
        if self.float_bits:
            return (-values if self.monochrome1 else values).astype(self.dtype)
        if self.lut is not None and rescale is None:
            first, lut = self.lut
            idx = np.clip(np.searchsorted(lut, values), 1, lut.size - 1)
            idx = np.where(np.abs(values - lut[idx - 1]) <= np.abs(lut[idx] - values), idx - 1, idx)
            stored = (idx + first).astype(np.float64)
        else:
            slope, intercept = rescale if rescale is not None else (self.slope, self.intercept)
            stored = np.rint((values - intercept) / slope)
        stored = np.clip(stored, self.lo, self.hi)
        if self.monochrome1:
            stored = (self.lo + self.hi) - stored
        return stored.astype(self.dtype)


_UNPAIRED_BODY_PARTS = frozenset({
    "HEAD", "BRAIN", "SKULL", "NECK", "CHEST", "THORAX", "ABDOMEN", "PELVIS", "SPINE", "CSPINE", "TSPINE",
    "LSPINE", "SSPINE", "HEART", "WHOLEBODY", "CHESTABDOMEN", "ABDOMENPELVIS", "CHESTABDPELVIS", "HEADNECK",
})
_VR_PATTERNS = {
    "DA": re.compile(r"^(\d{8}|\d{4}\.\d{2}\.\d{2})$"),
    "TM": re.compile(r"^\d{2}(:?\d{2}(:?\d{2}(\.\d{1,6})?)?)?$"),
    "DT": re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$"),
    "AS": re.compile(r"^\d{3}[DWMY]$"),
}


def _drop_and_repair(ds: Dataset) -> None:
    """Remove what no longer describes the new pixels; repair what dciodvfy rejects in common inputs."""
    for tag in list(ds.keys()):
        group, element = tag.group, tag.element
        if element == 0 or (0x6000 <= group <= 0x60FF or 0x5000 <= group <= 0x50FF) and group % 2 == 0:
            del ds[tag]
    for kw in _DROP_KEYWORDS:
        if kw in ds:
            delattr(ds, kw)
    for kw in ("PixelSpacing", "ImagerPixelSpacing"):
        if kw in ds and _valid_pair(ds.get(kw)) is None:
            delattr(ds, kw)
    for elem in list(ds):
        if elem.VR in _VR_PATTERNS and isinstance(elem.value, str) and elem.value:
            if not _VR_PATTERNS[elem.VR].match(elem.value.strip()):
                ds[elem.tag].value = ""  # e.g. '***' placeholders of an anonymiser
        if elem.VR != "SQ" or elem.tag in (0x52009229, 0x52009230):
            continue
        items = list(elem.value)
        kept = [
            it for it in items
            if not (("ReferencedSOPInstanceUID" in it) ^ ("ReferencedSOPClassUID" in it))
        ]
        if len(kept) != len(items):
            if kept:
                ds[elem.tag].value = DicomSequence(kept)
            else:
                del ds[elem.tag]
    enhanced = "SharedFunctionalGroupsSequence" in ds
    body_part = str(ds.get("BodyPartExamined", "") or "").strip().upper()
    if "Laterality" in ds and not ds.Laterality and body_part in _UNPAIRED_BODY_PARTS:
        del ds.Laterality  # an empty Laterality is only allowed for paired body parts
    elif "Laterality" not in ds and body_part not in _UNPAIRED_BODY_PARTS and not enhanced and (
        "ImageLaterality" not in ds
    ):
        ds.Laterality = ""  # Type 2C: unknown (empty) rather than missing
    if "PatientOrientation" not in ds and "ImageOrientationPatient" not in ds and not enhanced:
        ds.PatientOrientation = ""  # Type 2C when there is no patient-based orientation
    if "PixelAspectRatio" in ds:
        try:
            ratio = [int(v) for v in ds.PixelAspectRatio]
        except (TypeError, ValueError):
            ratio = []
        if "PixelSpacing" in ds or len(ratio) != 2 or ratio[0] == ratio[1]:
            del ds.PixelAspectRatio  # not allowed with PixelSpacing, nor when 1:1
    if str(ds.get("PatientIdentityRemoved", "")).upper() == "YES" and not (
        "DeidentificationMethod" in ds or "DeidentificationMethodCodeSequence" in ds
    ):
        ds.DeidentificationMethod = "not recorded in the source image"


def _write_dataset(ds: Dataset, path: Path, final: Path) -> None:
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    fm.ImplementationVersionName = f"MEDSR_{medsr.__version__}"[:16]
    ds.file_meta = fm
    ds.preamble = b"\0" * 128
    try:
        try:
            pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
        except TypeError as e:  # pragma: no cover - pydicom 2.x has no enforce_file_format
            if "enforce_file_format" not in str(e):
                raise
            ds.is_little_endian, ds.is_implicit_VR = True, False
            pydicom.dcmwrite(str(path), ds, write_like_original=False)
    except OSError:
        raise
    except Exception as e:  # a header value pydicom cannot encode
        raise OutputError(
            f"{final}: cannot encode the derived DICOM header ({_why(e)}); write NIfTI instead."
        ) from e


@quiet_pydicom()
def write_dicom(img: Any, target: Path, final: Path) -> None:
    """Write ``img`` (channel-first MetaTensor) as a derived instance at ``target``.

    ``target`` is the temporary path (a file, or a folder created here for a series);
    ``final`` is only used in messages.
    """
    meta = img.meta
    fmt = meta.get(mk.FORMAT)
    header_json = meta.get(mk.DICOM_HEADER)
    if not isinstance(header_json, str) or not header_json:
        raise OutputError(
            f"{final}: meta[{mk.DICOM_HEADER!r}] holds no DICOM header, so a DICOM cannot be derived; "
            "read the input with medsr.io.load_image, or write NIfTI instead."
        )
    try:
        hdr = Dataset.from_json(header_json)
    except Exception as e:
        raise OutputError(
            f"{final}: meta[{mk.DICOM_HEADER!r}] is not DICOM JSON ({_why(e)}); nothing was written."
        ) from e
    if not str(hdr.get("SOPClassUID", "") or "").strip():
        raise OutputError(f"{final}: the source header has no SOPClassUID; write NIfTI instead.")
    data = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    if data.ndim not in (3, 4) or data.shape[0] != 1:
        raise OutputError(
            f"{final}: expected a single-channel image (1, X, Y[, Z]) to write DICOM, got shape {tuple(data.shape)}."
        )
    values = data[0]
    if values.ndim == 2:
        values = values[:, :, None]
    if fmt == "dicom" and values.shape[2] != 1:
        raise OutputError(
            f"{final}: a {values.shape[2]}-slice volume cannot be written as one single-frame DICOM; "
            "set the format to 'dicom_series' or write NIfTI."
        )
    nx, ny, nz = values.shape
    if nx > 65535 or ny > 65535:
        raise OutputError(f"{final}: {nx}x{ny} exceeds DICOM's 65535 rows/columns limit; write NIfTI instead.")
    info = _source_info(meta)
    try:
        float_bits = int(info.get("float_bits") or 0)
        slice_rescale = [(float(a), float(b)) for a, b in info.get("slice_rescale") or []]
    except (TypeError, ValueError):
        float_bits, slice_rescale = 0, []
    enc = _Encoding(hdr, final, float_bits if float_bits in (32, 64) else 0)
    lps = _LPS_RAS @ as_affine4(img.affine)
    dx, dy = float(np.linalg.norm(lps[:3, 0])), float(np.linalg.norm(lps[:3, 1]))
    r, c = lps[:3, 0] / dx, lps[:3, 1] / dy
    normal = np.cross(r, c)
    kvec = lps[:3, 2]
    positions = [lps[:3, 3] + k * kvec for k in range(nz)]
    new_dk = abs(float(kvec @ normal))
    old_dk = None
    if "original_affine" in meta and len(meta.get(mk.SPACING, ())) == 3:
        orig = _LPS_RAS @ as_affine4(meta["original_affine"])
        old_dk = abs(float(orig[:3, 2] @ normal)) or None

    old_ps = _valid_pair(hdr.get("PixelSpacing"))
    old_ips = _valid_pair(hdr.get("ImagerPixelSpacing"))
    old_ipp = _position(hdr)
    try:
        old_loc_value = float(hdr.get("SliceLocation")) if "SliceLocation" in hdr else None
    except (TypeError, ValueError):
        old_loc_value = None
    has_iop = "ImageOrientationPatient" in hdr and _orientation(hdr) is not None
    old_thickness = _valid_float(hdr.get("SliceThickness"))
    spacing_changed = old_dk is not None and abs(new_dk - old_dk) > 1e-6 * max(old_dk, 1e-6)

    src_slices = list(info.get("slices") or []) if fmt == "dicom_series" else []
    uneven = info.get("uneven") if fmt == "dicom_series" else None
    same_slices = bool(src_slices) and len(src_slices) == nz
    if uneven and not same_slices:
        raise OutputError(
            f"{final}: the source slices are unevenly spaced ({uneven}), so {nz} slices cannot be placed on a "
            f"regular grid from {len(src_slices) or 'its'} slices; upscale in-plane only, or fix the series."
        )
    if uneven:  # in-plane only: every slice keeps its own position, moved by the in-plane shift of the origin
        shift = positions[0] - np.asarray(src_slices[0]["position"], dtype=np.float64)
        positions = [np.asarray(sl["position"], dtype=np.float64) + shift for sl in src_slices]
    src = (hdr.get("SOPClassUID"), hdr.get("SOPInstanceUID")) if fmt != "dicom_series" else None

    ds = hdr
    _drop_and_repair(ds)
    derive_series(ds, description=str(meta.get(mk.DERIVATION) or f"medsr {medsr.__version__}"))
    ds.Rows, ds.Columns = ny, nx
    ds.SamplesPerPixel = 1
    if old_ps is not None:
        ds.PixelSpacing = [_ds_value(dy), _ds_value(dx)]
        if old_ips is not None:
            ds.ImagerPixelSpacing = [_ds_value(old_ips[0] * dy / old_ps[0]), _ds_value(old_ips[1] * dx / old_ps[1])]
    elif old_ips is not None:
        ds.ImagerPixelSpacing = [_ds_value(dy), _ds_value(dx)]
    if has_iop:
        ds.ImageOrientationPatient = [_ds_value(v) for v in (*r, *c)]
    if old_ipp is not None and "FrameOfReferenceUID" not in ds:
        ds.FrameOfReferenceUID = generate_uid()
        if "PositionReferenceIndicator" not in ds:
            ds.PositionReferenceIndicator = ""
    if fmt in ("dicom_series", "dicom_multiframe") and spacing_changed and old_thickness is not None:
        ds.SliceThickness = _ds_value(old_thickness * new_dk / old_dk)
    if uneven:
        if "SpacingBetweenSlices" in ds:
            del ds.SpacingBetweenSlices  # not one value for unevenly spaced slices
    elif fmt == "dicom_series" or (fmt == "dicom_multiframe" and "SpacingBetweenSlices" in ds):
        ds.SpacingBetweenSlices = _ds_value(new_dk)

    per_frame_rescale: list[tuple[float, float] | None] = [None] * nz
    if fmt == "dicom_multiframe":
        ds.NumberOfFrames = nz
        per_frame_rescale = _update_functional_groups(ds, hdr_positions=positions, iop=(r, c), spacing=(dy, dx),
                                                      new_dk=new_dk, old_dk=old_dk, final=final)
    elif "NumberOfFrames" in ds:
        ds.NumberOfFrames = 1

    def pixel_bytes(k0: int, k1: int) -> bytes:
        stored = np.empty((k1 - k0, ny, nx), dtype=enc.dtype)
        rows = max(1, _STORED_CHUNK // max(1, nx))  # float64 temporaries of a few rows, not of the whole image
        for k in range(k0, k1):
            for a in range(0, ny, rows):
                stored[k - k0, a : a + rows] = enc.to_stored(values[:, a : a + rows, k].T, per_frame_rescale[k])
        raw = stored.tobytes()
        del stored
        return raw + b"\0" if len(raw) % 2 else raw

    def set_pixels(raw: bytes) -> None:
        if enc.float_bits:  # Float Pixel Data module: no BitsStored/HighBit/PixelRepresentation, no Modality LUT
            for kw in ("BitsStored", "HighBit", "PixelRepresentation", "RescaleSlope", "RescaleIntercept", "RescaleType",
                       "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue"):
                if kw in ds:
                    delattr(ds, kw)
            ds.BitsAllocated = enc.float_bits
            if enc.float_bits == 64:
                ds.DoubleFloatPixelData = raw
            else:
                ds.FloatPixelData = raw
            return
        ds.PixelData = raw
        ds["PixelData"].VR = "OB" if enc.bits_allocated == 8 else "OW"

    if fmt == "dicom_series":
        if not enc.float_bits and enc.lut is None:
            per_frame_rescale = _slice_rescales(values, enc, slice_rescale)
        target.mkdir()
        names = series_slice_names([sl.get("file", "") for sl in src_slices], nz)
        sources = _slice_sources(src_slices, [float(p @ normal) for p in positions], normal)
        mapping = []
        header_rescale = (ds.RescaleSlope, ds.RescaleIntercept) if "RescaleSlope" in ds and "RescaleIntercept" in ds else None
        for k in range(nz):
            if per_frame_rescale[k] is not None:
                ds.RescaleSlope, ds.RescaleIntercept = (_ds_value(v) for v in per_frame_rescale[k])
            elif header_rescale is not None:  # a slice after one with its own rescale: back to the header's
                ds.RescaleSlope, ds.RescaleIntercept = header_rescale
            ds.SOPInstanceUID = generate_uid()
            ds.InstanceNumber = k + 1
            if old_ipp is not None:
                ds.ImagePositionPatient = [_ds_value(v) for v in positions[k]]
                if old_loc_value is not None:
                    ds.SliceLocation = _ds_value(old_loc_value + float((positions[k] - old_ipp) @ normal))
            reference_sources(ds, [(src_slices[i].get("sop_class"), src_slices[i].get("sop_instance")) for i in sources[k]])
            set_pixels(pixel_bytes(k, k + 1))
            _write_dataset(ds, target / names[k], final)
            mapping.append((names[k], " ".join(src_slices[i].get("file", "") for i in sources[k]), k + 1,
                            _ds_value(float(positions[k] @ normal))))
        with open(target / SOURCES_CSV, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "source_files", "instance_number", "position_mm"])
            writer.writerows(mapping)
        return
    ds.SOPInstanceUID = generate_uid()
    if src is not None:
        reference_sources(ds, [src])
    if old_ipp is not None:
        ds.ImagePositionPatient = [_ds_value(v) for v in positions[0]]
        if old_loc_value is not None:
            ds.SliceLocation = _ds_value(old_loc_value + float((positions[0] - old_ipp) @ normal))
    set_pixels(pixel_bytes(0, nz))
    _write_dataset(ds, target, final)


def _slice_rescales(values: np.ndarray, enc: _Encoding, known: list[tuple[float, float]]) -> list[tuple[float, float] | None]:
    """Per-slice (slope, intercept) of a series: the input's own slices' when they differed (same slice count);
    for any slice whose values the header's rescale cannot store (they would be clipped), one that fits its range."""
    nz = values.shape[2]
    out: list[tuple[float, float] | None] = list(known) if len(known) == nz else [None] * nz
    for k in range(nz):
        slope, intercept = out[k] or (enc.slope, enc.intercept)
        lo_v, hi_v = float(values[..., k].min()), float(values[..., k].max())
        stored = sorted(((lo_v - intercept) / slope, (hi_v - intercept) / slope))
        if stored[0] >= enc.lo - 0.5 and stored[1] <= enc.hi + 0.5:
            continue
        span = max(hi_v - lo_v, 1e-6)
        new_slope = float(_ds_value(span / (enc.hi - enc.lo) * (1 + 1e-6)))
        out[k] = (new_slope, float(_ds_value(lo_v - enc.lo * new_slope)))
    return out


SOURCES_CSV = "medsr_sources.csv"
"""Written inside a derived series folder: each output slice, the source file(s) it was made from, its position."""


def series_slice_names(source_files: Sequence[str], n: int) -> list[str]:
    """File names of the ``n`` slices of a derived series.

    With one output slice per source slice, each keeps its source's name (its stem plus
    ``.dcm``; a clash gets ``_2``, ``_3``...), so the user can tell which input each came from;
    otherwise (slices added along the slice axis) they are numbered ``0001.dcm ...``.
    """
    if len(source_files) != n or not all(source_files):
        width = max(4, len(str(n)))
        return [f"{k + 1:0{width}d}.dcm" for k in range(n)]
    names: list[str] = []
    taken: set[str] = {SOURCES_CSV.lower()}
    for name in source_files:
        base = Path(name).name
        stem = base[: -len(Path(base).suffix)] if Path(base).suffix.lower() in DICOM_SUFFIXES else base
        candidate, k = f"{stem}.dcm", 1
        while candidate.lower() in taken:
            k += 1
            candidate = f"{stem}_{k}.dcm"
        taken.add(candidate.lower())
        names.append(candidate)
    return names


def _slice_sources(src_slices: Sequence[dict[str, Any]], out_along: Sequence[float], normal: np.ndarray) -> list[list[int]]:
    """Indices of the source slices each output slice derives from: its own, or the two around it."""
    if not src_slices:
        return [[] for _ in out_along]
    if len(src_slices) == len(out_along):
        return [[k] for k in range(len(out_along))]
    src = np.array([np.asarray(sl["position"], dtype=np.float64) @ normal for sl in src_slices])
    out = []
    for z in out_along:
        below = np.nonzero(src <= z + 1e-6)[0]
        above = np.nonzero(src >= z - 1e-6)[0]
        picks = {int(below[np.argmax(src[below])])} if below.size else set()
        if above.size:
            picks.add(int(above[np.argmin(src[above])]))
        out.append(sorted(picks) or [int(np.argmin(np.abs(src - z)))])
    return out


def _source_info(meta: dict[str, Any]) -> dict[str, Any]:
    try:
        info = json.loads(meta.get(SOURCE_INFO) or "{}")
    except (TypeError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _update_functional_groups(ds: Dataset, *, hdr_positions: list[np.ndarray], iop: tuple[np.ndarray, np.ndarray],
                              spacing: tuple[float, float], new_dk: float, old_dk: float | None,
                              final: Path) -> list[tuple[float, float] | None]:
    """Update enhanced multi-frame functional groups in place; return per-frame (slope, intercept)."""
    nz = len(hdr_positions)
    iop_value = [_ds_value(v) for v in (*iop[0], *iop[1])]
    rescale: list[tuple[float, float] | None] = [None] * nz
    groups: list[Dataset] = []
    if "SharedFunctionalGroupsSequence" in ds and len(ds.SharedFunctionalGroupsSequence):
        groups.append(ds.SharedFunctionalGroupsSequence[0])
    if "PerFrameFunctionalGroupsSequence" in ds:
        per_frame = ds.PerFrameFunctionalGroupsSequence
        if len(per_frame) != nz:
            raise OutputError(
                f"{final}: changing the number of frames ({len(per_frame)} -> {nz}) of an enhanced multi-frame "
                "DICOM is not supported; upscale in-plane only, or write NIfTI."
            )
        for k, item in enumerate(per_frame):
            if "PlanePositionSequence" in item and len(item.PlanePositionSequence):
                item.PlanePositionSequence[0].ImagePositionPatient = [_ds_value(v) for v in hdr_positions[k]]
        groups.extend(per_frame)
    for group in groups:
        for elem in group:
            if elem.VR == "SQ" and elem.keyword.endswith("FrameTypeSequence"):
                for item in elem.value:
                    frame_type = [str(v) for v in (item.get("FrameType") or [])]
                    if frame_type:
                        item.FrameType = ["DERIVED", *frame_type[1:]]
        if "PlaneOrientationSequence" in group and len(group.PlaneOrientationSequence):
            group.PlaneOrientationSequence[0].ImageOrientationPatient = iop_value
        if "PixelMeasuresSequence" in group and len(group.PixelMeasuresSequence):
            pm = group.PixelMeasuresSequence[0]
            if "PixelSpacing" in pm:
                pm.PixelSpacing = [_ds_value(spacing[0]), _ds_value(spacing[1])]
            if "SpacingBetweenSlices" in pm:
                pm.SpacingBetweenSlices = _ds_value(new_dk)
            thick = _valid_float(pm.get("SliceThickness"))
            if thick is not None and old_dk and abs(new_dk - old_dk) > 1e-6 * old_dk:
                pm.SliceThickness = _ds_value(thick * new_dk / old_dk)
    for k in range(nz):
        rescale[k] = _rescale(ds, k)
    return rescale
