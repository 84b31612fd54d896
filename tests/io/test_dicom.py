"""DICOM reading and derived-instance writing (medsr.io.dicom through load_image / save_image)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from medsr import meta as mk
from medsr.errors import InputError
from medsr.io import MAX_PIXELS, load_image, save_image


def _stored(path: Path) -> np.ndarray:
    return pydicom.dcmread(str(path)).pixel_array


def _lung_vs_mediastinum(xy: np.ndarray) -> tuple[float, float]:
    """Mean of the two lung fields and of the central column strip of a PA chest image (X, Y)."""
    nx, ny = xy.shape
    band = slice(ny // 3, 2 * ny // 3)
    w = max(nx // 20, 1)
    lungs = 0.5 * (xy[nx // 4 - w : nx // 4 + w, band].mean() + xy[3 * nx // 4 - w : 3 * nx // 4 + w, band].mean())
    middle = xy[nx // 2 - w : nx // 2 + w, band].mean()
    return float(lungs), float(middle)


# ----------------------------------------------------------------------------- CT slice


def test_ct_read_physical_units_and_geometry(sample):
    img = load_image(sample / "ct_small.dcm")
    ds = pydicom.dcmread(str(sample / "ct_small.dcm"))
    assert img.shape == (1, 128, 128) and img.dtype.is_floating_point
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(img[0].numpy(), hu.T)  # (X, Y) = columns x rows
    m = img.meta
    assert m[mk.MODALITY] == "ct" and m[mk.FORMAT] == "dicom"
    assert m[mk.SPACING] == pytest.approx((0.661468, 0.661468))
    assert m[mk.SPACING_SOURCE] == "PixelSpacing"
    assert m[mk.BITS_STORED] == 16 and m[mk.PHOTOMETRIC] == "MONOCHROME2"
    assert (m[mk.RESCALE_SLOPE], m[mk.RESCALE_INTERCEPT]) == (1.0, -1024.0)
    header = pydicom.Dataset.from_json(m[mk.DICOM_HEADER])
    assert header.PatientID == ds.PatientID and "PixelData" not in header
    # RAS affine: LPS IPP with x, y negated; column direction +x(L) -> -x(R)
    a = img.affine.numpy()
    ipp = [float(v) for v in ds.ImagePositionPatient]
    np.testing.assert_allclose(a[:3, 3], [-ipp[0], -ipp[1], ipp[2]])
    np.testing.assert_allclose(a[:3, 0], [-0.661468, 0, 0])
    np.testing.assert_allclose(a[:3, 1], [0, -0.661468, 0])


def test_ct_roundtrip_is_exact(sample, tmp_path, dciodvfy):
    src = sample / "ct_small.dcm"
    img = load_image(src)
    out = save_image(img, tmp_path / "ct.dcm")
    np.testing.assert_array_equal(_stored(out), _stored(src))
    back = load_image(out)
    np.testing.assert_array_equal(back.numpy(), img.numpy())
    np.testing.assert_allclose(back.affine.numpy(), img.affine.numpy(), atol=1e-5)
    ds, orig = pydicom.dcmread(str(out)), pydicom.dcmread(str(src))
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"] and list(ds.ImageType)[2:] == list(orig.ImageType)[2:]
    assert ds.SeriesInstanceUID != orig.SeriesInstanceUID and ds.SOPInstanceUID != orig.SOPInstanceUID
    assert ds.StudyInstanceUID == orig.StudyInstanceUID and ds.PatientID == orig.PatientID
    assert ds.DerivationDescription.startswith("medsr ")
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == orig.SOPInstanceUID
    for kw in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PhotometricInterpretation"):
        assert ds[kw].value == orig[kw].value
    assert dciodvfy(out) == []


def test_ct_x2_upscaled_write(sample, tmp_path, upscale, dciodvfy):
    src = sample / "ct_small.dcm"
    img = load_image(src)
    up = upscale(img, (2, 2))
    out = save_image(up, tmp_path / "ct_sr2x.dcm")
    ds, orig = pydicom.dcmread(str(out)), pydicom.dcmread(str(src))
    assert (ds.Rows, ds.Columns) == (2 * orig.Rows, 2 * orig.Columns)
    np.testing.assert_allclose(
        [float(v) for v in ds.PixelSpacing], [float(v) / 2 for v in orig.PixelSpacing], rtol=1e-6
    )
    assert ds.PatientID == orig.PatientID and ds.PatientName == orig.PatientName
    assert ds.StudyInstanceUID == orig.StudyInstanceUID
    assert ds.SeriesInstanceUID != orig.SeriesInstanceUID
    assert ds.DerivationDescription == "medsr test x2x2"
    # first voxel centre moved a quarter of an old pixel back along rows and columns (LPS +x, +y here)
    shift = -0.25 * 0.661468
    np.testing.assert_allclose(
        [float(v) for v in ds.ImagePositionPatient],
        [float(orig.ImagePositionPatient[0]) + shift, float(orig.ImagePositionPatient[1]) + shift,
         float(orig.ImagePositionPatient[2])],
        atol=1e-4,
    )
    back = load_image(out)
    assert back.shape == (1, 256, 256)
    assert float(back.mean()) == pytest.approx(float(img.mean()), rel=0.01)
    np.testing.assert_allclose(back.affine.numpy(), up.affine.numpy(), atol=1e-5)
    assert dciodvfy(out) == []


def test_mr_roundtrip_exact(sample, tmp_path, dciodvfy):
    img = load_image(sample / "mr_small.dcm")
    assert img.meta[mk.MODALITY] == "mr"
    out = save_image(img, tmp_path / "mr.dcm")
    np.testing.assert_array_equal(_stored(out), _stored(sample / "mr_small.dcm"))
    assert dciodvfy(out) == []


def test_modality_override(sample):
    assert load_image(sample / "ct_small.dcm", modality="other").meta[mk.MODALITY] == "other"


# ----------------------------------------------------------------------------- chest CR, MONOCHROME1


def test_cr_monochrome1_bone_is_bright(sample):
    img = load_image(sample / "cxr_cr_rg1.dcm")
    m = img.meta
    assert img.shape == (1, 1841, 1955)
    assert m[mk.MODALITY] == "xray" and m[mk.PHOTOMETRIC] == "MONOCHROME1" and m[mk.BITS_STORED] == 15
    # PixelSpacing is 0\0 in this file and there is no ImagerPixelSpacing
    assert m[mk.SPACING_SOURCE] == "none" and m[mk.SPACING] == (1.0, 1.0)
    lungs, middle = _lung_vs_mediastinum(img[0].numpy())
    assert lungs < 0.85 * middle, (lungs, middle)
    # the same convention as an ordinary (MONOCHROME2-like) chest PNG
    png = load_image(sample / "cxr_hannover_006f3a8a.png")
    png_lungs, png_middle = _lung_vs_mediastinum(png[0].numpy())
    assert png_lungs < png_middle


def test_cr_monochrome1_written_back(sample, tmp_path, dciodvfy):
    src = sample / "cxr_cr_rg1.dcm"
    out = save_image(load_image(src), tmp_path / "cr.dcm")
    ds = pydicom.dcmread(str(out))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    np.testing.assert_array_equal(ds.pixel_array, _stored(src))
    # the source's invalid PixelSpacing 0\0 (a dciodvfy error in the input) is dropped
    assert "PixelSpacing" not in ds
    assert dciodvfy(out) == []


def test_cr_j2k_lossy_twin(sample, testdata, tmp_path):
    j2k = testdata("RG1_J2KI.dcm")
    a = load_image(sample / "cxr_cr_rg1.dcm")[0].numpy()
    b_img = load_image(j2k)
    b = b_img[0].numpy()
    assert b.shape == a.shape
    assert np.corrcoef(a.ravel()[::7], b.ravel()[::7])[0, 1] > 0.99
    lungs, middle = _lung_vs_mediastinum(b)
    assert lungs < 0.85 * middle
    out = save_image(b_img, tmp_path / "j2k.dcm")
    ds = pydicom.dcmread(str(out))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert ds.LossyImageCompression == "01"  # the source was irreversible JPEG 2000
    np.testing.assert_array_equal(ds.pixel_array, pydicom.dcmread(str(j2k)).pixel_array)


# ----------------------------------------------------------------------------- compressed transfer syntaxes


@pytest.mark.parametrize(
    "compressed, reference",
    [
        ("MR_small_RLE.dcm", "MR_small.dcm"),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("emri_small_RLE.dcm", "emri_small.dcm"),
        ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
        ("693_J2KR.dcm", "693_UNCR.dcm"),
    ],
)
def test_lossless_decoders(testdata, compressed, reference):
    a, b = load_image(testdata(compressed)), load_image(testdata(reference))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("name", ["JPEG-LL.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm"])
def test_jpeg_lossless_decodes(testdata, name):
    path = testdata(name)
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    img = load_image(path)
    assert img.shape[1:3] == (ds.Columns, ds.Rows)
    lo, hi = (0, 2**ds.BitsStored - 1) if ds.PixelRepresentation == 0 else (-(2 ** (ds.BitsStored - 1)), 2**15)
    assert lo <= float(img.min()) < float(img.max()) <= hi


# ----------------------------------------------------------------------------- multi-frame


def test_multiframe_enhanced_ct(testdata, tmp_path):
    path = testdata("eCT_Supplemental.dcm")
    img = load_image(path)
    assert img.shape == (1, 512, 512, 2) and img.meta[mk.FORMAT] == "dicom_multiframe"
    ds = pydicom.dcmread(str(path))
    frames = ds.PerFrameFunctionalGroupsSequence
    p0, p1 = (np.array([float(v) for v in frames[i].PlanePositionSequence[0].ImagePositionPatient]) for i in (0, 1))
    lps_k = p1 - p0
    np.testing.assert_allclose(img.affine.numpy()[:3, 2], [-lps_k[0], -lps_k[1], lps_k[2]], atol=1e-6)
    out = save_image(img, tmp_path / "ect.dcm")
    np.testing.assert_array_equal(_stored(out), ds.pixel_array)
    assert int(pydicom.dcmread(str(out)).NumberOfFrames) == 2


def test_multiframe_frames_are_third_axis(testdata, tmp_path):
    path = testdata("emri_small.dcm")
    img = load_image(path)
    stored = pydicom.dcmread(str(path)).pixel_array  # (frames, rows, cols)
    assert img.shape == (1, 64, 64, 10)
    np.testing.assert_array_equal(img[0].numpy(), np.transpose(stored, (2, 1, 0)))
    out = save_image(img, tmp_path / "emri.dcm")
    np.testing.assert_array_equal(_stored(out), stored)


# ----------------------------------------------------------------------------- series


def _write_series(src: Path, folder: Path, positions: list[float], order: list[int] | None = None,
                  series_uid: str | None = None) -> list[Path]:
    """Copies of one real slice at z = positions[k], pixel values + 10 k, written in ``order``."""
    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(str(src))
    uid = series_uid or generate_uid()
    paths = []
    for k in order if order is not None else range(len(positions)):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [ipp[0], ipp[1], positions[k]]
        ds.SliceLocation = positions[k]
        ds.InstanceNumber = k + 1
        ds.PixelData = (ds.pixel_array + 10 * k).astype(ds.pixel_array.dtype).tobytes()
        path = folder / f"slice_{len(paths):02d}.dcm"
        ds.save_as(str(path))
        paths.append(path)
    return paths


def test_series_sorted_by_position(sample, tmp_path):
    rng = np.random.default_rng(0)
    order = [int(i) for i in rng.permutation(5)]
    positions = [-80.0 + 2.5 * k for k in range(5)]
    _write_series(sample / "ct_small.dcm", tmp_path / "series", positions, order)
    vol = load_image(tmp_path / "series")
    assert vol.shape == (1, 128, 128, 5) and vol.meta[mk.FORMAT] == "dicom_series"
    for k in range(5):
        np.testing.assert_array_equal(vol[0, :, :, k].numpy() - vol[0, :, :, 0].numpy(), 10.0 * k)
    np.testing.assert_allclose(vol.affine.numpy()[:3, 2], [0, 0, 2.5], atol=1e-6)
    assert vol.affine.numpy()[2, 3] == pytest.approx(-80.0)
    assert vol.meta[mk.SPACING] == pytest.approx((0.661468, 0.661468, 2.5))
    header = pydicom.Dataset.from_json(vol.meta[mk.DICOM_HEADER])
    assert float(header.ImagePositionPatient[2]) == pytest.approx(-80.0)  # the first slice after sorting
    files = sorted((tmp_path / "series").iterdir())
    np.testing.assert_array_equal(load_image(files).numpy(), vol.numpy())  # a list of files = the folder


def test_series_write_roundtrip_and_through_plane(sample, tmp_path, upscale, dciodvfy):
    positions = [-80.0 + 2.5 * k for k in range(4)]
    _write_series(sample / "ct_small.dcm", tmp_path / "series", positions, [2, 0, 3, 1])
    vol = load_image(tmp_path / "series")
    out = save_image(vol, tmp_path / "out_x1")
    files = sorted(out.glob("*.dcm"))
    # one output slice per input slice: each keeps its input's name (files were written in z order 2, 0, 3, 1)
    assert [f.name for f in files] == ["slice_00.dcm", "slice_01.dcm", "slice_02.dcm", "slice_03.dcm"]
    z_of = {f.name: float(pydicom.dcmread(str(f), stop_before_pixels=True).ImagePositionPatient[2]) for f in files}
    assert z_of == pytest.approx({"slice_00.dcm": -75.0, "slice_01.dcm": -80.0, "slice_02.dcm": -72.5, "slice_03.dcm": -77.5})
    np.testing.assert_array_equal(load_image(out).numpy(), vol.numpy())
    uids = {pydicom.dcmread(str(f), stop_before_pixels=True).SeriesInstanceUID for f in files}
    assert len(uids) == 1

    up = upscale(vol, (2, 2, 2))
    out2 = save_image(up, tmp_path / "out_x2")
    files = sorted(out2.glob("*.dcm"))
    assert [f.name for f in files] == [f"{k:04d}.dcm" for k in range(1, 9)]  # new slices: numbered
    first, last = (pydicom.dcmread(str(f), stop_before_pixels=True) for f in (files[0], files[-1]))
    assert (first.Rows, first.Columns) == (256, 256)
    assert float(first.SpacingBetweenSlices) == pytest.approx(1.25)
    assert float(first.SliceThickness) == pytest.approx(2.5)  # 5 mm input thickness, spacing halved
    assert float(first.ImagePositionPatient[2]) == pytest.approx(-80.0 - 0.625)
    assert float(last.ImagePositionPatient[2]) - float(first.ImagePositionPatient[2]) == pytest.approx(7 * 1.25)
    assert [int(pydicom.dcmread(str(f), stop_before_pixels=True).InstanceNumber) for f in files] == list(range(1, 9))
    back = load_image(out2)
    np.testing.assert_allclose(back.affine.numpy(), up.affine.numpy(), atol=1e-4)
    assert dciodvfy(files[3]) == []


def test_series_slice_with_own_rescale_does_not_leak(sample, tmp_path):
    """A slice whose values need their own rescale (beyond the header's range) must not pass it on to the next."""
    _write_series(sample / "ct_small.dcm", tmp_path / "series", [-80.0 + 2.5 * k for k in range(4)])
    vol = load_image(tmp_path / "series")
    vol[0, 0, 0, 1] = float(vol.max()) + 70000.0  # only slice 1 leaves the stored range (16 bits)
    back = load_image(save_image(vol, tmp_path / "out"))
    slopes = [float(pydicom.dcmread(str(f), stop_before_pixels=True).RescaleSlope) for f in sorted((tmp_path / "out").glob("*.dcm"))]
    assert slopes[1] != slopes[0] and slopes[2] == slopes[3] == slopes[0]
    np.testing.assert_allclose(back.numpy(), vol.numpy(), atol=max(slopes))


def test_sample_ct_series(sample):
    vol = load_image(sample / "ct_series_lung_dx_a0001")
    assert vol.shape == (1, 512, 512, 8) and vol.meta[mk.MODALITY] == "ct"
    assert vol.meta[mk.SPACING][2] == pytest.approx(5.0)
    assert -1100 < float(vol.min()) and float(vol.max()) < 4000
    z = [float((vol.affine.numpy() @ np.array([0, 0, k, 1.0]))[2]) for k in range(8)]
    assert np.all(np.diff(z) > 0)  # slices run inferior -> superior with increasing k
    assert json.loads(vol.meta["medsr_source_info"])["n_files"] == 8


def test_series_non_uniform_spacing(sample, tmp_path, upscale, dciodvfy):
    """A missing slice: read and upscaled in-plane slice by slice, each keeping its position; no regular grid."""
    from medsr.errors import OutputError
    from medsr.io import uneven_slices

    _write_series(sample / "ct_small.dcm", tmp_path / "s", [0.0, 2.5, 5.0, 10.0, 12.5])
    vol = load_image(tmp_path / "s")
    gap = uneven_slices(vol)
    assert gap is not None and "5 mm between slice_02.dcm at 5 mm and slice_03.dcm at 10 mm" in gap
    out = save_image(upscale(vol, (2, 2, 1)), tmp_path / "s_sr2x")
    written = sorted(out.glob("*.dcm"))
    z = [float(pydicom.dcmread(str(f), stop_before_pixels=True).ImagePositionPatient[2]) for f in written]
    assert z == pytest.approx([0.0, 2.5, 5.0, 10.0, 12.5])
    first = pydicom.dcmread(str(written[0]), stop_before_pixels=True)
    assert (first.Rows, first.Columns) == (256, 256) and "SpacingBetweenSlices" not in first
    assert dciodvfy(written[3]) == []
    as_nifti = vol.clone()
    as_nifti.meta[mk.FORMAT] = "nifti"  # as medsr evaluate --save-images writes volumes
    with pytest.raises(OutputError, match="evenly spaced slices.*slice_02.dcm at 5 mm and slice_03.dcm"):
        save_image(as_nifti, tmp_path / "s.nii.gz")
    with pytest.raises(OutputError, match="unevenly spaced.*slice_03.dcm"):
        save_image(upscale(vol, (1, 1, 2)), tmp_path / "s_z2")
    assert not (tmp_path / "s.nii.gz").exists() and not (tmp_path / "s_z2").exists()


def test_series_duplicate_positions(sample, tmp_path):
    _write_series(sample / "ct_small.dcm", tmp_path / "s", [0.0, 2.5, 2.5, 5.0])
    with pytest.raises(InputError, match="share one position"):
        load_image(tmp_path / "s")


def test_folder_with_two_series(sample, tmp_path):
    a = _write_series(sample / "ct_small.dcm", tmp_path / "a", [0.0, 2.5], series_uid="1.2.3.4")
    b = _write_series(sample / "ct_small.dcm", tmp_path / "b", [0.0, 2.5], series_uid="1.2.3.5")
    for p in b:
        p.rename(tmp_path / "a" / f"b_{p.name}")
    with pytest.raises(InputError, match=r"holds 2 DICOM series") as err:
        load_image(tmp_path / "a")
    # named by the hash that also names their outputs, never by UID or description (identifiers)
    assert "1.2.3.4" not in str(err.value) and hashlib.sha1(b"1.2.3.4").hexdigest()[:8] in str(err.value)
    with pytest.raises(InputError, match="2 DICOM series"):
        load_image([a[0], tmp_path / "a" / f"b_{b[0].name}"])


# ----------------------------------------------------------------------------- refused inputs


def _ct(sample: Path) -> pydicom.Dataset:
    return pydicom.dcmread(str(sample / "ct_small.dcm"))


def test_text_file_named_dcm(tmp_path):
    p = tmp_path / "notes.dcm"
    p.write_text("patient notes, not an image\n")
    with pytest.raises(InputError, match="not a DICOM file"):
        load_image(p)


def test_truncated_dicom(sample, tmp_path):
    data = (sample / "ct_small.dcm").read_bytes()
    for n, why in ((len(data) - 5000, "truncated"), (1000, "truncated")):
        p = tmp_path / f"cut{n}.dcm"
        p.write_bytes(data[:n])
        with pytest.raises(InputError, match=why):
            load_image(p)


@pytest.mark.parametrize("name, match", [("test-SR.dcm", "Comprehensive SR"), ("rtstruct.dcm", "RT Structure Set")])
def test_no_pixel_data(testdata, name, match):
    with pytest.raises(InputError, match=f"no pixel data.*{match}"):
        load_image(testdata(name))


def test_rgb_dicom(testdata):
    with pytest.raises(InputError, match="SamplesPerPixel=3"):
        load_image(testdata("SC_rgb_small_odd.dcm"))


def test_huge_declared_dimensions_refused_before_decoding(sample, tmp_path):
    ds = _ct(sample)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 4
    p = tmp_path / "huge.dcm"
    ds.save_as(str(p))
    with pytest.raises(InputError, match=f"exceeds medsr's limit of {MAX_PIXELS}"):
        load_image(p)


def test_zero_size(sample, tmp_path):
    ds = _ct(sample)
    ds.Rows = 0
    p = tmp_path / "zero.dcm"
    ds.save_as(str(p))
    with pytest.raises(InputError, match="zero-size"):
        load_image(p)


def test_nan_pixels(sample, tmp_path):
    ds = _ct(sample)
    arr = np.zeros((ds.Rows, ds.Columns), np.float32)
    arr[3, 4] = np.nan
    del ds.PixelData, ds.RescaleSlope, ds.RescaleIntercept, ds.PixelPaddingValue
    ds.FloatPixelData = arr.tobytes()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    p = tmp_path / "nan.dcm"
    ds.save_as(str(p))
    with pytest.raises(InputError, match="NaN"):
        load_image(p)


# ----------------------------------------------------------------------------- validator repairs


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_writer_repairs_common_header_defects(sample, tmp_path, upscale, dciodvfy):
    """Defects found in real inputs (see the module docstring) do not reach the derived file."""
    ds = _ct(sample)
    ds.StudyDate = "***"  # anonymiser placeholder (dcm_qa_uih MR)
    ds.PatientAge = "***"
    ds.PixelAspectRatio = [1, 1]  # not allowed beside PixelSpacing (nibabel's 0.dcm)
    ref = pydicom.Dataset()
    ref.ReferencedSOPInstanceUID = generate_uid()  # no ReferencedSOPClassUID (TCIA Lung-PET-CT-Dx)
    ds.ReferencedStudySequence = [ref]
    del ds.FrameOfReferenceUID  # missing (pydicom-data 693_UNCR)
    del ds.Laterality
    ds.PatientIdentityRemoved = "YES"
    src = tmp_path / "defects.dcm"
    ds.save_as(str(src))
    out = save_image(upscale(load_image(src), (2, 2)), tmp_path / "fixed.dcm")
    fixed = pydicom.dcmread(str(out), stop_before_pixels=True)
    assert fixed.StudyDate == "" and "PixelAspectRatio" not in fixed and "ReferencedStudySequence" not in fixed
    assert fixed.FrameOfReferenceUID and fixed.Laterality == "" and fixed.DeidentificationMethod
    assert dciodvfy(out) == []


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "ct" / "lung_pet_ct_dx_A0001").is_dir(), reason="optional: ../shared/data absent")
def test_shared_ct_series_x2(tmp_path, upscale, dciodvfy):
    """Optional, workspace only: 6 real slices, upscaled in-plane and through-plane, validate."""
    files = sorted((SHARED / "ct" / "lung_pet_ct_dx_A0001").glob("*.dcm"))[:6]
    vol = load_image(files)
    assert vol.shape == (1, 512, 512, 6)
    out = save_image(upscale(vol, (2, 2, 2)), tmp_path / "lung_sr2x")
    slices = sorted(out.glob("*.dcm"))
    assert len(slices) == 12
    assert dciodvfy(slices[0]) == [] and dciodvfy(slices[-1]) == []
