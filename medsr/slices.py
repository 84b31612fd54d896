"""Super-resolution along the slice axis of a volume: N times thinner slice spacing (N = 2 or 4).

Geometry (one convention everywhere: degradation, training, inference, evaluation)
-----------------------------------------------------------------------------------
Slices are *point samples* along the slice normal. A volume of ``n`` slices at
spacing ``d`` becomes ``(n - 1) * N + 1`` slices at spacing ``d / N``: output slice
``j`` lies at input slice coordinate ``j / N``, so every ``N``-th output slice
*coincides* with an input slice (same ImagePositionPatient) and the ``N - 1``
slices between two input slices are new. The first and the last slice keep their
positions: the field of view along the normal (first to last slice centre) is the
input's, and nothing is extrapolated beyond the acquired slices.

The slice axis comes from the geometry: the stacking axis of a DICOM series or
multi-frame, otherwise the array axis with the largest spacing (ties: the last).

Methods
-------
- ``linear``, ``cubic`` (Keys, a = -0.5) and ``lanczos`` (3 lobes) interpolation
  along the slice axis, with whole-sample mirroring at the first/last slice. At
  coinciding slices they return the input slice unchanged.
- A learned method (the ``slice_smore`` bundle, :class:`medsr.networks.SliceRefiner`):
  the cubic result is refined, plane by plane, by a 2D network on the sagittal-type
  and coronal-type planes that contain the slice axis; the two residuals are
  averaged (SMORE's fusion of two orthogonal passes, Zhao et al. 2021).

Memory: the output is built in slabs of output slices. Each slab is interpolated
from the input slices it needs and, for a network, refined with a halo of
``receptive_radius`` slices on each side that is then cropped, so the result
equals the whole-volume result while the working set is a few slabs; the only
full-size buffers are the input and the output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medsr import __version__
from medsr import meta as mk
from medsr.batch import discover, plan_outputs, run_batch
from medsr.errors import UsageError
from medsr.geometry import update_spacing
from medsr.inference import check_trusted, load_upscaler, load_weights, parse_bundle, resolve_bundle, resolve_device
from medsr.inference.pipeline import normalise, to_physical, upscale_normalised
from medsr.io import load_image, save_image
from medsr.io._common import as_affine4
from medsr.transforms.intensity import DEFAULT_CT_WINDOW
from medsr.transforms.resample import KERNELS, _apply_axis
from medsr.typing import PathLike

__all__ = [
    "SLICE_FACTORS",
    "SLICE_INTERPOLATIONS",
    "SLICE_PROFILES",
    "slice_axis",
    "thin_length",
    "thick_length",
    "interpolate_slices",
    "degrade_slices",
    "SliceUpscaler",
    "load_slice_upscaler",
    "slice_geometry",
    "upscale_slices_image",
    "upscale_slices_path",
    "upscale_slices_command",
]

SLICE_FACTORS: tuple[int, ...] = (2, 4)
"""Slice factors N: the output has N times thinner slice spacing."""

SLICE_INTERPOLATIONS = {"linear": "linear", "cubic": "cubic", "bicubic": "cubic", "lanczos": "lanczos3"}
"""Interpolation baselines by name -> kernel of :data:`medsr.transforms.resample.KERNELS` (bicubic = cubic)."""

SLICE_PROFILES = ("gaussian", "box")
"""Slice profiles of :func:`degrade_slices`."""

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

SLAB_VOXELS = 1 << 23
"""Output voxels per slab (32 MB of float32); a network slab also holds its halo and activations."""

ACTIVATION_BUDGET = 384 << 20
"""Bytes of float32 activations one batch of planes may use."""


def check_factor(factor: Any, name: str = "slices") -> int:
    """``factor`` as an int in :data:`SLICE_FACTORS`, or a UsageError naming ``--{name}``."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or int(factor) not in SLICE_FACTORS:
        raise UsageError(f"`--{name}` must be 2 or 4 (times as many slices along the slice axis), got {factor!r}.")
    return int(factor)


def slice_axis(img: Any) -> int:
    """The spatial axis (0, 1 or 2 of a channel-first ``(C, X, Y, Z)`` volume) across the acquisition's slices.

    A DICOM series or multi-frame stacks its slices along the third array axis;
    any other volume (NIfTI) uses the axis of largest spacing from the affine
    (ties within 1 %: the last such axis).
    """
    shape = tuple(img.shape)
    if len(shape) != 4:
        raise UsageError(
            f"super-resolution along the slice axis needs a volume (1, X, Y, Z), got shape {shape}; "
            "for a 2D image use in-plane -s only."
        )
    meta = getattr(img, "meta", {}) or {}
    if meta.get(mk.FORMAT) in ("dicom_series", "dicom_multiframe"):
        return 2
    affine = getattr(img, "affine", None)
    if affine is None:
        return 2
    a = affine.detach().cpu().numpy() if isinstance(affine, torch.Tensor) else np.asarray(affine)
    spacing = np.linalg.norm(np.asarray(a, dtype=np.float64)[:3, :3], axis=0)
    top = float(spacing.max())
    return int(max(i for i in range(3) if spacing[i] >= 0.99 * top))


def thin_length(n: int, factor: int) -> int:
    """Slices after upscaling ``n`` slices by ``factor``: ``(n - 1) * factor + 1``."""
    return (int(n) - 1) * int(factor) + 1


def thick_length(n: int, factor: int) -> int:
    """Thick slices :func:`degrade_slices` keeps from ``n`` thin slices: at thin positions 0, N, 2N, ..."""
    return (int(n) - 1) // int(factor) + 1


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    """Whole-sample symmetric reflection (``-1 -> 1``, ``n -> n - 2``) of integer indices into ``[0, n)``."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    m = np.mod(idx, period)
    return np.where(m < n, m, period - m)


def _table(
    in_len: int, positions: np.ndarray, kernel: tuple[Callable[[np.ndarray], np.ndarray], float]
) -> tuple[np.ndarray, np.ndarray]:
    """Gather indices and normalised weights ``(len(positions), P)`` of ``kernel`` centred on ``positions``."""
    fn, width = kernel
    taps = int(math.ceil(width)) + 2
    left = np.floor(positions - width / 2.0)
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    w = fn(positions[:, None] - idx)
    total = w.sum(axis=1, keepdims=True)
    w = w / np.where(total == 0, 1.0, total)
    idx = _mirror(idx.astype(np.int64), in_len)
    keep = np.any(w != 0, axis=0)
    return idx[:, keep], w[:, keep]


def _gather(x: torch.Tensor, axis: int, idx: np.ndarray, w: np.ndarray) -> torch.Tensor:
    return _apply_axis(x, axis + 1, idx, w)


def _float(x: Any) -> torch.Tensor:
    t = x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def interpolate_slices(
    x: Any, axis: int, factor: int, kernel: str = "cubic", start: int = 0, stop: int | None = None
) -> torch.Tensor:
    """Interpolate a channel-first tensor along spatial ``axis`` to ``factor`` times thinner spacing.

    Returns output slices ``[start, stop)`` of the :func:`thin_length` grid (default all):
    slice ``j`` at input coordinate ``j / factor``.
    """

    t = _float(x)
    n = int(t.shape[axis + 1])
    total = thin_length(n, factor)
    stop = total if stop is None else int(stop)
    if not 0 <= start < stop <= total:
        raise UsageError(f"`start`/`stop` must satisfy 0 <= start < stop <= {total}, got {start}, {stop}.")
    name = SLICE_INTERPOLATIONS.get(kernel, kernel)
    if name not in KERNELS or name == "box":
        raise UsageError(f"`kernel` must be one of linear, cubic, lanczos, got {kernel!r}.")
    positions = np.arange(start, stop, dtype=np.float64) / factor
    idx, w = _table(n, positions, KERNELS[name])
    return _gather(t, axis, idx, w)


def _profile(factor: int, profile: str, fwhm: float) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """The slice profile in thin-slice units: width ``fwhm * factor`` (box: exact overlap of each thin slice)."""
    width = float(fwhm) * factor
    if profile == "box":
        half = width / 2.0

        def box(d: np.ndarray) -> np.ndarray:  # overlap of the thin slice [d - 1/2, d + 1/2] with the box
            return np.clip(np.minimum(d + 0.5, half) - np.maximum(d - 0.5, -half), 0.0, None)

        return box, width + 2.0
    sigma = width / _FWHM_PER_SIGMA

    def gauss(d: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * (d / sigma) ** 2) * (np.abs(d) <= 4.0 * sigma + 0.5)

    return gauss, 2.0 * (4.0 * sigma + 0.5)


def degrade_slices(x: Any, axis: int, factor: int, profile: str = "gaussian", fwhm: float = 1.0) -> torch.Tensor:
    """Simulate a thick-slice acquisition: slice profile along ``axis``, then keep every ``factor``-th slice.

    Thick slice ``k`` is centred on thin slice ``k * factor`` (so the thin slices there
    *coincide* with it) and integrates the thin slices with ``profile``: ``"gaussian"``
    (FWHM ``fwhm * factor`` thin slices; spiral CT, 2D MR excitation) or ``"box"``
    (width ``fwhm * factor``). ``fwhm < 1`` models a gap between slices, ``> 1`` overlap.
    The result has :func:`thick_length` slices; :func:`interpolate_slices` maps it back
    onto the first :func:`thin_length` of them thin slices.
    """
    if profile not in SLICE_PROFILES:
        raise UsageError(f"`profile` must be one of {', '.join(SLICE_PROFILES)}, got {profile!r}.")
    if not (isinstance(fwhm, (int, float)) and 0 < fwhm <= 4):
        raise UsageError(f"`fwhm` must be in (0, 4] (slice profile width in thick-slice spacings), got {fwhm!r}.")
    t = _float(x)
    n = int(t.shape[axis + 1])
    m = thick_length(n, factor)
    idx, w = _table(n, np.arange(m, dtype=np.float64) * factor, _profile(factor, profile, fwhm))
    return _gather(t, axis, idx, w)


# --------------------------------------------------------------------------- upscalers


@dataclass
class SliceUpscaler:
    """Upscale a normalised ``(1, X, Y, Z)`` volume along one spatial axis by ``factor`` (see module doc).

    Args:
        name: method name for logs and derivation text (``cubic``, ``slice_smore`` ...).
        factor: 2 or 4.
        kernel: interpolation kernel (``linear``, ``cubic``, ``lanczos``); a network refines ``cubic``.
        network: a plane network (``(B, 1, H, L) -> (B, 1, H, L)``, slice axis last), or None.
        device: where the network runs.
    """

    name: str
    factor: int
    kernel: str = "cubic"
    network: torch.nn.Module | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        self.factor = check_factor(self.factor)
        if self.network is not None:
            self.network = self.network.to(self.device).eval()

    @property
    def halo(self) -> int:
        """Output slices of context a slab needs on each side (the network's receptive radius)."""
        if self.network is None:
            return 0
        return int(getattr(self.network, "receptive_radius", 16))

    def __call__(
        self, x: Any, axis: int, progress: Callable[[int, int], None] | None = None
    ) -> torch.Tensor:
        """``x`` ``(1, X, Y, Z)`` in [0, 1] -> upscaled along ``axis``; ``progress(done, total)`` per slab of slices."""
        t = _float(x)
        if t.ndim != 4:
            raise UsageError(f"expected a channel-first volume (1, X, Y, Z), got shape {tuple(t.shape)}.")
        n = int(t.shape[axis + 1])
        if n < 2:
            raise UsageError(f"the volume has {n} slice along the slice axis; at least 2 are needed to interpolate.")
        total = thin_length(n, self.factor)
        out_shape = list(t.shape)
        out_shape[axis + 1] = total
        out = torch.empty(out_shape, dtype=torch.float32)
        plane = max(1, t[0].numel() // n)
        step = max(4, SLAB_VOXELS // plane)
        done = 0
        for l0 in range(0, total, step):
            l1 = min(total, l0 + step)
            piece = self._slab(t, axis, l0, l1, total)
            out.narrow(axis + 1, l0, l1 - l0).copy_(piece)
            done = l1
            if progress is not None:
                progress(done, total)
        return out

    def _slab(self, t: torch.Tensor, axis: int, l0: int, l1: int, total: int) -> torch.Tensor:
        h = self.halo
        w0, w1 = max(0, l0 - h), min(total, l1 + h)
        cub = interpolate_slices(t, axis, self.factor, self.kernel, w0, w1).float()
        if self.network is None:
            return cub
        vol = torch.movedim(cub[0], axis, -1).contiguous()  # (A, B, L): slice axis last
        r1 = self._planes(vol)  # planes (B, L) indexed by A
        r2 = self._planes(vol.transpose(0, 1)).transpose(0, 1)  # planes (A, L) indexed by B
        fused = vol.add_(r1.add_(r2).mul_(0.5))
        fused = fused[:, :, l0 - w0 : l0 - w0 + (l1 - l0)]
        return torch.movedim(fused, -1, axis).unsqueeze(0)

    def _planes(self, vol: torch.Tensor) -> torch.Tensor:
        """Network residual of every plane ``vol[a]`` (shape ``(B, L)``), in batches that fit the budget."""
        net = self.network
        if net is None:
            raise UsageError("this SliceUpscaler has no network; plane passes need one (load a slice bundle).")
        n_planes, hh, ll = vol.shape
        feats = max(int(getattr(m, "out_channels", 1)) for m in net.modules() if isinstance(m, torch.nn.Conv2d))
        batch = max(1, int(ACTIVATION_BUDGET // max(1, hh * ll * feats * 4 * 3)))
        res = torch.empty_like(vol)
        with torch.inference_mode():
            for a in range(0, n_planes, batch):
                p = vol[a : a + batch].unsqueeze(1).to(self.device)
                res[a : a + batch] = (net(p) - p)[:, 0].to("cpu", torch.float32)
        return res


def load_slice_upscaler(
    model: PathLike,
    factor: int,
    *,
    device: str | torch.device = "cpu",
    trust_bundle: bool = False,
    log: Callable[[str], None] | None = None,
) -> SliceUpscaler:
    """A :class:`SliceUpscaler` for ``model``: ``linear``, ``cubic``/``bicubic``, ``lanczos``, or a slice bundle.

    A slice bundle's ``configs/inference.json`` has ``"task": "slices"`` and builds
    ``network_def``; its weights are ``models/model.pt`` (N = 2) and
    ``models/model_x4.pt`` (N = 4), loaded with ``weights_only=True``.
    """

    factor = check_factor(factor)
    text = str(model)
    if text in SLICE_INTERPOLATIONS:
        return SliceUpscaler(SLICE_INTERPOLATIONS[text].replace("lanczos3", "lanczos"), factor, kernel=text)
    info = check_trusted(resolve_bundle(model), trust_bundle)
    config = json.loads(info.inference_config.read_text())
    if config.get("task") != "slices":
        raise UsageError(
            f"model {info.name!r} upscales in-plane, not along the slice axis; for --slices use linear, cubic, "
            "lanczos or a slice bundle (slice_smore)."
        )
    if log is not None:
        log(f"medsr: loading {'shipped' if info.shipped else 'third-party (--trust-bundle)'} bundle {info.name}: "
            f"{info.inference_config}")
    net, _ = parse_bundle(info, factor)
    load_weights(net, info.weights(factor), name=info.name)
    return SliceUpscaler(info.name, factor, kernel="cubic", network=net, device=resolve_device(device))


# --------------------------------------------------------------------------- physical pipeline


def slice_geometry(affine: Any, axis: int, factor: int) -> np.ndarray:
    """Affine after :func:`interpolate_slices`: the slice axis column divided by ``factor``, origin unchanged."""

    a = as_affine4(affine).copy()
    a[:3, axis] = a[:3, axis] / factor
    return a


def upscale_slices_image(
    img: Any,
    slicer: SliceUpscaler,
    *,
    inplane: Any = None,
    ct_window: tuple[float, float] = DEFAULT_CT_WINDOW,
    progress: Callable[[int, int], None] | None = None,
    adapt_seconds: float = 0.0,
) -> Any:
    """Upscale a physical-units volume from ``medsr.io.load_image`` along its slice axis (and in-plane).

    Normalises with the modality's mapping, runs ``slicer`` along :func:`slice_axis`,
    then the in-plane upscaler ``inplane`` (a :class:`medsr.inference.Upscaler`) if
    given, maps back to physical units and returns a MetaTensor with the new
    affine, spacing and derivation text, ready for ``medsr.io.save_image``.
    ``adapt_seconds > 0`` first fine-tunes a copy of the network on this scan's own
    in-plane axes for that long (:func:`medsr.slice_training.adapt_to_scan`).
    """
    from monai.data import MetaTensor


    axis = slice_axis(img)
    if inplane is not None and axis != 2:
        raise UsageError(
            f"the slice axis of this volume is array axis {axis}, not the third: in-plane -s cannot be combined "
            "with --slices here; run --slices alone, then -s on its output."
        )
    norm = normalise(img, ct_window)
    del img
    text = f"medsr {__version__} {slicer.name} slices x{slicer.factor}"
    if adapt_seconds > 0:
        import dataclasses

        from medsr.slice_training import adapt_to_scan  # deferred: slice_training imports this module

        slicer = dataclasses.replace(slicer)  # the caller's network stays as loaded
        adapt_to_scan(slicer, norm, axis, adapt_seconds)
        text += f" (adapted to this scan for {adapt_seconds:g} s)"
    up = slicer(norm, axis, progress)
    meta = {k: v for k, v in norm.meta.items() if k != "affine"}
    affine = slice_geometry(norm.affine, axis, slicer.factor)
    update_spacing(meta, affine, 3)
    meta["spatial_shape"] = tuple(up.shape[1:])
    meta[mk.DERIVATION] = text
    out = MetaTensor(up, affine=torch.as_tensor(affine, dtype=torch.float64), meta=meta)
    del norm, up
    if inplane is not None:
        out = upscale_normalised(out, inplane)
        out.meta[mk.DERIVATION] = f"{text}, {inplane.name} in-plane x{inplane.scale}"
    return to_physical(out)


def upscale_slices_path(
    input: PathLike,
    output: PathLike | None,
    slicer: SliceUpscaler,
    *,
    inplane: Any = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    verbose: bool = False,
    ct_window: tuple[float, float] = DEFAULT_CT_WINDOW,
    adapt_seconds: float = 0.0,
) -> Any:
    """:func:`upscale_slices_image` over a file, series or folder; returns a ``medsr.batch.BatchResult``.

    Outputs are named ``<stem>_sl<N>x`` (``<stem>_sr<s>x_sl<N>x`` with in-plane ``s``);
    failures go to ``errors.csv`` as with ``medsr upscale``. The progress bar counts
    output slices of the volume being upscaled.
    """
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


    input = Path(input)
    out_path = Path(output) if output is not None else None
    items = discover(input, out_path)
    tag = f"sr{inplane.scale}x_sl" if inplane is not None else "sl"
    outputs = plan_outputs(items, input, out_path, slicer.factor, tag=tag)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())

    def work(item: Any, out: Path) -> None:
        img = load_image(item.files if item.kind == "series" else item.path)
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task(f"{item.path.name}: slices x{slicer.factor} {slicer.name}", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            if adapt_seconds > 0:
                bar.update(task, description=f"{item.path.name}: adapting to the scan ({adapt_seconds:g} s)")
            res = upscale_slices_image(img, slicer, inplane=inplane, ct_window=ct_window, progress=tick,
                                       adapt_seconds=adapt_seconds)
        del img
        save_image(res, out, overwrite=overwrite)
        if verbose:
            print(f"medsr: wrote {out}")

    return run_batch(
        items, outputs, work, resume=resume, overwrite=overwrite, progress=False, verbose=verbose,
        description=f"slices x{slicer.factor} {slicer.name}",
    )


def upscale_slices_command(
    input: PathLike,
    output: PathLike | None,
    factor: int,
    scale: int | None,
    model: str,
    *,
    device: str = "cpu",
    tile: int | None = None,
    batch_size: int | None = None,
    precision: str = "fp32",
    resume: bool = False,
    overwrite: bool = False,
    trust_bundle: bool = False,
    progress: bool = True,
    verbose: bool = False,
    log: Callable[[str], None] | None = None,
    adapt_seconds: float = 0.0,
) -> Any:
    """``medsr upscale --slices N [-s S] -m MODEL``: ``MODEL`` upscales along the slices, bicubic in-plane.

    ``model`` is ``linear``, ``cubic``/``bicubic``, ``lanczos`` or a slice bundle
    (``slice_smore``); with ``-s`` the in-plane step uses bicubic interpolation.
    """
    factor = check_factor(factor)
    inplane = None
    if scale is not None:
        if scale not in (2, 4):
            raise UsageError(f"`--scale` must be 2 or 4, got {scale}.")
        inplane = load_upscaler("bicubic", scale, device=device, tile=tile, batch_size=batch_size, precision=precision)
    slicer = load_slice_upscaler(model, factor, device=device, trust_bundle=trust_bundle, log=log)
    if adapt_seconds < 0 or (adapt_seconds > 0 and slicer.network is None):
        raise UsageError(f"`--adapt` must be >= 0 seconds and needs -m slice_smore, got {adapt_seconds:g} with {model!r}.")
    return upscale_slices_path(
        input, output, slicer, inplane=inplane, overwrite=overwrite, resume=resume, progress=progress, verbose=verbose,
        adapt_seconds=adapt_seconds,
    )
