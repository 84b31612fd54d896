"""Through-plane LR simulator: thin slices averaged into thick ones (array and dictionary transforms).

:class:`SliceThickness` is deterministic; :class:`RandSliceThickness` draws the slice profile
per call and applies :class:`SliceThickness` with it. Physics in :class:`SliceThickness`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import RandomizableTransform, Transform
from monai.utils import TransformBackends

from medsr.errors import UsageError
from medsr.transforms.degradation.dictionary import _Keyed, _RandKeyed
from medsr.transforms.degradation.functional import SLICE_PROFILES, run_on_axes, thick_slices
from medsr.typing import NdarrayOrTensor
from medsr.validation import check_finite_nonnegative, check_int_at_least, check_probability, check_range

__all__ = ["SliceThickness", "RandSliceThickness", "SliceThicknessd", "RandSliceThicknessd"]


def _check_profile(profile: Any) -> str:
    p = str(profile).lower()
    if p not in SLICE_PROFILES:
        raise UsageError(f"`profile` must be one of {SLICE_PROFILES}, got {profile!r}.")
    return p


class SliceThickness(Transform):
    """Through-plane downsampling: ``factor`` thin slices become one thick slice (partial volume).

    Physics: a CT or MR slice is a weighted average of the object along the slice normal, with
    weights given by the slice sensitivity profile (CT) or the slice-selection profile (MR).
    A thick slice therefore mixes the tissues of ``factor`` thin slices (the partial-volume
    effect), and averages their independent noise (variance divided by about ``factor``).
    ``"box"``: the ideal rectangular profile, the exact mean of each block of ``factor`` slices;
    ``"gaussian"``: a smooth profile of FWHM ``fwhm * factor`` thin slices centred on the thick
    slice (realistic for spiral CT and 2D MR excitation), with tails into neighbouring blocks.

    References: J. Polacin, W. A. Kalender, G. Marchal, "Evaluation of section sensitivity profiles
    and image noise in spiral CT", Radiology 185(1), 1992. — C. Zhao et al., "SMORE: a
    self-supervised anti-aliasing and super-resolution algorithm for MRI using deep learning",
    IEEE TMI 40(3), 2021.

    Args:
        factor: number of thin slices per thick slice (2 or 4); the axis must be divisible by it.
        axis: spatial axis across slices (``-1`` = last, ``Z``). Default -1.
        profile: ``"box"`` (default) or ``"gaussian"``.
        fwhm: Gaussian FWHM in units of the thick slice thickness. Default 1.0.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, factor: int, axis: int = -1, profile: str = "box", fwhm: float = 1.0) -> None:
        self.factor = check_int_at_least("factor", factor)
        self.axis = int(axis)
        self.profile = _check_profile(profile)
        self.fwhm = check_finite_nonnegative("fwhm", fwhm)
        if self.profile == "gaussian" and self.fwhm == 0:
            raise UsageError("`fwhm` must be > 0 for the 'gaussian' profile, got 0; use profile='box' instead.")

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        return run_on_axes(
            img,
            (self.axis,),
            self.factor,
            lambda x, ax: thick_slices(x, ax[0], self.factor, self.profile, self.fwhm),
            min_spatial=3,
        )


class RandSliceThickness(RandomizableTransform):
    """:class:`SliceThickness` with a random slice profile per call.

    Args:
        factor: thin slices per thick slice.
        axis: spatial axis across slices. Default -1.
        prob: probability of the random profile; otherwise the ideal ``"box"`` profile.
        profiles: profiles to choose from uniformly. Default ``("box", "gaussian")``.
        fwhm_range: uniform range of the Gaussian FWHM in thick-slice units. Default (0.8, 1.2).
    """

    backend = SliceThickness.backend

    def __init__(
        self,
        factor: int,
        axis: int = -1,
        prob: float = 1.0,
        profiles: Sequence[str] = SLICE_PROFILES,
        fwhm_range: Sequence[float] = (0.8, 1.2),
    ) -> None:
        super().__init__(check_probability(prob))
        self.factor = check_int_at_least("factor", factor)
        self.axis = int(axis)
        self.profiles = [_check_profile(p) for p in profiles]
        if not self.profiles:
            raise UsageError(f"`profiles` must list at least one of {SLICE_PROFILES}; got an empty list.")
        self.fwhm_range = check_range("fwhm_range", fwhm_range, positive=True)
        self.params: dict[str, Any] = {"profile": "box", "fwhm": 1.0}

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.params = {
            "profile": self.profiles[int(self.R.randint(len(self.profiles)))],
            "fwhm": float(self.R.uniform(*self.fwhm_range)),
        }

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return SliceThickness(self.factor, self.axis, "box")(img)
        return SliceThickness(self.factor, self.axis, self.params["profile"], self.params["fwhm"])(img)


class SliceThicknessd(_Keyed):
    """Dictionary wrapper of :class:`SliceThickness`."""

    backend = SliceThickness.backend

    def __init__(
        self,
        keys: KeysCollection,
        factor: int,
        axis: int = -1,
        profile: str = "box",
        fwhm: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = SliceThickness(factor, axis, profile, fwhm)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        return self._apply(dict(data))


class RandSliceThicknessd(_RandKeyed):
    """Dictionary wrapper of :class:`RandSliceThickness` (one draw per call for all keys)."""

    backend = RandSliceThickness.backend

    def __init__(
        self,
        keys: KeysCollection,
        factor: int,
        axis: int = -1,
        prob: float = 1.0,
        profiles: Sequence[str] = SLICE_PROFILES,
        fwhm_range: Sequence[float] = (0.8, 1.2),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RandSliceThickness(factor, axis, prob, profiles, fwhm_range)

