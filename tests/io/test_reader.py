"""MedsrReader inside MONAI's LoadImage / LoadImaged, and collation of the meta."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, list_data_collate
from monai.transforms import LoadImage, LoadImaged

from medsr import meta as mk
from medsr.errors import InputError, UsageError
from medsr.io import MedsrReader, load_image


def _assert_same(a: MetaTensor, b: MetaTensor) -> None:
    assert isinstance(a, MetaTensor) and isinstance(b, MetaTensor)
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
    torch.testing.assert_close(a.as_tensor(), b.as_tensor())
    torch.testing.assert_close(a.affine, b.affine)
    assert set(a.meta) == set(b.meta)
    for key in a.meta:
        va, vb = a.meta[key], b.meta[key]
        if isinstance(va, (np.ndarray, torch.Tensor)):
            np.testing.assert_allclose(np.asarray(va), np.asarray(vb))
        else:
            assert va == vb, key


@pytest.fixture(scope="module")
def monai_loaders():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's optional default readers warn when their packages are absent
        return (
            LoadImaged("image", reader=MedsrReader(), ensure_channel_first=True, image_only=True),
            LoadImage(reader=MedsrReader(), image_only=True, ensure_channel_first=True),
            LoadImage(image_only=True, ensure_channel_first=True),
        )


@pytest.mark.parametrize("name", ["ct_small.dcm", "mr_anatomical.nii", "ct_series_lung_dx_a0001"])
def test_same_as_load_image(sample, monai_loaders, name):
    loadd, load, load_plain = monai_loaders
    ref = load_image(sample / name)
    _assert_same(loadd({"image": str(sample / name)})["image"], ref)
    _assert_same(load(str(sample / name)), ref)
    _assert_same(load_plain(str(sample / name), reader=MedsrReader()), ref)
    assert ref.meta["original_channel_dim"] == "no_channel"


def test_errors_through_monai(tmp_path, monai_loaders):
    _, load, load_plain = monai_loaders
    bad = tmp_path / "notes.dcm"
    bad.write_text("not an image")
    # reader given at call time: medsr's InputError comes out unchanged
    with pytest.raises(InputError, match="not a DICOM file"):
        load_plain(str(bad), reader=MedsrReader())
    # reader given to the constructor: MONAI tries its other readers, then wraps everything
    with pytest.raises(RuntimeError, match="not a DICOM file"):
        load(str(bad))


def test_verify_suffix(sample, tmp_path):
    r = MedsrReader()
    assert r.verify_suffix(str(sample / "ct_small.dcm")) and r.verify_suffix(sample / "mr_anatomical.nii")
    assert r.verify_suffix(tmp_path) and r.verify_suffix([sample / "ct_small.dcm", sample / "mr_small.dcm"])
    (tmp_path / "a.txt").write_text("x")
    assert not r.verify_suffix(tmp_path / "a.txt")
    with pytest.raises(UsageError, match="modality"):
        MedsrReader(modality="pet")


def test_meta_survives_collate(sample):
    a = load_image(sample / "ct_small.dcm")
    b = load_image(sample / "ct_small.dcm", modality="other")
    batch = list_data_collate([{"image": a}, {"image": b}])["image"]
    assert batch.shape == (2, 1, 128, 128)
    assert batch.meta[mk.MODALITY] == ["ct", "other"]
    assert batch.meta[mk.DICOM_HEADER] == [a.meta[mk.DICOM_HEADER]] * 2
    assert batch.meta[mk.FORMAT] == ["dicom", "dicom"]
    assert batch.affine.shape == (2, 4, 4)
    # image-only batches too
    assert list_data_collate([a, b]).meta[mk.SPACING_SOURCE] == ["PixelSpacing"] * 2
    # raster and NIfTI meta hold no None either
    for name in ("cxr_hannover_006f3a8a.png", "mr_anatomical.nii"):
        img = load_image(sample / name)
        assert all(v is not None for v in img.meta.values())
        list_data_collate([img, img])
