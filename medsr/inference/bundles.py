"""MONAI bundles: find them (shipped or by path), build their ``network_def``, load their weights.

A bundle's ``configs/inference.json`` builds ``network_def`` (with ``scale`` set);
its weights are ``models/model.pt`` (x2) or ``models/model_x<scale>.pt``, loaded
with ``torch.load(..., weights_only=True)`` through :func:`load_weights`.
:func:`unwrap_checkpoint` is the one place that knows a checkpoint may hold
``{"model": state_dict}`` (training uses it too). :func:`load_upscaler` turns a
model name (interpolation, shipped bundle, bundle path) into an upscaler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medsr.errors import UsageError
from medsr.inference.runtime import resolve_device
from medsr.inference.upscalers import (
    INTERPOLATIONS,
    InterpolationUpscaler,
    NetworkUpscaler,
    Upscaler,
)
from medsr.privacy import one_line
from medsr.shipped import shipped_bundles, shipped_root
from medsr.typing import PathLike
from medsr.validation import check_precision, check_scale

__all__ = [
    "BundleInfo",
    "shipped_root",
    "shipped_bundles",
    "resolve_bundle",
    "check_trusted",
    "parse_bundle",
    "unwrap_checkpoint",
    "load_weights",
    "load_upscaler",
]


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


def resolve_bundle(model: PathLike) -> BundleInfo:
    """Find a bundle by shipped name or by path to its folder; UsageError if neither."""
    text = str(model)
    root = shipped_root()
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


def check_trusted(info: BundleInfo, trust_bundle: bool) -> BundleInfo:
    """``info`` unchanged if medsr ships it or ``trust_bundle``; else UsageError (a MONAI config can run code)."""
    if not info.shipped and not trust_bundle:
        raise UsageError(
            f"bundle {str(info.root)!r} is not shipped with medsr and its config can run code; "
            "read configs/inference.json, then pass --trust-bundle."
        )
    return info


def parse_bundle(info: BundleInfo, scale: int) -> tuple[nn.Module, dict[str, Any]]:
    """``(network_def built for scale, the config's is_gan / spatial_dims / halo / task that it sets)``.

    Runs the config (it can run code): call it for shipped or trusted bundles only.
    """
    from monai.bundle import ConfigParser  # only networks need MONAI (docs/performance.md, start-up)

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
    log: Callable[[str], None] | None = None,
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
    scale = check_scale(scale)
    check_precision(precision)
    device = resolve_device(device)  # before any bundle is read: a missing GPU is the first thing to say
    text = str(model)
    if text in INTERPOLATIONS:
        return InterpolationUpscaler(text, scale, device=device)
    info = resolve_bundle(model)
    check_trusted(info, trust_bundle)
    if log is not None:
        if info.shipped:
            log(f"medsr: loading shipped bundle {info.name}: {info.inference_config}")
        else:
            log(f"medsr: executing the config of third-party bundle {info.name} (--trust-bundle): {info.inference_config}")
    net, extras = parse_bundle(info, scale)
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
    lines = [ln for ln in str(err).splitlines() if ln.strip() and "weights_only" not in ln]
    return one_line(lines[0] if lines else type(err).__name__, 300)


def unwrap_checkpoint(state: Any) -> Any:
    """The state dict of a loaded checkpoint: ``state["model"]`` for ``{"model": state_dict, ...}`` (MONAI's
    ``CheckpointSaver``), else ``state`` itself."""
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        return state["model"]
    return state


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
    state = unwrap_checkpoint(state)
    if not isinstance(state, dict):
        raise UsageError(f"{name}: {path} holds a {type(state).__name__}, not a state dict of tensors.")
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, AttributeError) as err:
        raise UsageError(f"{name}: {path.name} does not match its network_def: {_first_line(err)}") from err
    return net
