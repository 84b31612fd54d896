"""The combined generator objective: pixel + adversarial + content (+ optional SSIM and gradient terms)."""

from __future__ import annotations

import torch
from torch import nn

from medsr.losses.adversarial import AdversarialLoss
from medsr.losses.gradient import GradientLoss
from medsr.losses.pixel import PixelLoss
from medsr.losses.ssim import SSIMLoss
from medsr.validation import check_nonnegative_float

__all__ = ["GeneratorLoss"]


class GeneratorLoss(nn.Module):
    """``alpha * pixel + beta * adversarial + gamma * content [+ ssim_weight * SSIM + gradient_weight * gradient]``.

    The SRGAN perceptual loss (Ledig et al., 2017, https://arxiv.org/abs/1609.04802):
    ``beta = 1e-3`` weighs the adversarial term against the content term, whose
    ``gamma = 6e-3`` is SRGAN's ``1 / 12.75**2`` rescaling of the VGG feature MSE.
    Terms are skipped when they cannot or need not be computed: the
    adversarial term when no ``fake_logits`` are passed (pixel-only warm-up,
    as in SRGAN's SRResNet initialisation) or ``beta == 0``; the content term
    when ``content`` is None or ``gamma == 0``.

    Args:
        alpha: pixel-loss weight. Defaults to 1.0.
        beta: adversarial-loss weight. Defaults to 1e-3.
        gamma: content-loss weight. Defaults to 6e-3.
        pixel: a :class:`PixelLoss` kind or a loss module. Defaults to ``"l1"``.
        adversarial: an :class:`AdversarialLoss` kind or instance. Defaults to ``"nonsaturating"``.
        content: content loss module (e.g. :class:`PerceptualLoss`), or None. Defaults to None.
        ssim_weight: weight of :class:`SSIMLoss` (0 disables). Defaults to 0.0.
        gradient_weight: weight of :class:`GradientLoss` (0 disables). Defaults to 0.0.
        spatial_dims: 2 or 3, for the SSIM and gradient terms. Defaults to 2.

    Example::

        disc = medsr.networks.SRGANDiscriminator(spatial_dims=2, num_features=8)
        hr, sr = torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32, requires_grad=True)
        crit = GeneratorLoss(content=PerceptualLoss(feature_extractor=disc.forward_features))
        total, parts = crit(sr, hr, fake_logits=disc(sr), real_logits=disc(hr))
        total.backward()  # parts: {"pixel": ..., "adversarial": ..., "content": ..., "total": ...}
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 1e-3,
        gamma: float = 6e-3,
        pixel: str | nn.Module = "l1",
        adversarial: str | AdversarialLoss = "nonsaturating",
        content: nn.Module | None = None,
        ssim_weight: float = 0.0,
        gradient_weight: float = 0.0,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        self.alpha = check_nonnegative_float("alpha", alpha)
        self.beta = check_nonnegative_float("beta", beta)
        self.gamma = check_nonnegative_float("gamma", gamma)
        self.ssim_weight = check_nonnegative_float("ssim_weight", ssim_weight)
        self.gradient_weight = check_nonnegative_float("gradient_weight", gradient_weight)
        self.pixel = PixelLoss(pixel) if isinstance(pixel, str) else pixel
        self.adversarial = AdversarialLoss(adversarial) if isinstance(adversarial, str) else adversarial
        self.content = content
        self.ssim = SSIMLoss(spatial_dims) if self.ssim_weight > 0 else None
        self.gradient = GradientLoss(spatial_dims) if self.gradient_weight > 0 else None

    def forward(
        self,
        input: torch.Tensor,
        target: torch.Tensor,
        fake_logits: torch.Tensor | None = None,
        real_logits: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return ``(total, parts)``: the weighted sum (with gradients) and the unweighted, detached terms.

        Args:
            input: super-resolved images.
            target: reference high-resolution images.
            fake_logits: discriminator logits on ``input`` (not detached), or None.
            real_logits: discriminator logits on ``target``; needed by the relativistic loss.
        """
        terms: list[tuple[str, float, torch.Tensor]] = []
        if self.alpha > 0:
            terms.append(("pixel", self.alpha, self.pixel(input, target)))
        if self.beta > 0 and fake_logits is not None:
            terms.append(("adversarial", self.beta, self.adversarial.generator_loss(real_logits, fake_logits)))
        if self.gamma > 0 and self.content is not None:
            terms.append(("content", self.gamma, self.content(input, target)))
        if self.ssim is not None:
            terms.append(("ssim", self.ssim_weight, self.ssim(input, target)))
        if self.gradient is not None:
            terms.append(("gradient", self.gradient_weight, self.gradient(input, target)))
        total = sum((w * v for _, w, v in terms), input.new_zeros(()))
        parts = {name: v.detach() for name, _, v in terms}
        parts["total"] = total.detach()
        return total, parts
