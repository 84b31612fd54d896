"""discover_inputs and InputItem."""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from medsr.errors import InputError
from medsr.io import InputItem, discover_inputs, load_image


def _series(src: Path, folder: Path, n: int, uid: str, prefix: str = "s", suffix: str = ".dcm") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(str(src))
    out = []
    for k in range(n):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [ipp[0], ipp[1], 3.0 * k]
        p = folder / f"{prefix}{k}{suffix}"
        ds.save_as(str(p))
        out.append(p)
    return out


@pytest.fixture
def tree(sample, tmp_path) -> Path:
    root = tmp_path / "study"
    _series(sample / "ct_small.dcm", root / "ct", 3, "1.2.826.0.1.1")
    _series(sample / "ct_small.dcm", root / "ct", 2, "1.2.826.0.1.2", prefix="t", suffix="")  # no extension
    shutil.copy(sample / "cxr_cr_rg1.dcm", root / "cr.dcm")
    (root / "nested" / "deeper").mkdir(parents=True)
    shutil.copy(sample / "mr_anatomical.nii", root / "nested" / "deeper" / "mr.nii")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "nested" / "x.png")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.dcm").write_text("hidden")
    (root / "broken.dcm").write_text("not dicom at all")
    os.symlink(root, root / "nested" / "loop")  # a symlink loop must not be followed forever
    return root


def test_discover_tree(tree):
    items = discover_inputs(tree)
    series = [it for it in items if it.kind == "series"]
    files = [it for it in items if it.kind == "file"]
    assert len(series) == 2
    assert {it.series_uid for it in series} == {"1.2.826.0.1.1", "1.2.826.0.1.2"}
    assert {len(it.files) for it in series} == {3, 2} and all(it.path == tree / "ct" for it in series)
    assert sorted(p.name for it in files for p in it.files) == ["broken.dcm", "cr.dcm", "mr.nii", "x.png"]
    assert all(it.files == (it.path,) for it in files)
    with pytest.raises(dataclasses.FrozenInstanceError):
        items[0].kind = "file"  # type: ignore[misc]


def test_items_load(tree):
    items = discover_inputs(tree)
    for item in items:
        if item.path.name == "broken.dcm":
            with pytest.raises(InputError, match="not a DICOM file"):
                load_image(item)  # an unreadable candidate is still listed, so the caller can report it
            continue
        if item.path.name == "cr.dcm":
            continue  # large; read elsewhere
        img = load_image(item)
        if item.kind == "series":
            assert img.shape[-1] == len(item.files)
            assert load_image(list(item.files)).shape == img.shape


def test_discover_single_file(sample):
    assert discover_inputs(sample / "ct_small.dcm") == [
        InputItem(sample / "ct_small.dcm", (sample / "ct_small.dcm",), "file")
    ]


def test_discover_sample_data(sample):
    items = discover_inputs(sample)
    kinds = sorted((it.kind, it.path.name) for it in items)
    assert ("series", "ct_series_lung_dx_a0001") in kinds
    assert len([k for k in kinds if k[0] == "file"]) == 5


def test_no_images(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match="contains no images"):
        discover_inputs(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        discover_inputs(tmp_path / "missing")
    with pytest.raises(InputError, match="contains no DICOM files"):
        load_image(tmp_path)
