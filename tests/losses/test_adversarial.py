from __future__ import annotations

import math

import pytest
import torch

from medsr.errors import UsageError
from medsr.losses import AdversarialLoss

REAL = [1.0, -0.5]
FAKE = [0.2, -1.0]


def softplus(v: float) -> float:  # -log(sigmoid(-v)) = BCE-with-logits of v against target 0
    return math.log(1.0 + math.exp(v))


def mean(values):
    return sum(values) / len(values)


def test_nonsaturating_values():
    adv = AdversarialLoss("nonsaturating")
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    g = mean([softplus(-f) for f in FAKE])  # -log D(G(z))
    d = mean([softplus(-r) for r in REAL]) + mean([softplus(f) for f in FAKE])
    assert adv.generator_loss(None, fake).item() == pytest.approx(g, abs=1e-6)
    assert adv.generator_loss(real, fake).item() == pytest.approx(g, abs=1e-6)  # real logits unused
    assert adv.discriminator_loss(real, fake).item() == pytest.approx(d, abs=1e-6)
    assert adv(real, fake, for_discriminator=True).item() == pytest.approx(d, abs=1e-6)


def test_relativistic_values():
    adv = AdversarialLoss("relativistic")
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    real_rel = [r - mean(FAKE) for r in REAL]  # [1.4, -0.1]
    fake_rel = [f - mean(REAL) for f in FAKE]  # [-0.05, -1.25]
    d = mean([softplus(-v) for v in real_rel]) + mean([softplus(v) for v in fake_rel])
    g = mean([softplus(v) for v in real_rel]) + mean([softplus(-v) for v in fake_rel])
    assert adv.discriminator_loss(real, fake).item() == pytest.approx(d, abs=1e-6)
    assert adv.generator_loss(real, fake).item() == pytest.approx(g, abs=1e-6)
    assert adv(real, fake).item() == pytest.approx(g, abs=1e-6)
    # relativistic: only differences of logits matter
    assert adv.generator_loss(real + 3.0, fake + 3.0).item() == pytest.approx(g, abs=1e-6)


@pytest.mark.parametrize("kind", ["nonsaturating", "relativistic"])
def test_gradients_flow(kind):
    adv = AdversarialLoss(kind)
    real = torch.randn(4, 1, requires_grad=True)
    fake = torch.randn(4, 1, requires_grad=True)
    adv.generator_loss(real, fake).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    # the generator wants fake logits up: the gradient on them is negative
    assert (fake.grad < 0).all()


def test_relativistic_needs_real_logits():
    with pytest.raises(UsageError, match="real_logits"):
        AdversarialLoss("relativistic").generator_loss(None, torch.zeros(2, 1))


@pytest.mark.parametrize("kind", ["lsgan", "", None])
def test_bad_arguments(kind):
    with pytest.raises(UsageError):
        AdversarialLoss(kind)
