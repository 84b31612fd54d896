"""Datalists and the HR -> LR pipelines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from medsr.data import (
    build_datalist,
    limit_per_modality,
    load_datalist,
    modality_weights,
    split_datalist,
    split_slices,
    train_transforms,
    val_transforms,
    volume_depth,
)
from medsr.errors import InputError, UsageError

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


@pytest.fixture()
def class_tree(tmp_path: Path) -> Path:
    """Covid/ Normal/ Pneumonia/ sub-folders plus a file at the top (class `all`)."""
    for cls, name in [("Covid", "ct_small.dcm"), ("normal", "mr_small.dcm"), ("PNEUMONIA", "cxr_hannover_006f3a8a.png")]:
        (tmp_path / cls).mkdir()
        shutil.copy(SAMPLE / name, tmp_path / cls / name)
    shutil.copy(SAMPLE / "mr_anatomical.nii", tmp_path / "top.nii")
    shutil.copytree(SAMPLE / "ct_series_lung_dx_a0001", tmp_path / "Covid" / "series")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_build_datalist_classes_and_modalities(class_tree: Path) -> None:
    dl = {Path(e["image"]).name: e for e in build_datalist(class_tree)}
    assert dl["ct_small.dcm"]["class"] == "Covid" and dl["ct_small.dcm"]["modality"] == "ct"
    assert dl["mr_small.dcm"]["class"] == "Normal" and dl["mr_small.dcm"]["modality"] == "mr"
    assert dl["cxr_hannover_006f3a8a.png"]["class"] == "Pneumonia" and dl["cxr_hannover_006f3a8a.png"]["modality"] == "xray"
    assert dl["top.nii"]["class"] == "all" and dl["top.nii"]["modality"] == "mr"
    assert dl["series"]["modality"] == "ct"  # a DICOM series is one entry
    assert len(dl) == 5


def test_build_datalist_exclude_and_errors(class_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    names = {Path(e["image"]).name for e in build_datalist(class_tree, exclude=["Covid/*"])}
    assert "ct_small.dcm" not in names and "series" not in names
    with pytest.raises(UsageError, match="modality"):
        build_datalist(class_tree, modality="pet")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(InputError):
        build_datalist(empty)


def test_load_datalist_json_and_csv(tmp_path: Path) -> None:
    shutil.copy(SAMPLE / "ct_small.dcm", tmp_path / "a.dcm")
    (tmp_path / "list.json").write_text(json.dumps({"training": [{"image": "a.dcm", "class": "Normal"}]}))
    (tmp_path / "list.csv").write_text("image,class\na.dcm,\n")
    js = load_datalist(tmp_path / "list.json")
    cs = load_datalist(tmp_path / "list.csv")
    assert js[0]["image"] == str(tmp_path / "a.dcm") and js[0]["modality"] == "ct" and js[0]["class"] == "Normal"
    assert cs[0]["class"] == "all"
    (tmp_path / "bad.json").write_text(json.dumps([{"path": "a.dcm"}]))
    with pytest.raises(InputError, match="image"):
        load_datalist(tmp_path / "bad.json")


def test_split_keeps_groups_apart() -> None:
    dl = [{"image": f"{g}_{i}.png", "group": g, "modality": "xray"} for g in "abcdefghij" for i in range(3)]
    train, val = split_datalist(dl, 0.2, seed=1)
    assert len(val) == 6 and len(train) == 24
    assert not {e["group"] for e in train} & {e["group"] for e in val}
    assert split_datalist(dl, 0.2, seed=1) == (train, val)  # seeded


def test_split_slices_holds_out_a_contiguous_slab() -> None:
    series = str(SAMPLE / "ct_series_lung_dx_a0001")
    assert volume_depth(series) == 8
    train, val = split_slices([{"image": series, "modality": "ct"}, {"image": "x.png", "modality": "xray"}], 0.25)
    assert train[0]["slices"] == [0, 6] and train[1] == {"image": "x.png", "modality": "xray"}
    assert [e["slices"] for e in val] == [[6, 7], [7, 8]]


def test_modality_weights_and_limit() -> None:
    dl = [{"modality": "xray"}] * 8 + [{"modality": "ct"}] * 2
    w = modality_weights(dl)
    assert sum(w[:8]) == pytest.approx(0.5) and sum(w[8:]) == pytest.approx(0.5)
    assert len(limit_per_modality(dl, 3, seed=0)) == 5


@pytest.mark.parametrize("scale", [2, 4])
def test_train_and_val_pipelines(scale: int) -> None:
    entries = [
        {"image": str(SAMPLE / "cxr_hannover_006f3a8a.png"), "modality": "xray"},
        {"image": str(SAMPLE / "ct_series_lung_dx_a0001"), "modality": "ct", "slices": [0, 4]},
        {"image": str(SAMPLE / "mr_small.dcm"), "modality": "mr"},  # 64x64: padded to the patch size
    ]
    tf = train_transforms(scale, patch_size=16 * scale, num_samples=2)
    tf.set_random_state(0)
    for entry in entries:
        samples = tf(entry)
        assert len(samples) == 2
        for s in samples:
            assert set(s) == {"hr", "lr"}
            assert s["hr"].shape == (1, 16 * scale, 16 * scale) and s["lr"].shape == (1, 16, 16)
            assert 0.0 <= float(s["hr"].min()) and float(s["hr"].max()) <= 1.0
    val = val_transforms(scale, crop=32)(entries[0])
    assert val["hr"].shape == (1, 32, 32) and val["lr"].shape == (1, 32 // scale, 32 // scale)
    with pytest.raises(UsageError, match="patch_size"):
        train_transforms(4, patch_size=30)


def test_train_pipeline_is_reproducible() -> None:
    entry = {"image": str(SAMPLE / "cxr_hannover_006f3a8a.png"), "modality": "xray"}
    a, b = train_transforms(2, 32, 2), train_transforms(2, 32, 2)
    a.set_random_state(7)
    b.set_random_state(7)
    for x, y in zip(a(entry), b(entry)):
        torch.testing.assert_close(x["lr"], y["lr"])
        torch.testing.assert_close(x["hr"], y["hr"])
