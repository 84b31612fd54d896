"""Upscaling of 2D images and 3D volumes: interpolation baselines and networks from MONAI bundles.

An :class:`Upscaler` maps a normalised, channel-first tensor ``(C, X, Y[, Z])``
in [0, 1] to the same tensor upscaled in-plane (the first two spatial axes) by
``scale``. Networks run tile by tile with a halo (overlap that is cropped
away, not blended): for convolutional networks whose receptive field fits in
the halo the result equals untiled inference exactly, and memory stays bounded
on a 4k x 4k radiograph. A 2D network upscales a volume slice by slice, slices
and tiles batched together.

:func:`upscale_image` is the whole physical-units pipeline for one image:
normalise -> upscale -> inverse mapping -> geometry (affine, spacing) updated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import torch

from medsr import __version__
from medsr import meta as mk
from medsr.errors import UsageError
from medsr.typing import SCALES, PathLike

__all__ = [
    "INTERPOLATIONS",
    "Upscaler",
    "InterpolationUpscaler",
    "NetworkUpscaler",
    "BundleInfo",
    "shipped_bundles",
    "resolve_bundle",
    "load_upscaler",
    "upscale_image",
    "tile_windows",
    "receptive_radius",
    "describe",
    "load_weights",
    "upscale_path",
]

INTERPOLATIONS = {"bicubic": "cubic", "lanczos": "lanczos3"}
"""Interpolation baselines by CLI name -> ``medsr.transforms.resample`` kernel."""

MAX_HALO = 32
"""Largest halo (LR pixels) a tile gets; networks with a wider (or global) field are tiled approximately."""


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
    name: str = field(init=False)

    def __post_init__(self) -> None:
        if self.kind not in INTERPOLATIONS:
            raise UsageError(f"`kind` must be one of {sorted(INTERPOLATIONS)}, got {self.kind!r}.")
        self.scale = _check_scale(self.scale)
        self.name = self.kind

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from medsr.transforms.resample import upsample

        return upsample(torch.as_tensor(x), self.scale, axes=(0, 1), kernel=INTERPOLATIONS[self.kind])


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


def receptive_radius(net: torch.nn.Module, spatial_dims: int, in_channels: int = 1, probe: int = 2 * MAX_HALO + 1) -> int:
    """Receptive-field radius of ``net`` in input pixels, measured by back-propagation.

    The gradient of one central output pixel with respect to a random input is
    non-zero exactly inside the receptive field. A network with a global
    operation (channel attention, global pooling) reaches the probe's edge and
    gets ``MAX_HALO``.
    """
    x = torch.rand((1, in_channels) + (probe,) * spatial_dims, requires_grad=True)
    was_training = net.training
    net.eval()
    with torch.enable_grad():
        y = net(x)
        centre = tuple(s // 2 for s in y.shape[2:])
        y[(0, 0) + centre].backward()
    net.train(was_training)
    nz = (x.grad[0].abs().sum(0) > 0).nonzero()
    if nz.numel() == 0:
        return 0
    c = probe // 2
    return int(min(MAX_HALO, (nz - c).abs().max().item()))


def _default_tile(max_channels: int, scale: int, spatial_dims: int) -> int:
    """LR tile edge that keeps activations near a fixed memory budget (<= 1/8 of free RAM, at most 512 MiB)."""
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        avail = 4 << 30
    budget = min(512 << 20, avail // 8)
    # float32 activations: a few live feature maps at LR plus the sub-pixel stage at HR.
    bytes_per_px = 4 * max_channels * (4 + scale**spatial_dims)
    edge = int((budget / bytes_per_px) ** (1 / spatial_dims))
    step = 16 if spatial_dims == 2 else 8
    return max(step * 2, min(512 if spatial_dims == 2 else 64, edge // step * step))


class NetworkUpscaler:
    """Tiled, batched, no-grad inference of an SR network on CPU or CUDA.

    Args:
        net: a module mapping ``(N, C, *lr)`` to ``(N, C, *lr * scale)``.
        scale: the network's factor.
        name: what reports call it.
        spatial_dims: the network's spatial dims (2: volumes go slice by slice).
        device: ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        tile: LR tile edge; ``None`` picks one from available memory.
        halo: LR pixels of context around each tile; ``None`` measures the receptive field.
        batch_size: tiles per forward pass.
        is_gan: whether the network was trained adversarially (reports flag invented detail).
        precision: ``"fp32"`` (default), ``"bf16"`` (CPU autocast) or ``"fp16"`` (CUDA autocast).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        scale: int,
        *,
        name: str = "network",
        spatial_dims: int = 2,
        device: str | torch.device = "cpu",
        tile: int | None = None,
        halo: int | None = None,
        batch_size: int = 4,
        is_gan: bool = False,
        precision: str = "fp32",
    ) -> None:
        self.scale = _check_scale(scale)
        self.name = name
        self.is_gan = is_gan
        self.spatial_dims = spatial_dims
        self.device = _resolve_device(device)
        if precision not in ("fp32", "bf16", "fp16"):
            raise UsageError(f"`precision` must be fp32, bf16 or fp16, got {precision!r}.")
        if precision == "fp16" and self.device.type != "cuda":
            raise UsageError("`precision` fp16 needs a CUDA device; use bf16 on CPU.")
        self.precision = precision
        net = net.eval()
        if halo is None:
            halo = receptive_radius(net, spatial_dims, _in_channels(net))
        self.halo = int(halo)
        max_ch = max((p.shape[0] for p in net.parameters() if p.dim() > 1), default=64)
        self.tile = int(tile) if tile else _default_tile(max_ch, self.scale, spatial_dims)
        self.batch_size = max(1, int(batch_size))
        self.channels_last = spatial_dims == 2
        self.net = net.to(self.device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if self.precision == "fp32":
            return self.net(batch).float()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            return self.net(batch).float()

    def _windows(self, shape: Sequence[int]) -> Iterator[tuple[tuple[slice, ...], tuple[slice, ...], tuple[slice, ...]]]:
        """(input window, output slice of the window's result, output placement) per tile."""
        per_axis = [tile_windows(n, self.tile, self.halo) for n in shape]
        s = self.scale
        for combo in _product(per_axis):
            win = tuple(slice(a, b) for a, b, _, _ in combo)
            crop = tuple(slice((k0 - a) * s, (k1 - a) * s) for a, _, k0, k1 in combo)
            place = tuple(slice(k0 * s, k1 * s) for _, _, k0, k1 in combo)
            yield win, crop, place

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x).float()
        if isinstance(x, torch.Tensor) and hasattr(x, "as_tensor"):
            x = x.as_tensor()
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
        n, c = planes.shape[:2]
        sp = planes.shape[2:]
        out = torch.empty((n, c) + tuple(d * self.scale for d in sp), dtype=torch.float32)
        windows = list(self._windows(sp))
        jobs = [(i, w) for i in range(n) for w in windows]
        for start in range(0, len(jobs), self.batch_size):
            chunk = jobs[start : start + self.batch_size]
            batch = torch.stack([planes[(i, slice(None)) + w[0]] for i, w in chunk])
            pred = self._forward(batch).cpu()
            for (i, (_, crop, place)), y in zip(chunk, pred):
                out[(i, slice(None)) + place] = y[(slice(None),) + crop]
        if nd == self.spatial_dims:
            return out[0]
        return out.permute(1, 2, 3, 0)  # (C, sX, sY, Z)


def _product(per_axis: list[list[Any]]) -> Iterator[tuple[Any, ...]]:
    if not per_axis:
        yield ()
        return
    for head in per_axis[0]:
        for rest in _product(per_axis[1:]):
            yield (head,) + rest


def _in_channels(net: torch.nn.Module) -> int:
    for p in net.parameters():
        if p.dim() > 2:
            return int(p.shape[1])
    return 1


def _resolve_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("`device` cuda was asked for but no CUDA GPU is available; use -d cpu.")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"`device` must be cpu or cuda, got {device!r}.")
    return dev


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
    if (root / text / "configs" / "inference.json").is_file():
        return BundleInfo(text, root / text, True)
    path = Path(text).expanduser()
    if (path / "configs" / "inference.json").is_file():
        real = path.resolve()
        shipped = real.parent == root.resolve()
        return BundleInfo(real.name, real, shipped)
    known = ", ".join(list(INTERPOLATIONS) + shipped_bundles())
    raise UsageError(f"unknown model {text!r}: use one of {known}, or a path to a MONAI bundle folder.")


def _parse_bundle(info: BundleInfo, scale: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(info.inference_config))
    parser["bundle_root"] = str(info.root)
    if "scale" in parser.get():
        parser["scale"] = scale
    try:
        net = parser.get_parsed_content("network_def", instantiate=True)
    except Exception as err:  # a broken third-party config: report, do not trace back
        raise UsageError(f"bundle {info.name!r}: cannot build `network_def` from {info.inference_config}: {err}") from err
    extras = {k: parser.get(k) for k in ("is_gan", "spatial_dims", "halo") if k in parser.get()}
    return net, extras


def load_upscaler(
    model: PathLike,
    scale: int,
    *,
    device: str | torch.device = "cpu",
    tile: int | None = None,
    batch_size: int = 4,
    precision: str = "fp32",
    trust_bundle: bool = False,
    log: Any = None,
) -> Upscaler:
    """An :class:`Upscaler` for ``model``: ``bicubic``, ``lanczos``, a shipped bundle name or a bundle path.

    A bundle's ``configs/inference.json`` builds ``network_def`` (the config's
    ``scale`` is set to ``scale``) and ``models/model.pt`` (x2) or
    ``models/model_x4.pt`` is loaded with ``weights_only=True``. MONAI configs can
    run code, so a bundle that medsr does not ship is only loaded with
    ``trust_bundle=True``; ``log`` (a callable) is told which config runs.
    """
    scale = _check_scale(scale)
    text = str(model)
    if text in INTERPOLATIONS:
        return InterpolationUpscaler(text, scale)
    info = resolve_bundle(model)
    if not info.shipped and not trust_bundle:
        raise UsageError(
            f"bundle {str(info.root)!r} is not shipped with medsr and its config can run code; "
            "read configs/inference.json, then pass --trust-bundle."
        )
    if log is not None:
        log(f"loading bundle {info.name}: {info.inference_config}")
    net, extras = _parse_bundle(info, scale)
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
    )


def load_weights(net: torch.nn.Module, path: PathLike, *, name: str = "bundle") -> torch.nn.Module:
    """Load a weights-only checkpoint (a state dict, or ``{"model": state_dict}``) into ``net``, strictly."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{name}: weights file {path} is missing.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UsageError(f"{name}: cannot load {path} as a weights-only checkpoint: {err}") from err
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise UsageError(f"{name}: {path.name} does not match its network_def: {str(err).splitlines()[0]}") from err
    return net


# --------------------------------------------------------------------------- physical pipeline


def upscale_image(img: Any, upscaler: Upscaler, *, ct_window: tuple[float, float] = (-1024.0, 3071.0)) -> Any:
    """Upscale a physical-units ``MetaTensor`` from ``medsr.io.load_image`` in-plane.

    Normalises with the modality's mapping, runs ``upscaler``, maps back to
    physical units exactly, and returns a ``MetaTensor`` whose affine, spacing
    and derivation text describe the new image, ready for ``medsr.io.save_image``.
    """
    from monai.data import MetaTensor

    from medsr.io import zoom_geometry
    from medsr.transforms import InvertModalityNormalize, ModalityNormalize

    norm = ModalityNormalize(ct_window=ct_window)(img)
    up = upscaler(norm.as_tensor() if isinstance(norm, MetaTensor) else norm)
    factors = [upscaler.scale, upscaler.scale] + [1] * (up.ndim - 3)
    meta = {k: v for k, v in norm.meta.items() if k != "affine"} if isinstance(norm, MetaTensor) else {}
    affine = zoom_geometry(norm.affine, factors) if isinstance(norm, MetaTensor) else None
    if mk.SPACING in meta and meta[mk.SPACING] is not None:
        meta[mk.SPACING] = tuple(float(s) / f for s, f in zip(meta[mk.SPACING], factors))
    meta["spatial_shape"] = tuple(up.shape[1:])
    meta[mk.DERIVATION] = f"medsr {__version__} {upscaler.name} x{upscaler.scale}"
    out = MetaTensor(up, affine=affine, meta=meta)
    return InvertModalityNormalize()(out)


def upscale_path(
    input: PathLike,
    output: PathLike | None,
    upscaler: Upscaler,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    verbose: bool = False,
) -> Any:
    """Upscale a file, series or folder of images with ``upscaler``; returns a ``medsr.batch.BatchResult``.

    Outputs are named and placed by :func:`medsr.batch.plan_outputs`; a file that
    cannot be read is skipped and listed in ``errors.csv``.
    """
    from medsr.batch import discover, plan_outputs, run_batch
    from medsr.io import load_image, save_image

    input = Path(input)
    output = Path(output) if output is not None else None
    items = discover(input, output)
    outputs = plan_outputs(items, input, output, upscaler.scale)

    def work(item: Any, out: Path) -> None:
        img = load_image(item.files if item.kind == "series" else item.path)
        save_image(upscale_image(img, upscaler), out, overwrite=overwrite)

    return run_batch(
        items, outputs, work, resume=resume, overwrite=overwrite, progress=progress, verbose=verbose,
        description=f"upscale x{upscaler.scale} {upscaler.name}",
    )


def describe(upscaler: Upscaler) -> str:
    """One line on how an upscaler runs (for logs and reports)."""
    if isinstance(upscaler, NetworkUpscaler):
        return (
            f"{upscaler.name} x{upscaler.scale} on {upscaler.device.type}, tile {upscaler.tile}, "
            f"halo {upscaler.halo}, batch {upscaler.batch_size}, {upscaler.precision}"
        )
    return f"{upscaler.name} x{upscaler.scale}"

