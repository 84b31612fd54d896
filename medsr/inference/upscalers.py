"""Upscalers: what turns a normalised image into an upscaled one (interpolation baselines and networks).

An :class:`Upscaler` maps a normalised, channel-first tensor ``(C, X, Y[, Z])``
in [0, 1] to the same tensor upscaled in-plane (the first two spatial axes) by
``scale``. :class:`InterpolationUpscaler` is the bicubic / Lanczos baseline;
:class:`NetworkUpscaler` runs an SR network (see docs/performance.md for the
measurements behind each choice):

- **Exact tiles** (:func:`medsr.inference.tiling.tiled_upscale`): halo-cropped
  tiles as wide as the network's measured receptive field give exactly the untiled
  result; a 2D network upscales a volume slice by slice, slices and tiles batched
  together. Networks with a global operation (channel attention, transposed
  attention) run whole when they fit the memory budget, and in blended tiles
  otherwise. Whether a network is local, and its receptive field, are measured
  (:func:`medsr.inference.prepare.probe_network`), not declared.
- **Fast paths.** ``torch.inference_mode``, ``channels_last`` (oneDNN's fast
  convolution layout on CPU), the exact rewrites of :func:`medsr.inference.prepare.prepare_network`,
  all physical cores, tile size and batch from available memory
  (:mod:`medsr.inference.runtime`); ``precision="bf16"`` (CPU) / ``"fp16"`` (CUDA)
  autocast on request.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from medsr.errors import UsageError
from medsr.inference import runtime
from medsr.inference.prepare import MAX_HALO, cached_probe, in_channels_of, prepare_network
from medsr.inference.runtime import (
    MMAP_THRESHOLD,
    TRIM_AFTER,
    configure_threads,
    memory_budget,
    release_free_memory,
    resolve_device,
    tune_allocator,
)
from medsr.inference.tiling import blend_tile, least_work_tiles, tiled_upscale
from medsr.ov_engine import OpenVINONetwork, resolve_engine
from medsr.transforms.resample import upsample
from medsr.validation import Precision, check_precision, check_scale

__all__ = [
    "INTERPOLATIONS",
    "PRECISIONS",
    "Upscaler",
    "InterpolationUpscaler",
    "NetworkUpscaler",
]

INTERPOLATIONS = {"bicubic": "cubic", "lanczos": "lanczos3"}
"""Interpolation baselines by CLI name -> ``medsr.transforms.resample`` kernel."""

PRECISIONS = tuple(str(p) for p in Precision)
"""``precision`` values: fp32 (default), bf16 autocast (CPU), fp16 autocast (CUDA)."""


class Upscaler(Protocol):
    """What every upscaling method offers (interpolation or network)."""

    name: str
    scale: int
    is_gan: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale a normalised channel-first ``(C, X, Y[, Z])`` tensor in-plane by ``scale``."""
        ...


@dataclass
class InterpolationUpscaler:
    """Separable interpolation (``bicubic`` as MATLAB ``imresize``, or ``lanczos``) in-plane.

    Args:
        kind: ``"bicubic"`` or ``"lanczos"``.
        scale: integer in-plane factor, 2 or 4.
    """

    kind: str = "bicubic"
    scale: int = 2
    is_gan: bool = False
    device: str | torch.device = "cpu"
    name: str = field(init=False)

    def __post_init__(self) -> None:
        if self.kind not in INTERPOLATIONS:
            raise UsageError(f"`kind` must be one of {sorted(INTERPOLATIONS)}, got {self.kind!r}.")
        self.scale = check_scale(self.scale)
        self.device = resolve_device(self.device)
        self.name = self.kind

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        if self.device.type == "cpu":
            return upsample(x, self.scale, axes=(0, 1), kernel=INTERPOLATIONS[self.kind])
        return upsample(x.to(self.device), self.scale, axes=(0, 1), kernel=INTERPOLATIONS[self.kind]).cpu()


class NetworkUpscaler:
    """Tiled, batched inference of an SR network on CPU or CUDA, fast and bounded in memory.

    Args:
        net: a module mapping ``(N, C, *lr)`` to ``(N, C, *lr * scale)``; a rewritten copy is used
            (see :func:`prepare_network`), ``net`` itself is not changed.
        scale: the network's factor.
        name: what reports call it.
        spatial_dims: the network's spatial dims (2: volumes go slice by slice).
        device: ``"cpu"``, ``"cuda"`` (under ``torchrun``: ``cuda:LOCAL_RANK``) or a ``torch.device``.
        tile: LR tile edge; ``None`` picks tiles from the memory budget (an image that
            fits runs whole, a larger one is split into equal tiles).
        halo: LR pixels of context around each tile of a network with a global operation
            (default ``MAX_HALO``). A local network always gets its measured structural
            receptive field as halo, which makes tiling exact (a bundle's ``halo`` is a hint).
        batch_size: windows (tiles x slices) per forward pass; ``None`` fills the memory budget.
        is_gan: whether the network was trained adversarially (reports flag invented detail).
        precision: ``"fp32"`` (default), ``"bf16"`` (CPU autocast) or ``"fp16"`` (CUDA autocast).
        blend: ``None`` (default) blends overlapping tiles only for networks that are not
            local (global operations); ``False`` never blends (halos are still cropped);
            ``True`` always blends.
        overlap: overlap of neighbouring tiles' kept parts, as a fraction of the tile, when
            blending. Defaults to 0.25.
        memory_budget: bytes of activations one forward pass may use; ``None``: on CPU
            ``min(available RAM / 8, 1.75 GiB - 5 x the float32 output)`` (a 1024 x 1024 x2
            image runs whole, a 4096 x 4096 one in tiles within 2 GB), on CUDA a quarter of
            the free GPU memory.
        engine: what runs the network's forward pass: ``"torch"`` (default; PyTorch, rewritten
            by :func:`prepare_network`), ``"openvino"`` (the network exported once and compiled
            by OpenVINO, f32; :mod:`medsr.ov_engine`) or ``"auto"`` (OpenVINO when it is
            installed and applies, i.e. 2D, CPU, fp32; PyTorch otherwise). Measured side by
            side in docs/performance.md: neither engine is faster on every network and size.

    Example::

        up = NetworkUpscaler(EDSR(scale_factor=2), 2, tile=256)
        y = up(torch.rand(1, 1000, 800))  # (1, 2000, 1600), equal to untiled inference
    """

    def __init__(
        self,
        net: nn.Module,
        scale: int,
        *,
        name: str = "network",
        spatial_dims: int = 2,
        device: str | torch.device = "cpu",
        tile: int | None = None,
        halo: int | None = None,
        batch_size: int | None = None,
        is_gan: bool = False,
        precision: str = "fp32",
        blend: bool | None = None,
        overlap: float = 0.25,
        memory_budget: int | None = None,
        engine: str = "torch",
    ) -> None:
        self.scale = check_scale(scale)
        self.name = name
        self.is_gan = is_gan
        if spatial_dims not in (2, 3):
            raise UsageError(f"`spatial_dims` must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims = int(spatial_dims)
        self.device = resolve_device(device)
        check_precision(precision)
        if precision == "fp16" and self.device.type != "cuda":
            raise UsageError("`precision` fp16 needs a CUDA device; use bf16 on CPU.")
        self.precision = precision
        if tile is not None and int(tile) < 1:
            raise UsageError(f"`tile` must be a positive number of input pixels, got {tile}.")
        if batch_size is not None and int(batch_size) < 1:
            raise UsageError(f"`batch_size` must be >= 1, got {batch_size}.")
        if not 0.0 <= overlap < 1.0:
            raise UsageError(f"`overlap` must be in [0, 1), got {overlap}.")
        if halo is not None and not 0 <= int(halo) <= 4 * MAX_HALO:
            raise UsageError(f"`halo` must be in [0, {4 * MAX_HALO}] input pixels, got {halo}.")
        if self.device.type == "cpu":
            if not runtime.threads_configured():
                configure_threads()
            tune_allocator()
        probe = cached_probe(net, self.spatial_dims, in_channels_of(net))
        self.receptive_radius = probe.radius
        if probe.local:  # a halo as wide as the structural receptive field is exact; wider only costs time
            self.halo = probe.radius
        else:
            self.halo = MAX_HALO if halo is None else int(halo)
        self.exact = probe.local and probe.radius <= self.halo
        self.blend = (not self.exact) if blend is None else bool(blend)
        self.overlap = float(overlap)
        self.bytes_per_px = max(probe.bytes_per_px, 64.0)
        self.largest_bytes_per_px = max(probe.largest_bytes_per_px, 4.0)
        self.tile = int(tile) if tile else None
        self.batch_size = int(batch_size) if batch_size else None
        self.memory_budget = int(memory_budget) if memory_budget else None
        self.engine = resolve_engine(engine, self.device, precision, self.spatial_dims)
        if self.engine == "openvino":
            self.channels_last = False
            self.net = OpenVINONetwork(net, in_channels_of(net))
        else:
            self.channels_last = self.spatial_dims == 2
            self.net = prepare_network(net, self.spatial_dims, self.device, fuse=precision == "fp32")
        self.progress: Callable[[int, int], None] | None = None
        """Called ``(windows done, windows in all)`` after each forward pass (a window: a slice or a tile of it)."""

    # ---- planning

    def budget(self, out_bytes: int = 0) -> int:
        """Activation bytes for one forward pass when the output image takes ``out_bytes``."""
        if self.memory_budget:
            return self.memory_budget
        return memory_budget(self.device, out_bytes)

    def plan(self, spatial: Sequence[int], planes: int = 1, channels: int = 1) -> tuple[tuple[int, ...], int]:
        """``(LR tile edge per axis, windows per forward pass)`` for ``planes`` images of LR shape ``spatial``."""
        spatial = tuple(int(s) for s in spatial)
        out_bytes = 4 * planes * channels * math.prod(spatial) * self.scale ** len(spatial)
        max_px = max(1.0, self.budget(out_bytes) / self.bytes_per_px)
        if runtime.allocator_tuned() and self.device.type == "cpu":  # every map of a window from the reused heap
            max_px = min(max_px, max(1.0, MMAP_THRESHOLD / self.largest_bytes_per_px))
        if self.tile:
            tiles = tuple(min(self.tile, s) for s in spatial)
        elif math.prod(spatial) <= max_px:
            tiles = spatial
        elif self.blend:
            core = max(16, int(max_px ** (1 / len(spatial))) - 2 * self.halo)
            tiles = tuple(blend_tile(s, core, self.overlap) for s in spatial)
        else:
            tiles = least_work_tiles(spatial, self.halo, max_px)
        window = math.prod(min(s, t + 2 * self.halo) for s, t in zip(spatial, tiles))
        batch = self.batch_size or max(1, min(64, int(max_px // window)))
        return tiles, batch

    # ---- running

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if self.precision == "fp32":
            return self.net(batch).float()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            return self.net(batch).float()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(x, "as_tensor"):  # MetaTensor: plain tensor, no meta tracking in the loop
            x = x.as_tensor()
        x = torch.as_tensor(x).float()
        nd = x.ndim - 1
        if nd == self.spatial_dims:
            planes = x.unsqueeze(0)  # (1, C, *spatial)
        elif nd == 3 and self.spatial_dims == 2:
            planes = x.permute(3, 0, 1, 2)  # slices -> batch: (Z, C, X, Y)
        else:
            raise UsageError(
                f"a {self.spatial_dims}D network cannot upscale a {nd}D image; "
                "use a 2D image, a 3D volume, or a matching bundle."
            )
        tiles, batch_size = self.plan(planes.shape[2:], planes.shape[0], planes.shape[1])
        out = tiled_upscale(
            planes, self._forward, self.scale, tiles, self.halo, batch_size, self.overlap if self.blend else 0.0,
            progress=self.progress,
        )
        if self.device.type == "cpu" and 4 * out.numel() >= TRIM_AFTER:  # room for writing a large output
            release_free_memory()
        if nd == self.spatial_dims:
            return out[0]
        return out.permute(1, 2, 3, 0)  # (C, sX, sY, Z)
