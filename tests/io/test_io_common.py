"""zoom_geometry and atomic_path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medsr.errors import UsageError
from medsr.io import atomic_path, zoom_geometry


def _random_affine(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    a = np.eye(4)
    a[:3, :3] = q @ np.diag(rng.uniform(0.3, 3.0, size=3))
    a[:3, 3] = rng.uniform(-200, 200, size=3)
    return a


@pytest.mark.parametrize("factors", [(2, 2, 1), (4, 4, 2), (3, 1, 2)])
def test_zoom_geometry_voxel_centres(factors):
    """New voxel i sits where interpolate(align_corners=False) samples the input: (i + 0.5) / f - 0.5."""
    rng = np.random.default_rng(0)
    old = _random_affine(rng)
    new = zoom_geometry(old, factors)
    f = np.array(factors, dtype=float)
    for idx in ([0, 0, 0], [1, 2, 3], [7, 0, 5]):
        i = np.array(idx, dtype=float)
        expected = old @ np.append((i + 0.5) / f - 0.5, 1.0)
        np.testing.assert_allclose(new @ np.append(i, 1.0), expected, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(new[:3, :3], axis=0), np.linalg.norm(old[:3, :3], axis=0) / f)


def test_zoom_geometry_matches_torch_interpolate():
    """A linear ramp upscaled by interpolate stays the same function of world position."""
    x = torch.arange(8, dtype=torch.float64)[None, None, :, None].expand(1, 1, 8, 6)
    up = F.interpolate(x, scale_factor=(2.0, 2.0), mode="bilinear", align_corners=False)[0, 0]
    old = np.diag([0.7, 0.9, 1.0, 1.0])
    new = zoom_geometry(old, (2, 2))
    # world x of new voxel i (away from the border) equals 0.7 * (value of the ramp there)
    for i in range(1, 15):
        world = (new @ np.array([i, 0, 0, 1.0]))[0]
        assert world == pytest.approx(0.7 * float(up[i, 3]), abs=1e-9)


def test_zoom_geometry_2d_and_torch():
    a = torch.tensor(np.diag([-0.5, -0.5, 1.0, 1.0]), dtype=torch.float64)
    a[:3, 3] = torch.tensor([10.0, 20.0, 30.0])
    out = zoom_geometry(a, (2, 2))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy().diagonal(), [-0.25, -0.25, 1.0, 1.0])
    np.testing.assert_allclose(out.numpy()[:3, 3], [10.125, 20.125, 30.0])  # -(1/4) * (-0.5)
    np.testing.assert_allclose(zoom_geometry(np.eye(3), (2, 2)), [[0.5, 0, -0.25], [0, 0.5, -0.25], [0, 0, 1]])


@pytest.mark.parametrize("factors", [(0, 2), (-2, 2), (2, 2, 2, 2), ()])
def test_zoom_geometry_bad_factors(factors):
    with pytest.raises(UsageError, match="factors"):
        zoom_geometry(np.eye(4), factors)


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
