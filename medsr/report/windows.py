"""Display windows of the report's image panels: the file's own VOI window, else a modality preset.

Display only: the metrics never see a window (DESIGN.md: a VOI LUT is never applied to
pixel data used for SR). The window is chosen, in order:

1. ``window`` names a CT preset (``lung``, ``mediastinum``, ``bone``) or ``percentile``: that one;
2. ``auto`` and the source DICOM has Window Center / Width (VOI LUT module): the first pair,
   with its WindowCenterWidthExplanation as the name; for MONOCHROME1 images (which medsr
   reads inverted, bright = dense) the window is mirrored the same way;
3. CT: the soft-tissue (mediastinum) preset; MR, X-ray and others: the 0.5th to 99.5th
   percentile of the original image.

Every choice is returned with a name that the report prints under each panel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medsr import meta as mk
from medsr.errors import UsageError
from medsr.io._common import quiet_pydicom

__all__ = ["CT_PRESETS", "DISPLAY_WINDOWS", "PERCENTILE_WINDOW", "display_window", "window_text", "check_window"]

CT_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "bone": (400.0, 1800.0),
}
"""CT presets as (Window Center, Window Width) in HU."""

DISPLAY_WINDOWS = ("auto", *CT_PRESETS, "percentile")
"""What ``window`` accepts (``medsr evaluate --window``)."""

PERCENTILE_WINDOW = (0.5, 99.5)
"""Window of images without a VOI window or preset: these percentiles of the original."""

DEFAULT_CT_PRESET = "mediastinum"


def check_window(window: str) -> str:
    """``window`` if it is one of :data:`DISPLAY_WINDOWS`, else a :class:`UsageError`."""
    if window not in DISPLAY_WINDOWS:
        raise UsageError(f"`window` must be one of {', '.join(DISPLAY_WINDOWS)}, got {window!r}.")
    return window


def _first_number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(value, (str, bytes))):
        value = list(value)[0] if len(list(value)) else None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _voi_window(meta: dict[str, Any]) -> tuple[float, float, str] | None:
    """(center, width, explanation) of the source DICOM's first VOI window, in the units medsr reads."""
    text = meta.get(mk.DICOM_HEADER)
    if not isinstance(text, str) or not text:
        return None
    try:
        from pydicom.dataset import Dataset


        with quiet_pydicom():
            ds = Dataset.from_json(text)
            center, width = _first_number(ds.get("WindowCenter")), _first_number(ds.get("WindowWidth"))
            explanation = ds.get("WindowCenterWidthExplanation")
            bits = int(_first_number(ds.get("BitsStored")) or 0)
            signed = int(_first_number(ds.get("PixelRepresentation")) or 0) == 1
    except Exception:  # an unreadable header only costs the file's window, never the panel
        return None
    if center is None or width is None or width <= 0:
        return None
    name = _first_text(explanation)
    if str(meta.get(mk.PHOTOMETRIC, "")).upper() == "MONOCHROME1":
        # medsr reads MONOCHROME1 inverted in the stored domain (s' = lo + hi - s) before the rescale
        # v = m s + b, so a value v of the file becomes m (lo + hi) + 2 b - v: mirror the centre.
        if bits <= 0:
            return None
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        m, b = float(meta.get(mk.RESCALE_SLOPE, 1.0) or 1.0), float(meta.get(mk.RESCALE_INTERCEPT, 0.0) or 0.0)
        center = m * (lo + hi) + 2 * b - center
    return center, width, name


def _first_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(value, (str, bytes))):
        value = list(value)[0] if len(list(value)) else ""
    return str(value).strip()


def display_window(meta: dict[str, Any], image: np.ndarray, window: str = "auto") -> dict[str, Any]:
    """The display window of an image whose values (in physical units) are ``image``.

    Returns ``{"kind", "name", "low", "high", "center", "width", "unit"}``: ``kind`` is
    ``"voi"`` (the file's own), ``"preset"`` or ``"percentile"``; ``low``/``high`` are the
    values shown black and white.
    """
    check_window(window)
    modality = str(meta.get(mk.MODALITY, "other"))
    unit = "HU" if modality == "ct" else ""
    choice: tuple[str, str, float, float] | None = None  # kind, name, center, width
    if window in CT_PRESETS:
        choice = ("preset", f"CT {window} preset", *CT_PRESETS[window])
    elif window == "auto":
        voi = _voi_window(meta)
        if voi is not None:
            center, width, explanation = voi
            choice = ("voi", f"the file's own window{f' ({explanation})' if explanation else ''}", center, width)
        elif modality == "ct":
            choice = ("preset", f"CT {DEFAULT_CT_PRESET} preset", *CT_PRESETS[DEFAULT_CT_PRESET])
    if choice is not None:
        kind, name, center, width = choice
        return {"kind": kind, "name": name, "low": center - width / 2, "high": center + width / 2,
                "center": center, "width": width, "unit": unit}
    sample = np.asarray(image, dtype=np.float64)
    sample = sample[:: max(1, sample.shape[0] // 512), :: max(1, sample.shape[1] // 512)]
    lo, hi = (float(v) for v in np.percentile(sample, PERCENTILE_WINDOW))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max()) + 1e-6
    return {"kind": "percentile", "name": f"{PERCENTILE_WINDOW[0]:g}th to {PERCENTILE_WINDOW[1]:g}th percentile of the original",
            "low": lo, "high": hi, "center": (lo + hi) / 2, "width": hi - lo, "unit": unit}


def window_text(window: dict[str, Any]) -> str:
    """How a panel names its window, e.g. ``"CT lung preset, centre -600, width 1500 HU"``."""
    kind = window.get("kind")
    if kind in ("voi", "preset") and window.get("center") is not None:
        unit = f" {window['unit']}" if window.get("unit") else ""
        return f"{window.get('name')}, centre {window['center']:g}, width {window['width']:g}{unit}"
    if kind == "HU":  # panels written before windows had names
        return f"CT window {window.get('low'):g} to {window.get('high'):g} HU"
    return str(window.get("name") or "0.5th to 99.5th percentile of the original")
