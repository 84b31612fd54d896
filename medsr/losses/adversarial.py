"""Adversarial losses: non-saturating GAN and relativistic average GAN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medsr.errors import UsageError
from medsr.validation import check_choice

__all__ = ["AdversarialLoss"]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class AdversarialLoss(nn.Module):
    """Adversarial loss for the generator and the discriminator, on raw logits.

    ``"nonsaturating"``: Goodfellow et al., 2014 (https://arxiv.org/abs/1406.2661),
    as used by SRGAN (Ledig et al., 2017)::

        L_D = BCE(D(x_r), 1) + BCE(D(x_f), 0)
        L_G = BCE(D(x_f), 1)                      # = -log sigmoid(D(x_f)); real logits unused

    ``"relativistic"``: relativistic average GAN, Jolicoeur-Martineau, 2018
    (https://arxiv.org/abs/1807.00734), as in ESRGAN (Wang et al., 2018,
    https://arxiv.org/abs/1809.00219), with ``D_ra(a, b) = a - mean(b)``::

        L_D = BCE(D_ra(x_r, x_f), 1) + BCE(D_ra(x_f, x_r), 0)
        L_G = BCE(D_ra(x_r, x_f), 0) + BCE(D_ra(x_f, x_r), 1)

    The sums follow the papers; ESRGAN's code halves them (absorb that in the
    loss weight). BCE is averaged over the batch. For the discriminator step pass
    fake logits computed from a *detached* generator output.

    Args:
        kind: ``"nonsaturating"`` or ``"relativistic"``. Defaults to ``"nonsaturating"``.

    Example::

        disc = medsr.networks.SRGANDiscriminator(spatial_dims=2, num_features=8)
        hr, sr = torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32, requires_grad=True)
        adv = AdversarialLoss("relativistic")
        real, fake = disc(hr), disc(sr)
        g_loss = adv.generator_loss(real, fake)
        d_loss = adv.discriminator_loss(disc(hr), disc(sr.detach()))
    """

    KINDS: tuple[str, ...] = ("nonsaturating", "relativistic")

    def __init__(self, kind: str = "nonsaturating") -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, self.KINDS)

    def _need_real(self, real_logits: torch.Tensor | None) -> torch.Tensor:
        if real_logits is None:
            raise UsageError(
                f"`real_logits` must be given for kind={self.kind!r}, got None. "
                "Pass the discriminator's logits on the real (high-resolution) images."
            )
        return real_logits

    def generator_loss(self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss the generator minimises; ``real_logits`` may be None for ``"nonsaturating"``."""
        if self.kind == "nonsaturating":
            return _bce(fake_logits, 1.0)
        real_logits = self._need_real(real_logits)
        return _bce(real_logits - fake_logits.mean(), 0.0) + _bce(fake_logits - real_logits.mean(), 1.0)

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss the discriminator minimises."""
        real_logits = self._need_real(real_logits)
        if self.kind == "nonsaturating":
            return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)
        return _bce(real_logits - fake_logits.mean(), 1.0) + _bce(fake_logits - real_logits.mean(), 0.0)

    def forward(
        self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor, for_discriminator: bool = False
    ) -> torch.Tensor:
        """:meth:`discriminator_loss` if ``for_discriminator`` else :meth:`generator_loss`."""
        if for_discriminator:
            return self.discriminator_loss(self._need_real(real_logits), fake_logits)
        return self.generator_loss(real_logits, fake_logits)
