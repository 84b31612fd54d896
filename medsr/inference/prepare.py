"""What inference measures on a network, and the fast inference copy it runs.

:func:`probe_network` measures, rather than trusts a declaration, whether a
network is local and how far it sees (its structural receptive field, which
makes halo-cropped tiling exact) and how much activation memory it needs per
pixel; both depend only on the architecture, so :func:`cached_probe` measures each
architecture once and keeps the result in :func:`~medsr.inference.runtime.cache_dir`.
:func:`prepare_network` makes the copy that runs: eval mode, the exact
rewrites of :mod:`medsr.networks.deploy` (batch norm and residual-scale folds,
the pixel shuffle moved after the tail, oneDNN fusion on CPU), the device and
``channels_last``.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import medsr
from medsr.inference.runtime import cache_dir, resolve_device
from medsr.io import atomic_path

__all__ = [
    "MAX_HALO", "Probe", "probe_network", "cached_probe", "receptive_radius", "in_channels_of", "prepare_network",
]

MAX_HALO = 32
"""Largest halo (LR pixels) a tile gets; networks with a wider (or global) field are blended instead."""

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class Probe:
    """What :func:`probe_network` measured."""

    radius: int
    """Receptive-field radius in input pixels (capped at the probe's half width)."""
    local: bool
    """False when the field reaches the probe's edge (a global operation, or wider than ``MAX_HALO``)."""
    bytes_per_px: float
    """Estimated float32 activation memory of one forward pass per input pixel."""
    largest_bytes_per_px: float
    """Largest layer output (float32) per input pixel (512 B for EDSR-M x2's sub-pixel convolution)."""


def in_channels_of(net: nn.Module) -> int:
    """Input channels of ``net``: the second dimension of its first weight with more than two dimensions (else 1)."""
    for p in net.parameters():
        if p.dim() > 2:
            return int(p.shape[1])
    return 1


def _structural_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` whose convolutions average with strictly positive weights.

    On a positive input every ReLU of the copy is active, so gradients reach
    every input pixel the architecture connects to an output pixel: the
    *structural* receptive field, valid for every weight and every input (the
    trained network, probed as is, could hide paths behind ReLUs that happen to
    be off for the probe).
    """
    probe = copy.deepcopy(net)
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, _CONV_TYPES):
                w = m.weight.abs()
                w += 1e-3 * float(w.mean()) + 1e-8
                m.weight.copy_(w / w.sum(dim=tuple(range(1, w.dim())), keepdim=True))
                if m.bias is not None:
                    m.bias.fill_(0.01)
    return probe


def probe_network(net: nn.Module, spatial_dims: int, in_channels: int, probe: int | None = None) -> Probe:
    """Structural receptive field (by back-propagation) and activation size (by forward hooks) of ``net``.

    The gradient of one central output pixel with respect to the input is
    non-zero exactly inside the receptive field (of a copy with positive weights,
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
    return Probe(radius=radius, local=radius < c, bytes_per_px=3 * 4 * sizes[-1] / px,
                 largest_bytes_per_px=4 * sizes[-1] / px)


def _architecture_key(net: nn.Module, spatial_dims: int, in_channels: int) -> str:
    """Hash of what a structural probe depends on: the module tree, parameter and buffer shapes, the source
    of every module class in it and the versions; not the weights (the probe replaces them)."""
    h = hashlib.sha256()
    h.update(f"{spatial_dims} {in_channels} {MAX_HALO} torch {torch.__version__} medsr {medsr.__version__}\n".encode())
    h.update(f"{type(net).__module__}.{type(net).__qualname__}\n{net!r}\n".encode())
    for name, t in [*net.named_parameters(), *net.named_buffers()]:
        h.update(f"{name} {tuple(t.shape)}\n".encode())
    sources = set()
    for m in net.modules():
        try:
            sources.add(inspect.getsourcefile(type(m)))
        except TypeError:  # a class without a source file
            pass
    for src in sorted(s for s in sources if s):
        h.update(Path(src).read_bytes())
    return h.hexdigest()[:24]


def cached_probe(net: nn.Module, spatial_dims: int, in_channels: int) -> Probe:
    """:func:`probe_network` for ``net``'s architecture, measured once and then read from the cache.

    The probe (a forward and a backward pass of a copy of the network on an
    81-pixel-wide input) is a sizeable part of the start-up of ``medsr upscale -m
    edsr_m`` on one slice (docs/performance.md); its result depends only on the
    architecture (:func:`_architecture_key`), not on the weights. An
    unreadable or unwritable cache just means measuring again.
    """
    path = cache_dir() / "probes" / f"{_architecture_key(net, spatial_dims, in_channels)}.json"
    try:
        return Probe(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        pass
    probe = probe_network(net, spatial_dims, in_channels)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(asdict(probe)))
    except OSError:
        pass
    return probe


def receptive_radius(net: nn.Module, spatial_dims: int, in_channels: int = 1, probe: int = 2 * MAX_HALO + 1) -> int:
    """Receptive-field radius of ``net`` in input pixels, measured by back-propagation, at most ``MAX_HALO``.

    A network with a global operation (channel attention, global pooling) reaches
    the probe's edge and gets ``MAX_HALO``.
    """
    return min(MAX_HALO, probe_network(net, spatial_dims, in_channels, probe).radius)


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
      or a :class:`~medsr.networks.blocks.ResidualBlock`) folded into it, and the residual
      scaling of residual blocks folded into their second convolution
      (:func:`medsr.networks.deploy.fold_network`);
    - the last pixel shuffle of an ``upsample -> tail`` network moved after the tail,
      whose convolution is rewritten to run at LR (:func:`medsr.networks.deploy.fold_pixel_shuffles`),
      kept only if a probe gives the same outputs;
    - moved to ``device``; 2D networks in ``channels_last`` (oneDNN's fast layout);
    - on CPU with ``fuse``: 2D convolutions run as single oneDNN calls with
      prepacked weights and ReLU / residual addition as post-ops
      (:func:`medsr.networks.deploy.fuse_network`), kept only if a probe gives the same
      outputs as the unfused network.

    The result is for inference only (it falls back to plain modules when
    gradients are enabled).
    """
    from medsr.networks.deploy import fold_network, fold_pixel_shuffles, fuse_network  # networks import MONAI

    net = copy.deepcopy(net).eval()
    net.requires_grad_(False)
    fold_network(net)
    if spatial_dims == 2:
        folded = copy.deepcopy(net)
        if fold_pixel_shuffles(folded) and _same_outputs(net, folded, in_channels_of(net), spatial_dims):
            net = folded
    dev = resolve_device(device)
    net = net.to(dev)
    if spatial_dims == 2:
        net = net.to(memory_format=torch.channels_last)
        if fuse and dev.type == "cpu":
            try:
                fused = fuse_network(copy.deepcopy(net))
                if _same_outputs(net, fused, in_channels_of(net), spatial_dims):
                    net = fused
            except (RuntimeError, AttributeError, TypeError):  # an unusual layer or torch build: stay unfused
                pass
    return net
