"""NIfTI (.nii, .nii.gz) through nibabel: voxel order and RAS affine as MONAI's NibabelReader."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medsr import meta as mk
from medsr.errors import InputError, OutputError

from ._common import MAX_PIXELS, SOURCE_INFO, as_affine4, as_numpy, build_meta, check_declared_size, check_memory, full_suffix

__all__ = ["CT_MIN_THRESHOLD", "read_nifti", "write_nifti"]

CT_MIN_THRESHOLD = -500.0
"""A NIfTI volume with at least 1% of its voxels below this (HU-like air) is guessed to be CT, otherwise MR."""


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[0][:200]) if text else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _check_stored_size(path: Path, img: Any, declared: int, shape: tuple[int, ...]) -> None:
    """The voxel data the header declares must fit in the file (nibabel allocates it before reading)."""
    try:
        size = os.path.getsize(path)
        offset = int(img.header.get_data_offset())
    except (OSError, TypeError, ValueError, OverflowError) as e:
        raise InputError(f"{path}: unreadable NIfTI header ({_why(e)}); the file is corrupt.") from e
    what = f"{'x'.join(str(s) for s in shape)} voxels"
    if full_suffix(path) == ".nii.gz":
        check_declared_size(path, declared, size, 1100, what)  # deflate expands at most 1032:1
    elif offset + declared > size:
        raise InputError(
            f"{path}: the header declares {what} ({declared} bytes from offset {offset}) but the file holds "
            f"{size} bytes; the file is truncated or corrupt (its header is wrong)."
        )


def read_nifti(path: Path, modality: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a 2D/3D NIfTI volume (trailing singleton dimensions dropped) in physical units.

    The scaling (scl_slope/scl_inter) is applied; the affine is nibabel's best affine
    (sform, else qform), already RAS. The modality is guessed from the values
    (1st percentile < :data:`CT_MIN_THRESHOLD` => ``"ct"``, else ``"mr"``; a few negative
    interpolation artefacts do not count) unless ``modality`` is given.
    """
    try:
        img = nib.load(str(path))
    except FileNotFoundError as e:
        raise InputError(f"{path}: file not found; check the path.") from e
    except Exception as e:
        raise InputError(f"{path}: not a readable NIfTI file ({_why(e)}); check the file or its extension.") from e
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(f"{path}: {type(img).__name__} is not NIfTI; convert it to NIfTI first.")
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        raise InputError(
            f"{path}: a {len(shape)}D NIfTI of shape {shape}; medsr reads one 2D/3D volume, "
            "split it first (e.g. nibabel.funcs.four_to_three or fslsplit)."
        )
    if len(shape) < 2 or any(s == 0 for s in shape):
        raise InputError(f"{path}: zero-size or 1D image of shape {shape}; the file is corrupt.")
    n_voxels = int(np.prod(shape, dtype=object))
    if n_voxels > MAX_PIXELS:
        raise InputError(f"{path}: {n_voxels} voxels exceed medsr's limit of {MAX_PIXELS}; crop it first.")
    dtype = img.get_data_dtype()
    if dtype.fields is not None or dtype.kind not in "iuf":
        raise InputError(f"{path}: voxel type {dtype} (colour or complex) is not supported; medsr reads scalar images.")
    _check_stored_size(path, img, n_voxels * dtype.itemsize, shape)
    check_memory(path, n_voxels, dtype.itemsize)
    try:
        data = img.get_fdata(dtype=np.float32).reshape(shape)
    except Exception as e:
        raise InputError(f"{path}: cannot read the voxel data ({_why(e)}); the file is truncated or corrupt.") from e
    if not np.isfinite(data).all():
        raise InputError(f"{path}: the volume contains NaN or infinite values; fix or mask them before upscaling.")
    affine = np.asarray(img.affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise InputError(
            f"{path}: the header's voxel-to-world transform (sform/qform, pixdim) is not finite; the header is corrupt."
        )
    slope, intercept = img.header.get_slope_inter()
    scaled = slope is not None and (slope != 1 or (intercept or 0) != 0)
    sample = data.ravel()[:: max(1, data.size // 1_000_000)]
    guessed = "ct" if float(np.percentile(sample, 1.0)) < CT_MIN_THRESHOLD else "mr"
    hdr = img.header
    info = {
        "dtype": np.dtype(dtype).newbyteorder("=").name,
        "scaled": bool(scaled),
        "qform_code": int(hdr["qform_code"]),
        "sform_code": int(hdr["sform_code"]),
    }
    meta = build_meta(
        filename=path,
        fmt="nifti",
        modality=modality or guessed,
        affine=affine,
        shape=shape,
        spacing_source="NIfTI",
        bits_stored=np.dtype(dtype).itemsize * 8,
        slope=float(slope) if slope is not None else 1.0,
        intercept=float(intercept) if intercept is not None else 0.0,
        source_info=info,
    )
    return data, meta


_ENCODE_CHUNK = 1 << 20
"""Voxels rounded and clipped at a time when writing integer NIfTI (float64 temporaries of ~8 MB)."""


def write_nifti(data: Any, meta: Mapping[str, Any], target: Path, final: Path) -> None:
    """Write ``data`` (channel-first) with ``meta`` to ``target`` (.nii or .nii.gz) with its affine as qform and sform.

    The input's voxel dtype is kept: integer types are rounded and clipped. An input that
    was stored scaled (scl_slope != 1) is written with a scaling nibabel chooses for the
    new values (close, not bit-exact).
    """
    data = as_numpy(data)
    if data.ndim not in (3, 4) or data.shape[0] != 1:
        raise OutputError(f"{final}: expected a single-channel image (1, X, Y[, Z]), got shape {tuple(data.shape)}.")
    values = data[0]
    if not np.isfinite(values).all():
        raise OutputError(f"{final}: the image contains NaN or infinite values; nothing was written.")
    try:
        info = json.loads(meta.get(SOURCE_INFO) or "{}")
    except (TypeError, ValueError):
        info = {}
    if info.get("uneven") and values.ndim == 3 and values.shape[2] > 1:
        raise OutputError(
            f"{final}: a NIfTI volume needs evenly spaced slices, but the source series has {info['uneven']}; "
            "write DICOM (in-plane upscaling keeps each slice's position), or fix the series."
        )
    dtype = np.dtype(info.get("dtype", "float32"))
    if dtype.kind in "iu" and not info.get("scaled", False):
        limits = np.iinfo(dtype)
        out = np.empty(values.shape, dtype=dtype)
        # a few rows at a time: no float64 copy of the whole volume, nor of one 8192 x 8192 slice (0.5 GB)
        rows = max(1, _ENCODE_CHUNK // max(1, int(np.prod(values.shape[1:]))))
        for a in range(0, values.shape[0], rows):
            out[a : a + rows] = np.clip(np.rint(values[a : a + rows].astype(np.float64)), limits.min, limits.max)
    elif dtype.kind in "iu":
        out = values.astype(np.float64)
    else:
        out = values.astype(dtype if dtype.kind == "f" else np.float32)
    affine = as_affine4(meta["affine"])
    nimg = nib.Nifti1Image(out, affine, dtype=dtype if dtype.kind in "iuf" else np.float32)
    nimg.set_qform(affine, code=int(info.get("qform_code") or 1))
    nimg.set_sform(affine, code=int(info.get("sform_code") or 1))
    nimg.header.set_xyzt_units(xyz="mm")
    descrip = str(meta.get(mk.DERIVATION) or "medsr")[:79]
    nimg.header["descrip"] = descrip.encode("ascii", "replace")
    nib.save(nimg, str(target))
