"""Dictionary versions of the in-plane LR simulators: each holds its array transform and loops over ``keys``.

A ``Rand*d`` transform draws once per call and applies the same draw to every key (an HR/LR
pair, or several images of one case, degrade alike).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform

from medsr.transforms.degradation.array import (
    BicubicDegradation,
    CTDegradation,
    MRDegradation,
    RandCTDegradation,
    RandMRDegradation,
    RandXRayDegradation,
    XRayDegradation,
)
from medsr.transforms.degradation.functional import MR_WINDOWS, new_seed
from medsr.typing import NdarrayOrTensor

__all__ = [
    "BicubicDegradationd",
    "XRayDegradationd",
    "RandXRayDegradationd",
    "CTDegradationd",
    "RandCTDegradationd",
    "MRDegradationd",
    "RandMRDegradationd",
]


class _Keyed(MapTransform):
    """Apply ``self.transform`` (with ``randomize=False`` when it is random) to every key."""

    transform: Any

    def _apply(self, d: dict[Hashable, Any], **kwargs: Any) -> dict[Hashable, Any]:
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], **kwargs)
        return d


class BicubicDegradationd(_Keyed):
    """Dictionary wrapper of :class:`BicubicDegradation`."""

    backend = BicubicDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = BicubicDegradation(scale, clip, spatial_axes)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        return self._apply(dict(data))


class _RandKeyed(RandomizableTransform, _Keyed):
    """Dictionary wrapper of a ``Rand*`` degradation: one draw per call, the same for every key.

    ``prob`` lives in the wrapped transform (its fallback keeps the LR shape), so this wrapper is
    always "applied".
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        MapTransform.__init__(self, keys, allow_missing_keys)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> _RandKeyed:
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed=new_seed(self.R))
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.transform.randomize(data)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        self.randomize()
        return self._apply(dict(data), randomize=False)


class XRayDegradationd(_Keyed):
    """Dictionary wrapper of :class:`XRayDegradation`."""

    backend = XRayDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        psf_sigma: float = 0.5,
        photons: float | None = 5000.0,
        read_noise: float = 0.002,
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
        seed: int = 0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = XRayDegradation(scale, psf_sigma, photons, read_noise, clip, spatial_axes, seed)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        return self._apply(dict(data))


class CTDegradationd(_Keyed):
    """Dictionary wrapper of :class:`CTDegradation`."""

    backend = CTDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        psf_fwhm: float = 1.1,
        noise_sigma: float = 0.005,
        noise_correlation: float = 0.5,
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
        seed: int = 0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = CTDegradation(scale, psf_fwhm, noise_sigma, noise_correlation, clip, spatial_axes, seed)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        return self._apply(dict(data))


class MRDegradationd(_Keyed):
    """Dictionary wrapper of :class:`MRDegradation`."""

    backend = MRDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        noise_sigma: float = 0.01,
        window: str | None = None,
        tukey_alpha: float = 0.5,
        spatial_axes: Sequence[int] = (0, 1),
        seed: int = 0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = MRDegradation(scale, noise_sigma, window, tukey_alpha, spatial_axes, seed)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        return self._apply(dict(data))


class RandXRayDegradationd(_RandKeyed):
    """Dictionary wrapper of :class:`RandXRayDegradation` (one draw per call for all keys)."""

    backend = RandXRayDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        prob: float = 1.0,
        psf_sigma_range: Sequence[float] = (0.2, 0.8),
        photons_range: Sequence[float] = (1000.0, 20000.0),
        read_noise_range: Sequence[float] = (0.0, 0.004),
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RandXRayDegradation(
            scale, prob, psf_sigma_range, photons_range, read_noise_range, clip, spatial_axes
        )


class RandCTDegradationd(_RandKeyed):
    """Dictionary wrapper of :class:`RandCTDegradation` (one draw per call for all keys)."""

    backend = RandCTDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        prob: float = 1.0,
        psf_fwhm_range: Sequence[float] = (0.8, 1.5),
        noise_sigma_range: Sequence[float] = (0.001, 0.008),
        noise_correlation_range: Sequence[float] = (0.0, 1.0),
        clip: bool = True,
        spatial_axes: Sequence[int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RandCTDegradation(
            scale, prob, psf_fwhm_range, noise_sigma_range, noise_correlation_range, clip, spatial_axes
        )


class RandMRDegradationd(_RandKeyed):
    """Dictionary wrapper of :class:`RandMRDegradation` (one draw per call for all keys)."""

    backend = RandMRDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        prob: float = 1.0,
        noise_sigma_range: Sequence[float] = (0.002, 0.02),
        windows: Sequence[str | None] = MR_WINDOWS,
        tukey_alpha: float = 0.5,
        spatial_axes: Sequence[int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RandMRDegradation(scale, prob, noise_sigma_range, windows, tukey_alpha, spatial_axes)
