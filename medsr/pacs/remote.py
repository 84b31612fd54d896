"""Upscale from and to a PACS through the same path as local folders.

A remote input is downloaded into a temporary folder (one sub-folder per series),
upscaled by :func:`medsr.inference.upscale_path` exactly as a local series folder
would be (same derived-series rules, so the pixels equal a local run on the same
files), and the derived series are stored to the remote output, one series at a
time. A series is only stored once it is completely downloaded and upscaled: a
PACS that drops the connection mid-series gets an error and no derived series.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medsr.errors import OutputError, UsageError

from .locations import DicomWebLocation, Location, is_remote, parse_location, series_label

__all__ = ["upscale_location", "pull_series", "push_files", "list_remote_series", "check_destination", "derived_series"]


def _say(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def list_remote_series(loc: Location) -> list[str]:
    """The SeriesInstanceUIDs a remote input stands for (one, or every image series of a study)."""
    if isinstance(loc, DicomWebLocation):
        from . import dicomweb

        return dicomweb.list_series(loc)
    from . import dimse

    return dimse.list_series(loc)


def pull_series(loc: Location, series_uid: str, folder: Path) -> int:
    """Download one complete series into ``folder``; on any failure ``folder`` is removed and the error raised."""
    from . import dicomweb, dimse

    try:
        if isinstance(loc, DicomWebLocation):
            return dicomweb.download_series(loc, series_uid, folder)
        return dimse.download_series(loc, series_uid, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def push_files(loc: Location, files: Sequence[Path]) -> int:
    """Store the files of one derived series to a DICOMweb root (STOW-RS) or a DICOM node (C-STORE)."""
    check_destination(loc)
    if not files:
        return 0
    if isinstance(loc, DicomWebLocation):
        from . import dicomweb

        return dicomweb.upload_files(loc, files)
    from . import dimse

    return dimse.store_files(loc, files)


def check_destination(loc: Location) -> None:
    """Raise ``UsageError`` unless ``loc`` can receive derived series (a root or a node, not a study)."""
    if loc.study_uid is None:
        return
    if isinstance(loc, DicomWebLocation):
        raise UsageError("a DICOMweb output is the service root (http(s)://HOST:PORT/ROOT), without /studies/...; "
                         "derived series are stored into their source study.")
    raise UsageError("a dicom:// output is a node, dicom://AET@HOST:PORT, without /studies/....")


def derived_series(out_root: Path) -> list[list[Path]]:
    """The derived series under ``out_root``: the DICOM files of each folder (a single-file output is its own series).

    medsr's own side files (``errors.csv``, a series' ``medsr_sources.csv``) stay local; any other file must be DICOM.
    """
    from medsr.io._common import has_dicom_magic  # deferred: is_remote() runs at CLI start-up; medsr.io pulls in torch and MONAI
    from medsr.io.dicom import SOURCES_CSV  # deferred: as above

    side_files = {"errors.csv", SOURCES_CSV}
    groups: dict[Path, list[Path]] = {}
    for f in sorted(p for p in out_root.rglob("*") if p.is_file() and p.name not in side_files and not p.name.startswith(".")):
        if not has_dicom_magic(f):
            raise OutputError(f"{f.name} is not DICOM; only DICOM images can be stored to a PACS (the input must be DICOM).")
        groups.setdefault(f.parent if f.parent != out_root else f, []).append(f)
    return list(groups.values())


def upscale_location(
    input: str,
    output: str | None,
    upscaler: Any,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    verbose: bool = False,
    log: Callable[[str], None] | None = None,
    run: Callable[..., Any] | None = None,
) -> Any:
    """``medsr upscale`` when the input and/or the output is a PACS URL; returns the ``BatchResult``.

    ``run`` is the local upscale path (default :func:`medsr.inference.upscale_path`),
    called with (input folder, output folder, upscaler, ...). Log lines name series by
    :func:`~medsr.pacs.locations.series_label`, never by UID.
    """
    if run is None:
        from medsr.inference import upscale_path as run  # deferred: as above
    tell = log or _say
    src = parse_location(input) if is_remote(input) else None
    dst = parse_location(output) if output is not None and is_remote(output) else None
    if src is None and dst is None:
        raise UsageError("upscale_location needs a PACS URL as input or output; use upscale_path for local paths.")
    if src is not None and output is None:
        raise UsageError("a PACS input needs -o: a DICOMweb root, a dicom://AET@HOST:PORT node or a folder.")
    if dst is not None:
        check_destination(dst)
    with tempfile.TemporaryDirectory(prefix="medsr-pacs-") as tmp:
        if src is not None:
            in_root = Path(tmp) / "in"
            for uid in list_remote_series(src):
                n = pull_series(src, uid, in_root / series_label(uid))
                tell(f"medsr: pulled {series_label(uid)} ({n} instances) from {src.host}")
        else:
            in_root = Path(input)
            if not in_root.exists():
                raise UsageError(f"input {input} does not exist.")
        out_root = Path(tmp) / "out" if dst is not None else Path(output)  # type: ignore[arg-type]
        result = run(in_root, out_root, upscaler, overwrite=overwrite, resume=resume, progress=progress, verbose=verbose)
        if dst is None:
            return result
        series = derived_series(out_root)
        stored = 0
        for files in series:
            try:
                stored += push_files(dst, files)
            except OutputError as err:
                raise OutputError(f"{err} {stored} derived instances of earlier series were stored before this.") from None
        tell(f"medsr: stored {len(series)} derived series ({stored} instances) to {dst.host}")
    return result
