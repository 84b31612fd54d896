"""Upscaling of 2D images and 3D volumes: interpolation baselines and networks from MONAI bundles.

The package, by concern (each module says how and why in its docstring):

- :mod:`~medsr.inference.upscalers`: the :class:`Upscaler` protocol,
  :class:`InterpolationUpscaler` and :class:`NetworkUpscaler` (normalised tensor in and out);
- :mod:`~medsr.inference.tiling`: :func:`~medsr.inference.tiling.tiled_upscale`, halo-cropped
  (exact) or blended tiles for any predictor;
- :mod:`~medsr.inference.prepare`: a network's measured receptive field and memory, and the
  fast inference copy (:func:`prepare_network`; the rewrites themselves are methods of the
  network blocks, applied by :mod:`medsr.networks.deploy`);
- :mod:`~medsr.inference.runtime`: threads, allocator, device, ``torchrun`` rank, memory budget;
- :mod:`~medsr.inference.bundles`: MONAI bundles found, built and loaded (:func:`load_upscaler`,
  :func:`load_weights`);
- :mod:`~medsr.inference.pipeline`: physical units in and out (:func:`upscale_image`,
  :func:`upscale_path`).
"""

from __future__ import annotations

from medsr.inference.bundles import (
    BundleInfo,
    check_trusted,
    load_upscaler,
    load_weights,
    parse_bundle,
    resolve_bundle,
    shipped_bundles,
    unwrap_checkpoint,
)
from medsr.inference.pipeline import describe, upscale_image, upscale_path
from medsr.inference.prepare import MAX_HALO, prepare_network, receptive_radius
from medsr.inference.runtime import DEVICES, configure_threads, distributed_rank, resolve_device, tune_allocator
from medsr.inference.tiling import tile_windows, tiled_upscale
from medsr.inference.upscalers import (
    INTERPOLATIONS,
    PRECISIONS,
    InterpolationUpscaler,
    NetworkUpscaler,
    Upscaler,
)
from medsr.validation import check_scale

__all__ = [
    "INTERPOLATIONS",
    "PRECISIONS",
    "MAX_HALO",
    "Upscaler",
    "InterpolationUpscaler",
    "NetworkUpscaler",
    "check_scale",
    "DEVICES",
    "resolve_device",
    "BundleInfo",
    "shipped_bundles",
    "resolve_bundle",
    "check_trusted",
    "parse_bundle",
    "load_upscaler",
    "upscale_image",
    "tile_windows",
    "tiled_upscale",
    "receptive_radius",
    "prepare_network",
    "configure_threads",
    "tune_allocator",
    "distributed_rank",
    "describe",
    "load_weights",
    "unwrap_checkpoint",
    "upscale_path",
]
