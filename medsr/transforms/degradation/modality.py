"""Per-modality choice of the LR simulator: the classic bicubic protocol or the modality's physics.

:class:`RandModalityDegradation` draws, per call, the branch and then the chosen ``Rand*``
transform's parameters; :class:`RandModalityDegradationd` does so once for all keys.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from medsr.errors import UsageError
from medsr.transforms.degradation.array import (
    BicubicDegradation,
    RandCTDegradation,
    RandMRDegradation,
    RandXRayDegradation,
)
from medsr.transforms.degradation.dictionary import _RandKeyed
from medsr.transforms.degradation.functional import new_seed
from medsr.transforms.intensity import resolve_modality
from medsr.typing import NdarrayOrTensor
from medsr.validation import check_int_at_least

__all__ = ["RandModalityDegradation", "RandModalityDegradationd"]


class RandModalityDegradation(RandomizableTransform):
    """Per call, either the classic bicubic protocol or the image modality's random degradation.

    With probability ``p_classic`` the LR image is :class:`BicubicDegradation`; otherwise
    :class:`RandXRayDegradation`, :class:`RandCTDegradation` or :class:`RandMRDegradation`
    according to ``modality`` (or ``meta["modality"]``). Training on both keeps a network good
    on the literature's protocol and robust to the acquisition physics. ``set_random_state``
    re-seeds the sub-transforms from this one, so a pipeline is reproducible from one seed.

    Args:
        scale: integer in-plane factor (2 or 4).
        p_classic: probability of the classic protocol. Default 0.5.
        modality: ``"xray"``, ``"ct"``, ``"mr"``; default from the image's meta.
        spatial_axes: in-plane axes, default ``(0, 1)``.
        xray_args, ct_args, mr_args: keyword arguments for the modality transforms
            (e.g. ``{"photons_range": (2000, 10000)}``).

    After a call, ``choice`` is ``"classic"`` or the modality used.

    Example::

        pipeline = Compose([CopyItemsd(keys="hr", names="lr"), RandModalityDegradationd(keys="lr", scale=2)])
        pipeline.set_random_state(seed=0)
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        scale: int,
        p_classic: float = 0.5,
        modality: str | None = None,
        spatial_axes: Sequence[int] = (0, 1),
        xray_args: Mapping[str, Any] | None = None,
        ct_args: Mapping[str, Any] | None = None,
        mr_args: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(prob=1.0)
        self.scale = check_int_at_least("scale", scale)
        if not 0.0 <= float(p_classic) <= 1.0:
            raise UsageError(f"`p_classic` must be in [0, 1], got {p_classic!r}.")
        self.p_classic = float(p_classic)
        self.modality = None if modality is None else resolve_modality(None, modality)
        self.spatial_axes = tuple(spatial_axes)
        common = {"scale": self.scale, "spatial_axes": self.spatial_axes}
        self.classic = BicubicDegradation(**common)
        self.transforms: dict[str, RandomizableTransform] = {
            "xray": RandXRayDegradation(**common, **dict(xray_args or {})),
            "ct": RandCTDegradation(**common, **dict(ct_args or {})),
            "mr": RandMRDegradation(**common, **dict(mr_args or {})),
        }
        self.choice: str | None = None

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandModalityDegradation:
        super().set_random_state(seed, state)
        for name in sorted(self.transforms):
            self.transforms[name].set_random_state(seed=new_seed(self.R))
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw the branch and its parameters; ``data`` is the resolved modality name."""
        super().randomize(None)
        if data is None:
            raise UsageError("RandModalityDegradation.randomize() needs the modality ('xray', 'ct' or 'mr').")
        classic = self.R.rand() < self.p_classic
        self.choice = "classic" if classic else str(data)
        if not classic:
            self.transforms[str(data)].randomize()

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        modality = resolve_modality(img, self.modality)
        if randomize:
            self.randomize(modality)
        elif self.choice not in ("classic", modality):
            raise UsageError(
                f"randomize=False reuses the last draw ({self.choice!r}), which does not match this image's "
                f"modality {modality!r}; call with randomize=True."
            )
        if self.choice == "classic":
            return self.classic(img)
        return self.transforms[modality](img, randomize=False)


class RandModalityDegradationd(_RandKeyed):
    """Dictionary wrapper of :class:`RandModalityDegradation`: one draw per call for all keys.

    The modality comes from ``modality`` or from the first key's meta; every key must share it.

    Example::

        Compose([CopyItemsd(keys="hr", names="lr"), RandModalityDegradationd(keys="lr", scale=2)])
    """

    backend = RandModalityDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: int,
        p_classic: float = 0.5,
        modality: str | None = None,
        spatial_axes: Sequence[int] = (0, 1),
        xray_args: Mapping[str, Any] | None = None,
        ct_args: Mapping[str, Any] | None = None,
        mr_args: Mapping[str, Any] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RandModalityDegradation(scale, p_classic, modality, spatial_axes, xray_args, ct_args, mr_args)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        first = self.first_key(d)
        if first == ():
            return d
        found = {resolve_modality(d[key], self.transform.modality) for key in self.key_iterator(d)}
        if len(found) > 1:
            raise UsageError(
                f"the keys {list(self.keys)} hold images of different modalities {sorted(found)}; "
                "RandModalityDegradationd draws one degradation per call. Use one transform per modality."
            )
        modality = found.pop()
        RandomizableTransform.randomize(self, None)
        self.transform.randomize(modality)
        return self._apply(d, randomize=False)
