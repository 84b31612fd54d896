"""Fuzz ``medsr.io.load_image`` with mutated real files: it returns a valid image or raises InputError.

Each case mutates a real DICOM / NIfTI / PNG / TIFF / JPEG file (see ``medsr_fuzz``) and
must end, within ``CASE_TIMEOUT_S`` seconds, in a valid ``MetaTensor`` (float32,
``(1, X, Y[, Z])``, finite, finite affine) or in medsr's ``InputError`` with a one-line
message; any other exception, an invalid image or a hang fails the test. About 740
cases in total (a minute or so on two cores); ``MEDSR_FUZZ_SCALE=20`` runs 20 times as
many, and ``tests/fuzz/run_long.py`` runs a documented long campaign (docs/reliability.md).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medsr_fuzz import (
    byte_mutations,
    check_case,
    check_roundtrip,
    check_series_case,
    dicom_tag_mutations,
    nifti_header_mutations,
    png_chunk_mutations,
    seed_by_name,
    seeds,
    series_seeds,
)

SCALE = float(os.environ.get("MEDSR_FUZZ_SCALE", "1"))
# Derandomized: CI runs the same cases every time; a long run (run_long.py) draws new ones.
DERANDOMIZE = os.environ.get("MEDSR_FUZZ_RANDOM", "0") != "1"


def _settings(n: int) -> settings:
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        derandomize=DERANDOMIZE,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


def _family(name: str) -> st.SearchStrategy[str]:
    """Seed names (hypothesis prints names, not megabytes of seed bytes)."""
    family = seeds()[name]
    if not family:
        pytest.skip(f"no {name} seed files (sample_data/ or pydicom test files missing)")
    return st.sampled_from([s.name for s in family])


_TMP = Path(tempfile.mkdtemp(prefix="medsr_fuzz_"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


def _run(name: str, ops: list[tuple]) -> None:
    check_case(seed_by_name(name), ops, _TMP)


def test_seeds_are_read() -> None:
    """Every unmutated seed gives a valid image or an InputError (colour, SR, RTSTRUCT...)."""
    outcomes = {s.name: check_case(s, [], _TMP) for fam in seeds().values() for s in fam}
    assert outcomes.get("ct_small.dcm") == "image" and outcomes.get("mr_anatomical.nii") == "image"
    assert outcomes.get("rtstruct.dcm", "input_error") == "input_error"
    assert outcomes.get("SC_rgb_small_odd.dcm", "input_error") == "input_error"


@_settings(200)
@given(data=st.data())
def test_dicom_bytes(data: st.DataObject) -> None:
    _run(data.draw(_family("dicom")), data.draw(byte_mutations()))


def _tags_and_bytes() -> st.SearchStrategy[list[tuple]]:
    """Tag changes through pydicom, sometimes followed by byte-level damage."""
    both = st.tuples(dicom_tag_mutations(), byte_mutations()).map(lambda t: t[0] + t[1])
    return st.one_of(dicom_tag_mutations(), both)


@_settings(150)
@given(data=st.data())
def test_dicom_tags(data: st.DataObject) -> None:
    _run(data.draw(_family("dicom")), data.draw(_tags_and_bytes()))


@_settings(80)
@given(data=st.data())
def test_write_back(data: st.DataObject) -> None:
    """What reads must also write back (a derived DICOM, NIfTI, PNG...) or fail with medsr's OutputError."""
    family = data.draw(st.sampled_from(["dicom", "dicom", "nifti", "png", "other"]))
    ops = data.draw(dicom_tag_mutations() if family == "dicom" else byte_mutations())
    check_roundtrip(seed_by_name(data.draw(_family(family))), ops, _TMP)


@_settings(100)
@given(data=st.data())
def test_nifti(data: st.DataObject) -> None:
    ops = data.draw(st.one_of(nifti_header_mutations(), byte_mutations()))
    _run(data.draw(_family("nifti")), ops)


@_settings(100)
@given(data=st.data())
def test_png(data: st.DataObject) -> None:
    ops = data.draw(st.one_of(png_chunk_mutations(), byte_mutations()))
    _run(data.draw(_family("png")), ops)


@_settings(50)
@given(data=st.data())
def test_tiff_jpeg(data: st.DataObject) -> None:
    _run(data.draw(_family("other")), data.draw(byte_mutations()))


@_settings(60)
@given(index=st.integers(0, 2), ops=st.one_of(dicom_tag_mutations(), byte_mutations()))
def test_dicom_series(index: int, ops: list[tuple]) -> None:
    """One slice of a three-slice CT series mutated: the folder reads as a series or fails with InputError."""
    if not series_seeds():
        pytest.skip("sample_data/ct_series_lung_dx_a0001 is missing")
    check_series_case(index, ops, _TMP)
