"""atomic_path (zoom_geometry: tests/test_geometry.py)."""

from __future__ import annotations

import pytest

from medsr.io import atomic_path


def test_atomic_path_success(tmp_path):
    final = tmp_path / "ct_sr2x.nii.gz"
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".ct_sr2x.") and tmp.name.endswith(".tmp.nii.gz")
        tmp.write_bytes(b"data")
    assert final.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["ct_sr2x.nii.gz"]


def test_atomic_path_error_removes_temp(tmp_path):
    final = tmp_path / "out.png"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("writer failed")
    assert final.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_atomic_path_replaces_folder(tmp_path):
    final = tmp_path / "series_sr2x"
    final.mkdir()
    (final / "old.dcm").write_bytes(b"old")
    with atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "0001.dcm").write_bytes(b"new")
    assert sorted(p.name for p in final.iterdir()) == ["0001.dcm"]
    assert [p.name for p in tmp_path.iterdir()] == ["series_sr2x"]
