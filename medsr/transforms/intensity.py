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

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.transforms.utils_pytorch_numpy_unification import percentile
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from medsr import meta as M
from medsr.errors import UsageError
from medsr.typing import MODALITIES, NdarrayOrTensor

__all__ = [
    "DEFAULT_CT_WINDOW",
    "DEFAULT_PERCENTILES",
    "resolve_modality",
    "ModalityNormalize",
    "ModalityNormalized",
    "InvertModalityNormalize",
    "InvertModalityNormalized",
]

DEFAULT_CT_WINDOW: tuple[float, float] = (-1024.0, 3071.0)
DEFAULT_PERCENTILES: tuple[float, float] = (0.5, 99.5)

_ALIASES = {
    "ct": "ct",
    "mr": "mr",
    "mri": "mr",
    "xray": "xray",
    "x-ray": "xray",
    "cr": "xray",
    "dx": "xray",
    "dr": "xray",
    "rg": "xray",
    "mg": "xray",
}


def _scalar(v: object) -> object:
    """A Python scalar from a 0-d / 1-element tensor or array (meta values may be either)."""
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return v.item()
    if isinstance(v, np.ndarray) and v.size == 1:
        return v.item()
    if isinstance(v, (list, tuple)) and len(v) == 1:
        return _scalar(v[0])
    return v


def resolve_modality(img: object, modality: str | None = None) -> str:
    """The modality to use: ``modality`` if given, else ``img.meta[MODALITY]``; one of ``MODALITIES``.

    DICOM codes are accepted (``CR``, ``DX``, ``DR``, ``RG``, ``MG`` -> ``"xray"``, ``MRI`` -> ``"mr"``).
    """
    source = "argument `modality`"
    if modality is None:
        value = img.meta.get(M.MODALITY) if isinstance(img, MetaTensor) else None
        source = f"meta[{M.MODALITY!r}]"
        if value is None:
            raise UsageError(
                "the modality is unknown: the image has no "
                f"meta[{M.MODALITY!r}] (a plain tensor/array, or not read by medsr.io). "
                f"Pass modality= one of {MODALITIES}."
            )
    else:
        value = modality
    value = _scalar(value)
    key = str(value).strip().lower()
    if key not in _ALIASES:
        raise UsageError(
            f"{source} must be one of {MODALITIES}, got {value!r}. Pass modality= one of {MODALITIES} explicitly."
        )
    return _ALIASES[key]


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
        if len(ct_window) != 2 or not float(ct_window[1]) > float(ct_window[0]):
            raise UsageError(
                f"`ct_window` must be (low, high) in HU with high > low, got {tuple(ct_window)!r}; "
                f"the default is {DEFAULT_CT_WINDOW}."
            )
        self.ct_window = (float(ct_window[0]), float(ct_window[1]))
        if len(percentiles) != 2 or not 0.0 <= float(percentiles[0]) < float(percentiles[1]) <= 100.0:
            raise UsageError(
                f"`percentiles` must be (lower, upper) with 0 <= lower < upper <= 100, got {tuple(percentiles)!r}; "
                f"the default is {DEFAULT_PERCENTILES}."
            )
        self.percentiles = (float(percentiles[0]), float(percentiles[1]))
        self.clip = bool(clip)
        self.dtype = dtype

    def _percentile_range(self, data: torch.Tensor) -> tuple[float, float]:
        flat = data.reshape(-1).to(torch.float64)
        if flat.numel() == 0:
            raise UsageError("cannot normalise an empty image (0 voxels); check the input's shape.")
        lo, hi = percentile(flat, list(self.percentiles))
        return float(lo), float(hi)

    def mapping(self, img: NdarrayOrTensor) -> tuple[str, float, float, str]:
        """``(method, low, high, modality)`` this transform would apply to ``img``."""
        modality = resolve_modality(img, self.modality)
        data = _plain(img)
        if modality == "ct":
            method, (low, high) = "window", self.ct_window
        elif modality == "mr":
            method, (low, high) = "percentile", self._percentile_range(data)
        else:
            bits = _scalar(img.meta.get(M.BITS_STORED)) if isinstance(img, MetaTensor) else None
            method = "percentile"
            if bits is not None:
                try:
                    nbits = int(bits)  # type: ignore[call-overload]
                except (TypeError, ValueError):
                    nbits = 0
                if 1 <= nbits <= 32:
                    top = float(2**nbits - 1)
                    if data.numel() and float(data.min()) >= 0.0 and float(data.max()) <= top:
                        method, low, high = "bits", 0.0, top
            if method == "percentile":
                low, high = self._percentile_range(data)
        if not high > low:  # constant image: keep the inverse exact, avoid 0/0
            high = low + 1.0
        return method, float(low), float(high), modality

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        method, low, high, modality = self.mapping(img_t)
        data = _plain(img_t)
        work = torch.float64 if self.dtype == torch.float64 or data.dtype == torch.float64 else torch.float32
        out = (data.to(work) - low) / (high - low)
        if self.clip:
            out = out.clamp(0.0, 1.0)
        out = out.to(self.dtype)
        if isinstance(img_t, MetaTensor):
            res = MetaTensor(out, meta=dict(img_t.meta), applied_operations=list(img_t.applied_operations))
            res.is_batch = img_t.is_batch
            res.meta.update({M.NORM_METHOD: method, M.NORM_LOW: low, M.NORM_HIGH: high, M.MODALITY: modality})
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
            low, high = self.low, self.high
        elif isinstance(img_t, MetaTensor) and M.NORM_LOW in img_t.meta and M.NORM_HIGH in img_t.meta:
            low, high = img_t.meta[M.NORM_LOW], img_t.meta[M.NORM_HIGH]
        else:
            raise UsageError(
                f"cannot invert the normalisation: no `low`/`high` given and the image has no "
                f"meta[{M.NORM_LOW!r}]/meta[{M.NORM_HIGH!r}] (not produced by ModalityNormalize, or meta "
                "tracking was off). Pass low= and high= (the physical values of 0 and 1)."
            )
        work = torch.float64
        lo = torch.as_tensor(low, dtype=work, device=data.device)
        hi = torch.as_tensor(high, dtype=work, device=data.device)
        if lo.numel() > 1 or hi.numel() > 1:  # per-sample values of a batch
            shape = (-1,) + (1,) * (data.ndim - 1)
            lo, hi = lo.reshape(shape), hi.reshape(shape)
        out = (data.to(work) * (hi - lo) + lo).to(self.dtype)
        if isinstance(img_t, MetaTensor):
            res = MetaTensor(out, meta=dict(img_t.meta), applied_operations=list(img_t.applied_operations))
            res.is_batch = img_t.is_batch
            for k in (M.NORM_METHOD, M.NORM_LOW, M.NORM_HIGH):
                res.meta.pop(k, None)
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
