"""Find the images under a path: one item per file, one per multi-slice DICOM series."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pydicom

from medsr.errors import InputError
from medsr.typing import PathLike

from ._common import DICOM_SUFFIXES, NIFTI_SUFFIXES, RASTER_SUFFIXES, full_suffix, has_dicom_magic, quiet_pydicom

__all__ = ["InputItem", "discover_inputs", "is_candidate", "is_dicom_candidate"]

_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_GROUPING_TAGS = [
    "SOPClassUID",
    "SeriesInstanceUID",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "NumberOfFrames",
]


@dataclass(frozen=True)
class InputItem:
    """One thing to process: a file, or the files of one DICOM series.

    Attributes:
        path: the file, or for a series the folder holding it (two series in one folder
            share ``path``; ``series_uid`` tells them apart).
        files: the files to read (one for ``kind == "file"``).
        kind: ``"file"`` or ``"series"``.
        series_uid: SeriesInstanceUID of a series item, ``""`` otherwise.

    ``medsr.io.load_image`` accepts an ``InputItem`` directly.
    """

    path: Path
    files: tuple[Path, ...]
    kind: str
    series_uid: str = ""


def is_dicom_candidate(path: Path) -> bool:
    """A DICOM extension (.dcm .dicom .ima), or any other non-image extension with the DICM marker."""
    suffix = full_suffix(path)
    if suffix in DICOM_SUFFIXES:
        return True
    if suffix in NIFTI_SUFFIXES or suffix in RASTER_SUFFIXES:
        return False
    return has_dicom_magic(path)


def is_candidate(path: Path) -> bool:
    """True for files medsr may read (by extension, or DICOM by its marker)."""
    suffix = full_suffix(path)
    return suffix in NIFTI_SUFFIXES or suffix in RASTER_SUFFIXES or is_dicom_candidate(path)


def _walk(root: Path) -> dict[Path, list[Path]]:
    """Candidate files per directory, recursively; symlinked folders followed once (no loops)."""
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()
    found: dict[Path, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            p = Path(dirpath) / name
            if not p.is_file():
                continue
            real_file = os.path.realpath(p)
            if real_file in seen_files or not is_candidate(p):
                continue
            seen_files.add(real_file)
            found.setdefault(Path(dirpath), []).append(p)
    return found


@quiet_pydicom()
def _series_key(path: Path) -> tuple[str, bool] | None:
    """(SeriesInstanceUID, groupable) from the header; None for a DICOMDIR-like non-image; raises on unreadable."""
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=_GROUPING_TAGS)
    except Exception:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True, specific_tags=_GROUPING_TAGS)
    if str(ds.get("SOPClassUID", "")) == _MEDIA_STORAGE_DIRECTORY:
        return None
    uid = str(ds.get("SeriesInstanceUID", "") or "")
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 1
    groupable = bool(uid) and "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds and frames == 1
    return uid, groupable


def discover_inputs(root: PathLike) -> list[InputItem]:
    """List the images under ``root``.

    A file gives one item. A folder is walked recursively (hidden entries skipped, each
    real folder visited once): candidates are files with a medsr extension (.dcm .dicom
    .ima .nii .nii.gz .png .tif .tiff .jpg .jpeg) or other files with the DICOM ``DICM``
    marker. Single-frame DICOM files in one folder that share a SeriesInstanceUID and carry
    ImagePositionPatient/ImageOrientationPatient become one ``"series"`` item when there are
    two or more of them; everything else is one ``"file"`` item. Only headers are read;
    a candidate whose header cannot be read still becomes an item, so that the caller
    reports it when loading.

    Raises:
        InputError: ``root`` does not exist, or a folder contains no candidate image.

    Example::

        for item in discover_inputs("study/"):
            img = load_image(item)
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"{root}: no such file or folder; check the path.")
    if root.is_file():
        return [InputItem(root, (root,), "file")]
    items: list[InputItem] = []
    for folder, files in _walk(root).items():
        groups: dict[str, list[Path]] = {}
        for p in files:
            if not is_dicom_candidate(p):
                items.append(InputItem(p, (p,), "file"))
                continue
            try:
                key = _series_key(p)
            except Exception:
                items.append(InputItem(p, (p,), "file"))
                continue
            if key is None:
                continue
            uid, groupable = key
            if groupable:
                groups.setdefault(uid, []).append(p)
            else:
                items.append(InputItem(p, (p,), "file"))
        for uid, members in groups.items():
            if len(members) > 1:
                items.append(InputItem(folder, tuple(sorted(members)), "series", uid))
            else:
                items.append(InputItem(members[0], (members[0],), "file"))
    if not items:
        raise InputError(
            f"{root}: contains no images (looked for {', '.join(DICOM_SUFFIXES + NIFTI_SUFFIXES)}, "
            f"{', '.join(RASTER_SUFFIXES)} and DICOM files with the 'DICM' marker); check the folder."
        )
    return sorted(items, key=lambda it: (str(it.path), str(it.files[0])))
