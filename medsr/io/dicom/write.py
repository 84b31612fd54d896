"""Write an (upscaled) image as a derived DICOM instance, multi-frame file or series folder.

A derived instance passes ``dciodvfy``: new Series/SOP Instance UIDs and the PS3.3
provenance of :mod:`.provenance`, updated Rows/Columns, spacing, orientation, positions and
functional groups, pixel data in the input's stored representation (:mod:`.encode`), written
as Explicit VR Little Endian. What no longer describes the new pixels is dropped (group
lengths, overlays, curves, icon image, smallest/largest pixel values, derivation codes of
the source) and what the validator rejects in common inputs is repaired (zero pixel spacing,
SOP references without a SOP Class UID, a missing Frame of Reference UID). A series is
written as a folder: one file per slice, named after its source slice
(:func:`series_slice_names`), and :data:`SOURCES_CSV` mapping each to its source files.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

import medsr
from medsr import meta as mk
from medsr.errors import OutputError

from .._common import DICOM_SUFFIXES, as_affine4, as_numpy, quiet_pydicom
from .encode import Encoding, slice_rescales
from .header import (
    _LPS_RAS,
    _STORED_CHUNK,
    _ds_value,
    _orientation,
    _position,
    _rescale,
    _source_info,
    _valid_float,
    _valid_pair,
    _why,
)
from .provenance import derive_series, reference_sources

try:  # pydicom >= 2.x
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID
except ImportError:  # pragma: no cover
    PYDICOM_IMPLEMENTATION_UID = UID("1.2.826.0.1.3680043.8.498.1")

__all__ = ["SOURCES_CSV", "series_slice_names", "write_dicom"]

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
def write_dicom(data: Any, meta: Mapping[str, Any], target: Path, final: Path) -> None:
    """Write ``data`` (channel-first) with ``meta`` (as from ``medsr.io.read_image``) as a derived instance at ``target``.

    ``target`` is the temporary path (a file, or a folder created here for a series);
    ``final`` is only used in messages.
    """
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
    data = as_numpy(data)
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
    enc = Encoding(hdr, final, float_bits if float_bits in (32, 64) else 0)
    lps = _LPS_RAS @ as_affine4(meta["affine"])
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
            per_frame_rescale = slice_rescales(values, enc, slice_rescale)
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
