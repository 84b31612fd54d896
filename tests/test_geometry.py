"""medsr.geometry: the half-pixel zoom rule and spacing read from the affine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from medsr import meta as M
from medsr.errors import UsageError
from medsr.geometry import spacing_from_affine, update_spacing, zoom_geometry
from medsr.transforms import BicubicDegradation, upsample


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


def test_update_spacing_reads_the_affine_and_leaves_other_meta_alone():
    affine = np.diag([0.5, 0.25, 3.0, 1.0])
    meta = {M.SPACING: (9.0, 9.0, 9.0)}
    update_spacing(meta, affine, 3)
    assert meta[M.SPACING] == (0.5, 0.25, 3.0) == spacing_from_affine(torch.as_tensor(affine), 3)
    for untouched in ({}, {M.SPACING: (1.0, 1.0)}, {M.SPACING: torch.ones(3)}):
        before = dict(untouched)
        update_spacing(untouched, affine, 3)
        assert untouched.keys() == before.keys() and untouched.get(M.SPACING) is before.get(M.SPACING)


@pytest.mark.parametrize("scale", [2, 4])
def test_transforms_and_io_share_the_rule(scale):
    """Down- then upsampling by the same factor with the transforms gives back the input's affine and spacing."""
    rng = np.random.default_rng(1)
    affine = torch.as_tensor(_random_affine(rng))
    x = MetaTensor(torch.rand(1, 16, 16, 4), affine=affine, meta={M.SPACING: spacing_from_affine(affine, 3)})
    lr = BicubicDegradation(scale)(x)
    torch.testing.assert_close(lr.affine, zoom_geometry(affine, (1 / scale, 1 / scale)))
    assert lr.meta[M.SPACING] == pytest.approx(spacing_from_affine(lr.affine, 3))
    back = upsample(lr, scale, axes=(0, 1))
    torch.testing.assert_close(back.affine, affine)
    assert back.meta[M.SPACING] == pytest.approx(x.meta[M.SPACING])
