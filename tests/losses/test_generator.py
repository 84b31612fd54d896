from __future__ import annotations

import pytest
import torch

from medsr.errors import UsageError
from medsr.losses import AdversarialLoss, GeneratorLoss, GradientLoss, PerceptualLoss, PixelLoss, SSIMLoss
from medsr.networks import SRGANDiscriminator


@pytest.fixture
def disc():
    return SRGANDiscriminator(2, num_features=4, num_levels=2, hidden_features=8).eval()


def test_pixel_only_without_logits():
    sr, hr = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    total, parts = GeneratorLoss()(sr, hr)
    assert set(parts) == {"pixel", "total"}
    torch.testing.assert_close(total, PixelLoss("l1")(sr, hr))


@pytest.mark.parametrize("kind", ["nonsaturating", "relativistic"])
def test_weighted_sum_of_parts(disc, kind):
    content = PerceptualLoss(feature_extractor=disc.forward_features)
    crit = GeneratorLoss(
        alpha=1.0, beta=1e-3, gamma=6e-3, adversarial=kind, content=content, ssim_weight=0.1, gradient_weight=0.2
    )
    hr = torch.rand(2, 1, 16, 16)
    sr = torch.rand(2, 1, 16, 16, requires_grad=True)
    fake, real = disc(sr), disc(hr)
    total, parts = crit(sr, hr, fake_logits=fake, real_logits=real)
    expected = (
        PixelLoss("l1")(sr, hr)
        + 1e-3 * AdversarialLoss(kind).generator_loss(real, fake)
        + 6e-3 * content(sr, hr)
        + 0.1 * SSIMLoss(2)(sr, hr)
        + 0.2 * GradientLoss(2)(sr, hr)
    )
    assert set(parts) == {"pixel", "adversarial", "content", "ssim", "gradient", "total"}
    torch.testing.assert_close(total, expected)
    assert not any(v.requires_grad for v in parts.values())
    total.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0


def test_zero_weights_skip_terms(disc):
    crit = GeneratorLoss(beta=0.0, gamma=0.0, content=PerceptualLoss(feature_extractor=disc.forward_features))
    x = torch.rand(1, 1, 16, 16)
    total, parts = crit(x, x, fake_logits=disc(x))
    assert set(parts) == {"pixel", "total"} and total.item() == 0.0


def test_relativistic_needs_real_logits(disc):
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(UsageError, match="real_logits"):
        GeneratorLoss(adversarial="relativistic")(x, x, fake_logits=disc(x))


@pytest.mark.parametrize(
    "kwargs",
    [{"alpha": -1.0}, {"beta": "x"}, {"pixel": "l0"}, {"adversarial": "wgan"}, {"ssim_weight": 1.0, "spatial_dims": 1}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(UsageError):
        GeneratorLoss(**kwargs)
