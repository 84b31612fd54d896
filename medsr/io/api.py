"""``load_image`` / ``save_image``: the two calls the rest of medsr uses.

Under them, ``read_image`` / ``write_image`` do the same on a plain ``(tensor, meta)`` pair
without importing MONAI: the command line's interpolation path runs on those
(docs/performance.md, start-up); ``MetaTensor`` is only built at the MONAI boundary.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from medsr import meta as mk
from medsr.errors import MedsrError, OutputError
from medsr.typing import PathLike, is_meta_tensor
from medsr.validation import check_io_modality

from ._common import NIFTI_SUFFIXES, RASTER_SUFFIXES, atomic_path, full_suffix
from .dicom import write_dicom
from .discover import InputItem
from .dispatch import read_any
from .nifti import write_nifti
from .raster import write_raster

if TYPE_CHECKING:
    from monai.data import MetaTensor

__all__ = ["load_image", "save_image", "read_image", "write_image"]

_SUFFIXES = {
    "nifti": NIFTI_SUFFIXES,
    "png": (".png",),
    "tiff": (".tif", ".tiff"),
    "jpeg": (".jpg", ".jpeg"),
}


def load_image(src: PathLike | Sequence[PathLike] | InputItem, *, modality: str | None = None) -> MetaTensor:
    """Read an image into a channel-first float32 ``MetaTensor`` in physical units.

    Args:
        src: a file (DICOM single or multi-frame, .nii/.nii.gz, .png/.tif/.tiff/.jpg/.jpeg),
            a folder holding one DICOM series, a list of the DICOM files of one series, or
            an :class:`~medsr.io.InputItem` from :func:`~medsr.io.discover_inputs`.
        modality: force ``meta["modality"]`` (``"xray"``, ``"ct"``, ``"mr"``, ``"other"``).

    Returns:
        ``(1, X, Y)`` or ``(1, X, Y, Z)`` MetaTensor; ``img.affine`` maps voxels to RAS mm and
        ``img.meta`` holds the keys of :mod:`medsr.meta` (see :mod:`medsr.io`).

    Raises:
        InputError: the input cannot be read as a medical image (the message names the
            file, the problem and the fix).
        UsageError: ``modality`` is not a known value.

    Example::

        ct = load_image("ct_series/")        # HU, (1, 512, 512, 40)
        cxr = load_image("chest.dcm")        # MONOCHROME1 inverted: bone bright
    """
    from monai.data import MetaTensor  # the MONAI boundary (read_image is the MONAI-free reader)

    data, meta = read_image(src, modality=modality)
    return MetaTensor(data, meta=meta)


def read_image(src: PathLike | Sequence[PathLike] | InputItem, *, modality: str | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """:func:`load_image` without MONAI: the channel-first float32 tensor and its meta dict.

    ``meta["affine"]`` is a float64 tensor, as in a ``MetaTensor``; ``MetaTensor(data, meta=meta)``
    of its result is ``load_image(src)`` (the steps of ``monai.transforms.LoadImage(image_only=True,
    ensure_channel_first=True)`` with :class:`~medsr.io.MedsrReader`; tests/io/test_reader.py).
    """
    check_io_modality(modality)
    if isinstance(src, InputItem):
        names = [str(p) for p in src.files] if src.kind == "series" else [str(src.path)]
    elif isinstance(src, (str, os.PathLike)):
        names = [str(src)]
    else:
        names = [str(p) for p in src]
    names = [str(Path(n).expanduser()) for n in names]
    array, meta = read_any([Path(n) for n in names], modality)
    meta[mk.FILENAME] = names[0]
    meta["affine"] = torch.as_tensor(meta["affine"], dtype=torch.float64)
    data = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    channel = meta.get("original_channel_dim")
    if channel == "no_channel":
        data = data[None]
    elif channel is not None and channel != 0:
        data = torch.movedim(data, int(channel), 0)
    return data, meta


def _check_output(meta: dict[str, Any], path: Path, fmt: str, overwrite: bool) -> None:
    suffix = full_suffix(path)
    if fmt in _SUFFIXES and suffix not in _SUFFIXES[fmt]:
        raise OutputError(
            f"{path}: a {fmt} image is written in its input's format and needs the extension "
            f"{' or '.join(_SUFFIXES[fmt])}; change the output name."
        )
    if fmt.startswith("dicom") and (suffix in NIFTI_SUFFIXES or suffix in RASTER_SUFFIXES):
        raise OutputError(f"{path}: a DICOM input is written as DICOM, not {suffix}; change the output name.")
    source = meta.get(mk.FILENAME)
    sources = source if isinstance(source, (list, tuple)) else [source]
    out = path.resolve()
    for src in sources:
        if not src:
            continue
        s = Path(str(src)).expanduser().resolve()
        if out == s or out in s.parents:
            raise OutputError(
                f"{path}: is the input {src} or contains it; choose another output path "
                "(medsr never overwrites inputs)."
            )
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputError(f"{path}: already exists; pass overwrite=True or choose another output path.")
        if fmt == "dicom_series" and not path.is_dir():
            raise OutputError(f"{path}: is a file, but a DICOM series is written as a folder; choose another path.")
        if fmt != "dicom_series" and path.is_dir():
            raise OutputError(f"{path}: is a folder; give the output file's name.")


def save_image(img: MetaTensor, path: PathLike, *, overwrite: bool = False) -> Path:
    """Write ``img`` in the format of its input (``img.meta["medsr_format"]``), atomically.

    The geometry comes from ``img.affine`` and the array shape (so an upscaled image is
    written with its new spacing), the header from ``img.meta``. DICOM: a new derived
    instance in the input's stored representation (see :mod:`medsr.io.dicom`); a
    ``dicom_series`` is written as a folder ``path`` of ``0001.dcm ...``. NIfTI: the input's
    voxel dtype. PNG/TIFF: the input's bit depth; JPEG: quality 95.

    Args:
        img: channel-first MetaTensor, as returned by :func:`load_image` (possibly upscaled).
        path: output file (or folder for a DICOM series); its parent folders are created.
        overwrite: replace an existing output (never the input itself).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OutputError: the output exists (without ``overwrite``), is or contains the input,
            has the wrong extension for the format, or cannot be written. Nothing is left
            behind on failure.
    """
    if not is_meta_tensor(img):
        raise OutputError(
            "`img` must be a MetaTensor from medsr.io.load_image (its meta names the format), "
            f"got {type(img).__name__}."
        )
    return write_image(img.as_tensor(), img.meta, path, overwrite=overwrite)


def write_image(data: torch.Tensor, meta: dict[str, Any], path: PathLike, *, overwrite: bool = False) -> Path:
    """:func:`save_image` without MONAI: ``data`` (channel-first) with ``meta`` as from :func:`read_image`."""
    fmt = meta.get(mk.FORMAT)
    if fmt not in mk.FORMATS:
        raise OutputError(
            f"cannot choose an output format for {path}: meta[{mk.FORMAT!r}] is {fmt!r}, expected one of "
            f"{', '.join(mk.FORMATS)}; read the input with medsr.io.load_image."
        )
    path = Path(path).expanduser()
    _check_output(meta, path, fmt, overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"{path}: cannot create the folder {path.parent} ({e.strerror or e}); check permissions."
        ) from e
    try:
        with atomic_path(path) as tmp:
            if fmt.startswith("dicom"):
                write_dicom(data, meta, tmp, path)
            elif fmt == "nifti":
                write_nifti(data, meta, tmp, path)
            else:
                write_raster(data, meta, tmp, path, fmt)
    except MedsrError:
        raise
    except OSError as e:
        raise OutputError(
            f"{path}: cannot write ({e.strerror or e}); check the folder is writable and has space."
        ) from e
    except ValueError as e:
        raise OutputError(f"{path}: cannot encode the image ({type(e).__name__}: {e}); nothing was written.") from e
    return path
