"""Tiled upscaling with a halo, for any predictor: windows, the least-work tile plan, blending ramps.

:func:`tiled_upscale` is shaped like MONAI's ``sliding_window_inference``
(``inputs``, ``predictor``, a window size, a batch of windows per call,
``overlap``) but for an upscaling predictor and with halos cropped:

- **Tiles with a halo, cropped.** A convolutional network whose receptive field
  fits in the halo gives, tile by tile, *exactly* the untiled result: every kept
  output pixel saw the same input pixels. There is nothing to blend, so no seam.
  Tiles have equal windows (shifted, not shrunk, at the border) so they batch.
- **Overlapping tiles, blended** (``overlap > 0``) for networks with a global
  operation: the kept parts overlap and are blended with linear ramps. (MONAI's
  ``SlidingWindowInferer`` blends whole windows, including their borders where
  zero padding corrupts a convolutional network's output: measured max error
  0.45 on EDSR-M, against 1e-6 with halos cropped; see docs/performance.md.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from medsr.errors import UsageError

__all__ = ["tile_windows", "axis_tiles", "least_work_tiles", "blend_tile", "tiled_upscale"]


def tile_windows(size: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Split one axis of length ``size`` into equal windows of ``min(size, tile + 2 * halo)``.

    Returns ``(window_start, window_stop, keep_start, keep_stop)`` per tile, in input
    coordinates: the network sees ``[window_start, window_stop)`` and only
    ``[keep_start, keep_stop)`` of its output is kept. Windows are shifted
    (not shrunk) at the image border so every window has the same size and tiles
    can be batched; kept parts tile the axis exactly once.
    """
    if size <= 0 or tile <= 0 or halo < 0:
        raise UsageError(f"tiling needs size > 0, tile > 0, halo >= 0; got {size}, {tile}, {halo}.")
    width = min(size, tile + 2 * halo)
    out = []
    for keep_start in range(0, size, tile):
        keep_stop = min(size, keep_start + tile)
        start = min(max(0, keep_start - halo), size - width)
        out.append((start, start + width, keep_start, keep_stop))
    return out


def axis_tiles(
    size: int, tile: int, halo: int, overlap: int, scale: int
) -> list[tuple[tuple[int, int, int, int], torch.Tensor | None]]:
    """:func:`tile_windows` along one axis, with kept parts overlapping by ``overlap`` and their HR blend ramps.

    Without overlap the kept parts partition the axis (weights None). With it,
    the fewest kept parts of ``tile`` pixels that overlap by at least ``overlap``
    are spread evenly from border to border, and each gets a linear ramp over the
    pixels it shares with a neighbour: where only two parts meet (overlap up to
    half a tile) the weights sum to one; the caller normalises anyway.
    """
    if overlap <= 0 or tile >= size:
        return [(w, None) for w in tile_windows(size, tile, halo)]
    overlap = min(overlap, tile - 1)
    parts = max(2, math.ceil((size - overlap) / (tile - overlap)))
    starts = [round(j * (size - tile) / (parts - 1)) for j in range(parts)]
    width = min(size, tile + 2 * halo)
    out = []
    for j, k0 in enumerate(starts):
        k1 = k0 + tile
        start = min(max(0, k0 - halo), size - width)
        hr = torch.arange(k0 * scale, k1 * scale, dtype=torch.float32) + 0.5
        w = torch.ones(tile * scale)
        if j > 0:  # ramp up over the overlap with the previous tile
            left = (starts[j - 1] + tile - k0) * scale
            w = torch.minimum(w, (hr - k0 * scale) / left)
        if j < len(starts) - 1:  # ramp down over the overlap with the next tile
            right = (k1 - starts[j + 1]) * scale
            w = torch.minimum(w, (k1 * scale - hr) / right)
        out.append(((start, start + width, k0, k1), w))
    return out


def least_work_tiles(spatial: Sequence[int], halo: int, max_px: float, min_tile: int = 16) -> tuple[int, ...]:
    """Per-axis tile edges whose windows fit ``max_px`` and recompute the fewest halo pixels.

    Each axis is split into equal parts; among the splits whose window
    (``tile + 2 * halo`` per axis, at most the image) fits, the one with the least
    total window area wins (ties: fewer tiles). On a 1024 x 1024 image that does not
    fit whole, two 1024 x 512 strips (1.08x the pixels) beat four 512 x 512 squares (1.16x).
    """
    def splits(size: int) -> list[tuple[int, int, int]]:  # (tile, parts, window) per distinct tile edge
        seen, out = set(), []
        for parts in range(1, max(1, size // min_tile) + 1):
            tile = math.ceil(size / parts)
            if tile not in seen:
                seen.add(tile)
                out.append((tile, math.ceil(size / tile), min(size, tile + 2 * halo)))
        return out

    def cost(combo: tuple[tuple[int, int, int], ...]) -> tuple[bool, int, int]:
        window, parts = math.prod(w for _, _, w in combo), math.prod(p for _, p, _ in combo)
        return (window > max_px, parts * window if window <= max_px else window, parts)  # else: the smallest

    best = min(_product([splits(int(n)) for n in spatial]), key=cost)
    return tuple(t for t, _, _ in best)


def blend_tile(size: int, core: int, overlap: float) -> int:
    """The tile edge of the fewest tiles of at most ``core`` that cover ``size`` overlapping by ``overlap`` of a tile."""
    for parts in range(1, size + 1):
        tile = math.ceil(size / (parts - (parts - 1) * overlap))
        if tile <= core:
            return min(tile, size)
    return min(core, size)


def _product(per_axis: list[list[Any]]) -> Iterator[tuple[Any, ...]]:
    if not per_axis:
        yield ()
        return
    for head in per_axis[0]:
        for rest in _product(per_axis[1:]):
            yield (head,) + rest


def _windows(
    shape: Sequence[int], tiles: Sequence[int], halo: int, overlaps: Sequence[int], scale: int
) -> Iterator[tuple[tuple[slice, ...], tuple[slice, ...], tuple[slice, ...], tuple[torch.Tensor | None, ...]]]:
    """(input window, output slice of the window's result, output placement, per-axis blend weights) per tile."""
    per_axis = [axis_tiles(n, t, halo, o, scale) for n, t, o in zip(shape, tiles, overlaps)]
    s = scale
    for combo in _product(per_axis):
        win = tuple(slice(a, b) for (a, b, _, _), _ in combo)
        crop = tuple(slice((k0 - a) * s, (k1 - a) * s) for (a, _, k0, k1), _ in combo)
        place = tuple(slice(k0 * s, k1 * s) for (_, _, k0, k1), _ in combo)
        yield win, crop, place, tuple(w for _, w in combo)


def tiled_upscale(
    inputs: torch.Tensor,
    predictor: Callable[[torch.Tensor], torch.Tensor],
    scale: int,
    tile_size: Sequence[int],
    halo: int = 0,
    sw_batch_size: int = 1,
    overlap: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """``predictor`` run over ``inputs`` tile by tile, halos cropped, kept parts placed (or blended); on the CPU.

    Args:
        inputs: ``(N, C, *spatial)`` images (a 2D network's volume: its slices as ``N``).
        predictor: maps a batch of windows ``(B, C, *window)`` to ``(B, C', *window * scale)``.
        scale: the predictor's integer factor along every spatial axis.
        tile_size: kept LR tile edge per spatial axis (the image's size: one window per image).
        halo: LR pixels of context on each side of a tile; exact when the predictor's
            receptive field fits in it.
        sw_batch_size: windows (images x tiles) per predictor call.
        overlap: kept parts of neighbouring tiles overlap by this fraction of a tile and are
            blended with linear ramps (axes that fit one tile get none); 0 partitions exactly.
        progress: called ``(windows done, windows in all)`` after each predictor call.

    Returns:
        ``(N, C', *spatial * scale)`` float32 on the CPU.
    """
    n = inputs.shape[0]
    sp = tuple(inputs.shape[2:])
    tiles = tuple(int(t) for t in tile_size)
    overlaps = [int(round(overlap * t)) if overlap > 0 and t < d else 0 for t, d in zip(tiles, sp)]
    blend = any(overlaps)
    windows = list(_windows(sp, tiles, halo, overlaps, scale))
    jobs = [(i, w) for i in range(n) for w in windows]
    out: torch.Tensor | None = None
    for start in range(0, len(jobs), sw_batch_size):
        chunk = jobs[start : start + sw_batch_size]
        batch = torch.stack([inputs[(i, slice(None)) + w[0]] for i, w in chunk])
        pred = predictor(batch).cpu()
        del batch
        if out is None:
            alloc = torch.zeros if blend else torch.empty
            out = alloc((n, pred.shape[1]) + tuple(d * scale for d in sp), dtype=torch.float32)
        for (i, (_, crop, place, weights)), y in zip(chunk, pred):
            kept = y[(slice(None),) + crop]
            if not blend:
                out[(i, slice(None)) + place] = kept
                continue
            for axis, w in enumerate(weights):  # separable ramps across the overlaps
                if w is not None:
                    kept = kept * w.view((-1,) + (1,) * (len(sp) - 1 - axis))
            out[(i, slice(None)) + place] += kept
        del pred
        if progress is not None:  # slices x tiles done so far
            progress(min(start + sw_batch_size, len(jobs)), len(jobs))
    if out is None:  # no images
        out = torch.empty((0, inputs.shape[1]) + tuple(d * scale for d in sp), dtype=torch.float32)
    if blend:  # divide by the total weight, a product of per-axis sums (one where two tiles meet)
        for axis in range(len(sp)):
            total = torch.zeros(sp[axis] * scale)
            for (_, _, k0, k1), w in axis_tiles(sp[axis], tiles[axis], halo, overlaps[axis], scale):
                total[k0 * scale : k1 * scale] += 1.0 if w is None else w
            out /= total.view((-1,) + (1,) * (len(sp) - 1 - axis))
    return out
