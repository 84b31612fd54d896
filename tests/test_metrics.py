"""medsr.metrics against scikit-image under the DESIGN convention (data_range 1, border = scale)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, normalized_root_mse, peak_signal_noise_ratio, structural_similarity

from medsr import metrics
from medsr.errors import UsageError

SK = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)


def _pair(shape: tuple[int, ...], seed: int = 0, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # smooth structure + noise, like an image and a degraded copy of it
    hr = rng.random(shape).astype(np.float32)
    from scipy.ndimage import gaussian_filter

    hr = gaussian_filter(hr, sigma=(0, 2, 2) + (0,) * (len(shape) - 3)).astype(np.float32)
    hr = (hr - hr.min()) / (hr.max() - hr.min())
    sr = np.clip(hr + noise * rng.standard_normal(shape), 0, 1).astype(np.float32)
    return sr, hr


def _crop(x: np.ndarray, b: int) -> np.ndarray:
    return x[:, b:-b, b:-b] if b else x


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("shape", [(1, 64, 48), (1, 33, 71)])
def test_2d_matches_skimage(shape: tuple[int, ...], scale: int) -> None:
    sr, hr = _pair(shape, seed=scale)
    got = metrics.compute_metrics(sr, hr, scale=scale)
    s, h = _crop(sr, scale)[0].astype(np.float64), _crop(hr, scale)[0].astype(np.float64)
    assert got["ssim"] == pytest.approx(structural_similarity(h, s, **SK), abs=1e-4)
    assert got["psnr"] == pytest.approx(peak_signal_noise_ratio(h, s, data_range=1.0), abs=1e-4)
    assert got["nrmse"] == pytest.approx(normalized_root_mse(h, s), abs=1e-4)
    assert got["mae"] == pytest.approx(float(np.abs(s - h).mean()), abs=1e-6)
    assert metrics.ssim(sr, hr, border=scale) == got["ssim"]
    assert metrics.psnr(sr, hr, border=scale) == pytest.approx(-10 * math.log10(mean_squared_error(h, s)), abs=1e-6)


def test_3d_is_mean_of_slice_ssim_and_volume_psnr() -> None:
    sr, hr = _pair((1, 40, 36, 5), seed=3)
    got = metrics.compute_metrics(sr, hr, scale=2)
    s, h = _crop(sr, 2)[0].astype(np.float64), _crop(hr, 2)[0].astype(np.float64)
    per_slice = [structural_similarity(h[..., z], s[..., z], **SK) for z in range(h.shape[-1])]
    assert got["ssim"] == pytest.approx(float(np.mean(per_slice)), abs=1e-4)
    assert got["psnr"] == pytest.approx(peak_signal_noise_ratio(h, s, data_range=1.0), abs=1e-4)


def test_slabs_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    sr, hr = _pair((2, 90, 50), seed=4)
    whole = metrics.compute_metrics(sr, hr, scale=2)
    monkeypatch.setattr(metrics, "_SLAB_ELEMENTS", 300)  # a few rows per slab
    sliced = metrics.compute_metrics(sr, hr, scale=2)
    for k in whole:
        assert sliced[k] == pytest.approx(whole[k], abs=1e-10)


def test_multichannel_ssim_is_channel_mean() -> None:
    sr, hr = _pair((3, 40, 40), seed=5)
    want = np.mean([structural_similarity(hr[c].astype(float), sr[c].astype(float), **SK) for c in range(3)])
    assert metrics.ssim(sr, hr) == pytest.approx(want, abs=1e-4)


def test_tensors_and_identity() -> None:
    _, hr = _pair((1, 32, 32))
    t = torch.from_numpy(hr)
    assert metrics.psnr(t, t) == math.inf
    assert metrics.ssim(t, t.clone()) == pytest.approx(1.0, abs=1e-9)
    assert metrics.mae(t, t) == 0.0
    assert metrics.sharpness(t, t) == pytest.approx(1.0)


def test_sharpness_tells_blur_from_detail() -> None:
    from scipy.ndimage import gaussian_filter

    _, hr = _pair((1, 64, 64), noise=0.0)
    rng = np.random.default_rng(1)
    hr = np.clip(hr + 0.1 * rng.standard_normal(hr.shape), 0, 1).astype(np.float32)
    blurred = gaussian_filter(hr, sigma=(0, 1.5, 1.5))
    noisy = np.clip(hr + 0.2 * rng.standard_normal(hr.shape), 0, 1).astype(np.float32)
    assert metrics.sharpness(blurred, hr) < 0.8
    assert metrics.sharpness(noisy, hr) > 1.1
    assert metrics.sharpness(hr * 0.5, hr) == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize(
    "pred, target, kwargs, match",
    [
        (np.zeros((32, 32)), np.zeros((32, 32)), {}, "channel-first"),
        (np.zeros((1, 32, 32)), np.zeros((1, 32, 30)), {}, "same shape"),
        (np.zeros((1, 8, 8)), np.zeros((1, 8, 8)), {"border": 4}, "too small"),
        (np.zeros((1, 12, 12)), np.zeros((1, 12, 12)), {"border": 2}, "SSIM needs"),
        (np.zeros((1, 12, 12)), np.zeros((1, 12, 12)), {"border": -1}, ">= 0"),
    ],
)
def test_errors(pred: np.ndarray, target: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        metrics.ssim(pred, target, **kwargs)


def test_4k_memory_stays_bounded() -> None:
    import tracemalloc

    x = np.random.default_rng(0).random((1, 2048, 2048), dtype=np.float32)
    y = x * np.float32(0.9)
    tracemalloc.start()
    try:
        got = metrics.compute_metrics(y, x, scale=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # one float64 copy of either input would already be 32 MiB; slabs keep far below it
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert got["sharpness"] == pytest.approx(0.9, rel=1e-5)


# --------------------------------------------------------------------------- body-only PSNR


def test_body_mask_ct_fills_lungs_and_drops_air() -> None:
    from medsr.metrics import body_mask

    hu = np.full((1, 96, 96), -1000.0)
    yy, xx = np.mgrid[:96, :96]
    hu[0][(yy - 48) ** 2 + (xx - 48) ** 2 < 36**2] = 40.0  # body
    hu[0][(yy - 48) ** 2 + (xx - 36) ** 2 < 8**2] = -850.0  # a lung inside it
    hu[0, 2, 2] = 500.0  # a speck of noise in the air
    norm = (hu + 1024.0) / 4095.0
    mask = body_mask(norm, "ct")
    disc = (yy - 48) ** 2 + (xx - 48) ** 2 < 36**2
    assert mask[0][disc].mean() > 0.98 and not mask[0][~disc].any()
    assert body_mask(norm, "xray").all()
    with pytest.raises(UsageError, match="modality"):
        body_mask(norm, "pet")


def test_body_psnr_ignores_background_errors() -> None:
    from medsr.metrics import body_psnr

    target = np.zeros((1, 32, 32))
    mask = np.zeros((1, 32, 32), dtype=bool)
    mask[0, 8:24, 8:24] = True
    pred = target.copy()
    pred[0, :4] = 0.5  # error in the background only
    pred[0, 8:24, 8:24] = 0.1  # MSE 0.01 in the body
    assert body_psnr(pred, target, mask) == pytest.approx(20.0)
    assert metrics.psnr(pred, target) < 20.0
    assert np.isnan(body_psnr(pred, target, np.zeros_like(mask)))
