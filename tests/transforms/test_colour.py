"""BT.601 RGB <-> YCbCr (MATLAB ``rgb2ycbcr``) and the RGB upscaling path (Y by a model, Cb/Cr bicubic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsr.errors import UsageError
from medsr.transforms.colour import quantize8, rgb_to_y, rgb_to_ycbcr, upscale_rgb, ycbcr_to_rgb
from medsr.transforms.resample import upsample

skcolor = pytest.importorskip("skimage.color", reason="scikit-image is the reference for the YCbCr conversion")


def _rgb(seed: int = 0, shape: tuple[int, int] = (9, 7)) -> np.ndarray:
    return np.random.default_rng(seed).random((3, *shape))


def test_matches_skimage_rgb2ycbcr() -> None:
    rgb = _rgb()
    ref = np.moveaxis(skcolor.rgb2ycbcr(np.moveaxis(rgb, 0, -1)), -1, 0) / 255.0  # MATLAB's formula, 0..255
    np.testing.assert_allclose(rgb_to_ycbcr(rgb), ref, atol=1e-12)
    np.testing.assert_allclose(rgb_to_y(rgb), ref[:1], atol=1e-12)


def test_reference_formula_and_ranges() -> None:
    r, g, b = 0.2, 0.6, 0.9
    y = (16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255
    out = rgb_to_ycbcr(np.array([r, g, b]).reshape(3, 1, 1))
    assert out[0, 0, 0] == pytest.approx(y, abs=1e-12)
    corners = rgb_to_ycbcr(np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]])[:, :, None])
    assert corners[0].min() == pytest.approx(16 / 255) and corners[0].max() == pytest.approx(235 / 255)


def test_round_trip_numpy_and_torch() -> None:
    rgb = _rgb(1)
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-12)
    t = torch.as_tensor(rgb, dtype=torch.float32)
    out = rgb_to_ycbcr(t)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), rgb_to_ycbcr(rgb), atol=1e-6)
    np.testing.assert_allclose(ycbcr_to_rgb(out).numpy(), rgb, atol=1e-5)


def test_round8_is_matlab_uint8() -> None:
    rgb8 = np.random.default_rng(2).integers(0, 256, (3, 6, 5)).astype(np.float64)
    ref = np.round(np.moveaxis(skcolor.rgb2ycbcr(np.moveaxis(rgb8 / 255, 0, -1)), -1, 0)) / 255
    y = rgb_to_y(rgb8 / 255, round8=True)
    np.testing.assert_allclose(y, ref[:1], atol=1e-12)
    assert np.allclose(y * 255, np.round(y * 255))
    np.testing.assert_array_equal(quantize8(np.array([-0.1, 0.5 / 255, 1.2])), [0.0, 1 / 255, 1.0])


@pytest.mark.parametrize("shape", [(1, 4, 4), (4, 4), (2, 4, 4)])
def test_wrong_shape_is_a_usage_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(UsageError, match="3 channels"):
        rgb_to_ycbcr(np.zeros(shape))


def test_upscale_rgb_bicubic_equals_bicubic_rgb() -> None:
    """Bicubic is linear: Y and Cb/Cr upscaled separately == every RGB channel upscaled (before clipping)."""
    rgb = torch.as_tensor(_rgb(3, (12, 10)) * 0.8 + 0.1, dtype=torch.float64)
    out = upscale_rgb(rgb, lambda y: upsample(y, 2, axes=(0, 1)), 2)
    ref = upsample(rgb.float(), 2, axes=(0, 1)).clamp(0, 1)
    assert out.shape == (3, 24, 20)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-5)


def test_upscale_rgb_uses_the_model_on_y_only() -> None:
    rgb = torch.as_tensor(_rgb(4, (6, 6)), dtype=torch.float32)
    seen = []

    def model(y: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(y.shape))
        return torch.full((1, 12, 12), 0.5)

    out = upscale_rgb(rgb, model, 2)
    assert seen == [(1, 6, 6)]
    y = rgb_to_y(out)
    inside = (out > 0) & (out < 1)  # Y is exact where no channel was clipped
    assert inside.all(dim=0).any()
    np.testing.assert_allclose(y[0][inside.all(dim=0)].numpy(), 0.5, atol=1e-5)


def test_upscale_rgb_wrong_model_shape() -> None:
    with pytest.raises(UsageError, match="expected"):
        upscale_rgb(torch.rand(3, 4, 4), lambda y: torch.zeros(1, 4, 4), 2)
