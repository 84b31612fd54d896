"""PNG / TIFF / JPEG images: stored values as read, bit depth kept on write.

Array layout ``(X, Y)`` = columns x rows (the transpose of the file's rows x columns), the
affine is the identity (no physical spacing: ``spacing_source == "none"``), as MONAI's
``PILReader``. Colour files whose channels are equal (R = G = B, e.g. greyscale saved as RGB;
within a few levels for JPEG) are read as greyscale. Real colour (dermoscopy, fundus,
endoscopy, pathology tiles, photographs) is read as a channel-first ``(3, X, Y)`` RGB array
with ``meta["photometric_interpretation"] == "RGB"``; medsr upscales it on the luminance
(:mod:`medsr.transforms.colour`) and writes it back as RGB.

Writing: PNG 8/16-bit and TIFF (uint8, uint16, int16 or float32, as the input) are lossless;
a JPEG input is written back as 8-bit JPEG with quality :data:`JPEG_QUALITY`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from medsr.errors import InputError, OutputError

from ._common import MAX_PIXELS, SOURCE_INFO, as_numpy, build_meta, check_declared_size, check_memory

__all__ = ["JPEG_QUALITY", "JPEG_GREY_TOLERANCE", "read_raster", "write_raster"]

JPEG_QUALITY = 95
"""Quality of JPEG outputs (Pillow scale 1-95; 95 is Pillow's highest recommended)."""

JPEG_GREY_TOLERANCE = 8
"""Largest channel difference (grey levels) for which an RGB JPEG still counts as greyscale."""

_KIND_NAMES = {"png": "PNG", "tiff": "TIFF", "jpeg": "JPEG"}
_TIFF_DTYPES = ("uint8", "uint16", "int16", "float32")


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[0][:200]) if text else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _grey_from_channels(rgb: np.ndarray, path: Path, tolerance: int) -> np.ndarray:
    """``rgb``: (rows, cols, 3 or 4). Channel 0 when all colour channels agree, else the (rows, cols, 3) RGB."""
    if rgb.shape[-1] == 4:
        alpha = rgb[..., 3]
        opaque = np.iinfo(alpha.dtype).max if alpha.dtype.kind == "u" else alpha.max()
        if alpha.min() != opaque:
            raise InputError(f"{path}: the image has transparency (alpha channel); flatten it to greyscale first.")
        rgb = rgb[..., :3]
    c = rgb.astype(np.int64)
    spread = max(int(np.abs(c[..., 0] - c[..., 1]).max()), int(np.abs(c[..., 1] - c[..., 2]).max()))
    if spread > tolerance:
        return np.ascontiguousarray(rgb)
    if tolerance == 0:
        return np.ascontiguousarray(rgb[..., 0])
    return np.rint(c.mean(axis=-1)).astype(rgb.dtype)


def _read_pil(path: Path, kind: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h == 0:
                raise InputError(f"{path}: zero-size image; the file is corrupt.")
            if w * h > MAX_PIXELS:
                raise InputError(f"{path}: {w}x{h} pixels exceed medsr's limit of {MAX_PIXELS}; crop it first.")
            samples = 1 if im.mode == "1" else len(im.getbands()) * (2 if ";16" in im.mode else 1)
            check_declared_size(path, w * h * samples // (8 if im.mode == "1" else 1), os.path.getsize(path), 1100,
                                f"{w}x{h} pixels")
            check_memory(path, w * h, samples)
            im.load()
            mode = im.mode
            if mode == "L":
                return np.asarray(im, dtype=np.uint8)
            if mode.startswith("I;16"):
                return np.asarray(im).astype(np.uint16)
            if mode == "I":
                a = np.asarray(im)
                if a.min() < 0 or a.max() > 65535:
                    raise InputError(f"{path}: 32-bit integer pixels are not supported (8 or 16-bit only).")
                return a.astype(np.uint16)
            if mode == "1":
                return np.asarray(im.convert("L"), dtype=np.uint8)
            if mode in ("LA", "La"):
                la = np.asarray(im.convert("LA"))
                if la[..., 1].min() != 255:
                    raise InputError(f"{path}: the image has transparency (alpha channel); flatten it first.")
                return np.ascontiguousarray(la[..., 0])
            tolerance = JPEG_GREY_TOLERANCE if kind == "jpeg" else 0
            has_alpha = mode in ("RGBA", "PA", "RGBa") or "transparency" in im.info
            rgb = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
            return _grey_from_channels(rgb, path, tolerance)
    except InputError:
        raise
    except FileNotFoundError as e:
        raise InputError(f"{path}: file not found; check the path.") from e
    except Image.DecompressionBombError as e:
        raise InputError(f"{path}: the image is too large to decode safely ({_why(e)}); crop it first.") from e
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, EOFError) as e:
        raise InputError(
            f"{path}: cannot decode the {_KIND_NAMES[kind]} image ({_why(e)}); the file is truncated or corrupt."
        ) from e


def _read_tiff(path: Path) -> np.ndarray:
    try:
        with tifffile.TiffFile(path) as tf:
            if not tf.series:
                raise InputError(f"{path}: the TIFF holds no image; the file is corrupt.")
            series = tf.series[0]
            shape = tuple(int(s) for s in series.shape)
            if int(np.prod(shape)) == 0:
                raise InputError(f"{path}: zero-size image; the file is corrupt.")
            samples = shape[-1] if len(shape) >= 3 and shape[-1] in (3, 4) else 1
            if int(np.prod(shape, dtype=object)) // samples > MAX_PIXELS:
                raise InputError(f"{path}: {shape} exceeds medsr's limit of {MAX_PIXELS} pixels; crop it first.")
            declared = int(np.prod(shape, dtype=object)) * np.dtype(series.dtype).itemsize
            check_declared_size(path, declared, os.path.getsize(path), 5000, f"an image of shape {shape}")
            check_memory(path, int(np.prod(shape, dtype=object)) // samples, samples * np.dtype(series.dtype).itemsize)
            arr = np.asarray(series.asarray())
    except InputError:
        raise
    except FileNotFoundError as e:
        raise InputError(f"{path}: file not found; check the path.") from e
    except Exception as e:
        raise InputError(f"{path}: cannot decode the TIFF image ({_why(e)}); the file is truncated or corrupt.") from e
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = _grey_from_channels(arr, path, 0)
    if arr.ndim != 2 and not (arr.ndim == 3 and arr.shape[-1] == 3):
        raise InputError(f"{path}: a multi-page TIFF of shape {arr.shape}; medsr reads one 2D image per TIFF.")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise InputError(f"{path}: {arr.size} pixels exceed medsr's limit of {MAX_PIXELS}; crop it first.")
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.name not in _TIFF_DTYPES:
        raise InputError(f"{path}: TIFF pixel type {arr.dtype} is not supported ({', '.join(_TIFF_DTYPES)}).")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{path}: the image contains NaN or infinite values; fix or mask them first.")
    return arr


def read_raster(path: Path, kind: str, modality: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a PNG (``kind="png"``), TIFF (``"tiff"``) or JPEG (``"jpeg"``) image.

    Greyscale: an ``(X, Y)`` array. Colour: a channel-first ``(3, X, Y)`` RGB array whose meta
    says ``original_channel_dim = 0`` and photometric interpretation ``"RGB"``.
    """
    arr = _read_tiff(path) if kind == "tiff" else _read_pil(path, kind)
    colour = arr.ndim == 3
    array = np.ascontiguousarray(arr.transpose(2, 1, 0) if colour else arr.T)
    meta = build_meta(
        filename=path,
        fmt=kind,
        modality=modality or "xray",
        affine=np.eye(4),
        shape=array.shape[1:] if colour else array.shape,
        spacing_source="none",
        bits_stored=arr.dtype.itemsize * 8,
        photometric="RGB" if colour else "MONOCHROME2",
        source_info={"dtype": arr.dtype.name},
    )
    if colour:
        meta["original_channel_dim"] = 0
    return array.astype(np.float32), meta


_ENCODE_CHUNK = 1 << 20
"""Pixels encoded at a time (bounds the float64 temporaries to ~8 MB each on a 8192 x 8192 output)."""


def _encode(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` (rows x cols or rows x cols x 3, any float layout) as a C-contiguous ``dtype`` array, rounded and clipped for integers.

    A few rows at a time: the one-shot ``clip(rint(float64))`` of an 8192 x 8192 output
    needed ~1.5 GB of temporaries (peak RSS 2.4 GB for a 4096 x 4096 x2 PNG).
    """
    out = np.empty(values.shape, dtype=dtype)
    rows = max(1, _ENCODE_CHUNK // max(1, values.shape[1]))
    limits = np.iinfo(dtype) if dtype.kind in "iu" else None
    for a in range(0, values.shape[0], rows):
        block = values[a : a + rows].astype(np.float64)
        if limits is not None:
            block = np.clip(np.rint(block), limits.min, limits.max)
        out[a : a + rows] = block
    return out


def write_raster(data: Any, meta: Mapping[str, Any], target: Path, final: Path, kind: str) -> None:
    """Write a 2D greyscale ``(1, X, Y)`` or RGB ``(3, X, Y)`` image in the input's bit depth (round + clip)."""
    data = as_numpy(data)
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3 or data.shape[0] not in (1, 3):
        raise OutputError(
            f"{final}: {_KIND_NAMES[kind]} holds one 2D greyscale (1, X, Y) or RGB (3, X, Y) image, "
            f"got shape {tuple(data.shape)}."
        )
    # rows x cols (greyscale) or rows x cols x 3 (RGB), a view: encoded block by block below
    values = data[0].T if data.shape[0] == 1 else data.transpose(2, 1, 0)
    if not np.isfinite(values).all():
        raise OutputError(f"{final}: the image contains NaN or infinite values; nothing was written.")
    try:
        info = json.loads(meta.get(SOURCE_INFO) or "{}")
    except (AttributeError, TypeError, ValueError):
        info = {}
    dtype = np.dtype(info.get("dtype", "uint8"))
    if kind == "jpeg":
        dtype = np.dtype(np.uint8)
    elif kind == "png" and dtype.name not in ("uint8", "uint16"):
        dtype = np.dtype(np.uint16)
    out = _encode(values, dtype)
    if kind == "tiff":
        tifffile.imwrite(str(target), out, photometric="minisblack" if out.ndim == 2 else "rgb")
    elif kind == "png":
        Image.fromarray(out).save(str(target), format="PNG")
    else:
        Image.fromarray(out).save(str(target), format="JPEG", quality=JPEG_QUALITY)
