"""Parse a DICOM file, refuse what medsr cannot read, and decode its pixels to physical values.

Files are refused before any pixel is decoded when they carry no pixel data, colour,
1-bit or more than :data:`~medsr.io._common.MAX_PIXELS` pixels, or a header that cannot
describe their pixel data. Decoding inverts MONOCHROME1 in the stored-value domain
(``s' = lo + hi - s`` over the BitsStored range) and applies the Modality LUT with pydicom's
``apply_modality_lut`` (or the enhanced multi-frame Pixel Value Transformation); a VOI LUT
never is applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from medsr.errors import InputError

from .._common import MAX_PIXELS, check_memory, quiet_pydicom
from .header import (
    _PIXEL_TAGS,
    _STORED_CHUNK,
    _fg_item,
    _nframes,
    _number,
    _photometric,
    _rescale,
    _shown,
    _stored_range,
    _why,
)

try:  # pydicom >= 3
    from pydicom.pixels import apply_modality_lut
except ImportError:  # pragma: no cover - pydicom 2.x
    from pydicom.pixel_data_handlers.util import apply_modality_lut

__all__ = ["MAX_FRAMES", "MAX_COMPRESSION_RATIO", "read_dicom_header"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


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


def _float_bits(ds: Dataset) -> int:
    """32 or 64 for Float / Double Float Pixel Data, 0 for integer pixels (read before the pixels are released)."""
    return 64 if 0x7FE00009 in ds else 32 if 0x7FE00008 in ds else 0
