"""Display windows of the report panels (medsr.report.windows) and their use in the case panels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medsr import meta as mk
from medsr.errors import UsageError
from medsr.report.windows import CT_PRESETS, display_window, window_text

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def _meta(**header) -> dict:
    ds = pydicom.Dataset()
    for k, v in header.items():
        setattr(ds, k, v)
    return {mk.MODALITY: header.pop("_modality", "ct"), mk.DICOM_HEADER: ds.to_json(), mk.PHOTOMETRIC: "MONOCHROME2"}


IMAGE = np.linspace(-1000, 1000, 64 * 64).reshape(64, 64)


def test_file_voi_window_is_used_and_named() -> None:
    meta = _meta(WindowCenter=["60", "-600"], WindowWidth=["350", "1500"], WindowCenterWidthExplanation=["SOFT", "LUNG"])
    w = display_window(meta, IMAGE)
    assert (w["kind"], w["low"], w["high"]) == ("voi", 60 - 175, 60 + 175)
    assert window_text(w) == "the file's own window (SOFT), centre 60, width 350 HU"


@pytest.mark.parametrize("preset", ["lung", "mediastinum", "bone"])
def test_ct_presets_selectable_over_the_file_window(preset: str) -> None:
    meta = _meta(WindowCenter="60", WindowWidth="350")
    w = display_window(meta, IMAGE, preset)
    c, width = CT_PRESETS[preset]
    assert (w["kind"], w["low"], w["high"]) == ("preset", c - width / 2, c + width / 2)
    assert window_text(w).startswith(f"CT {preset} preset, centre {c:g}, width {width:g} HU")


def test_fallbacks_ct_preset_and_percentiles() -> None:
    assert display_window(_meta(), IMAGE)["name"] == "CT mediastinum preset"
    mr = {mk.MODALITY: "mr", mk.DICOM_HEADER: ""}
    w = display_window(mr, IMAGE)
    assert w["kind"] == "percentile" and w["low"] == pytest.approx(np.percentile(IMAGE, 0.5))
    assert "percentile" in window_text(w)
    with pytest.raises(UsageError, match="`window` must be one of auto, lung, mediastinum, bone, percentile"):
        display_window(mr, IMAGE, "brain")


def test_monochrome1_window_is_mirrored_like_the_pixels() -> None:
    """medsr reads MONOCHROME1 inverted (s' = lo + hi - s): the file's window is mirrored the same way."""
    from medsr.io import load_image

    src = SAMPLE / "cxr_cr_rg1.dcm"
    if not src.is_file():
        pytest.skip("sample_data/ is missing")
    img = load_image(src)
    w = display_window(dict(img.meta), img[0].numpy())
    assert w["kind"] == "voi" and w["center"] == pytest.approx(32767 - 15000) and w["width"] == 30000


def test_evaluation_panel_uses_the_file_window(tmp_path: Path) -> None:
    """A real CT slice with Window Center/Width 60/350: the case panel and the report say so."""
    from medsr.evaluation import run_evaluation

    src = SAMPLE / "ct_series_lung_dx_a0001" / "1-32.dcm"
    if not src.is_file():
        pytest.skip("sample_data/ is missing")
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(src, data / "ct.dcm")
    html = run_evaluation(data, tmp_path / "out", models=("bicubic",), progress=False, n_resamples=50)
    (panel,) = [json.loads(p.read_text()) for p in (tmp_path / "out" / "cases").glob("*/panel.json")]
    assert panel["window"]["kind"] == "voi" and (panel["window"]["low"], panel["window"]["high"]) == (-115, 235)
    assert "the file&#39;s own window, centre 60, width 350 HU" in html.read_text(encoding="utf-8")
    run_evaluation(data, tmp_path / "lung", models=("bicubic",), progress=False, n_resamples=50, report=False, window="lung")
    (panel,) = [json.loads(p.read_text()) for p in (tmp_path / "lung" / "cases").glob("*/panel.json")]
    assert panel["window"]["name"] == "CT lung preset"
