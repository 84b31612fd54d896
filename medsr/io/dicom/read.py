"""Read a DICOM file, a multi-frame file or a series into a float32 array and its meta dict.

A series is one SeriesInstanceUID whose slices are sorted by ImagePositionPatient projected
on the slice normal (cross product of ImageOrientationPatient); its slices must agree in
size, bit depth, orientation and spacing, and share no position. Uneven slice spacing is
recorded (in-plane work needs no regular grid), not refused. A multi-frame file's frames are
the third axis, positioned by its per-frame functional groups and evenly spaced. See
:mod:`medsr.meta` for the array layout and the meta keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medsr.errors import InputError

from .._common import MAX_PIXELS, build_meta, check_memory, quiet_pydicom
from ..discover import is_dicom_candidate
from .decode import _check_image_header, _dcmread, _decode, _float_bits
from .header import (
    _LPS_RAS,
    _affine_lps,
    _fg_item,
    _header_json,
    _modality,
    _nframes,
    _number,
    _orientation,
    _photometric,
    _pixel_spacing,
    _position,
    _rescale,
)

__all__ = ["read_dicom", "dicom_files_in_folder"]

_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


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
