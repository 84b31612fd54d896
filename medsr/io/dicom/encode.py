"""Physical values back to the input's stored representation (the inverse Modality LUT).

:class:`Encoding` holds the input's BitsAllocated, signedness, BitsStored range,
photometric interpretation and Modality LUT (RescaleSlope/Intercept or a monotonic LUT
sequence; Float Pixel Data stores physical values as they are) and maps values to stored
integers, clipped to the range and inverted back for MONOCHROME1. :func:`slice_rescales`
gives a series' slices their own rescale where the header's cannot store their values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medsr.errors import OutputError

from .header import _ds_value, _photometric, _stored_range

__all__ = ["Encoding", "slice_rescales"]


class Encoding:
    """The input's stored representation and its inverse Modality LUT."""

    def __init__(self, hdr: Dataset, target: Path, float_bits: int = 0):
        self.target = target
        self.float_bits = int(float_bits or 0)
        self.monochrome1 = _photometric(hdr) == "MONOCHROME1"
        if self.float_bits:  # Float / Double Float Pixel Data: physical values stored as they are
            self.bits_allocated = self.float_bits
            self.dtype = np.dtype(f"<f{self.float_bits // 8}")
            self.lut = None
            return
        self.bits_allocated = int(hdr.get("BitsAllocated", 16) or 16)
        if self.bits_allocated not in (8, 16, 32):
            raise OutputError(f"{target}: cannot write BitsAllocated={self.bits_allocated}; write NIfTI instead.")
        self.signed = int(hdr.get("PixelRepresentation", 0) or 0) == 1
        self.lo, self.hi = _stored_range(hdr)
        self.dtype = np.dtype(f"<{'i' if self.signed else 'u'}{self.bits_allocated // 8}")
        self.monochrome1 = _photometric(hdr) == "MONOCHROME1"
        self.lut: tuple[int, np.ndarray] | None = None
        if "ModalityLUTSequence" in hdr and len(hdr.ModalityLUTSequence):
            item = hdr.ModalityLUTSequence[0]
            n_entries, first, nbits = (int(v) for v in item.LUTDescriptor)
            data = item.LUTData
            if isinstance(data, bytes):
                data = np.frombuffer(data, dtype="<u2" if nbits > 8 else "u1")
            lut = np.asarray(data, dtype=np.float64).ravel()
            if lut.size < 2 or np.any(np.diff(lut) < 0):
                raise OutputError(
                    f"{target}: the input's Modality LUT is not monotonic and cannot be inverted; write NIfTI instead."
                )
            self.lut = (first, lut)
        self.slope = float(hdr.get("RescaleSlope", 1) or 1)
        self.intercept = float(hdr.get("RescaleIntercept", 0) or 0)
        if not np.isfinite(self.slope) or self.slope == 0 or not np.isfinite(self.intercept):
            raise OutputError(
                f"{target}: the input's RescaleSlope/Intercept ({self.slope}, {self.intercept}) cannot be inverted; "
                "write NIfTI instead."
            )

    def to_stored(self, values: np.ndarray, rescale: tuple[float, float] | None = None) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            raise OutputError(f"{self.target}: the image contains NaN or infinite values; nothing was written.")
        if self.float_bits:
            return (-values if self.monochrome1 else values).astype(self.dtype)
        if self.lut is not None and rescale is None:
            first, lut = self.lut
            idx = np.clip(np.searchsorted(lut, values), 1, lut.size - 1)
            idx = np.where(np.abs(values - lut[idx - 1]) <= np.abs(lut[idx] - values), idx - 1, idx)
            stored = (idx + first).astype(np.float64)
        else:
            slope, intercept = rescale if rescale is not None else (self.slope, self.intercept)
            stored = np.rint((values - intercept) / slope)
        stored = np.clip(stored, self.lo, self.hi)
        if self.monochrome1:
            stored = (self.lo + self.hi) - stored
        return stored.astype(self.dtype)


def slice_rescales(values: np.ndarray, enc: Encoding, known: list[tuple[float, float]]) -> list[tuple[float, float] | None]:
    """Per-slice (slope, intercept) of a series: the input's own slices' when they differed (same slice count);
    for any slice whose values the header's rescale cannot store (they would be clipped), one that fits its range."""
    nz = values.shape[2]
    out: list[tuple[float, float] | None] = list(known) if len(known) == nz else [None] * nz
    for k in range(nz):
        slope, intercept = out[k] or (enc.slope, enc.intercept)
        lo_v, hi_v = float(values[..., k].min()), float(values[..., k].max())
        stored = sorted(((lo_v - intercept) / slope, (hi_v - intercept) / slope))
        if stored[0] >= enc.lo - 0.5 and stored[1] <= enc.hi + 0.5:
            continue
        span = max(hi_v - lo_v, 1e-6)
        new_slope = float(_ds_value(span / (enc.hi - enc.lo) * (1 + 1e-6)))
        out[k] = (new_slope, float(_ds_value(lo_v - enc.lo * new_slope)))
    return out
