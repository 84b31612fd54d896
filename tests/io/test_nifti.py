"""NIfTI reading and writing."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medsr import meta as mk
from medsr.errors import InputError
from medsr.io import load_image, save_image


def test_read_matches_nibabel(sample):
    path = sample / "mr_anatomical.nii"
    img = load_image(path)
    ref = nib.load(str(path))
    assert img.shape == (1, 33, 41, 25)
    np.testing.assert_array_equal(img[0].numpy(), np.asarray(ref.dataobj, dtype=np.float32))
    np.testing.assert_allclose(img.affine.numpy(), ref.affine)
    m = img.meta
    assert m[mk.FORMAT] == "nifti" and m[mk.SPACING_SOURCE] == "NIfTI"
    assert m[mk.SPACING] == pytest.approx((2.0, 2.0, 2.0))
    assert m[mk.MODALITY] == "mr"  # two voxels at -610 (resampling artefacts) do not make it CT
    assert m[mk.DICOM_HEADER] == ""
    assert load_image(path, modality="ct").meta[mk.MODALITY] == "ct"


def test_ct_guess(tmp_path):
    data = np.full((6, 5, 4), -1000, dtype=np.int16)
    data[2:4, 2:4, 1:3] = 40
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.0, 1.0])), str(tmp_path / "ct.nii.gz"))
    img = load_image(tmp_path / "ct.nii.gz")
    assert img.meta[mk.MODALITY] == "ct" and img.shape == (1, 6, 5, 4)


def test_roundtrip_keeps_dtype_and_values(sample, tmp_path):
    img = load_image(sample / "mr_anatomical.nii")
    out = save_image(img, tmp_path / "anat.nii.gz")
    back = nib.load(str(out))
    assert back.get_data_dtype() == np.dtype(np.int16)
    original = nib.load(str(sample / "mr_anatomical.nii"))
    np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(original.dataobj))
    np.testing.assert_allclose(back.affine, img.affine.numpy())
    assert int(back.header["qform_code"]) == 2 and int(back.header["sform_code"]) == 2  # the input's codes


def test_x2_write_geometry(sample, tmp_path, upscale):
    img = load_image(sample / "mr_anatomical.nii")
    up = upscale(img, (2, 2, 2))
    out = save_image(up, tmp_path / "anat_sr2x.nii")
    back = nib.load(str(out))
    assert back.shape == (66, 82, 50)
    old = img.affine.numpy()
    np.testing.assert_allclose(np.diag(back.affine)[:3], np.diag(old)[:3] / 2)
    # voxel-centre consistent: new voxel 0 sits a quarter of an old voxel before old voxel 0
    np.testing.assert_allclose(back.affine[:3, 3], old[:3, 3] - 0.25 * np.diag(old)[:3], atol=1e-5)
    np.testing.assert_allclose(back.get_qform(), back.affine, atol=1e-5)
    np.testing.assert_allclose(back.get_sform(), back.affine, atol=1e-5)
    assert back.get_data_dtype() == np.dtype(np.int16)


def test_float_and_clip(tmp_path):
    data = np.linspace(0, 1, 60, dtype=np.float32).reshape(5, 4, 3)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "f.nii"))
    img = load_image(tmp_path / "f.nii")
    out = save_image(img, tmp_path / "f_out.nii")
    back = nib.load(str(out))
    assert back.get_data_dtype() == np.dtype(np.float32)
    np.testing.assert_array_equal(np.asarray(back.dataobj), data)

    u8 = np.arange(60, dtype=np.uint8).reshape(5, 4, 3)
    nib.save(nib.Nifti1Image(u8, np.eye(4)), str(tmp_path / "u8.nii"))
    img = load_image(tmp_path / "u8.nii")
    img[0, 0, 0, 0] = 300.4  # overshoot of an upscaler: clipped to the dtype range
    img[0, 1, 0, 0] = 7.6
    save_image(img, tmp_path / "u8_out.nii")
    back = np.asarray(nib.load(str(tmp_path / "u8_out.nii")).dataobj)
    assert back.dtype == np.uint8 and back[0, 0, 0] == 255 and back[1, 0, 0] == 8


def test_4d_refused(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.int16), np.eye(4)), str(tmp_path / "t.nii.gz"))
    with pytest.raises(InputError, match="4D NIfTI"):
        load_image(tmp_path / "t.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 1), np.int16), np.eye(4)), str(tmp_path / "t1.nii.gz"))
    assert load_image(tmp_path / "t1.nii.gz").shape == (1, 4, 4, 3)


def test_nan_refused(tmp_path):
    data = np.zeros((4, 4, 3), np.float32)
    data[1, 1, 1] = np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "inf.nii"))
    with pytest.raises(InputError, match="NaN or infinite"):
        load_image(tmp_path / "inf.nii")


def test_truncated_nifti(sample, tmp_path):
    data = (sample / "mr_anatomical.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(tmp_path / "cut.nii")
    (tmp_path / "junk.nii").write_text("not nifti")
    with pytest.raises(InputError, match="not a readable NIfTI"):
        load_image(tmp_path / "junk.nii")


def test_integer_output_rounded_and_clipped_in_blocks(tmp_path, monkeypatch):
    from medsr.io import nifti

    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 1000, (9, 7, 2)).astype(np.int16)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "in.nii")
    img = load_image(tmp_path / "in.nii")
    img[0] = img[0] * 40.3 + 0.4  # out of int16 range in places, fractional everywhere
    monkeypatch.setattr(nifti, "_ENCODE_CHUNK", 20)  # blocks of 1 row of 7 x 2 voxels
    back = np.asarray(nib.load(save_image(img, tmp_path / "out.nii")).dataobj)
    want = np.clip(np.rint(img[0].numpy().astype(np.float64)), -32768, 32767).astype(np.int16)
    assert back.dtype == np.int16
    np.testing.assert_array_equal(back, want)
