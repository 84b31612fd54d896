"""What DICOMweb and DIMSE transfers share: durable instance files and completeness checks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from medsr.errors import InputError

__all__ = ["NON_IMAGE_MODALITIES", "write_part10", "write_bytes_durably", "check_complete", "instance_name"]

# series of these modalities hold no image to upscale (reports, presentation states, segmentations, RT objects...)
NON_IMAGE_MODALITIES = frozenset({"SR", "PR", "KO", "SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "REG", "DOC", "AU", "ECG", "FID", "PLAN"})


def instance_name(sop_uid: str) -> str:
    """File name of a received instance: a hash of its SOPInstanceUID (stable, reveals nothing)."""
    return hashlib.sha1(sop_uid.encode()).hexdigest()[:20] + ".dcm"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_durably(data: bytes, path: Path) -> Path:
    """Write ``data`` to a temporary file, fsync it, rename it to ``path`` and fsync the folder.

    When this returns the file is on disk under its final name, so a receiver may
    acknowledge it; a crash before leaves at most a ``.*.part`` file, never a torn ``path``.
    """
    tmp = path.parent / f".{path.name}.{os.getpid()}.part"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_part10(ds: Any, folder: Path) -> Path:
    """Save a pydicom dataset received over the network as a Part-10 file in ``folder`` (durably)."""
    from io import BytesIO

    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return write_bytes_durably(buf.getvalue(), folder / instance_name(str(ds.SOPInstanceUID)))


def check_complete(expected: set[str], received: set[str], where: str) -> None:
    """Raise ``InputError`` unless every listed instance arrived (a dropped connection, a partial answer)."""
    missing = len(expected - received)
    if missing:
        raise InputError(
            f"{where} sent {len(received & expected)} of the {len(expected)} instances of a series "
            f"({missing} missing: the connection dropped or the PACS refused some); nothing was upscaled or stored."
        )
