"""Upscaling of 2D images and 3D volumes: interpolation baselines and networks from MONAI bundles.

An :class:`Upscaler` maps a normalised, channel-first tensor ``(C, X, Y[, Z])``
in [0, 1] to the same tensor upscaled in-plane (the first two spatial axes) by
``scale``. :func:`upscale_image` is the whole physical-units pipeline for one
image (normalise -> upscale -> inverse mapping -> geometry), and
:func:`upscale_path` runs it over a file, series or folder.

How networks run (see docs/performance.md for the measurements behind each choice):

- **Tiles with a halo, cropped.** A convolutional network whose receptive field
  fits in the halo gives, tile by tile, *exactly* the untiled result: every kept
  output pixel saw the same input pixels. Memory stays bounded on a 4k x 4k
  radiograph and there is nothing to blend, so no seam. Tiles have equal windows
  (shifted, not shrunk, at the border) so they batch; a 2D network upscales a
  volume slice by slice, slices and tiles batched together.
- **Overlapping tiles, blended** for networks with a global operation (channel
  attention, transposed attention): no tiling can be exact for them, so images
  that fit the memory budget run whole, and larger ones get halo-cropped tiles
  whose kept parts overlap and are blended with linear ramps. Whether a network
  is local, and its receptive field, are measured, not declared. (MONAI's
  ``SlidingWindowInferer`` blends whole windows, including their borders where
  zero padding corrupts a convolutional network's output: measured max error
  0.45 on EDSR-M, against 1e-6 with halos cropped; see docs/performance.md.)
- **Fast paths.** ``torch.inference_mode``, ``channels_last`` (oneDNN's fast
  convolution layout on CPU), batch norm and residual scaling folded into the
  convolutions, on CPU every convolution one oneDNN call with a prepacked weight
  and its ReLU / residual addition fused (all exact), all physical cores, tile
  size and batch from available memory; ``precision="bf16"`` (CPU) / ``"fp16"``
  (CUDA) autocast on request.
- **Folders** are read and normalised in a background DataLoader worker and
  written by a writer thread while the network runs. Under ``torchrun`` each
  process takes its own share of the files (see :func:`distributed_rank`).
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from medsr import __version__
from medsr import meta as mk
from medsr.errors import InputError, UsageError
from medsr.typing import SCALES, PathLike

__all__ = [
    "INTERPOLATIONS",
    "PRECISIONS",
    "Upscaler",
    "InterpolationUpscaler",
    "NetworkUpscaler",
    "DEVICES",
    "resolve_device",
    "BundleInfo",
    "shipped_bundles",
    "resolve_bundle",
    "load_upscaler",
    "upscale_image",
    "tile_windows",
    "receptive_radius",
    "prepare_network",
    "configure_threads",
    "tune_allocator",
    "distributed_rank",
    "describe",
    "load_weights",
    "upscale_path",
]

INTERPOLATIONS = {"bicubic": "cubic", "lanczos": "lanczos3"}
"""Interpolation baselines by CLI name -> ``medsr.transforms.resample`` kernel."""

PRECISIONS = ("fp32", "bf16", "fp16")
"""``precision`` values: fp32 (default), bf16 autocast (CPU), fp16 autocast (CUDA)."""

MAX_HALO = 32
"""Largest halo (LR pixels) a tile gets; networks with a wider (or global) field are blended instead."""

CPU_MEMORY_BUDGET = 7 << 28
"""Bytes (1.75 GiB) that one image's upscale may use on CPU beyond the process's baseline: the network's
activations get what ``OUTPUT_COPIES`` float32 outputs leave, and never more than 1/8 of the available
RAM (at least ``MIN_BUDGET``)."""

OUTPUT_COPIES = 5
"""Output-image-sized float32 buffers reserved beside the activations: the output itself, the input and its
normalised copy, the writer's stored values and bytes, and the allocator's slack. Measured on a 4096 x 4096
x2 radiograph (docs/performance.md): with 3 the tiles got 1 GB and the process peaked at 2.3 GB."""

MIN_BUDGET = 256 << 20
"""Smallest activation budget (bytes) tiles are planned for."""


class Upscaler(Protocol):
    """What every upscaling method offers (interpolation or network)."""

    name: str
    scale: int
    is_gan: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale a normalised channel-first ``(C, X, Y[, Z])`` tensor in-plane by ``scale``."""
        ...


def _check_scale(scale: int) -> int:
    if scale not in SCALES:
        raise UsageError(f"`scale` must be one of {', '.join(map(str, SCALES))}, got {scale}.")
    return int(scale)


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
        self.scale = _check_scale(self.scale)
        self.device = resolve_device(self.device)
        self.name = self.kind

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from medsr.transforms.resample import upsample

        x = torch.as_tensor(x)
        if self.device.type == "cpu":
            return upsample(x, self.scale, axes=(0, 1), kernel=INTERPOLATIONS[self.kind])
        return upsample(x.to(self.device), self.scale, axes=(0, 1), kernel=INTERPOLATIONS[self.kind]).cpu()


# --------------------------------------------------------------------------- threads, devices, ranks

_threads_set = False


def configure_threads(num_threads: int | None = None) -> int:
    """Use every physical core this process may run on for intra-op parallelism; returns the count.

    An explicit ``num_threads`` wins; otherwise ``MEDSR_NUM_THREADS`` or
    ``OMP_NUM_THREADS`` (``torchrun`` sets 1 per process) are respected; otherwise
    the physical cores in this process's CPU affinity, shared among the
    ``LOCAL_WORLD_SIZE`` processes of a ``torchrun`` node. Inter-op threads are
    left alone: inference here is one chain of operators.
    """
    global _threads_set
    if num_threads is None:
        env = os.environ.get("MEDSR_NUM_THREADS") or ("" if "OMP_NUM_THREADS" not in os.environ else "keep")
        if env == "keep":
            return torch.get_num_threads()
        if env:
            try:
                num_threads = int(env)
            except ValueError:
                raise UsageError(f"MEDSR_NUM_THREADS must be a positive integer, got {env!r}.") from None
        else:
            local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
            num_threads = max(1, _physical_cores() // local)
    if num_threads < 1:
        raise UsageError(f"the number of threads must be >= 1, got {num_threads}.")
    if torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)
    _threads_set = True
    return num_threads


def _physical_cores() -> int:
    """Physical cores among the CPUs this process may use (hyper-threads do not speed up convolutions)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        try:
            sib = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip()
        except OSError:
            sib = str(cpu)
        cores.add(sib)
    return max(1, len(cores))


_allocator_tuned = False
_libc: Any = None

MMAP_THRESHOLD = 1 << 30
"""Allocations below this come from glibc's heap (reused) instead of fresh ``mmap`` pages (see
:func:`tune_allocator`); tiles are planned so that every activation map stays below it."""

TRIM_AFTER = 64 << 20
"""After an output image at least this large (bytes), the heap's free pages go back to the system."""


def tune_allocator() -> bool:
    """Let glibc serve activation-sized tensors from its heap instead of fresh ``mmap`` pages; True if applied.

    By default glibc maps every allocation above 32 MB afresh and unmaps it when
    freed, so each layer of each forward pass page-faults its activations in
    again (a 32-channel float32 map of a 560 x 560 tile is 40 MB). Measured on
    EDSR-M (2 cores): 2.4 s per executed megapixel for 552-pixel windows, 1.5 s
    with this. Allocations up to ``MMAP_THRESHOLD`` (1 GB; tiles are planned so
    that every activation map fits) come from the heap and are reused layer
    after layer and image after image. After a large image (``TRIM_AFTER``)
    :class:`NetworkUpscaler` hands the heap's free pages back (``malloc_trim``),
    so the activations are not kept while the output is written. Linux with
    glibc only; ``MEDSR_TUNE_MALLOC=0`` turns it off.
    """
    global _allocator_tuned, _libc
    if _allocator_tuned:
        return True
    if os.environ.get("MEDSR_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, _ = libc.mallopt, libc.malloc_trim  # both are glibc's
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    # trimming the heap's top during a forward pass would page-fault the next layer's activations in again
    _allocator_tuned = (
        mallopt(m_mmap_threshold, MMAP_THRESHOLD) == 1 and mallopt(m_trim_threshold, 2 * MMAP_THRESHOLD - 1) == 1
    )
    _libc = libc if _allocator_tuned else None
    return _allocator_tuned


def _release_free_memory() -> None:
    """Return the heap's free pages to the system (after an image; see :func:`tune_allocator`)."""
    if _libc is not None:
        _libc.malloc_trim(0)


def distributed_rank() -> tuple[int, int]:
    """``(rank, world_size)`` from the environment ``torchrun`` sets (``RANK``, ``WORLD_SIZE``); ``(0, 1)`` otherwise."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        rank = int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        raise UsageError("RANK and WORLD_SIZE must be integers (they are set by torchrun).") from None
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK must be in [0, WORLD_SIZE), got RANK={rank}, WORLD_SIZE={world}.")
    return rank, world


DEVICES = ("auto", "cpu", "cuda", "cuda:<index>", "mps")
"""What ``device`` / ``-d`` accepts; ``auto`` picks CUDA, then Apple MPS, then the CPU."""


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` for ``device`` (see :data:`DEVICES`); never falls back silently.

    ``auto`` is CUDA when a GPU is visible (under ``torchrun``: ``cuda:LOCAL_RANK``), else MPS,
    else the CPU. A GPU that was asked for by name but is absent is a :class:`UsageError`.
    """
    if isinstance(device, str) and device.strip().lower() == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif _mps_available():
            device = "mps"
        else:
            device = "cpu"
    try:
        dev = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"`device` must be one of {', '.join(DEVICES)}, got {device!r}.") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"`device` must be one of {', '.join(DEVICES)}, got {device!r}.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "this PyTorch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UsageError(f"`device` {device!s} was asked for but {build}; use -d auto or -d cpu.")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise UsageError(
                f"`device` {device!s} was asked for but only {count} CUDA GPU(s) are visible (cuda:0 to cuda:{count - 1})."
            )
        if dev.index is None and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per local process
            dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]) % count)
    if dev.type == "mps" and not _mps_available():
        raise UsageError(f"`device` {device!s} (Apple GPU) was asked for but PyTorch's MPS backend is not available "
                         "here; use -d auto or -d cpu.")
    return dev



# --------------------------------------------------------------------------- tiling


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


def _least_work_tiles(spatial: Sequence[int], halo: int, max_px: float, min_tile: int = 16) -> tuple[int, ...]:
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


def _blend_tile(size: int, core: int, overlap: float) -> int:
    """The tile edge of the fewest tiles of at most ``core`` that cover ``size`` overlapping by ``overlap`` of a tile."""
    for parts in range(1, size + 1):
        tile = math.ceil(size / (parts - (parts - 1) * overlap))
        if tile <= core:
            return min(tile, size)
    return min(core, size)


@dataclass(frozen=True)
class _Probe:
    radius: int
    """Receptive-field radius in input pixels (capped at the probe's half width)."""
    local: bool
    """False when the field reaches the probe's edge (a global operation, or wider than ``MAX_HALO``)."""
    bytes_per_px: float
    """Estimated float32 activation memory of one forward pass per input pixel."""
    largest_bytes_per_px: float
    """Largest layer output (float32) per input pixel (512 B for EDSR-M x2's sub-pixel convolution)."""


def _structural_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` whose convolutions average with strictly positive weights.

    On a positive input every ReLU of the copy is active, so gradients reach
    every input pixel the architecture connects to an output pixel: the
    *structural* receptive field, valid for every weight and every input (the
    trained network, probed as is, could hide paths behind ReLUs that happen to
    be off for the probe).
    """
    probe = copy.deepcopy(net)
    conv_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, conv_types):
                w = m.weight.abs()
                w += 1e-3 * float(w.mean()) + 1e-8
                m.weight.copy_(w / w.sum(dim=tuple(range(1, w.dim())), keepdim=True))
                if m.bias is not None:
                    m.bias.fill_(0.01)
    return probe


def _probe_network(net: nn.Module, spatial_dims: int, in_channels: int, probe: int | None = None) -> _Probe:
    """Structural receptive field (by back-propagation) and activation size (by forward hooks) of ``net``.

    The gradient of one central output pixel with respect to the input is
    non-zero exactly inside the receptive field (of :func:`_structural_copy`,
    so for all weights and inputs). The largest leaf-module output times three
    (input, output and one live skip of that size) bounds the live memory of a
    feed-forward pass; measured 1.55 kB/px for EDSR-M x2, estimated 1.5 kB.
    """
    probe = probe or 2 * (MAX_HALO + 8) + 1
    net = _structural_copy(net).eval()
    x = (0.5 + 0.5 * torch.rand((1, in_channels) + (probe,) * spatial_dims)).requires_grad_(True)
    sizes: list[int] = []

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            sizes.append(out.numel())

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    try:
        with torch.enable_grad():
            y = net(x)
            centre = tuple(s // 2 for s in y.shape[2:])
            y[(0, 0) + centre].backward()
    finally:
        for h in handles:
            h.remove()
    g = x.grad[0]
    nz = ((g != 0) | g.isnan()).any(0).nonzero()
    c = probe // 2
    radius = 0 if nz.numel() == 0 else int((nz - c).abs().max().item())
    px = probe**spatial_dims
    sizes = sorted(sizes) or [px]  # the largest decides
    return _Probe(radius=radius, local=radius < c, bytes_per_px=3 * 4 * sizes[-1] / px,
                  largest_bytes_per_px=4 * sizes[-1] / px)


def receptive_radius(net: nn.Module, spatial_dims: int, in_channels: int = 1, probe: int = 2 * MAX_HALO + 1) -> int:
    """Receptive-field radius of ``net`` in input pixels, measured by back-propagation, at most ``MAX_HALO``.

    A network with a global operation (channel attention, global pooling) reaches
    the probe's edge and gets ``MAX_HALO``.
    """
    return min(MAX_HALO, _probe_network(net, spatial_dims, in_channels, probe).radius)


# --------------------------------------------------------------------------- exact network rewrites


@torch.no_grad()
def _fold_bn(conv: nn.Module, bn: nn.Module) -> bool:
    """Fold an eval-mode batch norm into the convolution before it (in place); False if not foldable."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    conv_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    bn_types = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    if not (isinstance(conv, conv_types) and isinstance(bn, bn_types)) or bn.running_mean is None:
        return False
    weight, bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    conv.weight = weight
    conv.bias = bias
    return True


class _PackCache:
    """Holds a oneDNN-prepacked weight; copies start empty (opaque oneDNN tensors cannot be copied or pickled)."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def __deepcopy__(self, memo: dict) -> _PackCache:
        return _PackCache()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.value = None


def _fusable_conv(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and m.padding_mode == "zeros"
        and isinstance(m.padding, tuple)
        and m.weight.dtype == torch.float32
        and m.weight.device.type == "cpu"
    )


def _onednn_act(m: nn.Module) -> tuple[str, list[float]] | None:
    if type(m) is nn.ReLU:
        return "relu", []
    if type(m) is nn.LeakyReLU:
        return "leaky_relu", [float(m.negative_slope)]
    return None


class _FusedConv(nn.Module):
    """``act(conv(x))`` (or ``conv(x) + other``) as one oneDNN call with a prepacked weight.

    What ``torch.compile`` generates on CPU, without compiling: the activation
    and the residual addition run as oneDNN post-ops, and the weight is reordered
    once into oneDNN's blocked layout instead of on every call. Exact: the same
    arithmetic. Falls back to the wrapped modules off CPU, under autocast, with
    gradients, or for non-float32 inputs.
    """

    def __init__(self, conv: nn.Conv2d, act: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = conv
        self.act = act if act is not None else nn.Identity()
        self.attr, self.scalars = _onednn_act(act) if act is not None else ("none", [])
        self._pack = _PackCache()

    def fast(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and x.dim() == 4
            and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu")
        )

    def _weight(self) -> torch.Tensor:
        if self._pack.value is None:
            c = self.conv
            self._pack.value = torch.ops.mkldnn._reorder_convolution_weight(
                c.weight.detach(), list(c.padding), list(c.stride), list(c.dilation), c.groups, None
            )
        return self._pack.value

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        c = self.conv
        if not self.fast(x):
            y = self.act(c(x))
            return y if other is None else y + other
        bias = None if c.bias is None else c.bias.detach()
        geometry = (list(c.padding), list(c.stride), list(c.dilation), c.groups)
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, self._weight(), bias, *geometry, self.attr, self.scalars, "")
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, other, self._weight(), bias, *geometry, "add", None, None, [], None
        )


class _FusedResidual(nn.Module):
    """:class:`~medsr.networks.blocks.ResidualBlock` ``x + conv2(act(conv1(x)))`` as two oneDNN calls."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.first = _FusedConv(block.conv1, block.act)
        self.second = _FusedConv(block.conv2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.first.fast(x):
            return self.block(x)
        return self.second(self.first(x), other=x)


def _walk_unfused(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` and its descendants, not entering modules that are already fused."""
    yield module
    for child in module.children():
        if not isinstance(child, (_FusedConv, _FusedResidual)):
            yield from _walk_unfused(child)


def _fuse_onednn(net: nn.Module) -> nn.Module:
    """Rewrite 2D convolutions (with a following ReLU / LeakyReLU, and EDSR residual blocks) as :class:`_FusedConv`."""
    from medsr.networks.blocks import ResidualBlock

    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
        return net
    for parent in list(_walk_unfused(net)):  # residual blocks first: two calls each
        for name, child in list(parent.named_children()):
            if (
                type(child) is ResidualBlock
                and _fusable_conv(child.conv1)
                and _fusable_conv(child.conv2)
                and isinstance(child.norm1, nn.Identity)
                and isinstance(child.norm2, nn.Identity)
                and child.res_scale == 1.0
                and _onednn_act(child.act) is not None
            ):
                setattr(parent, name, _FusedResidual(child))
    for parent in list(_walk_unfused(net)):  # then every other convolution, with its activation when one follows
        children = list(parent.named_children())
        for i, (name, child) in enumerate(children):
            if not _fusable_conv(child):
                continue
            nxt = children[i + 1] if i + 1 < len(children) else None
            if isinstance(parent, nn.Sequential) and nxt is not None and _onednn_act(nxt[1]) is not None:
                setattr(parent, name, _FusedConv(child, nxt[1]))
                setattr(parent, nxt[0], nn.Identity())
            else:
                setattr(parent, name, _FusedConv(child))
    return net


def _sub_pixel_tail(conv: nn.Conv2d, r: int) -> nn.Conv2d:
    """The LR convolution that, followed by ``PixelShuffle(r)``, equals ``conv`` applied after ``PixelShuffle(r)``.

    HR pixel ``(r*Y + p, r*X + q)`` of ``conv(shuffle(u))`` reads HR neighbours
    ``r*Y + p + dy``, i.e. LR pixel ``Y + (p + dy) // r``, sub-pixel ``(p + dy) % r``,
    channel ``c*r*r + i*r + j`` of ``u``. Gathering ``conv``'s taps by that map gives
    an LR kernel of radius ``ceil(h / r)`` (3 x 3 for EDSR's 3 x 3 tail at x2) whose
    ``C_out * r * r`` outputs are the sub-pixels, in pixel-shuffle order. Zero
    padding agrees: an HR pixel is outside the image exactly when its LR pixel is.
    Exact up to float rounding; the shuffle then moves ``C_out * r * r`` channels
    instead of ``C * r * r`` (4 instead of 128 for EDSR-M x2).
    """
    w, b = conv.weight.detach(), conv.bias
    c_out, c_hr, k, _ = w.shape
    h = k // 2
    radius = -(-h // r)
    lr = nn.Conv2d(c_hr * r * r, c_out * r * r, 2 * radius + 1, padding=radius, bias=True)
    weight = torch.zeros_like(lr.weight)
    channels = torch.arange(c_hr) * r * r
    for p in range(r):
        for q in range(r):
            rows = torch.arange(c_out) * r * r + p * r + q
            for dy in range(-h, h + 1):
                for dx in range(-h, h + 1):
                    i, ly = (p + dy) % r, (p + dy) // r
                    j, lx = (q + dx) % r, (q + dx) // r
                    weight[rows[:, None], (channels + i * r + j)[None, :], ly + radius, lx + radius] += w[:, :, dy + h, dx + h]
    with torch.no_grad():
        lr.weight.copy_(weight)
        lr.bias.copy_((b.detach() if b is not None else torch.zeros(c_out)).repeat_interleave(r * r))
    return lr.to(w.device, w.dtype)


def _fold_shuffle_into_tail(net: nn.Module) -> int:
    """Move the last pixel shuffle of ``upsample -> tail`` networks (EDSR, attention generator) after the tail,
    in place; returns how many were moved.

    The tail becomes :func:`_sub_pixel_tail`'s LR convolution: the 128-channel
    pixel shuffle of EDSR-M x2 (a 512 MB copy on a 1024 x 1024 input, ~15 % of the
    run time) becomes a 4-channel one, and the tail runs at LR in oneDNN's fast path.
    """
    from medsr.networks.blocks import Upsampler

    folds = 0
    for module in list(net.modules()):
        up, tail = getattr(module, "upsample", None), getattr(module, "tail", None)
        if not (isinstance(up, Upsampler) and type(tail) is nn.Conv2d and isinstance(up.body[-1], nn.PixelShuffle)):
            continue
        k = tail.kernel_size[0]
        if (tail.kernel_size != (k, k) or k % 2 == 0 or tail.stride != (1, 1) or tail.dilation != (1, 1)
                or tail.groups != 1 or tail.padding != (k // 2, k // 2) or tail.padding_mode != "zeros"):
            continue
        r = up.body[-1].upscale_factor
        up.body[-1] = nn.Identity()
        module.tail = nn.Sequential(_sub_pixel_tail(tail, r), nn.PixelShuffle(r))
        folds += 1
    return folds


@torch.inference_mode()
def _same_outputs(a: nn.Module, b: nn.Module, in_channels: int, spatial_dims: int) -> bool:
    x = torch.rand((2, in_channels) + (23, 19, 7)[:spatial_dims])
    if spatial_dims == 2:
        x = x.contiguous(memory_format=torch.channels_last)
    ya, yb = a(x), b(x)
    return ya.shape == yb.shape and bool((ya - yb).abs().max() <= 1e-4 * (1 + ya.abs().max()))


def prepare_network(
    net: nn.Module, spatial_dims: int = 2, device: str | torch.device = "cpu", *, fuse: bool = True
) -> nn.Module:
    """A copy of ``net`` rewritten for fast inference with the same outputs (up to float rounding).

    - eval mode, no parameter gradients;
    - every batch norm that directly follows a convolution (in an ``nn.Sequential``
      or a :class:`~medsr.networks.blocks.ResidualBlock`) folded into it:
      ``BN(W x + b) = (g W / s) x + (g (b - m) / s + beta)``;
    - residual scaling of :class:`~medsr.networks.blocks.ResidualBlock` folded into
      its second convolution (``EDSR.fold_residual_scale``); nothing to do at ``res_scale = 1``;
    - the last pixel shuffle of an ``upsample -> tail`` network moved after the tail,
      whose convolution is rewritten to run at LR (:func:`_fold_shuffle_into_tail`);
    - moved to ``device``; 2D networks in ``channels_last`` (oneDNN's fast layout);
    - on CPU with ``fuse``: 2D convolutions run as single oneDNN calls with
      prepacked weights and ReLU / residual addition as post-ops (:class:`_FusedConv`),
      kept only if a probe gives the same outputs as the unfused network.

    The result is for inference only (it falls back to plain modules when
    gradients are enabled).
    """
    from medsr.networks.blocks import ResidualBlock

    net = copy.deepcopy(net).eval()
    net.requires_grad_(False)
    for module in list(net.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                if _fold_bn(module._modules[a], module._modules[b]):
                    module._modules[b] = nn.Identity()
        if isinstance(module, ResidualBlock):
            if _fold_bn(module.conv1, module.norm1):
                module.norm1 = nn.Identity()
            if _fold_bn(module.conv2, module.norm2):
                module.norm2 = nn.Identity()
            if module.res_scale != 1.0 and isinstance(module.norm2, nn.Identity):
                module.fold_residual_scale()
    if spatial_dims == 2:
        folded = copy.deepcopy(net)
        if _fold_shuffle_into_tail(folded) and _same_outputs(net, folded, _in_channels(net), spatial_dims):
            net = folded
    dev = resolve_device(device)
    net = net.to(dev)
    if spatial_dims == 2:
        net = net.to(memory_format=torch.channels_last)
        if fuse and dev.type == "cpu":
            try:
                fused = _fuse_onednn(copy.deepcopy(net))
                if _same_outputs(net, fused, _in_channels(net), spatial_dims):
                    net = fused
            except (RuntimeError, AttributeError, TypeError):  # an unusual layer or torch build: stay unfused
                pass
    return net


# --------------------------------------------------------------------------- network upscaler


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
        from medsr.ov_engine import resolve_engine

        self.scale = _check_scale(scale)
        self.name = name
        self.is_gan = is_gan
        if spatial_dims not in (2, 3):
            raise UsageError(f"`spatial_dims` must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims = int(spatial_dims)
        self.device = resolve_device(device)
        if precision not in PRECISIONS:
            raise UsageError(f"`precision` must be fp32, bf16 or fp16, got {precision!r}.")
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
            if not _threads_set:
                configure_threads()
            tune_allocator()
        probe = _probe_network(net, self.spatial_dims, _in_channels(net))
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
            from medsr.ov_engine import OpenVINONetwork

            self.channels_last = False
            self.net = OpenVINONetwork(net, _in_channels(net))
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
        return _memory_budget(self.device, out_bytes)

    def plan(self, spatial: Sequence[int], planes: int = 1, channels: int = 1) -> tuple[tuple[int, ...], int]:
        """``(LR tile edge per axis, windows per forward pass)`` for ``planes`` images of LR shape ``spatial``."""
        spatial = tuple(int(s) for s in spatial)
        out_bytes = 4 * planes * channels * math.prod(spatial) * self.scale ** len(spatial)
        max_px = max(1.0, self.budget(out_bytes) / self.bytes_per_px)
        if _allocator_tuned and self.device.type == "cpu":  # every map of a window from the reused heap
            max_px = min(max_px, max(1.0, MMAP_THRESHOLD / self.largest_bytes_per_px))
        if self.tile:
            tiles = tuple(min(self.tile, s) for s in spatial)
        elif math.prod(spatial) <= max_px:
            tiles = spatial
        elif self.blend:
            core = max(16, int(max_px ** (1 / len(spatial))) - 2 * self.halo)
            tiles = tuple(_blend_tile(s, core, self.overlap) for s in spatial)
        else:
            tiles = _least_work_tiles(spatial, self.halo, max_px)
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

    def _windows(
        self, shape: Sequence[int], tiles: Sequence[int], overlap: int | Sequence[int] = 0
    ) -> Iterator[tuple[tuple[slice, ...], tuple[slice, ...], tuple[slice, ...], tuple[torch.Tensor | None, ...]]]:
        """(input window, output slice of the window's result, output placement, per-axis blend weights) per tile."""
        overlaps = [overlap] * len(shape) if isinstance(overlap, int) else list(overlap)
        per_axis = [_axis_tiles(n, t, self.halo, o, self.scale) for n, t, o in zip(shape, tiles, overlaps)]
        s = self.scale
        for combo in _product(per_axis):
            win = tuple(slice(a, b) for (a, b, _, _), _ in combo)
            crop = tuple(slice((k0 - a) * s, (k1 - a) * s) for (a, _, k0, k1), _ in combo)
            place = tuple(slice(k0 * s, k1 * s) for (_, _, k0, k1), _ in combo)
            yield win, crop, place, tuple(w for _, w in combo)

    def _run(self, planes: torch.Tensor, tiles: Sequence[int], batch_size: int, blend: bool) -> torch.Tensor:
        """Every window through the network, ``batch_size`` at a time; kept parts placed (or blended) into the output."""
        n, c = planes.shape[:2]
        sp = tuple(planes.shape[2:])
        overlap = [int(round(self.overlap * t)) if blend and t < d else 0 for t, d in zip(tiles, sp)]
        blend = any(overlap)
        alloc = torch.zeros if blend else torch.empty
        out = alloc((n, c) + tuple(d * self.scale for d in sp), dtype=torch.float32)
        windows = list(self._windows(sp, tiles, overlap))
        jobs = [(i, w) for i in range(n) for w in windows]
        report = getattr(self, "progress", None)
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            batch = torch.stack([planes[(i, slice(None)) + w[0]] for i, w in chunk])
            pred = self._forward(batch).cpu()
            del batch
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
            if report is not None:  # slices x tiles done so far
                report(min(start + batch_size, len(jobs)), len(jobs))
        if blend:  # divide by the total weight, a product of per-axis sums (one where two tiles meet)
            for axis in range(len(sp)):
                total = torch.zeros(sp[axis] * self.scale)
                for (_, _, k0, k1), w in _axis_tiles(sp[axis], tiles[axis], self.halo, overlap[axis], self.scale):
                    total[k0 * self.scale : k1 * self.scale] += 1.0 if w is None else w
                out /= total.view((-1,) + (1,) * (len(sp) - 1 - axis))
        return out

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
        out = self._run(planes, tiles, batch_size, self.blend)
        if self.device.type == "cpu" and 4 * out.numel() >= TRIM_AFTER:  # room for writing a large output
            _release_free_memory()
        if nd == self.spatial_dims:
            return out[0]
        return out.permute(1, 2, 3, 0)  # (C, sX, sY, Z)


def _axis_tiles(
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


def _memory_budget(device: torch.device, out_bytes: int = 0) -> int:
    if device.type == "cuda":  # the output image stays on the CPU
        free, _total = torch.cuda.mem_get_info(device)
        return int(free // 4)
    return int(max(MIN_BUDGET, min(CPU_MEMORY_BUDGET - OUTPUT_COPIES * out_bytes, _available_ram() // 8)))


def _available_ram() -> int:
    """RAM that can be allocated without swapping (:func:`medsr.io._common.available_memory`: Linux's
    MemAvailable, free + reclaimable page cache, bounded by the cgroup and RLIMIT_AS).

    Free pages alone (``SC_AVPHYS_PAGES``) shrink as the page cache fills with the
    files just read, which made the tile plan depend on what ran before.
    """
    from medsr.io._common import available_memory

    return available_memory()


def _product(per_axis: list[list[Any]]) -> Iterator[tuple[Any, ...]]:
    if not per_axis:
        yield ()
        return
    for head in per_axis[0]:
        for rest in _product(per_axis[1:]):
            yield (head,) + rest


def _in_channels(net: nn.Module) -> int:
    for p in net.parameters():
        if p.dim() > 2:
            return int(p.shape[1])
    return 1


# --------------------------------------------------------------------------- bundles


@dataclass(frozen=True)
class BundleInfo:
    """A MONAI bundle on disk and whether it is one medsr ships."""

    name: str
    root: Path
    shipped: bool

    @property
    def inference_config(self) -> Path:
        return self.root / "configs" / "inference.json"

    def weights(self, scale: int) -> Path:
        return self.root / "models" / ("model.pt" if scale == 2 else f"model_x{scale}.pt")


def _shipped_root() -> Path:
    env = os.environ.get("MEDSR_BUNDLE_DIR")
    if env:
        return Path(env)
    return Path(str(resources.files("medsr.bundles")))


def shipped_bundles() -> list[str]:
    """Names of the bundles that ship with medsr (found wherever medsr is installed)."""
    root = _shipped_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "configs" / "inference.json").is_file())


def resolve_bundle(model: PathLike) -> BundleInfo:
    """Find a bundle by shipped name or by path to its folder; UsageError if neither."""
    text = str(model)
    root = _shipped_root()
    is_name = text not in ("", ".", "..") and Path(text).name == text  # a bare name, not a path
    if is_name and (root / text / "configs" / "inference.json").is_file():
        return BundleInfo(text, root / text, True)
    path = Path(text).expanduser()
    if (path / "configs" / "inference.json").is_file():
        real = path.resolve()
        shipped = real.parent == root.resolve()
        return BundleInfo(real.name, real, shipped)
    known = ", ".join(list(INTERPOLATIONS) + shipped_bundles())
    raise UsageError(f"unknown model {text!r}: use one of {known}, or a path to a MONAI bundle folder.")


def _parse_bundle(info: BundleInfo, scale: int) -> tuple[nn.Module, dict[str, Any]]:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    try:
        parser.read_config(str(info.inference_config))
    except (ValueError, OSError, RecursionError, TypeError, AttributeError) as err:  # JSON/YAML errors are ValueErrors
        raise UsageError(
            f"bundle {info.name!r}: {info.inference_config} is not a readable config ({_first_line(err)}); fix the file."
        ) from err
    if not isinstance(parser.get(), dict):
        raise UsageError(f"bundle {info.name!r}: {info.inference_config} must hold a JSON object; fix the file.")
    parser["bundle_root"] = str(info.root)
    if "scale" in parser.get():
        parser["scale"] = scale
    try:
        net = parser.get_parsed_content("network_def", instantiate=True)
    except Exception as err:  # a broken third-party config: report, do not trace back
        raise UsageError(
            f"bundle {info.name!r}: cannot build `network_def` from {info.inference_config}: {_first_line(err)}"
        ) from err
    extras = {k: parser.get(k) for k in ("is_gan", "spatial_dims", "halo", "task") if k in parser.get()}
    return net, extras


def load_upscaler(
    model: PathLike,
    scale: int,
    *,
    device: str | torch.device = "auto",
    tile: int | None = None,
    batch_size: int | None = None,
    precision: str = "fp32",
    trust_bundle: bool = False,
    log: Any = None,
    engine: str = "torch",
) -> Upscaler:
    """An :class:`Upscaler` for ``model``: ``bicubic``, ``lanczos``, a shipped bundle name or a bundle path.

    A bundle's ``configs/inference.json`` builds ``network_def`` (the config's
    ``scale`` is set to ``scale``) and ``models/model.pt`` (x2) or
    ``models/model_x4.pt`` is loaded with ``weights_only=True``. MONAI configs can
    run code, so a bundle that medsr does not ship is only loaded with
    ``trust_bundle=True``; ``log`` (a callable) is told which config runs.
    ``tile``, ``batch_size``, ``precision`` and ``engine`` go to :class:`NetworkUpscaler`; ``device``
    (default ``auto``: CUDA, then MPS, then CPU; see :func:`resolve_device`) to either.
    """
    scale = _check_scale(scale)
    if precision not in PRECISIONS:
        raise UsageError(f"`precision` must be fp32, bf16 or fp16, got {precision!r}.")
    device = resolve_device(device)  # before any bundle is read: a missing GPU is the first thing to say
    text = str(model)
    if text in INTERPOLATIONS:
        return InterpolationUpscaler(text, scale, device=device)
    info = resolve_bundle(model)
    if not info.shipped and not trust_bundle:
        raise UsageError(
            f"bundle {str(info.root)!r} is not shipped with medsr and its config can run code; "
            "read configs/inference.json, then pass --trust-bundle."
        )
    if log is not None:
        if info.shipped:
            log(f"medsr: loading shipped bundle {info.name}: {info.inference_config}")
        else:
            log(f"medsr: executing the config of third-party bundle {info.name} (--trust-bundle): {info.inference_config}")
    net, extras = _parse_bundle(info, scale)
    if extras.get("task") == "slices":
        raise UsageError(f"model {info.name!r} upscales along the slice axis of volumes: use it with --slices 2 or 4.")
    load_weights(net, info.weights(scale), name=info.name)
    return NetworkUpscaler(
        net,
        scale,
        name=info.name,
        spatial_dims=int(extras.get("spatial_dims", 2)),
        device=device,
        tile=tile,
        halo=extras.get("halo"),
        batch_size=batch_size,
        is_gan=bool(extras.get("is_gan", False)),
        precision=precision,
        engine=engine,
    )


def _first_line(err: BaseException) -> str:
    """An exception's first line, printable; never torch's advice to load with ``weights_only=False``."""
    from medsr.privacy import one_line

    lines = [ln for ln in str(err).splitlines() if ln.strip() and "weights_only" not in ln]
    return one_line(lines[0] if lines else type(err).__name__, 300)


def load_weights(net: nn.Module, path: PathLike, *, name: str = "bundle") -> nn.Module:
    """Load a weights-only checkpoint (a state dict, or ``{"model": state_dict}``) into ``net``, strictly."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{name}: weights file {path} is missing.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's own text is several lines and suggests unsafe loading: never repeat it
        raise UsageError(
            f"{name}: {path} is not a weights-only checkpoint (it holds objects other than tensors and plain "
            f"numbers, or is damaged: {type(err).__name__}); medsr loads only such files, export the state dict "
            "with torch.save(model.state_dict(), path)."
        ) from err
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise UsageError(f"{name}: {path} holds a {type(state).__name__}, not a state dict of tensors.")
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, AttributeError) as err:
        raise UsageError(f"{name}: {path.name} does not match its network_def: {_first_line(err)}") from err
    return net


# --------------------------------------------------------------------------- physical pipeline


def _normalise(img: Any, ct_window: tuple[float, float]) -> Any:
    from medsr.transforms import ModalityNormalize

    return ModalityNormalize(ct_window=ct_window)(img)


def _derived(norm: Any, up: torch.Tensor, upscaler: Upscaler) -> Any:
    """``up`` as a normalised MetaTensor with the geometry and derivation of the upscaled image."""
    from monai.data import MetaTensor

    from medsr.io import zoom_geometry

    if not isinstance(norm, MetaTensor):
        return up
    factors = [up.shape[i] / norm.shape[i] for i in range(1, up.ndim)]
    meta = {k: v for k, v in norm.meta.items() if k != "affine"}
    if meta.get(mk.SPACING) is not None:
        meta[mk.SPACING] = tuple(float(s) / f for s, f in zip(meta[mk.SPACING], factors))
    meta["spatial_shape"] = tuple(up.shape[1:])
    meta[mk.DERIVATION] = f"medsr {__version__} {upscaler.name} x{upscaler.scale}"
    return MetaTensor(up, affine=zoom_geometry(norm.affine, factors), meta=meta)


_INVERT_CHUNK = 1 << 22
"""Voxels per slab when mapping a large image back to physical units (bounds float64 temporaries to 32 MB)."""


def _to_physical(out: Any) -> Any:
    """``InvertModalityNormalize`` in slabs along the first spatial axis, in place: no full-size float64 copies.

    On an 8192 x 8192 output the one-shot inverse needs ~1 GB of temporaries;
    slab by slab it needs 32 MB and the result reuses ``out``'s storage.
    """
    from monai.data import MetaTensor

    from medsr.transforms import InvertModalityNormalize

    if not isinstance(out, MetaTensor) or out.numel() <= _INVERT_CHUNK or mk.NORM_LOW not in out.meta:
        return InvertModalityNormalize()(out)
    low, high = out.meta[mk.NORM_LOW], out.meta[mk.NORM_HIGH]
    if torch.as_tensor(low).numel() > 1 or torch.as_tensor(high).numel() > 1:  # per-sample (batched) mapping
        return InvertModalityNormalize()(out)
    invert = InvertModalityNormalize(low=low, high=high)
    data = out.as_tensor()
    if data.dtype != torch.float32 or not data.is_contiguous():
        data = data.float().contiguous()
    rows = max(1, _INVERT_CHUNK // max(1, data[:, :1].numel()))
    with torch.inference_mode(data.is_inference()):  # a network's output is an inference tensor
        for a in range(0, data.shape[1], rows):
            data[:, a : a + rows] = invert(data[:, a : a + rows])
    meta = {k: v for k, v in out.meta.items() if k not in (mk.NORM_METHOD, mk.NORM_LOW, mk.NORM_HIGH)}
    res = MetaTensor(data, meta=meta, applied_operations=list(out.applied_operations))
    res.is_batch = out.is_batch
    return res


def upscale_image(img: Any, upscaler: Upscaler, *, ct_window: tuple[float, float] = (-1024.0, 3071.0)) -> Any:
    """Upscale a physical-units ``MetaTensor`` from ``medsr.io.load_image`` in-plane.

    Normalises with the modality's mapping, runs ``upscaler``, maps back to
    physical units exactly, and returns a ``MetaTensor`` whose affine, spacing
    and derivation text describe the new image, ready for ``medsr.io.save_image``.
    """
    norm = _normalise(img, ct_window)
    del img  # the caller's reference may be the last one
    out = _upscale_normalised(norm, upscaler)
    del norm  # the input's memory is free before the output is mapped back
    return _to_physical(out)


def _upscale_normalised(norm: Any, upscaler: Upscaler) -> Any:
    """A normalised image upscaled, as a MetaTensor with the new geometry (still normalised).

    RGB images (``meta["photometric_interpretation"] == "RGB"``) go through
    :func:`medsr.transforms.colour.upscale_rgb`: Y by ``upscaler``, Cb/Cr bicubic.
    """
    x = norm.as_tensor() if hasattr(norm, "as_tensor") else norm
    if getattr(norm, "meta", {}).get(mk.PHOTOMETRIC) == "RGB" and x.shape[0] == 3:
        from medsr.transforms.colour import upscale_rgb

        return _derived(norm, upscale_rgb(x, upscaler, upscaler.scale), upscaler)
    return _derived(norm, upscaler(x), upscaler)


class _LoadSet(torch.utils.data.Dataset):
    """Item ``k`` -> ``(k, normalised image, None)`` or ``(k, None, the exception)``: errors travel, they do not stop the loader."""

    def __init__(self, items: Sequence[Any], ct_window: tuple[float, float]) -> None:
        self.items = list(items)
        self.ct_window = ct_window

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[int, Any, BaseException | None]:
        from medsr.io import load_image

        item = self.items[k]
        try:
            img = load_image(item.files if item.kind == "series" else item.path)
            return k, _normalise(img, self.ct_window), None
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
    ct_window: tuple[float, float] = (-1024.0, 3071.0),
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
    from medsr.batch import ItemProgress, discover, errors_folder, plan_outputs, run_batch
    from medsr.io import load_image, save_image, uneven_slices

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

    def write(out_img: Any, out: Path) -> None:
        save_image(_to_physical(out_img), out, overwrite=overwrite)
        if verbose:
            tell(f"medsr: {who}wrote {out}")

    def work(item: Any, out: Path) -> Future | None:
        if prefetch is None:
            norm = _normalise(load_image(item.files if item.kind == "series" else item.path), ct_window)
        else:
            norm = prefetch.get(item)
        gaps = uneven_slices(norm)
        if gaps:
            if getattr(upscaler, "spatial_dims", 2) == 3:
                raise InputError(
                    f"{item.path}: the slices are unevenly spaced ({gaps}) and {upscaler.name} is a 3D network, which "
                    "needs a regular grid; use a 2D model or fix the series."
                )
            tell(f"medsr: warning: {item.path}: the slices are unevenly spaced ({gaps}); each slice is upscaled "
                 "in-plane on its own and keeps its position.")
        out_img = _upscale_normalised(norm, upscaler)
        del norm
        if writer is None:
            write(out_img, out)
            return None
        return writer.submit(write, out_img, out)

    from medsr.io._common import expect_output

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
