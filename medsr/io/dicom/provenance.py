"""Provenance of a derived DICOM series (DICOM PS3.3), in one place for every writer.

An image medsr writes is not what the scanner made. Per PS3.3 the derived series says so:

* General Series: a new SeriesInstanceUID and a new SeriesNumber (the source's + 1000),
  dates and times of now, and ``[medsr: not for diagnosis]`` in SeriesDescription;
* General Equipment (and Enhanced General Equipment): medsr is the Manufacturer,
  ManufacturerModelName, SoftwareVersions and DeviceSerialNumber of the new instances; the
  scanner's equipment attributes move to an item of ContributingEquipmentSequence
  (SOP Common, C.12.1) with the purpose (DCM 109101, "Acquisition Equipment");
* General Image: ImageType ``DERIVED\\SECONDARY`` (``DERIVED\\PRIMARY`` for enhanced
  multi-frame IODs, whose ImageType value 2 may only be PRIMARY), DerivationDescription,
  DerivationCodeSequence with (DCM 113085, "Spatial resampling") from the Image Derivation
  context group CID 7203, a visible "not for diagnosis" ImageComments, and per instance a
  SourceImageSequence naming its source instance(s) with the purpose (DCM 121322, "Source
  image for image processing operation") from CID 7202.

:func:`derive_series` applies the series-level part to a copy of a source header once per
series; :func:`reference_sources` sets the per-instance SourceImageSequence. Both are used by
:func:`medsr.io.dicom.write_dicom` and by any writer of derived slices.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

import medsr

__all__ = [
    "NOT_FOR_DIAGNOSIS",
    "SERIES_TAG",
    "SPATIAL_RESAMPLING",
    "SOURCE_IMAGE_PURPOSE",
    "ACQUISITION_EQUIPMENT",
    "EQUIPMENT_KEYWORDS",
    "SERIES_NUMBER_OFFSET",
    "derived_series_number",
    "derive_series",
    "reference_sources",
]

NOT_FOR_DIAGNOSIS = "NOT FOR DIAGNOSIS: super-resolution output of medsr (research software)"
"""The visible warning written to ImageComments of every derived instance."""

SERIES_TAG = "[medsr: not for diagnosis]"
"""Appended to SeriesDescription (what most viewers list for a series)."""

SPATIAL_RESAMPLING = ("113085", "DCM", "Spatial resampling")
"""DerivationCodeSequence entry (CID 7203 Image Derivation)."""

SOURCE_IMAGE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")
"""PurposeOfReferenceCodeSequence of each SourceImageSequence item (CID 7202)."""

ACQUISITION_EQUIPMENT = ("109101", "DCM", "Acquisition Equipment")
"""PurposeOfReferenceCodeSequence of the scanner's ContributingEquipmentSequence item (CID 7005)."""

EQUIPMENT_KEYWORDS = (
    "Manufacturer",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
    "InstitutionalDepartmentName",
    "ManufacturerModelName",
    "DeviceSerialNumber",
    "SoftwareVersions",
    "SpatialResolution",
    "DateOfLastCalibration",
    "TimeOfLastCalibration",
)
"""Equipment attributes of the source that describe the scanner: kept only in ContributingEquipmentSequence."""

SERIES_NUMBER_OFFSET = 1000
"""A derived series is numbered ``source SeriesNumber + SERIES_NUMBER_OFFSET`` (1000 when the source has none)."""

_IS_MAX = 2**31 - 1


def _code(value: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value
    return item


def derived_series_number(source: Dataset) -> int:
    """SeriesNumber of the series derived from ``source``: its SeriesNumber + :data:`SERIES_NUMBER_OFFSET`."""
    try:
        number = int(str(source.get("SeriesNumber", "") or "0").strip() or 0)
    except (TypeError, ValueError):
        number = 0
    number = max(number, 0) + SERIES_NUMBER_OFFSET
    return number if number <= _IS_MAX else SERIES_NUMBER_OFFSET


def _scanner_item(ds: Dataset, when: str) -> Dataset | None:
    """The source's equipment as a ContributingEquipmentSequence item (None when it names no manufacturer)."""
    values = {kw: ds.get(kw) for kw in EQUIPMENT_KEYWORDS if kw in ds and ds.get(kw) not in (None, "")}
    if not values:
        return None
    if not str(values.get("Manufacturer") or "").strip():
        values["Manufacturer"] = "unknown"  # Type 1 in the item; the source left it empty
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = DicomSequence([_code(ACQUISITION_EQUIPMENT)])
    for kw in EQUIPMENT_KEYWORDS:
        if kw in values:
            setattr(item, kw, values[kw])
    item.ContributionDateTime = when
    item.ContributionDescription = "acquired the source images"
    return item


def derive_series(
    ds: Dataset,
    *,
    description: str,
    series_number: int | None = None,
    now: datetime.datetime | None = None,
) -> Dataset:
    """Make ``ds`` (a copy of one source instance's header) the header of a derived series, in place.

    Sets everything that is the same for every instance of the new series (see the module
    docstring); callers then set per instance SOPInstanceUID, InstanceNumber, position,
    pixels and :func:`reference_sources`.

    Args:
        ds: the source header (a copy: it is changed).
        description: DerivationDescription, e.g. ``"medsr 0.1.0 edsr_m x2"``.
        series_number: the new SeriesNumber; default :func:`derived_series_number`.
        now: creation time (default: now, local time).

    Returns:
        ``ds``.
    """
    now = now or datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    enhanced = "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds

    image_type = ds.get("ImageType") or []
    image_type = [image_type] if isinstance(image_type, str) else [str(v) for v in image_type]
    ds.ImageType = ["DERIVED", "PRIMARY" if enhanced else "SECONDARY", *image_type[2:]]
    ds.DerivationDescription = str(description or f"medsr {medsr.__version__}")[:1024]
    ds.DerivationCodeSequence = DicomSequence([_code(SPATIAL_RESAMPLING)])
    if "SourceImageSequence" in ds:
        del ds.SourceImageSequence  # the source's own sources; set per instance by reference_sources

    new_number = derived_series_number(ds) if series_number is None else int(series_number)
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = new_number
    for kw_date, kw_time in (("InstanceCreationDate", "InstanceCreationTime"), ("SeriesDate", "SeriesTime"),
                             ("ContentDate", "ContentTime")):
        setattr(ds, kw_date, date)
        setattr(ds, kw_time, time)
    desc = str(ds.get("SeriesDescription", "") or "").strip()
    room = 64 - len(SERIES_TAG) - 1
    ds.SeriesDescription = (f"{desc[:room]} " if desc else "") + SERIES_TAG
    comments = str(ds.get("ImageComments", "") or "").strip()
    ds.ImageComments = NOT_FOR_DIAGNOSIS + (f". {ds.DerivationDescription}." if ds.DerivationDescription else ".") + (
        f" Source image comments: {comments}" if comments else ""
    )

    contributing = list(ds.get("ContributingEquipmentSequence") or [])
    scanner = _scanner_item(ds, now.strftime("%Y%m%d%H%M%S"))
    if scanner is not None:
        contributing.append(scanner)
    if contributing:
        ds.ContributingEquipmentSequence = DicomSequence(contributing)
    for kw in EQUIPMENT_KEYWORDS:
        if kw in ds:
            delattr(ds, kw)
    ds.Manufacturer = "medsr"
    ds.ManufacturerModelName = "medsr super-resolution"
    ds.SoftwareVersions = f"medsr {medsr.__version__}"
    ds.DeviceSerialNumber = f"medsr-{medsr.__version__}"  # Type 1 in Enhanced General Equipment; no hardware
    return ds


def reference_sources(ds: Dataset, sources: Sequence[tuple[str, str]]) -> Dataset:
    """Set ``ds.SourceImageSequence`` to ``sources``: ``(SOP Class UID, SOP Instance UID)`` pairs, in place.

    Pairs with an empty UID are left out; with none left the sequence is removed.
    """
    items = []
    for sop_class, sop_instance in sources:
        if not str(sop_class or "").strip() or not str(sop_instance or "").strip():
            continue
        item = Dataset()
        item.ReferencedSOPClassUID = str(sop_class)
        item.ReferencedSOPInstanceUID = str(sop_instance)
        item.PurposeOfReferenceCodeSequence = DicomSequence([_code(SOURCE_IMAGE_PURPOSE)])
        items.append(item)
    if items:
        ds.SourceImageSequence = DicomSequence(items)
    elif "SourceImageSequence" in ds:
        del ds.SourceImageSequence
    return ds
