"""Pixel-wise reconstruction losses: L1, L2 (MSE) and Charbonnier."""

from __future__ import annotations

import torch
from torch import nn

from medsr.validation import check_choice, check_nonnegative_float

__all__ = ["PixelLoss", "REDUCTIONS"]

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


def reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``"mean"``, ``"sum"`` or ``"none"`` to an element-wise loss."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class PixelLoss(nn.Module):
    """Pixel loss between a super-resolved and a reference image: L1, L2 or Charbonnier.

    The Charbonnier penalty (a differentiable L1; Lai et al., 2017, LapSRN,
    https://arxiv.org/abs/1704.03915) is ``sqrt(d**2 + eps**2) - eps``: the ``- eps``
    (absent in LapSRN) makes the loss exactly 0 for identical images without
    changing its gradient.

    Args:
        kind: ``"l1"``, ``"l2"`` (mean squared error) or ``"charbonnier"``. Defaults to ``"l1"``.
        eps: Charbonnier smoothing. Defaults to 1e-3.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``. Defaults to ``"mean"``.

    Example::

        loss = PixelLoss("charbonnier")(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))
    """

    KINDS: tuple[str, ...] = ("l1", "l2", "charbonnier")

    def __init__(self, kind: str = "l1", eps: float = 1e-3, reduction: str = "mean") -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, self.KINDS)
        self.eps = check_nonnegative_float("eps", eps)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the loss between ``input`` (prediction) and ``target`` of the same shape."""
        diff = input - target
        if self.kind == "l1":
            loss = diff.abs()
        elif self.kind == "l2":
            loss = diff * diff
        else:
            loss = torch.sqrt(diff * diff + self.eps**2) - self.eps
        return reduce(loss, self.reduction)
