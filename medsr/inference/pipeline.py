"""The physical-units pipeline: an image (or a file, series or folder) in, the upscaled image (or files) out.

:func:`upscale_image` is the whole pipeline for one image: normalise with the
modality's mapping -> upscale -> the new geometry and derivation -> the inverse
mapping back to physical units. :func:`upscale_path` runs it over a file, series
or folder: inputs are read and normalised in a background DataLoader worker and
written by a writer thread while the network runs; under ``torchrun`` each
process takes its own share of the files (see :func:`medsr.inference.runtime.distributed_rank`).

The steps run on plain ``(tensor, meta)`` pairs (:func:`medsr.io.read_image`), so that
``medsr upscale -m bicubic`` never imports MONAI (docs/performance.md, start-up);
:func:`upscale_image` and the MetaTensor helpers below are the same steps at the MONAI boundary.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

import medsr.io
from medsr import __version__
from medsr import meta as mk
from medsr.batch import ItemProgress, discover, errors_folder, plan_outputs, run_batch
from medsr.errors import InputError
from medsr.inference.runtime import distributed_rank
from medsr.inference.upscalers import NetworkUpscaler, Upscaler
from medsr.io import uneven_slices
from medsr.io._common import expect_output
from medsr.geometry import resized_like, resized_meta
from medsr.transforms.colour import upscale_rgb
from medsr.transforms.mapping import (
    DEFAULT_CT_WINDOW,
    denormalise_data,
    denormalise_image,
    normalise_image,
    without_mapping,
)
from medsr.typing import PathLike, is_meta_tensor

Pair = tuple[torch.Tensor, dict[str, Any]]
"""An image as a channel-first tensor and its meta dict (:func:`medsr.io.read_image`)."""

__all__ = [
    "INVERT_CHUNK",
    "normalise",
    "derived_image",
    "to_physical",
    "upscale_image",
    "upscale_normalised",
    "upscale_pair",
    "physical_pair",
    "upscale_path",
    "describe",
]


def normalise(img: Any, ct_window: tuple[float, float]) -> Any:
    """``img`` mapped to [0, 1] with its modality's recorded, invertible mapping (``ModalityNormalize``)."""
    from medsr.transforms.intensity import ModalityNormalize  # a MetaTensor: MONAI is already imported

    return ModalityNormalize(ct_window=ct_window)(img)


def _factors(before: Sequence[int], after: Sequence[int]) -> list[float]:
    return [after[i] / before[i] for i in range(1, len(after))]


def _derivation(upscaler: Upscaler) -> str:
    return f"medsr {__version__} {upscaler.name} x{upscaler.scale}"


def derived_image(norm: Any, up: torch.Tensor, upscaler: Upscaler) -> Any:
    """``up`` as a normalised MetaTensor with the geometry and derivation of the upscaled image."""
    if not is_meta_tensor(norm):
        return up
    return resized_like(norm, up, _factors(norm.shape, up.shape), _derivation(upscaler))


def _upscaled_data(x: torch.Tensor, meta: dict[str, Any], upscaler: Upscaler) -> torch.Tensor:
    """RGB images (``meta["photometric_interpretation"] == "RGB"``): Y by ``upscaler``, Cb/Cr bicubic."""
    if meta.get(mk.PHOTOMETRIC) == "RGB" and x.shape[0] == 3:
        return upscale_rgb(x, upscaler, upscaler.scale)
    return upscaler(x)


def upscale_pair(data: torch.Tensor, meta: dict[str, Any], upscaler: Upscaler) -> Pair:
    """A normalised ``(tensor, meta)`` image upscaled, with the new geometry and derivation (still normalised)."""
    up = _upscaled_data(data, meta, upscaler)
    return up, resized_meta(meta, tuple(up.shape), _factors(data.shape, up.shape), _derivation(upscaler))


INVERT_CHUNK = 1 << 22
"""Voxels per slab when mapping a large image back to physical units (bounds float64 temporaries to 32 MB)."""


def physical_pair(data: torch.Tensor, meta: dict[str, Any]) -> Pair:
    """The inverse mapping in slabs along the first spatial axis, in place: no full-size float64 copies.

    On an 8192 x 8192 output the one-shot inverse needs ~1 GB of temporaries;
    slab by slab it needs 32 MB and the result reuses ``data``'s storage.
    """
    low, high = meta.get(mk.NORM_LOW), meta.get(mk.NORM_HIGH)
    if data.numel() <= INVERT_CHUNK or low is None or high is None:
        return denormalise_image(data, meta)
    if torch.as_tensor(low).numel() > 1 or torch.as_tensor(high).numel() > 1:  # per-sample (batched) mapping
        return denormalise_image(data, meta)
    if data.dtype != torch.float32 or not data.is_contiguous():
        data = data.float().contiguous()
    rows = max(1, INVERT_CHUNK // max(1, data[:, :1].numel()))
    with torch.inference_mode(data.is_inference()):  # a network's output is an inference tensor
        for a in range(0, data.shape[1], rows):
            data[:, a : a + rows] = denormalise_data(data[:, a : a + rows], low, high)
    return data, without_mapping(meta)


def to_physical(out: Any) -> Any:
    """A normalised MetaTensor back in physical units (:func:`physical_pair`, at the MONAI boundary)."""
    from medsr.transforms.intensity import InvertModalityNormalize  # a MetaTensor: MONAI is already imported

    if not is_meta_tensor(out) or mk.NORM_LOW not in out.meta:
        return InvertModalityNormalize()(out)
    data, meta = physical_pair(out.as_tensor(), out.meta)
    res = type(out)(data, meta=meta, applied_operations=list(out.applied_operations))
    res.is_batch = out.is_batch
    return res


def upscale_image(img: Any, upscaler: Upscaler, *, ct_window: tuple[float, float] = DEFAULT_CT_WINDOW) -> Any:
    """Upscale a physical-units ``MetaTensor`` from ``medsr.io.load_image`` in-plane.

    Normalises with the modality's mapping, runs ``upscaler``, maps back to
    physical units exactly, and returns a ``MetaTensor`` whose affine, spacing
    and derivation text describe the new image, ready for ``medsr.io.save_image``.
    """
    norm = normalise(img, ct_window)
    del img  # the caller's reference may be the last one
    out = upscale_normalised(norm, upscaler)
    del norm  # the input's memory is free before the output is mapped back
    return to_physical(out)


def upscale_normalised(norm: Any, upscaler: Upscaler) -> Any:
    """A normalised image upscaled, as a MetaTensor with the new geometry (still normalised); see :func:`upscale_pair`."""
    x = norm.as_tensor() if hasattr(norm, "as_tensor") else norm
    return derived_image(norm, _upscaled_data(x, getattr(norm, "meta", {}), upscaler), upscaler)


def _read_normalised(item: Any, ct_window: tuple[float, float]) -> Pair:
    data, meta = medsr.io.read_image(item.files if item.kind == "series" else item.path)
    return normalise_image(data, meta, ct_window=ct_window)


class _LoadSet(torch.utils.data.Dataset):
    """Item ``k`` -> ``(k, normalised image, None)`` or ``(k, None, the exception)``: errors travel, they do not stop the loader."""

    def __init__(self, items: Sequence[Any], ct_window: tuple[float, float]) -> None:
        self.items = list(items)
        self.ct_window = ct_window

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[int, Any, BaseException | None]:
        item = self.items[k]
        try:
            return k, _read_normalised(item, self.ct_window), None
        except Exception as err:  # re-raised in the main process, where run_batch reports it
            try:
                pickle.dumps(err)
            except Exception:
                err = RuntimeError(f"{type(err).__name__}: {err}")
            return k, None, err


class _Prefetcher:
    """Reads and normalises the next inputs in a background DataLoader worker, in order."""

    def __init__(self, items: Sequence[Any], ct_window: tuple[float, float], workers: int = 1) -> None:
        self.data = _LoadSet(items, ct_window)
        self.index = {id(item): k for k, item in enumerate(items)}
        self.workers = workers
        self._it: Iterator[Any] | None = None

    def get(self, item: Any) -> Any:
        k = self.index.get(id(item))
        if k is None:  # not in the prefetch order (cannot happen with run_batch's order): read it here
            _, img, err = _LoadSet([item], self.data.ct_window)[0]
        else:
            if self._it is None:
                loader = torch.utils.data.DataLoader(
                    self.data, batch_size=None, shuffle=False, num_workers=self.workers, prefetch_factor=1,
                )
                self._it = iter(loader)
            for idx, img, err in self._it:
                if idx == k:
                    break
            else:  # the loader ran past it (cannot happen with run_batch's order): read it here
                _, img, err = self.data[k]
        if err is not None:
            raise err
        return img

    def close(self) -> None:
        self._it = None  # the DataLoader iterator shuts its worker down when released


def upscale_path(
    input: PathLike,
    output: PathLike | None,
    upscaler: Upscaler,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    verbose: bool = False,
    workers: int = 1,
    ct_window: tuple[float, float] = DEFAULT_CT_WINDOW,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Upscale a file, series or folder of images with ``upscaler``; returns a ``medsr.batch.BatchResult``.

    Outputs are named and placed by :func:`medsr.batch.plan_outputs`; a file that
    cannot be read or written is skipped and listed in ``errors.csv``. With
    several inputs, ``workers`` DataLoader processes (default 1; 0 = none) read and
    normalise the next inputs and a writer thread saves finished outputs while
    the network runs.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the inputs, sorted by path, are split
    ``items[RANK::WORLD_SIZE]``: every process writes its own outputs, each input
    exactly once, and failures go to ``errors.rank<RANK>.csv`` beside the outputs
    (no process group or barrier is needed, so one slow or failing rank never
    blocks the others).
    """
    input = Path(input)
    output = Path(output) if output is not None else None
    items = discover(input, output)
    outputs = plan_outputs(items, input, output, upscaler.scale)
    rank, world = distributed_rank()
    errors_csv = None
    if world > 1:
        errors_csv = errors_folder(outputs) / f"errors.rank{rank}.csv"  # all ranks' outputs: one folder for all files
        order = sorted(range(len(items)), key=lambda k: (str(items[k].path), items[k].series_uid))[rank::world]
        items, outputs = [items[k] for k in order], [outputs[k] for k in order]
    tell = log or _log_line
    who = f"rank {rank}/{world}: " if world > 1 else ""
    pending = [it for it, out in zip(items, outputs) if not (resume and out.exists())]
    pipelined = len(pending) > 1 and workers > 0
    prefetch = _Prefetcher(pending, ct_window, workers) if pipelined else None
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medsr-writer") if pipelined else None

    def write(out_img: Pair, out: Path) -> None:
        medsr.io.write_image(*physical_pair(*out_img), out, overwrite=overwrite)
        if verbose:
            tell(f"medsr: {who}wrote {out}")

    def work(item: Any, out: Path) -> Future | None:
        if prefetch is None:
            norm = _read_normalised(item, ct_window)
        else:
            norm = prefetch.get(item)
        gaps = uneven_slices(norm[1])
        if gaps:
            if getattr(upscaler, "spatial_dims", 2) == 3:
                raise InputError(
                    f"{item.path}: the slices are unevenly spaced ({gaps}) and {upscaler.name} is a 3D network, which "
                    "needs a regular grid; use a 2D model or fix the series."
                )
            tell(f"medsr: warning: {item.path}: the slices are unevenly spaced ({gaps}); each slice is upscaled "
                 "in-plane on its own and keeps its position.")
        out_img = upscale_pair(*norm, upscaler)
        del norm
        if writer is None:
            write(out_img, out)
            return None
        return writer.submit(write, out_img, out)

    tracker = ItemProgress()
    if progress and hasattr(upscaler, "progress"):
        upscaler.progress = tracker
    several = any(it.kind == "series" for it in pending)
    try:
        with expect_output(upscaler.scale**2):  # readers refuse, before decoding, what would not fit in memory
            result = run_batch(
                items, outputs, work, resume=resume, overwrite=overwrite, progress=progress, verbose=verbose,
                description=f"{who}upscale x{upscaler.scale} {upscaler.name}", errors_csv=errors_csv, lock=world == 1,
                units=lambda it: len(it.files), unit="slices" if several else "images", item_progress=tracker,
            )
    finally:
        if getattr(upscaler, "progress", None) is tracker:
            upscaler.progress = None
        if writer is not None:
            writer.shutdown(wait=True)
        if prefetch is not None:
            prefetch.close()
    return result


def _log_line(msg: str) -> None:
    """One line to stderr in one write, so that lines of concurrent ranks never interleave."""
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def describe(upscaler: Upscaler) -> str:
    """One line on how an upscaler runs (for logs and reports)."""
    if isinstance(upscaler, NetworkUpscaler):
        tile = upscaler.tile or "auto"
        batch = upscaler.batch_size or "auto"
        mode = "halo crop (exact)" if not upscaler.blend else f"halo crop + linear blend, overlap {upscaler.overlap}"
        threads = f", {torch.get_num_threads()} threads" if upscaler.device.type == "cpu" else ""
        return (
            f"{upscaler.name} x{upscaler.scale} on {upscaler.device} ({upscaler.engine}){threads}, tile {tile}, halo {upscaler.halo} "
            f"(receptive field {upscaler.receptive_radius}{'' if upscaler.exact else ', not local'}), {mode}, "
            f"batch {batch}, {upscaler.precision}"
        )
    return f"{upscaler.name} x{upscaler.scale}"
