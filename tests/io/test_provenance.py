"""Provenance of derived DICOM (medsr.io.dicom.provenance through save_image): PS3.3 tags, names, dciodvfy."""

from __future__ import annotations

import csv

import pydicom
import pytest

from medsr.io import load_image, save_image
from medsr.io.dicom import SOURCES_CSV, series_slice_names
from medsr.io.dicom.provenance import NOT_FOR_DIAGNOSIS, SERIES_TAG, derive_series, derived_series_number


def _series_files(sample, picks):
    files = sorted((sample / "ct_series_lung_dx_a0001").glob("*.dcm"))
    return [files[k] for k in picks]


def _check_derived(ds: pydicom.Dataset, src: pydicom.Dataset) -> None:
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert int(ds.SeriesNumber) == int(src.SeriesNumber) + 1000
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert ds.Manufacturer == "medsr" and ds.SoftwareVersions.startswith("medsr ")
    scanner = ds.ContributingEquipmentSequence[-1]
    assert scanner.Manufacturer == src.Manufacturer and scanner.ManufacturerModelName == src.ManufacturerModelName
    assert scanner.SoftwareVersions == src.SoftwareVersions
    assert scanner.PurposeOfReferenceCodeSequence[0].CodeValue == "109101"
    code = ds.DerivationCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == ("113085", "DCM", "Spatial resampling")
    assert ds.DerivationDescription.startswith("medsr")
    assert ds.ImageComments.startswith(NOT_FOR_DIAGNOSIS)
    assert ds.SeriesDescription.endswith(SERIES_TAG) and len(ds.SeriesDescription) <= 64
    (ref,) = ds.SourceImageSequence
    assert ref.ReferencedSOPInstanceUID == src.SOPInstanceUID and ref.ReferencedSOPClassUID == src.SOPClassUID
    assert ref.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"


def test_derived_series_provenance_per_instance(sample, tmp_path, upscale, dciodvfy):
    files = _series_files(sample, [0, 1, 2])
    out = save_image(upscale(load_image(files), (2, 2, 1)), tmp_path / "ct_sr2x")
    written = sorted(out.glob("*.dcm"))
    assert [f.name for f in written] == [f.name for f in files]  # each slice keeps its input's name
    for f in written:
        src = pydicom.dcmread(str(sample / "ct_series_lung_dx_a0001" / f.name), stop_before_pixels=True)
        ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        _check_derived(ds, src)
        assert ds.ImagePositionPatient[2] == pytest.approx(float(src.ImagePositionPatient[2]))
    with open(out / SOURCES_CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["file"], r["source_files"]) for r in rows) == [(f.name, f.name) for f in files]
    assert dciodvfy(written[0]) == [] and dciodvfy(written[-1]) == []
    assert len({pydicom.dcmread(str(f), stop_before_pixels=True).SeriesInstanceUID for f in written}) == 1


def test_derived_single_file_provenance(sample, tmp_path, upscale, dciodvfy):
    src_path = _series_files(sample, [4])[0]
    out = save_image(upscale(load_image(src_path), (2, 2)), tmp_path / "slice_sr2x.dcm")
    _check_derived(pydicom.dcmread(str(out), stop_before_pixels=True), pydicom.dcmread(str(src_path), stop_before_pixels=True))
    assert dciodvfy(out) == []


def test_derive_series_without_equipment_or_series_number():
    ds = pydicom.Dataset()
    ds.SeriesDescription = "x" * 64
    derive_series(ds, description="medsr test x2")
    assert int(ds.SeriesNumber) == 1000 == derived_series_number(pydicom.Dataset())
    assert "ContributingEquipmentSequence" not in ds  # nothing known about the scanner
    assert len(ds.SeriesDescription) == 64 and ds.SeriesDescription.endswith(SERIES_TAG)


def test_slice_names_keep_stems_and_number_new_slices():
    assert series_slice_names(["a.dcm", "IM0002", "b.DCM", "a.ima"], 4) == ["a.dcm", "IM0002.dcm", "b.dcm", "a_2.dcm"]
    assert series_slice_names(["a.dcm", "b.dcm"], 3) == ["0001.dcm", "0002.dcm", "0003.dcm"]
