"""Voxel geometry: the one half-pixel resampling rule and spacing read from the affine.

``io`` (readers, writers) and ``transforms`` (resampling, degradation) both import this
leaf module, so an image resized anywhere in medsr gets the same affine: along an axis
zoomed by ``f`` the spacing becomes ``old / f`` and the first voxel centre moves by
``-(f - 1) / (2 f)`` old voxels, so the outer voxel edges stay put (the convention of
``torch.nn.functional.interpolate(align_corners=False)``, MATLAB ``imresize`` and
MONAI's ``Resize``). ``meta["spacing"]`` is never computed by hand: it is the column
norms of the affine (:func:`spacing_from_affine`).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import torch

from medsr import meta as mk
from medsr.errors import UsageError

__all__ = ["zoom_geometry", "spacing_from_affine", "update_spacing", "resized_meta", "resized_like"]


def _as_numpy(affine: Any) -> np.ndarray:
    a = affine.detach().cpu().numpy() if isinstance(affine, torch.Tensor) else np.asarray(affine)
    return np.array(a, dtype=np.float64)


def zoom_geometry(affine: Any, factors: Sequence[float]) -> Any:
    """Affine of an image resampled by ``factors`` per spatial axis over the same physical extent.

    Voxel centres convention (as ``torch.nn.functional.interpolate(align_corners=False)``):
    along axis ``i`` the new spacing is ``old / f`` and the first voxel centre moves by
    ``-(f - 1) / (2 f)`` old voxels along that axis, so the outer voxel edges stay put.
    A factor below 1 downsamples (``f = n_out / n_in``).

    Args:
        affine: ``(N+1) x (N+1)`` voxel-to-world matrix (numpy array or torch tensor), N >= len(factors).
        factors: positive zoom factor per spatial axis, in array-axis order (e.g. ``(2, 2)``).

    Returns:
        A new affine: a float64 numpy array, or a torch tensor of the input's dtype and device.

    Example::

        >>> zoom_geometry(np.diag([1.0, 2.0, 1.0]), (2, 2))[:2]
        array([[ 0.5 ,  0.  , -0.25],
               [ 0.  ,  1.  , -0.5 ]])
    """
    a = _as_numpy(affine)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 2:
        raise UsageError(f"`affine` must be a square (N+1)x(N+1) matrix, got shape {tuple(a.shape)}.")
    n = a.shape[0] - 1
    factors = tuple(float(f) for f in factors)
    if len(factors) > n or len(factors) == 0:
        raise UsageError(f"`factors` must have 1 to {n} values for a {n + 1}x{n + 1} affine, got {factors}.")
    if not all(np.isfinite(f) and f > 0 for f in factors):
        raise UsageError(f"`factors` must be positive numbers, got {factors}.")
    out = a.copy()
    for i, f in enumerate(factors):
        col = a[:n, i]
        out[:n, n] += -(f - 1.0) / (2.0 * f) * col
        out[:n, i] = col / f
    if isinstance(affine, torch.Tensor):
        return torch.as_tensor(out, dtype=affine.dtype, device=affine.device)
    return out


def spacing_from_affine(affine: Any, ndim: int) -> tuple[float, ...]:
    """Voxel size per array axis: the norms of the affine's first ``ndim`` columns (as MONAI)."""
    a = _as_numpy(affine)
    return tuple(float(np.linalg.norm(a[:3, i])) for i in range(ndim))


def update_spacing(meta: MutableMapping[Any, Any], affine: Any, ndim: int) -> None:
    """Set ``meta["spacing"]`` from ``affine`` where ``meta`` records a spacing of ``ndim`` values.

    Called after any change of the affine (resampling, degradation, slice upscaling), so the
    two never disagree; a meta without a spacing (or with a batched tensor one) is left as is.
    """
    spacing = meta.get(mk.SPACING)
    if spacing is None or isinstance(spacing, torch.Tensor) or len(spacing) != ndim:
        return
    meta[mk.SPACING] = spacing_from_affine(affine, ndim)


def resized_like(like: Any, data: torch.Tensor, factors: Sequence[float], derivation: str) -> Any:
    """``data``, ``like`` resized by ``factors`` per spatial axis, as a MetaTensor with ``like``'s meta updated.

    The affine is :func:`zoom_geometry`'s, the spacing follows from it (:func:`update_spacing`),
    ``spatial_shape`` is ``data``'s and ``meta["derivation"]`` is ``derivation``: the one place
    where medsr's upscaling and its degradation command give an image its new geometry.
    """
    from monai.data import MetaTensor  # the MONAI boundary: resized_meta is the MONAI-free rule

    return MetaTensor(data, meta=resized_meta(like.meta, tuple(data.shape), factors, derivation))


def resized_meta(meta: Mapping[Any, Any], shape: Sequence[int], factors: Sequence[float], derivation: str) -> dict[Any, Any]:
    """The meta of an image resized by ``factors`` to channel-first ``shape`` (:func:`resized_like` without MONAI).

    ``meta["affine"]`` (a float64 tensor, as in a ``MetaTensor``) is :func:`zoom_geometry`'s, the spacing
    follows from it, ``spatial_shape`` is ``shape[1:]`` and ``meta["derivation"]`` is ``derivation``.
    """
    out = {k: v for k, v in meta.items() if k != "affine"}
    affine = zoom_geometry(torch.as_tensor(meta["affine"], dtype=torch.float64), factors)
    update_spacing(out, affine, len(shape) - 1)
    out["spatial_shape"] = tuple(shape[1:])
    out[mk.DERIVATION] = derivation
    out["affine"] = affine
    return out
