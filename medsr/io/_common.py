"""Helpers shared by the format modules: suffixes, limits, metadata, atomic writes."""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import ContextDecorator, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from medsr import meta as mk
from medsr.meta import SOURCE_INFO
from medsr.errors import InputError, OutputError, UsageError
from medsr.typing import PathLike

__all__ = [
    "MAX_PIXELS",
    "DEFLATE_SLACK_BYTES",
    "check_declared_size",
    "available_memory",
    "expect_output",
    "check_memory",
    "SOURCE_INFO",
    "DICOM_SUFFIXES",
    "NIFTI_SUFFIXES",
    "RASTER_SUFFIXES",
    "full_suffix",
    "has_dicom_magic",
    "build_meta",
    "atomic_path",
    "as_affine4",
    "uneven_slices",
    "UnexpectedReadError",
    "quiet_pydicom",
]

MAX_PIXELS = 2**30
"""Largest image medsr decodes (pixels, all slices/frames together); refused before allocation."""

DEFLATE_SLACK_BYTES = 64 << 20
"""Declared pixel data up to this size is never refused for being larger than its file could hold."""


def check_declared_size(path: PathLike, declared_bytes: int, stored_bytes: int, max_ratio: float, what: str) -> None:
    """Refuse, before allocating, an image whose header declares more data than its file can hold.

    ``stored_bytes`` (the file or the compressed pixel data) can expand at most ``max_ratio``
    times (deflate's limit is 1032:1); beyond that (plus :data:`DEFLATE_SLACK_BYTES`) the
    header is wrong or the file truncated, and decoding would only allocate a huge buffer to fail.
    """
    if declared_bytes > max_ratio * max(int(stored_bytes), 0) + DEFLATE_SLACK_BYTES:
        raise InputError(
            f"{path}: the header declares {what} ({declared_bytes} bytes of pixels) but the file holds only "
            f"{stored_bytes} bytes; the file is truncated or corrupt (its header is wrong)."
        )


_OUTPUT_FACTOR: ContextVar[int] = ContextVar("medsr_output_factor", default=1)

BYTES_PER_INPUT_PIXEL = 8
"""Besides its stored bytes, each input pixel costs a float32 image and a float32 normalised copy."""

BYTES_PER_OUTPUT_PIXEL = 12
"""Each output pixel costs the float32 network output plus the writer's copy in the stored type (at most
8 bytes: DICOM stored integers and their encoded bytes, a NIfTI/TIFF cast, a PNG's integers) and blocks."""


def available_memory() -> int:
    """Bytes this process can still allocate: the least of Linux's MemAvailable, the cgroup's
    ``memory.max`` minus its use, and ``RLIMIT_AS`` minus the address space already mapped."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        cg = Path("/sys/fs/cgroup")
        top = (cg / "memory.max").read_text().strip()
        if top != "max":
            limits.append(int(top) - int((cg / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        pass
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as f:
                mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            limits.append(soft - mapped)
    except (OSError, ValueError, IndexError):
        pass
    if not limits:
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return 4 << 30
    return max(0, min(limits))


@contextmanager
def expect_output(factor: int) -> Iterator[None]:
    """While active, readers budget for an output ``factor`` times the input's pixels (x2 in-plane: 4).

    Set by ``medsr.inference.upscale_path`` around a batch; :func:`check_memory` uses it. It
    follows the thread's context (also into forked DataLoader workers).
    """
    token = _OUTPUT_FACTOR.set(max(1, int(factor)))
    try:
        yield
    finally:
        _OUTPUT_FACTOR.reset(token)


def check_memory(path: PathLike, pixels: int, stored_bytes: int = 2) -> None:
    """Refuse, before decoding, an image whose processing would need more memory than is available.

    The estimate: ``pixels * (stored_bytes + 8)`` for the input (decoded pixels, float32 image,
    normalised copy) plus ``pixels * factor * 12`` for the output of the planned upscaling
    (:func:`expect_output`), so a small file that declares a large image fails with one line
    instead of being ended by the OOM killer.
    """
    factor = _OUTPUT_FACTOR.get()
    need = int(pixels) * (int(stored_bytes) + BYTES_PER_INPUT_PIXEL) + int(pixels) * factor * BYTES_PER_OUTPUT_PIXEL
    if need <= 64 << 20:  # small images: never worth reading /proc
        return
    avail = available_memory()
    if need > avail:
        what = f"to upscale it ({factor}x the pixels out)" if factor > 1 else "to read it"
        raise InputError(
            f"{path}: {pixels} pixels need about {need / 2**30:.1f} GiB of memory {what}, but only "
            f"{avail / 2**30:.1f} GiB are available; crop or split the image, or use a machine with more memory."
        )


class UnexpectedReadError(InputError):
    """An ``InputError`` from the readers' last-resort net: a decoding library failed in a way the
    reader does not check for. Users see one line like any ``InputError``; the fuzz tests
    (tests/fuzz) treat it as a finding to turn into a specific check."""


class _QuietPydicom(ContextDecorator):
    """Turn off pydicom's value validation while medsr reads or writes DICOM (thread-safe, re-entrant).

    Its warnings quote the offending value, which can be a patient's name or birth date
    (``Invalid value for VR DA: '03.02.1947'``): medsr keeps such values out of logs.
    medsr validates what it uses itself; the setting is restored when the last user leaves.
    """

    _lock = threading.Lock()
    _depth = 0
    _saved: tuple[Any, Any] | None = None

    def __enter__(self) -> _QuietPydicom:
        from pydicom import config

        with _QuietPydicom._lock:
            if _QuietPydicom._depth == 0:
                s = config.settings
                _QuietPydicom._saved = (s.reading_validation_mode, s.writing_validation_mode)
                s.reading_validation_mode = config.IGNORE
                s.writing_validation_mode = config.IGNORE
            _QuietPydicom._depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        from pydicom import config

        with _QuietPydicom._lock:
            _QuietPydicom._depth -= 1
            if _QuietPydicom._depth == 0 and _QuietPydicom._saved is not None:
                config.settings.reading_validation_mode, config.settings.writing_validation_mode = _QuietPydicom._saved
                _QuietPydicom._saved = None


quiet_pydicom = _QuietPydicom
"""``with quiet_pydicom():`` / ``@quiet_pydicom()``: no pydicom value-validation warnings (they can quote PHI)."""


DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".ima")
NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")
RASTER_SUFFIXES: dict[str, str] = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".jpg": "jpeg", ".jpeg": "jpeg"}


def full_suffix(path: PathLike) -> str:
    """Lower-case suffix of ``path``; ``.nii.gz`` counts as one suffix."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def has_dicom_magic(path: PathLike) -> bool:
    """True when ``path`` is a file with the ``DICM`` marker at byte 128 (DICOM Part 10)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def build_meta(
    *,
    filename: PathLike,
    fmt: str,
    modality: str,
    affine: np.ndarray,
    shape: Sequence[int],
    spacing_source: str,
    bits_stored: int,
    photometric: str = "MONOCHROME2",
    slope: float = 1.0,
    intercept: float = 0.0,
    header_json: str = "",
    source_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The meta dict every reader returns (MONAI reader keys + :mod:`medsr.meta` keys).

    Every value is a str/int/float/tuple/ndarray (never None) so that MONAI's
    ``list_data_collate`` works on it.
    """
    from medsr import geometry  # imports torch, which atomic_path's users (report) need not
    affine = np.asarray(affine, dtype=np.float64)
    return {
        mk.FILENAME: str(filename),
        mk.FORMAT: fmt,
        mk.MODALITY: modality,
        mk.SPACING: geometry.spacing_from_affine(affine, len(shape)),
        mk.SPACING_SOURCE: spacing_source,
        mk.BITS_STORED: int(bits_stored),
        mk.PHOTOMETRIC: str(photometric),
        mk.RESCALE_SLOPE: float(slope),
        mk.RESCALE_INTERCEPT: float(intercept),
        mk.DICOM_HEADER: header_json,
        SOURCE_INFO: json.dumps(source_info or {}, sort_keys=True),
        "affine": affine,
        "original_affine": affine.copy(),
        "spatial_shape": np.asarray(tuple(int(s) for s in shape), dtype=np.int64),
        "original_channel_dim": "no_channel",
        "space": "RAS",
    }


def uneven_slices(meta: Any) -> str | None:
    """Where the slices of a series read with uneven spacing lie (text naming the gaps), else None.

    ``meta``: an image's meta dict (or the image). Such a series can be upscaled in-plane,
    slice by slice, each keeping its position; what needs a regular grid (NIfTI output,
    upscaling along the slice axis, 3D networks) is refused with this text.
    """
    meta = getattr(meta, "meta", meta)
    try:
        info = json.loads(meta.get(SOURCE_INFO) or "{}")
    except (AttributeError, TypeError, ValueError):
        return None
    value = info.get("uneven") if isinstance(info, dict) else None
    return str(value) if value else None


def as_numpy(data: Any) -> np.ndarray:
    """A numpy view of an image's voxels (a CPU tensor shares its memory; no copy for an array)."""
    return data.detach().cpu().numpy() if hasattr(data, "detach") else np.asarray(data)


def as_affine4(affine: Any) -> np.ndarray:
    """A float64 4x4 numpy copy of a 3x3 (2D) or 4x4 affine (numpy or torch)."""
    a = np.array(as_numpy(affine), dtype=np.float64)
    if a.shape == (4, 4):
        return a
    if a.shape == (3, 3):
        out = np.eye(4)
        out[:2, :2] = a[:2, :2]
        out[:2, 3] = a[:2, 2]
        return out
    raise UsageError(f"`affine` must be a 3x3 or 4x4 matrix, got shape {tuple(a.shape)}.")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


NAME_MAX = 255
"""Longest file name (bytes) of common file systems (ext4, xfs, btrfs, tmpfs)."""


def _fit_name(base: str, reserved: int) -> str:
    """``base`` shortened (whole characters) so that it and ``reserved`` more bytes fit in :data:`NAME_MAX`."""
    budget = NAME_MAX - reserved
    raw = base.encode("utf-8", "surrogateescape")
    if len(raw) <= budget:
        return base
    return raw[:budget].decode("utf-8", "ignore") or "medsr"


@contextmanager
def atomic_path(final: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it onto ``final`` on success, delete it on error.

    The temporary name is ``.<name>.<random>.tmp<suffix>`` (``suffix`` = the real one, e.g.
    ``.nii.gz``) so that writers that look at the extension still work. The caller creates
    a file *or* a folder there (a DICOM series); an existing ``final`` is replaced (a folder
    is swapped in with two renames and the old one deleted afterwards). Nothing is created
    by this function itself.

    Example::

        with atomic_path(Path("out/ct_sr2x.nii.gz")) as tmp:
            nib.save(img, tmp)
    """
    final = Path(final)
    suffix = full_suffix(final)
    suffix = final.name[len(final.name) - len(suffix) :] if suffix else ""
    base = final.name[: len(final.name) - len(suffix)] if suffix else final.name
    tmp = final.parent / f".{_fit_name(base, len(suffix.encode()) + 15)}.{secrets.token_hex(4)}.tmp{suffix}"
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"{final}: the writer produced no output; nothing was written.")
        if tmp.is_dir() and final.exists():
            old = final.parent / f".{_fit_name(base, 15)}.{secrets.token_hex(4)}.old"
            os.replace(final, old)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(old, final)
                raise
            _remove(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
