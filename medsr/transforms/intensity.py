"""Modality-aware, exactly invertible mapping of physical intensities to [0, 1].

The mapping is linear, ``y = (x - low) / (high - low)``, with ``low`` and
``high`` the physical values sent to 0 and 1, chosen per modality:

- **CT** — a fixed window in Hounsfield units (default ``[-1024, 3071]`` HU,
  the 12-bit range scanners store: air ~ -1000 HU, water 0 HU, cortical bone
  ~ +1000..2000 HU, metal above). A fixed window keeps the physical meaning of
  a value identical across images (Hounsfield 1973; DICOM PS3.3 C.8.2.1), which
  per-image min/max would destroy. Values outside the window map outside
  [0, 1] unless ``clip=True``.
- **MR** — intensities have no absolute unit, so each volume is mapped by its
  0.5th and 99.5th percentiles (robust to a few hot voxels and to the noise
  floor; cf. Nyúl & Udupa 1999, and the percentile scaling of nnU-Net,
  Isensee et al. 2021).
- **X-ray** — the detector's stored range ``[0, 2**BitsStored - 1]`` when the
  header gives ``BitsStored`` (meta ``bits_stored``) and the data fit in it;
  otherwise (no bit depth, or values outside it: signed storage, values after a
  Modality LUT) per-image percentiles as for MR.

The method and ``low``/``high`` are recorded in the MetaTensor's meta
(:data:`medsr.meta.NORM_METHOD`, :data:`~medsr.meta.NORM_LOW`,
:data:`~medsr.meta.NORM_HIGH`); :class:`InvertModalityNormalize` applies
``x * (high - low) + low``, exact up to floating-point rounding. A constant
image (``high == low``) is mapped with ``high = low + 1`` so nothing divides by
zero and the inverse stays exact.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from medsr.errors import UsageError
from medsr.transforms.mapping import (
    DEFAULT_CT_WINDOW,
    DEFAULT_PERCENTILES,
    check_ct_window,
    check_percentiles,
    denormalise_data,
    denormalise_image,
    intensity_mapping,
    modality_from,
    normalise_image,
    without_mapping,
)
from medsr.typing import NdarrayOrTensor

__all__ = [
    "DEFAULT_CT_WINDOW",
    "DEFAULT_PERCENTILES",
    "resolve_modality",
    "ModalityNormalize",
    "ModalityNormalized",
    "InvertModalityNormalize",
    "InvertModalityNormalized",
]


def resolve_modality(img: object, modality: str | None = None) -> str:
    """The modality to use: ``modality`` if given, else ``img.meta[MODALITY]``; one of ``MODALITIES``.

    DICOM codes are accepted (``CR``, ``DX``, ``DR``, ``RG``, ``MG`` -> ``"xray"``, ``MRI`` -> ``"mr"``).
    """
    return modality_from(img.meta if isinstance(img, MetaTensor) else None, modality)


def _plain(img: NdarrayOrTensor) -> torch.Tensor:
    return img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)


class ModalityNormalize(Transform):
    """Map physical intensities to [0, 1] per modality and record the mapping in meta.

    Args:
        modality: ``"ct"``, ``"mr"`` or ``"xray"``; default: read ``meta["modality"]``
            (plain tensors and arrays need it). An explicit value wins over the meta.
        ct_window: ``(low, high)`` in HU sent to 0 and 1 for CT. Default ``(-1024, 3071)``.
        percentiles: ``(lower, upper)`` percentiles for MR and for X-ray without a usable
            bit depth. Default ``(0.5, 99.5)``.
        clip: clamp the result to [0, 1]. Default ``False`` so that the inverse is exact for
            every value (e.g. metal above the CT window); ``True`` loses what lies outside.
        dtype: output dtype (default float32).

    The output is a MetaTensor (MONAI's ``get_track_meta()``, on by default) with
    ``norm_method``, ``norm_low``, ``norm_high`` and ``modality`` set in its meta. With
    meta tracking off, use :meth:`mapping` to get ``(method, low, high)``.

    Example::

        norm = ModalityNormalize()                      # modality from meta
        y = norm(ct)                                    # -1024 HU -> 0, 3071 HU -> 1
        x = InvertModalityNormalize()(y)                # back to HU
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        modality: str | None = None,
        ct_window: Sequence[float] = DEFAULT_CT_WINDOW,
        percentiles: Sequence[float] = DEFAULT_PERCENTILES,
        clip: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if modality is not None:
            modality = resolve_modality(None, modality)
        self.modality = modality
        self.ct_window = check_ct_window(ct_window)
        self.percentiles = check_percentiles(percentiles)
        self.clip = bool(clip)
        self.dtype = dtype

    def mapping(self, img: NdarrayOrTensor) -> tuple[str, float, float, str]:
        """``(method, low, high, modality)`` this transform would apply to ``img``."""
        meta = img.meta if isinstance(img, MetaTensor) else None
        return intensity_mapping(_plain(img), meta, self.modality, self.ct_window, self.percentiles)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        meta = img_t.meta if isinstance(img_t, MetaTensor) else None
        out, out_meta = normalise_image(
            _plain(img_t), meta, modality=self.modality, ct_window=self.ct_window, percentiles=self.percentiles,
            clip=self.clip, dtype=self.dtype,
        )
        if isinstance(img_t, MetaTensor):
            res = MetaTensor(out, meta=out_meta, applied_operations=list(img_t.applied_operations))
            res.is_batch = img_t.is_batch
            return res
        return convert_to_dst_type(out, dst=img_t, dtype=self.dtype)[0]


class InvertModalityNormalize(Transform):
    """Map a [0, 1] image back to physical units: ``x * (high - low) + low``.

    Args:
        low, high: the physical values of 0 and 1. Default: read ``norm_low`` / ``norm_high``
            from the MetaTensor's meta (as set by :class:`ModalityNormalize`). For a batched
            MetaTensor they may be per-sample (shape ``(B,)``). Give both or neither.
        dtype: output dtype (default float32; use float64 for sub-ULP exactness).

    The ``norm_*`` keys are removed from the output's meta (it is in physical units again),
    so inverting twice fails loudly instead of rescaling twice.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, low: float | None = None, high: float | None = None, dtype: torch.dtype = torch.float32):
        if (low is None) != (high is None):
            raise UsageError(f"give both `low` and `high` or neither, got low={low!r}, high={high!r}.")
        self.low, self.high, self.dtype = low, high, dtype

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        data = _plain(img_t)
        if self.low is not None:
            out = denormalise_data(data, self.low, self.high, self.dtype)
            out_meta = without_mapping(img_t.meta) if isinstance(img_t, MetaTensor) else None
        else:
            out, out_meta = denormalise_image(data, img_t.meta if isinstance(img_t, MetaTensor) else {}, self.dtype)
        if isinstance(img_t, MetaTensor):
            res = MetaTensor(out, meta=out_meta, applied_operations=list(img_t.applied_operations))
            res.is_batch = img_t.is_batch
            return res
        return convert_to_dst_type(out, dst=img_t, dtype=self.dtype)[0]


class ModalityNormalized(MapTransform):
    """Dictionary wrapper of :class:`ModalityNormalize` (same arguments, plus ``keys``)."""

    backend = ModalityNormalize.backend

    def __init__(
        self,
        keys: KeysCollection,
        modality: str | None = None,
        ct_window: Sequence[float] = DEFAULT_CT_WINDOW,
        percentiles: Sequence[float] = DEFAULT_PERCENTILES,
        clip: bool = False,
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.normalizer = ModalityNormalize(modality, ct_window, percentiles, clip, dtype)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.normalizer(d[key])
        return d


class InvertModalityNormalized(MapTransform):
    """Dictionary wrapper of :class:`InvertModalityNormalize` (same arguments, plus ``keys``)."""

    backend = InvertModalityNormalize.backend

    def __init__(
        self,
        keys: KeysCollection,
        low: float | None = None,
        high: float | None = None,
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inverter = InvertModalityNormalize(low, high, dtype)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.inverter(d[key])
        return d
