"""save_image's refusals: existing output, the input itself, wrong extension, bad data; nothing left behind."""

from __future__ import annotations

import shutil

import pytest
import torch
from monai.data import MetaTensor

from medsr.errors import OutputError, UsageError
from medsr.io import load_image, save_image


@pytest.fixture
def ct(sample, tmp_path):
    shutil.copy(sample / "ct_small.dcm", tmp_path / "ct.dcm")
    return load_image(tmp_path / "ct.dcm")


def test_refuses_existing_then_overwrites(ct, tmp_path):
    target = tmp_path / "out.dcm"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        save_image(ct, target)
    assert target.read_bytes() == b"keep me"
    assert save_image(ct, target, overwrite=True) == target
    assert target.stat().st_size > 1000


def test_refuses_the_input(ct, tmp_path):
    before = (tmp_path / "ct.dcm").read_bytes()
    with pytest.raises(OutputError, match="is the input"):
        save_image(ct, tmp_path / "ct.dcm", overwrite=True)
    assert (tmp_path / "ct.dcm").read_bytes() == before


def test_refuses_series_over_its_input_folder(sample, tmp_path):
    shutil.copytree(sample / "ct_series_lung_dx_a0001", tmp_path / "series")
    vol = load_image(sorted((tmp_path / "series").iterdir()))  # a list: FILENAME is the first file
    with pytest.raises(OutputError, match="is the input"):
        save_image(vol, tmp_path / "series", overwrite=True)
    assert len(list((tmp_path / "series").iterdir())) == 8


def test_refuses_wrong_extension(sample, tmp_path):
    nii = load_image(sample / "mr_anatomical.nii")
    with pytest.raises(OutputError, match=r"\.nii or \.nii\.gz"):
        save_image(nii, tmp_path / "out.png")
    png = load_image(sample / "cxr_hannover_006f3a8a.png")
    with pytest.raises(OutputError, match=r"\.png"):
        save_image(png, tmp_path / "out.jpg")
    assert list(tmp_path.iterdir()) == []


def test_refuses_plain_tensor_and_unknown_format(ct, tmp_path):
    with pytest.raises(OutputError, match="MetaTensor"):
        save_image(torch.zeros(1, 4, 4), tmp_path / "x.dcm")  # type: ignore[arg-type]
    bad = MetaTensor(ct.as_tensor(), meta={**ct.meta, "medsr_format": None})
    with pytest.raises(OutputError, match="output format"):
        save_image(bad, tmp_path / "x.dcm")


def test_failed_write_leaves_nothing(ct, tmp_path):
    out_dir = tmp_path / "out"
    broken = ct.clone()
    broken[0, 0, 0] = float("nan")
    with pytest.raises(OutputError, match="NaN"):
        save_image(broken, out_dir / "ct_sr.dcm")
    assert list(out_dir.iterdir()) == []
    with pytest.raises(OutputError, match="single-channel"):
        save_image(MetaTensor(torch.zeros(2, 8, 8), meta=dict(ct.meta)), out_dir / "two.dcm")
    assert list(out_dir.iterdir()) == []


def test_creates_parent_folders(ct, tmp_path):
    out = save_image(ct, tmp_path / "a" / "b" / "ct_sr.dcm")
    assert out.is_file()


def test_bad_modality(sample):
    with pytest.raises(UsageError, match="modality"):
        load_image(sample / "ct_small.dcm", modality="PET")


def test_missing_input(tmp_path):
    from medsr.errors import InputError

    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "nope.dcm")
    (tmp_path / "x.bmp").write_bytes(b"BM")
    with pytest.raises(InputError, match="unsupported file type"):
        load_image(tmp_path / "x.bmp")
