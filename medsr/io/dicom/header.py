"""DICOM header helpers shared by the reader and the writer.

Modality classes, the header JSON recorded in ``meta[dicom_header]``, and the geometry read
from a header: in-plane spacing (PixelSpacing, else ImagerPixelSpacing, else 1 mm), slice
orientation and position (top level, or the enhanced multi-frame functional groups), slice
thickness, the stored-value range and the per-frame Pixel Value Transformation. Every
helper answers ``None`` (or a documented default) for an absent or invalid value; the
reader and the writer decide what that means.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from .._common import SOURCE_INFO

__all__ = ["XRAY_MODALITIES", "LOSSY_TRANSFER_SYNTAXES"]

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

_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})  # Pixel, Float, Double Float Pixel Data

_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _shown(value: Any, limit: int = 64) -> str:
    """A header value as printable one-line text for a message (control characters escaped, cut to ``limit``)."""
    text = str(value)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = _shown(text[0], 200) if text else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _nframes(ds: Dataset) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError, OverflowError):
        return 1


def _photometric(ds: Dataset) -> str:
    return str(ds.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip().upper()


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


_STORED_CHUNK = 1 << 20
"""Pixels mapped between stored and physical values at a time (bounds float64 temporaries to ~8 MB each)."""


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


def _source_info(meta: dict[str, Any]) -> dict[str, Any]:
    try:
        info = json.loads(meta.get(SOURCE_INFO) or "{}")
    except (TypeError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
