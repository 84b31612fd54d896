"""Where inference runs: threads, glibc's allocator, the device, the ``torchrun`` rank, the memory budget.

Every speed choice here is measured in docs/performance.md: all physical cores
for intra-op parallelism, activation-sized tensors served from glibc's heap
instead of fresh ``mmap`` pages, and an activation budget taken from the RAM
(or GPU memory) that is actually available.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from typing import Any

import torch

from medsr.errors import UsageError
from medsr.io import _common as io_common

__all__ = [
    "DEVICES",
    "CPU_MEMORY_BUDGET",
    "OUTPUT_COPIES",
    "MIN_BUDGET",
    "MMAP_THRESHOLD",
    "TRIM_AFTER",
    "configure_threads",
    "threads_configured",
    "physical_cores",
    "tune_allocator",
    "allocator_tuned",
    "release_free_memory",
    "distributed_rank",
    "resolve_device",
    "memory_budget",
    "available_ram",
]

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

MMAP_THRESHOLD = 1 << 30
"""Allocations below this come from glibc's heap (reused) instead of fresh ``mmap`` pages (see
:func:`tune_allocator`); tiles are planned so that every activation map stays below it."""

TRIM_AFTER = 64 << 20
"""After an output image at least this large (bytes), the heap's free pages go back to the system."""

DEVICES = ("auto", "cpu", "cuda", "cuda:<index>", "mps")
"""What ``device`` / ``-d`` accepts; ``auto`` picks CUDA, then Apple MPS, then the CPU."""

_threads_set = False
_allocator_tuned = False
_libc: Any = None


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """Where medsr keeps what it measured or exported once per network (receptive-field probes, OpenVINO
    exports): ``MEDSR_CACHE_DIR``, else ``$XDG_CACHE_HOME/medsr``, else ``~/.cache/medsr``."""
    env = os.environ.get("MEDSR_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "medsr"


# --------------------------------------------------------------------------- threads


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
            num_threads = max(1, physical_cores() // local)
    if num_threads < 1:
        raise UsageError(f"the number of threads must be >= 1, got {num_threads}.")
    if torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)
    _threads_set = True
    return num_threads


def threads_configured() -> bool:
    """Whether :func:`configure_threads` has run in this process (a network upscaler calls it once otherwise)."""
    return _threads_set


def physical_cores() -> int:
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


# --------------------------------------------------------------------------- allocator


def tune_allocator() -> bool:
    """Let glibc serve activation-sized tensors from its heap instead of fresh ``mmap`` pages; True if applied.

    By default glibc maps every allocation above 32 MB afresh and unmaps it when
    freed, so each layer of each forward pass page-faults its activations in
    again (a 32-channel float32 map of a 560 x 560 tile is 40 MB). Measured on
    EDSR-M (2 cores): 2.4 s per executed megapixel for 552-pixel windows, 1.5 s
    with this. Allocations up to ``MMAP_THRESHOLD`` (1 GB; tiles are planned so
    that every activation map fits) come from the heap and are reused layer
    after layer and image after image. After a large image (``TRIM_AFTER``)
    :class:`~medsr.inference.NetworkUpscaler` hands the heap's free pages back
    (:func:`release_free_memory`), so the activations are not kept while the output
    is written. Linux with glibc only; ``MEDSR_TUNE_MALLOC=0`` turns it off.
    """
    global _allocator_tuned, _libc
    if _allocator_tuned:
        return True
    if os.environ.get("MEDSR_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
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


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` applied (then tiles keep every activation map below ``MMAP_THRESHOLD``)."""
    return _allocator_tuned


def release_free_memory() -> None:
    """Return the heap's free pages to the system (after an image; see :func:`tune_allocator`)."""
    if _libc is not None:
        _libc.malloc_trim(0)


# --------------------------------------------------------------------------- ranks and devices


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


# --------------------------------------------------------------------------- memory


def memory_budget(device: torch.device, out_bytes: int = 0) -> int:
    """Activation bytes one forward pass may use on ``device`` when the output image takes ``out_bytes``.

    CUDA: a quarter of the free GPU memory (the output image stays on the CPU). CPU:
    ``CPU_MEMORY_BUDGET`` less ``OUTPUT_COPIES`` outputs, at most 1/8 of :func:`available_ram`,
    at least ``MIN_BUDGET``.
    """
    if device.type == "cuda":  # the output image stays on the CPU
        free, _total = torch.cuda.mem_get_info(device)
        return int(free // 4)
    return int(max(MIN_BUDGET, min(CPU_MEMORY_BUDGET - OUTPUT_COPIES * out_bytes, available_ram() // 8)))


def available_ram() -> int:
    """RAM that can be allocated without swapping (:func:`medsr.io._common.available_memory`: Linux's
    MemAvailable, free + reclaimable page cache, bounded by the cgroup and RLIMIT_AS).

    Free pages alone (``SC_AVPHYS_PAGES``) shrink as the page cache fills with the
    files just read, which made the tile plan depend on what ran before.
    """
    return io_common.available_memory()
