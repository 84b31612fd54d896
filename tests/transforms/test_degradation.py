"""Tests for medsr.transforms.degradation: shapes, physics statistics, reproducibility, dict versions."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, CopyItemsd

from medsr import meta as M
from medsr.errors import UsageError
from medsr.transforms import (
    BicubicDegradation,
    BicubicDegradationd,
    CropToMultiple,
    CropToMultipled,
    CTDegradation,
    CTDegradationd,
    MRDegradation,
    MRDegradationd,
    RandCTDegradation,
    RandCTDegradationd,
    RandModalityDegradation,
    RandModalityDegradationd,
    RandMRDegradation,
    RandMRDegradationd,
    RandSliceThickness,
    RandSliceThicknessd,
    RandXRayDegradation,
    RandXRayDegradationd,
    SliceThickness,
    SliceThicknessd,
    XRayDegradation,
    XRayDegradationd,
    downsample,
)

IN_PLANE: dict[str, Callable[[int], object]] = {
    "bicubic": lambda s: BicubicDegradation(s),
    "xray": lambda s: XRayDegradation(s),
    "rand_xray": lambda s: RandXRayDegradation(s),
    "ct": lambda s: CTDegradation(s),
    "rand_ct": lambda s: RandCTDegradation(s),
    "mr": lambda s: MRDegradation(s),
    "rand_mr": lambda s: RandMRDegradation(s),
    "rand_modality_ct": lambda s: RandModalityDegradation(s, modality="ct"),
}

SEEDED: dict[str, Callable[[int], object]] = {
    "xray": lambda seed: XRayDegradation(2, seed=seed),
    "ct": lambda seed: CTDegradation(2, seed=seed),
    "mr": lambda seed: MRDegradation(2, seed=seed),
}

RANDOM: dict[str, Callable[[], object]] = {
    "rand_xray": lambda: RandXRayDegradation(2),
    "rand_ct": lambda: RandCTDegradation(2),
    "rand_mr": lambda: RandMRDegradation(2),
    "rand_slice": lambda: RandSliceThickness(2, profiles=("gaussian",)),
    "rand_modality": lambda: RandModalityDegradation(2, p_classic=0.0, modality="mr"),
}


def _phantom(gen: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """A [0, 1] test image: smooth background, a bright square, some texture."""
    x = torch.full(shape, 0.3)
    sl = tuple(slice(s // 4, 3 * s // 4) for s in shape[1:])
    x[(slice(None),) + sl] = 0.7
    return (x + 0.05 * torch.rand(shape, generator=gen)).clamp(0, 1)


def _edge_width(profile: torch.Tensor) -> float:
    """RMS width (samples) of the derivative of a rising edge profile."""
    d = torch.diff(profile.double()).clamp_min(0)
    k = torch.arange(d.numel(), dtype=torch.float64)
    mean = (d * k).sum() / d.sum()
    return float(torch.sqrt((d * (k - mean) ** 2).sum() / d.sum()))


def _step(n: int = 64, edge: int = 29) -> torch.Tensor:
    x = torch.full((1, n, 8), 0.2)
    x[:, edge:] = 0.8
    return x


# --------------------------------------------------------------------------- shapes and geometry


@pytest.mark.parametrize("name", sorted(IN_PLANE))
@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("shape", [(1, 64, 64), (1, 32, 32, 32)], ids=["2d", "3d"])
def test_lr_shape(gen: torch.Generator, device: torch.device, name: str, scale: int, shape: tuple) -> None:
    x = _phantom(gen, shape).to(device)
    y = IN_PLANE[name](scale)(x)
    expected = (shape[0], shape[1] // scale, shape[2] // scale) + tuple(shape[3:])
    assert tuple(y.shape) == expected
    assert y.dtype == torch.float32 and y.device == x.device
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("profile", ["box", "gaussian"])
def test_slice_thickness_shape_and_geometry(gen: torch.Generator, factor: int, profile: str) -> None:
    affine = torch.diag(torch.tensor([0.7, 0.7, 1.0, 1.0], dtype=torch.float64))
    vol = MetaTensor(_phantom(gen, (1, 32, 32, 32)), affine=affine, meta={M.SPACING: (0.7, 0.7, 1.0)})
    y = SliceThickness(factor, profile=profile)(vol)
    assert tuple(y.shape) == (1, 32, 32, 32 // factor)
    assert y.meta[M.SPACING] == (0.7, 0.7, float(factor))
    assert float(y.affine[2, 2]) == factor and float(y.affine[2, 3]) == pytest.approx((factor - 1) / 2)
    assert y.min() >= vol.min() - 1e-6 and y.max() <= vol.max() + 1e-6  # convex combination
    assert tuple(RandSliceThickness(factor)(vol).shape) == (1, 32, 32, 32 // factor)


def test_degradation_updates_meta_geometry(gen: torch.Generator) -> None:
    affine = torch.diag(torch.tensor([0.5, 0.5, 2.0, 1.0], dtype=torch.float64))
    vol = MetaTensor(_phantom(gen, (1, 32, 32, 8)), affine=affine, meta={M.SPACING: (0.5, 0.5, 2.0), M.MODALITY: "ct"})
    y = CTDegradation(4)(vol)
    assert isinstance(y, MetaTensor) and y.meta[M.MODALITY] == "ct"
    assert y.meta[M.SPACING] == (2.0, 2.0, 2.0)
    torch.testing.assert_close(torch.diag(y.affine)[:3], torch.tensor([2.0, 2.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(y.affine[:3, 3], torch.tensor([0.75, 0.75, 0.0], dtype=torch.float64))


def test_numpy_input_accepted(gen: torch.Generator) -> None:
    y = BicubicDegradation(2)(_phantom(gen, (1, 16, 16)).numpy())
    assert tuple(y.shape) == (1, 8, 8)


def test_bicubic_is_the_matlab_protocol(gen: torch.Generator) -> None:
    x = _phantom(gen, (1, 64, 64))
    torch.testing.assert_close(BicubicDegradation(4)(x).as_tensor(), downsample(x, 4).clamp(0, 1))
    y = BicubicDegradation(2, clip=False)(_step())
    assert y.max() > 0.8  # cubic overshoot exists before clipping


@pytest.mark.parametrize(
    "make",
    [
        lambda: BicubicDegradation(2)(torch.zeros(1, 31, 32)),
        lambda: XRayDegradation(4)(torch.zeros(1, 32, 30)),
        lambda: SliceThickness(4)(torch.zeros(1, 8, 8, 10)),
        lambda: SliceThickness(2)(torch.zeros(1, 8, 8)),
        lambda: MRDegradation(2, spatial_axes=(0, 3))(torch.zeros(1, 8, 8)),
        lambda: BicubicDegradation(3.0),
        lambda: XRayDegradation(2, photons=0),
        lambda: CTDegradation(2, noise_sigma=-1),
        lambda: MRDegradation(2, window="hann"),
        lambda: SliceThickness(2, profile="triangle"),
        lambda: RandCTDegradation(2, noise_sigma_range=(0.1, 0.01)),
        lambda: RandXRayDegradation(2, prob=1.5),
        lambda: RandModalityDegradation(2)(torch.zeros(1, 8, 8)),
        lambda: RandModalityDegradation(2, modality="pet"),
        lambda: CropToMultiple(16)(torch.zeros(1, 8, 32)),
    ],
)
def test_usage_errors(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError):
        make()


def test_divisibility_message_names_the_fix() -> None:
    with pytest.raises(UsageError, match=r"CropToMultiple\(4\)"):
        CTDegradation(4)(torch.zeros(1, 30, 32))


def test_crop_to_multiple(gen: torch.Generator) -> None:
    x = MetaTensor(torch.rand(1, 30, 33, 10, generator=gen))
    y = CropToMultiple(4)(x)
    assert tuple(y.shape) == (1, 28, 32, 8)
    torch.testing.assert_close(y.as_tensor(), x.as_tensor()[:, 1:29, 0:32, 1:9])
    assert float(y.affine[0, 3]) == 1.0  # origin moved by the crop
    assert tuple(CropToMultiple((4, 4, 1))(x).shape) == (1, 28, 32, 10)
    d = CropToMultipled(keys="hr", multiple=2)({"hr": x})
    assert tuple(d["hr"].shape) == (1, 30, 32, 10)
    with pytest.raises(UsageError):
        CropToMultiple((4, 4))(x)


# --------------------------------------------------------------------------- X-ray physics


def test_xray_poisson_variance_grows_with_intensity() -> None:
    photons, var = 1000.0, {}
    for level in (0.2, 0.8):
        t = XRayDegradation(2, psf_sigma=0.5, photons=photons, read_noise=0.0, clip=False, seed=0)
        y = t(torch.full((1, 128, 128), level))
        var[level] = float(y.var())
        assert float(y.mean()) == pytest.approx(level, abs=0.003)
        assert var[level] == pytest.approx(level / photons, rel=0.1)  # Poisson: variance = mean / N
    assert var[0.8] / var[0.2] == pytest.approx(4.0, rel=0.15)


def test_xray_read_noise_floor() -> None:
    t = XRayDegradation(2, photons=1000.0, read_noise=0.004, clip=False, seed=1)
    y = t(torch.zeros(1, 128, 128))
    assert float(y.std()) == pytest.approx(0.004, rel=0.1)
    assert float(XRayDegradation(2, photons=1000.0, read_noise=0.0)(torch.zeros(1, 16, 16)).abs().max()) == 0.0
    clipped = XRayDegradation(2, photons=100.0, read_noise=0.05)(torch.full((1, 64, 64), 0.98))
    assert clipped.min() >= 0 and clipped.max() <= 1  # clip=True: the ADC range


def test_xray_psf_widens_edges_and_removes_high_frequencies(gen: torch.Generator) -> None:
    widths = []
    for sigma in (0.25, 0.75, 1.5):
        y = XRayDegradation(2, psf_sigma=sigma, photons=None, read_noise=0.0)(_step(128, 61))
        widths.append(_edge_width(y[0, :, 2]))
    assert widths[0] < widths[1] < widths[2]
    texture = torch.rand(1, 64, 64, generator=gen)

    def hf_energy(img: torch.Tensor) -> float:
        return float(torch.diff(img, dim=1).pow(2).mean() + torch.diff(img, dim=2).pow(2).mean())

    hf = [hf_energy(XRayDegradation(2, psf_sigma=s, photons=None, read_noise=0)(texture)) for s in (0.0, 0.5, 1.0)]
    assert hf[0] > hf[1] > hf[2]
    binned = XRayDegradation(2, psf_sigma=0.0, photons=None, read_noise=0)(texture)
    torch.testing.assert_close(binned.as_tensor(), texture.reshape(1, 32, 2, 32, 2).mean((2, 4)))


# --------------------------------------------------------------------------- CT physics


@pytest.mark.parametrize("correlation", [0.0, 1.0])
def test_ct_noise_sd_on_flat_phantom(correlation: float) -> None:
    t = CTDegradation(2, psf_fwhm=1.0, noise_sigma=0.01, noise_correlation=correlation, seed=3)
    y = t(torch.full((1, 128, 128), 0.5))
    noise = y[0] - 0.5
    assert float(noise.std()) == pytest.approx(0.01, rel=0.1)
    assert float(noise.mean()) == pytest.approx(0.0, abs=0.002)
    lag1 = float((noise[1:] * noise[:-1]).mean() / noise.var())
    assert (lag1 > 0.5) if correlation else (abs(lag1) < 0.1)


def test_ct_psf_fwhm_widens_edges() -> None:
    w = [_edge_width(CTDegradation(2, psf_fwhm=f, noise_sigma=0)(_step(128, 61))[0, :, 2]) for f in (0.8, 1.5, 3)]
    assert w[0] < w[1] < w[2]


# --------------------------------------------------------------------------- MR physics


def test_mr_gibbs_ringing_and_windows() -> None:
    overshoot = {}
    for window in (None, "tukey", "hamming"):
        peaks = []
        for edge in range(16, 20):  # several sub-pixel edge positions
            x = torch.full((1, 128, 4), 0.2)
            x[:, edge : edge + 64] = 0.8
            peaks.append(float(MRDegradation(2, noise_sigma=0, window=window)(x).max()) - 0.8)
        overshoot[window] = max(peaks) / 0.6
    assert overshoot[None] > 0.05  # Gibbs: ~9 % of the jump
    assert overshoot["hamming"] < 0.1 * overshoot[None]
    assert overshoot["tukey"] < overshoot[None]


def test_mr_truncation_keeps_mean(gen: torch.Generator) -> None:
    x = _phantom(gen, (1, 64, 64))
    for window in (None, "hamming"):
        y = MRDegradation(4, noise_sigma=0, window=window)(x)
        assert float(y.mean()) == pytest.approx(float(x.mean()), rel=1e-4)


def test_mr_rician_background_bias() -> None:
    sigma = 0.02
    y = MRDegradation(2, noise_sigma=sigma, seed=5)(torch.zeros(1, 128, 128))
    assert y.min() >= 0
    assert float(y.mean()) == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.05)
    assert float(y.var()) == pytest.approx((2 - math.pi / 2) * sigma**2, rel=0.1)
    bright = MRDegradation(2, noise_sigma=sigma, seed=5)(torch.full((1, 128, 128), 0.8))
    assert float(bright.mean()) == pytest.approx(0.8, abs=0.002)  # Rician ~ Gaussian at high SNR
    assert float(bright.std()) == pytest.approx(sigma, rel=0.1)


# --------------------------------------------------------------------------- slice thickness


def test_slice_averaging_reduces_noise_variance() -> None:
    g = torch.Generator().manual_seed(7)
    vol = 0.5 + 0.05 * torch.randn(1, 16, 16, 64, generator=g)
    box = SliceThickness(4)(vol)
    torch.testing.assert_close(box.as_tensor(), vol.reshape(1, 16, 16, 16, 4).mean(-1))
    assert float(vol.var() / box.var()) == pytest.approx(4.0, rel=0.15)
    gauss = SliceThickness(4, profile="gaussian")(vol)
    assert float(vol.var() / gauss.var()) > 3.0
    other_axis = SliceThickness(2, axis=0)(vol)
    assert tuple(other_axis.shape) == (1, 8, 16, 64)


# --------------------------------------------------------------------------- randomness


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_deterministic_noise_is_a_function_of_the_seed(gen: torch.Generator, name: str) -> None:
    x = _phantom(gen, (1, 32, 32, 8))
    t = SEEDED[name](11)
    torch.testing.assert_close(t(x), t(x), rtol=0, atol=0)
    torch.testing.assert_close(t(x), SEEDED[name](11)(x), rtol=0, atol=0)
    assert not torch.equal(t(x), SEEDED[name](12)(x))


@pytest.mark.parametrize("name", ["xray", "ct", "mr"])
def test_rand_is_the_deterministic_transform_with_the_drawn_parameters(gen: torch.Generator, name: str) -> None:
    x = _phantom(gen, (1, 32, 32))
    rand = {"xray": RandXRayDegradation, "ct": RandCTDegradation, "mr": RandMRDegradation}[name](2).set_random_state(3)
    y = rand(x)
    det = {"xray": XRayDegradation, "ct": CTDegradation, "mr": MRDegradation}[name]
    extra = {"tukey_alpha": rand.tukey_alpha} if name == "mr" else {"clip": rand.clip}
    torch.testing.assert_close(y, det(2, **rand.params, **extra, seed=rand._seed)(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_seed_reproduces_and_seeds_differ(gen: torch.Generator, name: str) -> None:
    x = _phantom(gen, (1, 32, 32, 8))
    a = RANDOM[name]().set_random_state(11)(x)
    b = RANDOM[name]().set_random_state(11)(x)
    c = RANDOM[name]().set_random_state(12)(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_rand_parameters_stay_in_ranges(gen: torch.Generator) -> None:
    t = RandXRayDegradation(2, psf_sigma_range=(0.3, 0.4), photons_range=(500, 600), read_noise_range=(0, 0.001))
    t.set_random_state(0)
    for _ in range(20):
        t.randomize()
        assert 0.3 <= t.params["psf_sigma"] <= 0.4 and 500 <= t.params["photons"] <= 600
        assert 0 <= t.params["read_noise"] <= 0.001
    m = RandMRDegradation(2, windows=("hamming",)).set_random_state(0)
    m.randomize()
    assert m.params["window"] == "hamming" and 0.002 <= m.params["noise_sigma"] <= 0.02


@pytest.mark.parametrize("cls", [RandXRayDegradation, RandCTDegradation, RandMRDegradation])
def test_prob_zero_falls_back_to_bicubic(gen: torch.Generator, cls: type) -> None:
    x = _phantom(gen, (1, 32, 32))
    torch.testing.assert_close(cls(2, prob=0.0)(x), BicubicDegradation(2)(x))


def test_rand_modality_choice(gen: torch.Generator) -> None:
    x = MetaTensor(_phantom(gen, (1, 32, 32)), meta={M.MODALITY: "xray"})
    classic = RandModalityDegradation(2, p_classic=1.0)
    torch.testing.assert_close(classic(x), BicubicDegradation(2)(x))
    assert classic.choice == "classic"
    physics = RandModalityDegradation(2, p_classic=0.0).set_random_state(0)
    assert not torch.equal(physics(x), BicubicDegradation(2)(x)) and physics.choice == "xray"
    mixed = RandModalityDegradation(2).set_random_state(0)
    seen = set()
    for _ in range(20):
        mixed(x)
        seen.add(mixed.choice)
    assert seen == {"classic", "xray"}
    assert RandModalityDegradation(2, p_classic=0.0, modality="mr")(x.as_tensor()).min() >= 0


def test_pipeline_reproducible_from_one_seed(gen: torch.Generator) -> None:
    hr = MetaTensor(_phantom(gen, (1, 32, 32)), meta={M.MODALITY: "ct"})
    pipeline = Compose([CopyItemsd(keys="hr", names="lr"), RandModalityDegradationd(keys="lr", scale=2)])

    def run(seed: int) -> list[torch.Tensor]:
        pipeline.set_random_state(seed=seed)
        return [pipeline({"hr": hr})["lr"] for _ in range(4)]

    first, again, other = run(0), run(0), run(1)
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(first, other, strict=True))
    out = pipeline({"hr": hr})
    assert tuple(out["hr"].shape) == (1, 32, 32) and tuple(out["lr"].shape) == (1, 16, 16)


# --------------------------------------------------------------------------- dictionary versions


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: BicubicDegradationd("lr", 2), (1, 16, 16, 8)),
        (lambda: XRayDegradationd("lr", 2), (1, 16, 16, 8)),
        (lambda: CTDegradationd("lr", 4), (1, 8, 8, 8)),
        (lambda: MRDegradationd("lr", 2, window="hamming"), (1, 16, 16, 8)),
        (lambda: RandXRayDegradationd("lr", 2), (1, 16, 16, 8)),
        (lambda: RandCTDegradationd("lr", 2), (1, 16, 16, 8)),
        (lambda: RandMRDegradationd("lr", 2), (1, 16, 16, 8)),
        (lambda: SliceThicknessd("lr", 2), (1, 32, 32, 4)),
        (lambda: RandSliceThicknessd("lr", 4), (1, 32, 32, 2)),
        (lambda: RandModalityDegradationd("lr", 2, modality="mr"), (1, 16, 16, 8)),
    ],
)
def test_dictionary_versions(gen: torch.Generator, make: Callable[[], object], expected: tuple) -> None:
    hr = _phantom(gen, (1, 32, 32, 8))
    t = make()
    if hasattr(t, "set_random_state"):
        t.set_random_state(0)
    out = t({"hr": hr, "lr": hr.clone(), "label": 2})
    assert tuple(out["lr"].shape) == expected
    assert out["hr"] is hr and out["label"] == 2


def test_dictionary_random_versions_draw_once_for_all_keys(gen: torch.Generator) -> None:
    x = _phantom(gen, (1, 32, 32))
    for t in (
        RandXRayDegradationd(["a", "b"], 2),
        RandCTDegradationd(["a", "b"], 2),
        RandModalityDegradationd(["a", "b"], 2, modality="xray"),
    ):
        out = t.set_random_state(4)({"a": x, "b": x.clone()})
        torch.testing.assert_close(out["a"], out["b"], rtol=0, atol=0)
    with pytest.raises(UsageError):
        RandModalityDegradationd(["a", "b"], 2)(
            {"a": MetaTensor(x, meta={M.MODALITY: "ct"}), "b": MetaTensor(x, meta={M.MODALITY: "mr"})}
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda s: BicubicDegradation(s),
        lambda s: XRayDegradation(s, photons=None, read_noise=0.0),
        lambda s: CTDegradation(s, noise_sigma=0.0),
        lambda s: MRDegradation(s, noise_sigma=0.0),
        lambda s: MRDegradation(s, noise_sigma=0.0, window="hamming"),
    ],
    ids=["bicubic", "xray", "ct", "mr", "mr-hamming"],
)
@pytest.mark.parametrize("scale", [2, 4])
def test_lr_voxel_centres_match_the_affine(make: Callable[[int], object], scale: int) -> None:
    """LR voxel j sits at HR coordinate s*j + (s-1)/2 (the affine's convention): no shift of content."""
    i, j = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    centre = (30.3, 33.7)
    blob = torch.exp(-((i - centre[0]) ** 2 + (j - centre[1]) ** 2) / (2 * 4.0**2))[None]
    y = make(scale)(blob)[0].double()
    li, lj = torch.meshgrid(torch.arange(64.0 // scale), torch.arange(64.0 // scale), indexing="ij")
    found = (float((y * li).sum() / y.sum()), float((y * lj).sum() / y.sum()))
    expected = tuple((c - (scale - 1) / 2) / scale for c in centre)
    assert found == pytest.approx(expected, abs=0.02)


def test_slice_centres_match_the_affine() -> None:
    k = torch.arange(32.0)
    vol = torch.exp(-((k - 13.4) ** 2) / (2 * 3.0**2)).expand(1, 4, 4, 32)
    for profile in ("box", "gaussian"):
        y = SliceThickness(4, profile=profile)(vol)[0, 0, 0].double()
        assert float((y * torch.arange(8.0)).sum() / y.sum()) == pytest.approx((13.4 - 1.5) / 4, abs=0.02)
